#include "admin/admin_client.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <charconv>

namespace sluice::admin {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

bool parse_host_port(const std::string& text, std::string& host, std::uint16_t& port) {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) return false;
    host = text.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host.empty()) host = "127.0.0.1";
    std::string p = text.substr(colon + 1);
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
    if (p.empty() || ec != std::errc{} || ptr != p.data() + p.size() || value > 65535) return false;
    port = static_cast<std::uint16_t>(value);
    return true;
}

std::optional<HttpTarget> parse_http_url(std::string_view url, std::string& error) {
    constexpr std::string_view scheme = "http://";
    if (!url.starts_with(scheme)) {
        error = "\"" + std::string(url) + "\" is not an http:// URL, e.g. http://127.0.0.1:9901/ready";
        return std::nullopt;
    }
    std::string_view rest = url.substr(scheme.size());
    auto slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    HttpTarget t;
    t.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    std::string_view port_text;
    if (authority.starts_with('[')) {
        auto close = authority.find(']');
        if (close == std::string_view::npos) {
            error = "\"" + std::string(url) + "\": an IPv6 address needs its closing ']'";
            return std::nullopt;
        }
        t.host = std::string(authority.substr(1, close - 1));
        auto after = authority.substr(close + 1);
        if (!after.empty() && after.front() != ':') {
            error = "\"" + std::string(url) + "\": expected ':PORT' after the IPv6 address";
            return std::nullopt;
        }
        if (!after.empty()) port_text = after.substr(1);
    } else {
        auto colon = authority.find(':');
        t.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
    }
    if (t.host.empty()) {
        error = "\"" + std::string(url) + "\" names no host";
        return std::nullopt;
    }
    if (!port_text.empty()) {
        unsigned v = 0;
        auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), v);
        if (ec != std::errc{} || p != port_text.data() + port_text.size() || v == 0 || v > 65535) {
            error = "\"" + std::string(url) + "\": the port must be a number from 1 to 65535";
            return std::nullopt;
        }
        t.port = static_cast<std::uint16_t>(v);
    }
    return t;
}

namespace {

asio::awaitable<void> exchange(const HttpTarget& target, std::string_view method, std::string_view body,
                               const std::string& bearer, std::chrono::milliseconds timeout, HttpReply& out) {
    constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
    auto ex = co_await asio::this_coro::executor;
    tcp::resolver resolver(ex);
    auto [rec, results] = co_await resolver.async_resolve(target.host, std::to_string(target.port), nothrow);
    if (rec) {
        out.error = "cannot resolve " + target.host + ": " + rec.message();
        co_return;
    }
    beast::tcp_stream stream(ex);
    stream.expires_after(timeout);  // one deadline for the whole call
    auto [cec, ep] = co_await stream.async_connect(results, nothrow);
    if (cec) {
        out.refused = cec == asio::error::connection_refused;
        out.error = cec == beast::error::timeout ? std::string("no connection within the timeout") : cec.message();
        co_return;
    }
    http::request<http::string_body> req{http::string_to_verb(method), target.path, 11};
    req.set(http::field::host, target.host + ":" + std::to_string(target.port));
    req.set(http::field::user_agent, "sluice-cli");
    if (!bearer.empty()) req.set(http::field::authorization, "Bearer " + bearer);
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    req.body() = std::string(body);
    req.keep_alive(false);
    req.prepare_payload();
    auto [wec, wn] = co_await http::async_write(stream, req, nothrow);
    if (wec) {
        out.error = wec == beast::error::timeout ? std::string("no answer within the timeout") : wec.message();
        co_return;
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1 << 20);
    auto [rdec, rn] = co_await http::async_read(stream, buffer, parser, nothrow);
    if (rdec) {
        out.error = rdec == beast::error::timeout ? std::string("no answer within the timeout") : rdec.message();
        co_return;
    }
    out.status = parser.get().result_int();
    out.body = parser.get().body();
}

}  // namespace

HttpReply http_call(const HttpTarget& target, std::string_view method, std::string_view body,
                    const std::string& bearer, std::chrono::milliseconds timeout) {
    HttpReply out;
    asio::io_context io(1);
    asio::co_spawn(io, exchange(target, method, body, bearer, timeout, out), asio::detached);
    io.run();
    return out;
}

}  // namespace sluice::admin
