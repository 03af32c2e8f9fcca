#include "proxy/message/forward_headers.h"

#include "proxy/message/message_rules.h"

#include <boost/beast/core/string.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdio>

namespace sluice::proxy {
namespace {

using boost::beast::iequals;

// Tokens of all Connection fields; at most a handful in practice.
struct ConnectionTokens {
    std::array<std::string_view, kMaxConnectionOptions> tokens{};  // more are refused with the head
    std::size_t count = 0;

    explicit ConnectionTokens(const MessageHead& head) {
        for (const auto& f : head.fields) {
            if (f.id != http::field::connection) continue;
            std::string_view v = f.value;
            while (!v.empty() && count < tokens.size()) {
                auto comma = v.find(',');
                std::string_view t = v.substr(0, comma);
                while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
                while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
                if (!t.empty()) tokens[count++] = t;
                if (comma == std::string_view::npos) break;
                v.remove_prefix(comma + 1);
            }
        }
    }

    bool names(std::string_view field_name) const {
        for (std::size_t i = 0; i < count; ++i)
            if (iequals(tokens[i], field_name)) return true;
        return false;
    }
};

// A name with '_' that reads, with '_' as '-', as a standard field or one
// sluice sets: CGI-style origins (WSGI, PHP, Rack) map both spellings to one
// variable, so "X_Forwarded_For" could override what sluice sends. Dropped,
// as nginx and Envoy drop them.
bool underscore_alias(const HeaderField& f) {
    if (f.name.find('_') == std::string_view::npos) return false;
    char dashed[128];
    if (f.name.size() > sizeof dashed) return true;
    for (std::size_t i = 0; i < f.name.size(); ++i) dashed[i] = f.name[i] == '_' ? '-' : f.name[i];
    std::string_view d(dashed, f.name.size());
    return http::string_to_field(d) != http::field::unknown || iequals(d, "x-forwarded-for") ||
           iequals(d, "x-forwarded-proto") || iequals(d, "x-forwarded-host");
}

bool is_xff(const HeaderField& f) {
    return f.id == http::field::unknown && iequals(f.name, "x-forwarded-for");
}

// One growth of `out` per field instead of four appends, each checking
// the capacity: a head is rebuilt for every request and response.
void append_field(std::string& out, std::string_view name, std::string_view value) {
    const std::size_t at = out.size();
    out.resize(at + name.size() + value.size() + 4);
    char* p = out.data() + at;
    p = std::copy(name.begin(), name.end(), p);
    *p++ = ':';
    *p++ = ' ';
    p = std::copy(value.begin(), value.end(), p);
    *p++ = '\r';
    *p = '\n';
}

void append_framing(std::string& out, Framing framing, std::uint64_t length) {
    if (framing == Framing::length) {
        char digits[24];
        auto [end, ec] = std::to_chars(digits, digits + sizeof digits, length);
        append_field(out, "Content-Length", std::string_view(digits, static_cast<std::size_t>(end - digits)));
    } else if (framing == Framing::chunked) {
        out += "Transfer-Encoding: chunked\r\n";
    }
}

}  // namespace

void set_request_framing(UpstreamRequest& up, const RequestParser& parser, const RequestHead& req) {
    if (parser.chunked()) {
        up.framing = Framing::chunked;
    } else if (req.has_content_length) {
        up.framing = Framing::length;
        up.content_length = parser.content_length().value_or(0);
    }
}

void append_body(std::vector<boost::asio::const_buffer>& out, const std::vector<boost::asio::const_buffer>& spans,
                 Framing framing, char* line, bool last_chunk) {
    static constexpr std::string_view kCrlf = "\r\n", kLastChunk = "0\r\n\r\n";
    if (framing != Framing::chunked) {
        for (const auto& b : spans)
            if (b.size()) out.push_back(b);
        return;
    }
    std::size_t total = 0;
    for (const auto& b : spans) total += b.size();
    if (total) {
        int n = std::snprintf(line, 24, "%zx\r\n", total);
        out.emplace_back(line, static_cast<std::size_t>(n));
        for (const auto& b : spans)
            if (b.size()) out.push_back(b);
        out.emplace_back(kCrlf.data(), kCrlf.size());
    }
    if (last_chunk) out.emplace_back(kLastChunk.data(), kLastChunk.size());
}

void append_last_chunk(std::vector<boost::asio::const_buffer>& out, const H2Fields& trailers, std::string& storage) {
    storage = "0\r\n";
    for (const auto& [name, value] : trailers) append_field(storage, name, value);
    storage += "\r\n";
    out.emplace_back(storage.data(), storage.size());
}

void build_upstream_request(const RequestHead& req, const UpstreamRequest& up, std::string& out) {
    ConnectionTokens conn(req);
    out += req.method;
    out += ' ';
    out += up.path;
    out += req.query;
    out += " HTTP/1.1\r\n";
    // Host first (RFC 9112 3.2): the client's, or the authority of an
    // absolute-form target, which replaces any Host field (RFC 9112 3.2.2).
    append_field(out, "Host", req.host.empty() ? up.fallback_host : req.host);
    std::string_view forwarded_for;
    std::size_t xff_count = 0;
    for (const auto& f : req.fields) {
        if (is_hop_field(f.id) || f.id == http::field::host || (conn.count && conn.names(f.name)) ||
            underscore_alias(f) || (!up.websocket_key.empty() && f.id == http::field::sec_websocket_key))
            continue;
        if (is_xff(f)) {
            // Several X-Forwarded-For lines are joined below, in order.
            if (xff_count++ == 0) forwarded_for = f.value;
            continue;
        }
        if (f.id == http::field::unknown &&
            (iequals(f.name, "x-forwarded-proto") || iequals(f.name, "x-forwarded-host")))
            continue;  // replaced: clients must not choose what the origin trusts
        append_field(out, f.name, f.value);
    }
    out += "X-Forwarded-For: ";
    if (xff_count == 1) {
        out += forwarded_for;
        out += ", ";
    } else if (xff_count > 1) {
        for (const auto& f : req.fields) {
            if (!is_xff(f)) continue;
            out += f.value;
            out += ", ";
        }
    }
    out += up.peer_ip;
    out += "\r\nX-Forwarded-Proto: ";
    out += up.scheme;
    out += "\r\n";
    if (!req.host.empty()) append_field(out, "X-Forwarded-Host", req.host);
    if (!up.upgrade.empty()) {
        append_field(out, "Upgrade", up.upgrade);
        out += "Connection: Upgrade\r\n";
        if (!up.websocket_key.empty()) append_field(out, "Sec-WebSocket-Key", up.websocket_key);
    }
    append_framing(out, up.framing, up.content_length);
    out += "\r\n";
}

void h2_request_fields(std::string_view head, std::string_view scheme, bool te_trailers, H2Fields& out) {
    out.clear();
    auto next_line = [&head] {
        std::size_t eol = head.find("\r\n");
        std::string_view line = head.substr(0, eol);
        head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 2);
        return line;
    };
    // "METHOD target HTTP/1.1": both made by build_upstream_request, never with a space inside.
    std::string_view start = next_line();
    const std::size_t sp1 = start.find(' '), sp2 = start.rfind(' ');
    out.emplace_back(":method", start.substr(0, sp1));
    out.emplace_back(":scheme", scheme);
    out.emplace_back(":authority", "");
    out.emplace_back(":path", start.substr(sp1 + 1, sp2 - sp1 - 1));
    for (std::string_view line = next_line(); !line.empty(); line = next_line()) {
        const std::size_t colon = line.find(':');
        std::string name(line.substr(0, colon));
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (name == "host") {
            out[2].second = value;
            continue;
        }
        // Connection-specific in HTTP/2 (RFC 9113 8.2.2); DATA frames carry the framing.
        if (name == "transfer-encoding" || name == "connection" || name == "upgrade" || name == "keep-alive" ||
            name == "proxy-connection")
            continue;
        out.emplace_back(std::move(name), value);
    }
    if (te_trailers) out.emplace_back("te", "trailers");
}

bool wants_trailers(const RequestHead& req) {
    for (const auto& f : req.fields) {
        if (f.id != http::field::te) continue;
        std::string_view v = f.value;
        while (!v.empty()) {
            auto comma = v.find(',');
            std::string_view t = v.substr(0, comma);
            while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
            t = t.substr(0, t.find_first_of(" \t;"));
            if (iequals(t, "trailers")) return true;
            if (comma == std::string_view::npos) break;
            v.remove_prefix(comma + 1);
        }
    }
    return false;
}

void build_switching_response(const ResponseHead& resp, std::string& out, std::string_view extra_fields) {
    ConnectionTokens conn(resp);
    out += "HTTP/1.1 101 ";
    out += resp.reason.empty() ? std::string_view("Switching Protocols") : resp.reason;
    out += "\r\n";
    std::string_view upgrade = "websocket";
    for (const auto& f : resp.fields) {
        if (f.id == http::field::upgrade) upgrade = f.value;
        if (is_hop_field(f.id) || (conn.count && conn.names(f.name))) continue;
        append_field(out, f.name, f.value);
    }
    append_field(out, "Upgrade", upgrade);
    out += extra_fields;
    out += "Connection: Upgrade\r\n\r\n";
}

void set_response_framing(ClientResponse& down, const ResponseParser& parser, const ResponseHead& resp) {
    if (parser.is_done()) {
        down.framing = Framing::none;  // HEAD, 204, 304: the upstream's Content-Length stands
    } else if (resp.has_content_length) {
        down.framing = Framing::length;
        down.content_length = parser.content_length().value_or(0);
    } else {
        // Chunked, or delimited by close: re-chunk for HTTP/1.1 clients so the
        // client connection survives; HTTP/1.0 clients read until close.
        down.framing = down.client_http10 ? Framing::until_close : Framing::chunked;
    }
}

void build_client_response(const ResponseHead& resp, const ClientResponse& down, std::string& out) {
    ConnectionTokens conn(resp);
    out += down.client_http10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    char digits[8];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, resp.status);
    out.append(digits, end);
    out += ' ';
    out += resp.reason;
    out += "\r\n";
    for (const auto& f : resp.fields) {
        // A response without a body (HEAD, 304) keeps the upstream's Content-Length.
        if (f.id == http::field::content_length && down.framing == Framing::none) {
            append_field(out, f.name, f.value);
            continue;
        }
        if (is_hop_field(f.id) || (conn.count && conn.names(f.name))) continue;
        append_field(out, f.name, f.value);
    }
    append_framing(out, down.framing, down.content_length);
    out += down.extra_fields;
    if (down.close) out += "Connection: close\r\n";
    else if (down.client_http10) out += "Connection: keep-alive\r\n";
    out += "\r\n";
}

void build_interim_response(const ResponseHead& resp, std::string& out) {
    ConnectionTokens conn(resp);
    out += "HTTP/1.1 ";
    out += std::to_string(resp.status);
    out += ' ';
    out += resp.reason;
    out += "\r\n";
    for (const auto& f : resp.fields)
        if (!is_hop_field(f.id) && !(conn.count && conn.names(f.name))) append_field(out, f.name, f.value);
    out += "\r\n";
}

}  // namespace sluice::proxy
