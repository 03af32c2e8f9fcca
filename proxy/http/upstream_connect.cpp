// A new connection to the exchange's endpoint: DNS when the endpoint is a
// name, TCP, then TLS for a cluster with tls, all within timeouts.connect.
#include "proxy/http/exchange.h"
#include "proxy/worker/worker_context.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sluice::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

}  // namespace

asio::awaitable<std::shared_ptr<UpstreamConn>> Exchange::connect_upstream(UpstreamFailure& failure) {
    const auto& cluster = view_->snapshot->clusters[cluster_];
    const auto& ep = cluster.endpoints[endpoint_];
    const auto& t = view_->snapshot->routes[route_].timeouts;
    const auto executor = client_.executor();
    auto conn = std::make_shared<UpstreamConn>(executor, client_.worker().buffers());
    upstream_ = conn;  // a deadline cancels it
    client_.set_phase(Phase::connect, deadline_after(t.connect));
    const auto began = Watchdog::Clock::now();
    boost::system::error_code ec;
    bool resolve_failed = false;
    if (ep.ip) {
        std::tie(ec) = co_await conn->socket().async_connect(tcp::endpoint(*ep.ip, ep.port), nothrow);
    } else {
        resolver_.emplace(executor);
        auto [rec, results] = co_await resolver_->async_resolve(ep.host, std::to_string(ep.port), nothrow);
        resolver_.reset();
        if (rec) {
            ec = rec;
            resolve_failed = true;
        } else {
            tcp::endpoint chosen;
            std::tie(ec, chosen) = co_await asio::async_connect(conn->socket(), results, nothrow);
        }
    }
    // Before any TLS handshake, so its flights go out at once.
    if (!ec) {
        boost::system::error_code ignored;
        conn->socket().set_option(tcp::no_delay(true), ignored);
    }
    // TLS: the handshake runs within the same timeouts.connect.
    std::string tls_failure;
    if (!ec && !client_.deadline_passed() && !client_.aborted() && cluster.tls) {
        conn->transport.use_tls(cluster.tls->context());
        cluster.tls->prepare(conn->transport.ssl(), ep.host, cluster.http2);
        ec = co_await conn->transport.handshake(asio::ssl::stream_base::client);
        if (ec && !client_.deadline_passed() && !client_.aborted())
            tls_failure = cluster.tls->describe_failure(conn->transport.ssl(), ec, ep.host);
    }
    if (ec || client_.deadline_passed() || client_.aborted()) {
        failure = connect_failure(place(), client_.timed_out(), ec, resolve_failed, tls_failure);
        if (!client_.aborted() && client_.timed_out() != Deadline::max_duration)
            ++view_->cluster_stats[cluster_]->connect_failures;
        upstream_.reset();
        co_return nullptr;
    }
    rec_.connect = Watchdog::Clock::now() - began;
    ++view_->clusters[cluster_].pools[endpoint_]->connects;
    co_return conn;
}

}  // namespace sluice::proxy
