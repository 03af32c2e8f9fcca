// After a 101 Switching Protocols: the exchange answers the client, counts the
// upgrade, and hands both sockets and the bytes already read past the
// handshake to a tunnel, which lives on after the exchange and its connection.
#include "proxy/http/http1_exchange.h"
#include "proxy/http/http_connection.h"
#include "proxy/tunnel/tls_tunnel.h"
#include "proxy/tunnel/tunnel.h"
#include "proxy/worker/worker_context.h"

namespace sluice::proxy {

namespace asio = boost::asio;

asio::awaitable<ExchangeEnd> Http1Exchange::start_tunnel(std::shared_ptr<UpstreamConn> conn) {
    co_await finish_pump();  // an upgrade request carries no body; nothing to stop
    conn_.watch().release_socket();  // the tunnel watches the sockets its own way
    conn->hangup.end(conn->socket().native_handle());
    out_head_.clear();
    build_switching_response(resp_, out_head_, set_affinity_ ? affinity_cookie() : std::string());
    auto [ec, n] = co_await conn_.client().write(asio::buffer(out_head_));
    rec_.status = 101;
    if (ec) {
        conn->transport.close();
        co_return ExchangeEnd::close;
    }
    count_response(101);
    rec_.tunneled = true;
    const RouteRuntime& route = view_->snapshot->routes[route_];
    const ClusterRuntime& cluster = view_->snapshot->clusters[cluster_];
    IoBuffer& in = conn_.in();
    Tunnel::Setup setup;
    setup.to_upstream.assign(in.data());
    in.consume(in.size());
    setup.to_client.assign(conn->in.data());
    conn->in.consume(conn->in.size());
    setup.snapshot = view_->snapshot;
    setup.route = route.spec->name;
    setup.idle = route.timeouts.websocket_idle;
    setup.hard_deadline = conn_.watchdog().hard();
    setup.started = Watchdog::Clock::now();
    setup.listener = conn_.listener_info();
    setup.endpoint = view_->clusters[cluster_].pools[endpoint_];
    setup.stats = view_->route_stats[route_];
    setup.cluster = cluster.name;
    setup.endpoint_key = cluster.endpoints[endpoint_].key;
    setup.client_address = conn_.client_address();
    setup.method = std::string(req_.method);
    setup.path = std::string(req_.path);
    setup.connect = rec_.connect;
    setup.first_byte = rec_.first_byte;
    upstream_.reset();
    WorkerContext& worker = conn_.worker();
    // splice(2) for plain TCP on both sides; TLS on either side needs a copying tunnel.
    if (conn_.client().tls() || conn->transport.tls())
        std::make_shared<TlsTunnel>(worker, std::move(setup), std::move(conn_.client()), std::move(conn->transport))->start();
    else
        std::make_shared<Tunnel>(worker, std::move(setup), std::move(conn_.client().socket()), std::move(conn->socket()))
            ->start();
    co_return ExchangeEnd::close;  // this exchange and its connection are over; the socket lives on in the tunnel
}

}  // namespace sluice::proxy
