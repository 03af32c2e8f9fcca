#include "admin/admin_server.h"

#include "admin/handlers.h"

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

Response to_response(const AdminReply& r, const Request& req) {
    Response res{static_cast<http::status>(r.status), req.version()};
    res.set(http::field::content_type, r.content_type);
    for (const auto& [k, v] : r.headers) res.set(k, v);
    res.body() = r.body;
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    return res;
}

}  // namespace

struct AdminServer::Impl : std::enable_shared_from_this<AdminServer::Impl> {
    Impl(asio::io_context& io, Backend& b, Mode m, bool probes_metrics)
        : io(io), mode(m), acceptor(io),
          handlers(b, m == Mode::admin ? Handlers::Mode::admin : Handlers::Mode::probes, probes_metrics) {}

    Response route(const Request& req) {
        AdminRequest a{std::string(req.method_string()), std::string(req.target()), req.body(), std::nullopt};
        if (auto it = req.find(http::field::if_match); it != req.end()) a.if_match = std::string(it->value());
        return to_response(handlers.handle(a), req);
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
                auto res = to_response(
                    {413, "application/json", "{\"error\": \"the request body is larger than 8 MiB\"}\n", {}}, req);
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
    Mode mode;
    tcp::acceptor acceptor;
    Handlers handlers;
};

AdminServer::AdminServer(asio::io_context& io, Backend& backend, Mode mode, bool probes_metrics)
    : impl_(std::make_shared<Impl>(io, backend, mode, probes_metrics)) {}

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
