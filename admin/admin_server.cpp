#include "admin/admin_server.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <functional>
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

Response make_text(unsigned status, std::string body, const Request& req) {
    Response res{static_cast<http::status>(status), req.version()};
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = std::move(body);
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    return res;
}

Response make_json(unsigned status, const json& body, const Request& req) {
    Response res{static_cast<http::status>(status), req.version()};
    res.set(http::field::content_type, "application/json");
    res.body() = body.dump(2) + "\n";
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    return res;
}

Response make_error(unsigned status, const std::string& message, const Request& req) {
    return make_json(status, json{{"error", message}}, req);
}

// One endpoint: a method, an exact path, and what it answers.
struct Endpoint {
    http::verb method;
    std::string path;
    bool probes;  // also served by the probes server
    std::function<Response(const Request&)> handle;
};

}  // namespace

struct AdminServer::Impl : std::enable_shared_from_this<AdminServer::Impl> {
    Impl(asio::io_context& io, Backend& b, Mode m) : io(io), backend(b), mode(m), acceptor(io) {
        endpoints = {
            {http::verb::get, "/healthz", true, [](const Request& r) { return make_text(200, "ok\n", r); }},
            {http::verb::get, "/ready", true,
             [this](const Request& r) {
                 return backend.ready() ? make_text(200, "ready\n", r) : make_text(503, "draining\n", r);
             }},
            {http::verb::get, "/config", false,
             [this](const Request& r) {
                 auto res = make_json(200, json{{"version", backend.config_version()}, {"config", backend.config_json()}}, r);
                 res.set(http::field::etag, "\"" + std::to_string(backend.config_version()) + "\"");
                 return res;
             }},
            {http::verb::get, "/listeners", false,
             [this](const Request& r) { return make_json(200, backend.listeners_json(), r); }},
            {http::verb::post, "/drain", false,
             [this](const Request& r) {
                 backend.drain();
                 return make_json(202, json{{"draining", true}}, r);
             }},
        };
    }

    Response route(const Request& req) {
        std::string_view target = req.target();
        std::string path(target.substr(0, target.find('?')));
        std::string allow;
        for (const auto& e : endpoints) {
            if (e.path != path || (mode == Mode::probes && !e.probes)) continue;
            if (e.method == req.method()) return e.handle(req);
            allow += (allow.empty() ? "" : ", ") + std::string(http::to_string(e.method));
        }
        if (!allow.empty()) {
            auto res = make_error(405, std::string(req.method_string()) + " is not allowed on " + path + "; use " + allow, req);
            res.set(http::field::allow, allow);
            return res;
        }
        if (mode == Mode::probes)
            return make_error(404, "the probes address serves only GET /healthz and GET /ready", req);
        return make_error(404, "no admin endpoint " + std::string(req.method_string()) + " " + path +
                                   "; see docs/admin-api.md for the list", req);
    }

    asio::awaitable<void> serve(tcp::socket socket) {
        beast::tcp_stream stream(std::move(socket));
        beast::flat_buffer buffer;
        for (;;) {
            http::request_parser<http::string_body> parser;
            parser.body_limit(kMaxBody);
            stream.expires_after(kIoTimeout);
            auto [ec, n] = co_await http::async_read(stream, buffer, parser, nothrow);
            if (ec == http::error::body_limit) {
                Request req;
                req.version(11);
                req.keep_alive(false);
                auto res = make_error(413, "the request body is larger than 8 MiB", req);
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
        for (;;) {
            auto [ec, socket] = co_await acceptor.async_accept(nothrow);
            if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
            if (ec) continue;
            asio::co_spawn(
                io, [self, s = std::move(socket)]() mutable { return self->serve(std::move(s)); }, asio::detached);
        }
    }

    asio::io_context& io;
    Backend& backend;
    Mode mode;
    tcp::acceptor acceptor;
    std::vector<Endpoint> endpoints;
};

AdminServer::AdminServer(asio::io_context& io, Backend& backend, Mode mode)
    : impl_(std::make_shared<Impl>(io, backend, mode)) {}

AdminServer::~AdminServer() = default;

bool AdminServer::listen(const std::string& address, std::uint16_t port, std::string& error) {
    const char* what = impl_->mode == Mode::admin ? "the admin server" : "the probes server";
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

void AdminServer::stop() {
    boost::system::error_code ec;
    impl_->acceptor.close(ec);
}

}  // namespace sluice::admin
