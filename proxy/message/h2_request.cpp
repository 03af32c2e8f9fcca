#include "proxy/message/h2_request.h"

#include "proxy/message/request_path.h"

#include <boost/beast/core/string.hpp>

#include <charconv>

namespace sluice::proxy {

namespace {

std::string quoted(std::string_view s, std::size_t max = 80) {
    std::string out = "\"";
    for (char c : s.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    if (s.size() > max) out += "...";
    return out + "\"";
}

}  // namespace

void H2RequestBuilder::reset(std::size_t limit) {
    raw_.clear();
    spans_.clear();
    size_ = 0;
    limit_ = limit;
    over_ = false;
}

void H2RequestBuilder::add(std::string_view name, std::string_view value) {
    size_ += name.size() + value.size() + 32;
    if (size_ > limit_) over_ = true;
    if (over_) return;
    raw_.append(name);
    raw_.append(value);
    spans_.emplace_back(static_cast<std::uint32_t>(name.size()), static_cast<std::uint32_t>(value.size()));
}

std::optional<Refusal> H2RequestBuilder::finish(RequestHead& head, const config::Paths& paths) {
    auto refuse = [](std::string message, ErrorKind kind = ErrorKind::bad_request) {
        return Refusal{kind, std::move(message)};
    };
    head.clear();
    head.version = 20;
    if (over_)
        return refuse("the request headers are larger than " + std::to_string(limit_) +
                          " bytes (limits.request_headers, counted as HTTP/2 does); send fewer or smaller headers or "
                          "raise the limit",
                      ErrorKind::headers_too_large);
    // One copy, made once: every view below points into head.raw.
    head.raw = std::move(raw_);
    raw_.clear();
    std::string_view raw = head.raw, authority, protocol;
    std::size_t at = 0;
    head.fields.reserve(spans_.size());
    for (auto [nlen, vlen] : spans_) {
        std::string_view name = raw.substr(at, nlen), value = raw.substr(at + nlen, vlen);
        at += nlen + vlen;
        if (!name.empty() && name.front() == ':') {
            if (name == ":method") head.method = value;
            else if (name == ":path") head.target = value;
            else if (name == ":authority") authority = value;
            else if (name == ":scheme") continue;  // the listener says how the client came
            else if (name == ":protocol") protocol = value;  // extended CONNECT (RFC 8441)
            else return refuse("the pseudo-header " + quoted(name) + " is not supported here");
            continue;
        }
        HeaderField f{http::string_to_field(name), name, value};
        if (f.id == http::field::host) {
            ++head.hosts;
            if (authority.empty()) head.host = value;
        } else if (f.id == http::field::content_length) {
            ++head.content_lengths;
            head.has_content_length = true;
        }
        head.fields.push_back(f);
    }
    // RFC 9113 8.3.1: :authority wins over Host.
    if (!authority.empty()) head.host = authority;
    head.verb = http::string_to_verb(head.method);
    if (head.verb == http::verb::connect && !protocol.empty()) {
        // RFC 8441: a WebSocket over this stream, sent upstream as an HTTP/1.1 upgrade.
        if (!boost::beast::iequals(protocol, "websocket"))
            return refuse("the extended CONNECT protocol " + quoted(protocol) + " is not supported; only websocket is");
        head.extended_connect = true;
        head.method = "GET";
        head.verb = http::verb::get;
    } else if (head.verb == http::verb::connect) {
        return refuse("CONNECT is not supported (sluice is a reverse proxy)");
    } else if (!protocol.empty()) {
        return refuse("the pseudo-header \":protocol\" belongs to an extended CONNECT only");
    }
    if (head.hosts > 1) return refuse("the request has " + std::to_string(head.hosts) + " Host headers; send one");
    if (head.host.empty()) return refuse("the request has neither :authority nor Host; send one");
    if (!valid_authority(head.host)) return refuse("the authority " + quoted(head.host) + " is not a valid host[:port]");
    if (head.content_lengths > 1) return refuse("the request has more than one Content-Length");
    if (head.has_content_length) {
        std::string_view v = head.find(http::field::content_length);
        std::uint64_t n = 0;
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
        if (ec != std::errc() || end != v.data() + v.size() || v.empty())
            return refuse("the Content-Length " + quoted(v) + " is not a number");
    }
    std::string_view t = head.target;
    auto q = t.find('?');
    head.path = t.substr(0, q);
    head.query = q == std::string_view::npos ? std::string_view{} : t.substr(q);
    if (head.target.find('#') != std::string_view::npos)
        return refuse("the :path " + quoted(head.target) + " holds a fragment ('#'), which is never sent to a server");
    if (head.path == "*" && head.verb == http::verb::options) return std::nullopt;
    if (head.path.empty() || head.path.front() != '/')
        return refuse("the :path " + quoted(head.target) + " is not a path starting with '/'");
    if (head.path.find('\\') != std::string_view::npos)
        return refuse("the path " + quoted(head.path) +
                      " holds a backslash, which some servers read as '/' and others do not; encode it as %5C");
    auto r = normalize_path(head.path, paths, head.normalized_path);
    if (r.outcome == PathResult::Outcome::refused) return refuse(r.problem + ": " + quoted(head.path));
    if (r.outcome == PathResult::Outcome::changed) head.path = head.normalized_path;
    return std::nullopt;
}

}  // namespace sluice::proxy
