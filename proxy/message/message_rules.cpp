#include "proxy/message/message_rules.h"

#include "config/duration.h"
#include "proxy/message/request_path.h"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>

#include <array>

namespace sluice::proxy {
namespace {

using boost::beast::iequals;

std::string_view trim(std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
}

// Client text quoted in a message: short, printable, one line.
std::string quoted(std::string_view s, std::size_t max = 80) {
    std::string out = "\"";
    for (char c : s.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    if (s.size() > max) out += "...";
    return out + "\"";
}

// The number of options the Connection fields list.
std::size_t connection_options(const MessageHead& head) {
    std::size_t n = 0;
    for (const auto& f : head.fields) {
        if (f.id != http::field::connection) continue;
        std::string_view v = f.value;
        for (;;) {
            auto comma = v.find(',');
            if (!trim(v.substr(0, comma)).empty()) ++n;
            if (comma == std::string_view::npos) break;
            v.remove_prefix(comma + 1);
        }
    }
    return n;
}

// Transfer-Encoding as sluice accepts it: exactly one coding, "chunked". A
// list Beast and an origin may read differently ("chunked, chunked" is no
// body to Beast) or a coding sluice cannot frame is refused.
std::optional<std::string> transfer_coding_problem(const MessageHead& head, bool& unknown_coding) {
    unknown_coding = false;
    if (head.transfer_encodings == 0) return std::nullopt;
    if (head.transfer_encodings > 1) return "more than one Transfer-Encoding field";
    std::string_view te = trim(head.find(http::field::transfer_encoding));
    if (iequals(te, "chunked")) return std::nullopt;
    // Say which: a repeated or empty chunked, or a coding sluice does not implement.
    std::string_view v = te;
    for (;;) {
        auto comma = v.find(',');
        std::string_view coding = trim(v.substr(0, comma));
        auto semi = coding.find(';');
        if (!iequals(trim(coding.substr(0, semi)), "chunked") && !coding.empty()) unknown_coding = true;
        if (comma == std::string_view::npos) break;
        v.remove_prefix(comma + 1);
    }
    return "Transfer-Encoding " + quoted(te) + (unknown_coding ? ", a coding sluice does not implement (only chunked is)"
                                                             : " (only exactly one chunked is accepted)");
}

// Content-Length as one plain decimal number on one line.
std::optional<std::string> content_length_problem(const MessageHead& head) {
    if (head.content_lengths == 0) return std::nullopt;
    if (head.content_lengths > 1) return std::string("more than one Content-Length field");
    std::string_view v = trim(head.find(http::field::content_length));
    if (v.empty() || v.size() > 19 || v.find_first_not_of("0123456789") != std::string_view::npos)
        return "Content-Length " + quoted(v) + " is not one decimal number";
    return std::nullopt;
}

// RFC 3986's unreserved and sub-delims, and '%' of pct-encoded: one table
// look-up per byte of every Host header.
constexpr std::array<bool, 256> kRegNameBytes = [] {
    std::array<bool, 256> t{};
    for (int c = 'a'; c <= 'z'; ++c) t[static_cast<std::size_t>(c)] = true;
    for (int c = 'A'; c <= 'Z'; ++c) t[static_cast<std::size_t>(c)] = true;
    for (int c = '0'; c <= '9'; ++c) t[static_cast<std::size_t>(c)] = true;
    for (char c : std::string_view("-._~!$&'()*+,;=%")) t[static_cast<unsigned char>(c)] = true;
    return t;
}();

bool unreserved_or_sub_delim(char c) { return kRegNameBytes[static_cast<unsigned char>(c)]; }

}  // namespace

bool valid_authority(std::string_view a) {
    if (a.empty()) return false;
    std::string_view port;
    if (a.front() == '[') {
        auto close = a.find(']');
        if (close == std::string_view::npos || close < 2) return false;
        for (char c : a.substr(1, close - 1))
            if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
        std::string_view rest = a.substr(close + 1);
        if (!rest.empty() && rest.front() != ':') return false;
        port = rest.empty() ? rest : rest.substr(1);
    } else {
        auto colon = a.find(':');
        std::string_view host = a.substr(0, colon);
        if (host.empty()) return false;
        for (char c : host)
            if (!unreserved_or_sub_delim(c)) return false;
        port = colon == std::string_view::npos ? std::string_view{} : a.substr(colon + 1);
    }
    return port.size() <= 5 && port.find_first_not_of("0123456789") == std::string_view::npos;
}

std::optional<Refusal> parse_request_head(RequestHead& head, RequestParser& parser, const config::Paths& paths) {
    auto refuse = [](std::string message, ErrorKind kind = ErrorKind::bad_request) {
        return Refusal{kind, std::move(message)};
    };
    boost::system::error_code ec;
    parser.parse_head(ec);
    // RFC 9112 5.2: a server refuses obs-fold in a request or replaces it; refusing
    // is the reading no origin can take differently.
    if (ec == http::error::bad_obs_fold)
        return refuse("a header line starts with a space or tab (obsolete line folding, RFC 9112 5.2); send each field on one line");
    if (ec) return refuse("malformed request (" + ec.message() + ")");

    if (head.transfer_encodings > 0 && head.content_lengths > 0)
        return refuse("the request has both Content-Length and Transfer-Encoding, which could smuggle a second request");
    bool unknown_coding = false;
    if (auto p = transfer_coding_problem(head, unknown_coding))
        return refuse("the request has " + *p, unknown_coding ? ErrorKind::not_implemented : ErrorKind::bad_request);
    if (head.version < 11 && head.transfer_encodings > 0)
        return refuse("Transfer-Encoding is not allowed in an HTTP/1.0 request");
    if (auto p = content_length_problem(head)) return refuse("the request has " + *p);

    if (head.hosts > 1) return refuse("the request has " + std::to_string(head.hosts) + " Host headers; send one");
    if (head.absolute_form && !valid_authority(head.host))
        return refuse("the authority " + quoted(head.host) + " in the request target is not a valid host[:port]");
    if (!head.absolute_form && head.hosts == 1 && !valid_authority(head.host) &&
        !(head.host.empty() && head.version < 11))
        return refuse("the Host header " + quoted(head.host) + " is not a valid host[:port]");
    if (head.version >= 11 && head.host.empty()) return refuse("an HTTP/1.1 request needs a Host header");

    if (connection_options(head) > kMaxConnectionOptions)
        return refuse("the Connection header lists more than " + std::to_string(kMaxConnectionOptions) + " options");

    // The target: a path (origin-form or absolute-form), or "*" for OPTIONS.
    if (head.target.find('#') != std::string_view::npos)
        return refuse("the request target " + quoted(head.target) + " holds a fragment ('#'), which is never sent to a server");
    if (head.path == "*" && head.verb == http::verb::options) return std::nullopt;
    if (head.path.empty() || head.path.front() != '/')
        return refuse("the request target " + quoted(head.target) + " is not a path starting with '/'" +
                      (head.verb == http::verb::connect ? " (sluice is a reverse proxy: CONNECT is not supported)" : ""));
    if (head.path.find('\\') != std::string_view::npos)
        return refuse("the path " + quoted(head.path) + " holds a backslash, which some servers read as '/' and others do not; encode it as %5C");
    auto r = normalize_path(head.path, paths, head.normalized_path);
    if (r.outcome == PathResult::Outcome::refused) return refuse(r.problem + ": " + quoted(head.path));
    if (r.outcome == PathResult::Outcome::changed) head.path = head.normalized_path;
    return std::nullopt;
}

std::optional<Refusal> parse_response_head(ResponseHead& head, ResponseParser& parser, bool head_request) {
    auto refuse = [](std::string message) { return Refusal{ErrorKind::upstream_bad_response, std::move(message)}; };
    if (head_request) parser.skip_body();
    boost::system::error_code ec;
    parser.parse_head(ec);
    if (ec) return refuse("upstream sent a malformed response head (" + ec.message() + ")");
    if (head.status < 100 || head.status > 599)
        return refuse("upstream sent status " + std::to_string(head.status) + ", outside 100 to 599");
    if (head.transfer_encodings > 0 && head.content_lengths > 0)
        return refuse("upstream sent both Content-Length and Transfer-Encoding");
    bool unknown_coding = false;
    if (auto p = transfer_coding_problem(head, unknown_coding)) return refuse("upstream sent " + *p);
    if (auto p = content_length_problem(head)) return refuse("upstream sent " + *p);
    if (connection_options(head) > kMaxConnectionOptions)
        return refuse("upstream's Connection header lists more than " + std::to_string(kMaxConnectionOptions) + " options");
    return std::nullopt;
}

template <bool isRequest>
BodyStep feed_body(MessageParser<isRequest>& parser, std::string_view data, std::size_t trailer_limit) {
    constexpr const char* who = isRequest ? "request body" : "response body";
    BodyStep step;
    if (parser.is_done() || data.empty()) return step;
    boost::system::error_code ec;
    step.used = parser.put(boost::asio::buffer(data.data(), data.size()), ec);
    if (ec) {
        step.refusal = Refusal{ErrorKind::bad_request, std::string("malformed ") + who + " (" + ec.message() + ")"};
        return step;
    }
    if (parser.is_done() || !parser.chunked()) return step;
    // What the parser left: the first byte of the CRLF after chunk data, an
    // unfinished chunk-size line, or a last chunk with unfinished trailers.
    std::string_view rest = data.substr(step.used);
    for (std::size_t i = rest.find('\n'); i != std::string_view::npos; i = rest.find('\n', i + 1)) {
        if (i == 0 || rest[i - 1] != '\r') {
            step.refusal = Refusal{ErrorKind::bad_request, std::string("a bare LF (without CR) in the chunked framing of the ") + who};
            return step;
        }
    }
    std::string_view line = rest.substr(0, 2) == "\r\n" ? rest.substr(2) : rest;
    if (line.find("\r\n") == std::string_view::npos) {
        if (line.size() > kMaxChunkLine)
            step.refusal = Refusal{ErrorKind::bad_request, std::string("a chunk-size line in the ") + who + " is longer than " +
                                                               config::format_size(kMaxChunkLine)};
    } else if (rest.size() > trailer_limit) {
        step.refusal = Refusal{ErrorKind::headers_too_large, std::string("the trailers of the ") + who + " are larger than " +
                                                                 config::format_size(trailer_limit)};
    }
    return step;
}

template BodyStep feed_body<true>(MessageParser<true>&, std::string_view, std::size_t);
template BodyStep feed_body<false>(MessageParser<false>&, std::string_view, std::size_t);

}  // namespace sluice::proxy
