#include "admin/admin_server.h"

#include "admin/admin_token.h"
#include "admin/handlers.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <functional>
#include <optional>
#include <vector>

namespace sluice::admin {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using json = nlohmann::json;

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxBody = 8 * 1024 * 1024;
constexpr auto kIoTimeout = std::chrono::seconds(30);

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

Response to_response(const AdminReply& r, const Request& req) {
    Response res{static_cast<http::status>(r.status), req.version()};
    res.set(http::field::content_type, r.content_type);
    for (const auto& [k, v] : r.headers) res.set(k, v);
    res.body() = r.body;
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    return res;
}

AdminReply error_reply(unsigned status, const std::string& message) {
    return {status, "application/json",
            json{{"error", message}}.dump(2, ' ', false, json::error_handler_t::replace) + "\n", {}};
}

bool mutating(http::verb v) {
    return v == http::verb::post || v == http::verb::put || v == http::verb::delete_ || v == http::verb::patch;
}

// "application/json", with any parameters (charset) and in any case.
bool json_media_type(std::string_view v) {
    v = v.substr(0, v.find(';'));
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    return beast::iequals(v, "application/json");
}

// What a scraper and the kubelet call without the token.
bool open_without_token(const Request& req) {
    if (req.method() != http::verb::get) return false;
    std::string_view path = req.target();
    path = path.substr(0, path.find('?'));
    return path == "/healthz" || path == "/ready" || path == "/metrics";
}

bool out_of_descriptors(const boost::system::error_code& ec) {
    return ec == asio::error::no_descriptors || ec == boost::system::errc::too_many_files_open_in_system ||
           ec == asio::error::no_buffer_space || ec == asio::error::no_memory;
}

}  // namespace

struct AdminServer::Impl : std::enable_shared_from_this<AdminServer::Impl> {
    Impl(asio::io_context& io, Backend& b, Mode m, bool probes_metrics)
        : io(io), mode(m), acceptor(io),
          handlers(b, m, probes_metrics) {
        if (auto path = b.running_config().admin.token_file; path && m == Mode::admin) token.emplace(*path);
    }

    // The admin API trusts what can reach it (loopback, optionally a token)
    // but never a browser: a page on any site can make a browser send
    // requests to 127.0.0.1, so requests a browser would send are refused.
    std::optional<AdminReply> refuse(const Request& req) {
        if (mode != Mode::admin) return std::nullopt;
        if (req.find(http::field::origin) != req.end())
            return error_reply(403, "the admin API does not serve browsers: this request has an Origin header; call it "
                                    "from curl or your automation instead");
        if (token && !open_without_token(req)) {
            std::string why;
            auto auth = req.find(http::field::authorization);
            if (!token->allows(auth == req.end() ? std::string_view{} : std::string_view(auth->value()), why)) {
                auto r = error_reply(401, why);
                r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"sluice admin\"");
                return r;
            }
        }
        if (mutating(req.method()) && !req.body().empty()) {
            auto ct = req.find(http::field::content_type);
            if (ct == req.end() || !json_media_type(ct->value()))
                return error_reply(415, "a change must be sent as JSON with \"Content-Type: application/json\" (got " +
                                            (ct == req.end() ? std::string("none") : "\"" + std::string(ct->value().substr(0, 80)) + "\"") +
                                            "); with curl add -H 'Content-Type: application/json'");
        }
        return std::nullopt;
    }

    Response route(const Request& req) {
        if (auto r = refuse(req)) return to_response(*r, req);
        AdminRequest a{std::string(req.method_string()), std::string(req.target()), req.body(), std::nullopt};
        if (auto it = req.find(http::field::if_match); it != req.end()) a.if_match = std::string(it->value());
        // Every request gets an answer: a bug in a handler is a 500 that says
        // so, never a connection closed without a word.
        try {
            return to_response(handlers.handle(a), req);
        } catch (const std::exception& e) {
            spdlog::error("admin API: {} {} failed: {}", req.method_string(), req.target(), e.what());
            return to_response(error_reply(500, std::string("internal error: ") + e.what()), req);
        }
    }

    asio::awaitable<void> serve(tcp::socket socket) {
        beast::tcp_stream stream(std::move(socket));
        beast::flat_buffer buffer;
        for (;;) {
            http::request_parser<http::string_body> parser;
            parser.body_limit(kMaxBody);
            stream.expires_after(kIoTimeout);
            auto [ec, n] = co_await http::async_read(stream, buffer, parser, nothrow);
            // A request Beast cannot read gets a 400 that says why; a client
            // that left (end_of_stream, partial_message) or timed out gets nothing.
            const bool malformed = ec && ec.category() == http::make_error_code(http::error::bad_target).category() &&
                                   ec != http::error::end_of_stream && ec != http::error::partial_message;
            if (ec == http::error::body_limit || malformed) {
                Request req;
                req.version(11);
                req.keep_alive(false);
                auto res = to_response(ec == http::error::body_limit
                                           ? error_reply(413, "the request body is larger than 8 MiB")
                                           : error_reply(400, "malformed request (" + ec.message() + ")"),
                                       req);
                co_await http::async_write(stream, res, nothrow);
                break;
            }
            if (ec) break;
            Request req = parser.release();
            Response res = route(req);
            stream.expires_after(kIoTimeout);
            auto [wec, wn] = co_await http::async_write(stream, res, nothrow);
            if (wec || !res.keep_alive()) break;
        }
        beast::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }

    asio::awaitable<void> accept_loop() {
        auto self = shared_from_this();
        asio::steady_timer backoff(io);
        auto logged = std::chrono::steady_clock::time_point{};
        for (;;) {
            auto [ec, socket] = co_await acceptor.async_accept(nothrow);
            if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
            if (ec) {
                ++accept_errors;
                // Out of descriptors: the pending connection stays in the
                // backlog and the socket stays readable, so retrying at once
                // would spin. Pause, and say so once per interval.
                if (auto now = std::chrono::steady_clock::now(); now - logged >= kAcceptLogEvery) {
                    logged = now;
                    spdlog::warn("the {} cannot accept connections: {}; retrying every {}ms{}",
                                 mode == Mode::admin ? "admin API" : "probes server", ec.message(),
                                 kAcceptBackoff.count(),
                                 out_of_descriptors(ec) ? " (raise the open-file limit, ulimit -n)" : "");
                }
                backoff.expires_after(kAcceptBackoff);
                co_await backoff.async_wait(nothrow);
                continue;
            }
            asio::co_spawn(
                io, [self, s = std::move(socket)]() mutable { return self->serve(std::move(s)); }, asio::detached);
        }
    }

    static constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);
    static constexpr auto kAcceptLogEvery = std::chrono::seconds(10);

    asio::io_context& io;
    Mode mode;
    tcp::acceptor acceptor;
    Handlers handlers;
    std::optional<AdminToken> token;  // admin.token_file, when set
    std::uint64_t accept_errors = 0;
};

AdminServer::AdminServer(asio::io_context& io, Backend& backend, Mode mode, bool probes_metrics)
    : impl_(std::make_shared<Impl>(io, backend, mode, probes_metrics)) {}

AdminServer::~AdminServer() = default;

bool AdminServer::listen(const std::string& address, std::uint16_t port, std::string& error) {
    const char* what = impl_->mode == Mode::admin ? "the admin server" : "the probes server";
    if (impl_->token && !impl_->token->load(error)) return false;
    boost::system::error_code ec;
    auto ip = asio::ip::make_address(address, ec);
    if (ec) {
        error = std::string(what) + ": \"" + address + "\" is not an IP address";
        return false;
    }
    tcp::endpoint ep(ip, port);
    auto& a = impl_->acceptor;
    a.open(ep.protocol(), ec);
    if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) a.bind(ep, ec);
    if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        std::string why = ec.message();
        if (!why.empty()) why[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(why[0])));
        error = std::string(what) + " cannot listen on " + address + ":" + std::to_string(port) + ": " + why;
        if (ec == asio::error::address_in_use)
            error += impl_->mode == Mode::admin ? " (pick another with --admin HOST:PORT)" : " (pick another probes port)";
        return false;
    }
    asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
    return true;
}

asio::ip::tcp::endpoint AdminServer::local_endpoint() const {
    boost::system::error_code ec;
    return impl_->acceptor.local_endpoint(ec);
}

std::uint64_t AdminServer::accept_errors() const { return impl_->accept_errors; }

void AdminServer::stop() {
    boost::system::error_code ec;
    impl_->acceptor.close(ec);
}

}  // namespace sluice::admin
