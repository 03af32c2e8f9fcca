// WebSocket over HTTP/2 (RFC 8441): after the upstream's 101 to the HTTP/1.1
// upgrade sluice made of the client's extended CONNECT, the stream gets a 200
// and its DATA frames carry the WebSocket bytes both ways, unchanged. Each
// direction waits for the other side to take its bytes (the stream's window
// one way, the upstream socket the other), so a tunnel holds at most a window
// and a read buffer. Either side closing ends the tunnel: the upstream's FIN
// ends the stream (END_STREAM), the client's END_STREAM half-closes the
// upstream, and a reset or error on either side ends both.
#include "proxy/http/h2_exchange.h"
#include "proxy/http/h2_stream.h"
#include "proxy/net/log.h"
#include "proxy/worker/worker_context.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/string.hpp>

#include <cctype>

namespace sluice::proxy {

namespace asio = boost::asio;

namespace {

// Fields of the 101 that mean nothing on an HTTP/2 stream (RFC 8441 5).
bool dropped_from_tunnel_head(const HeaderField& f, const ResponseHead& head) {
    return is_hop_field(f.id) || f.id == http::field::sec_websocket_accept || head.connection_has(f.name);
}

}  // namespace

asio::awaitable<ExchangeEnd> H2Exchange::start_tunnel(std::shared_ptr<UpstreamConn> conn) {
    co_await finish_pump();  // an extended CONNECT has no body; nothing to stop
    H2Fields fields;
    for (const auto& f : resp_.fields) {
        if (dropped_from_tunnel_head(f, resp_)) continue;
        std::string name(f.name);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        fields.emplace_back(std::move(name), f.value);
    }
    if (set_affinity_) fields.emplace_back("set-cookie", affinity_value());
    stream_.submit_tunnel_head(fields);
    rec_.status = 200;
    rec_.websocket = true;
    const RouteRuntime& route = view_->snapshot->routes[route_];
    TunnelCounters& counters = view_->route_stats[route_]->tunnels;
    ++counters.active;
    ++counters.opened;
    ++view_->clusters[cluster_].pools[endpoint_]->active_tunnels;
    const auto started = Watchdog::Clock::now();
    stream_.set_streaming(Phase::response, route.timeouts.websocket_idle);

    down_done_ = down_clean_ = false;
    asio::co_spawn(stream_.executor(), [keep = stream_.keep_alive(), this, conn] {
        return relay_upstream_to_stream(conn);
    }, log_if_thrown("WebSocket over HTTP/2"));

    // Client to upstream: the stream's DATA, as the upstream socket takes it.
    bool client_ended = false;
    while (!down_done_) {
        co_await stream_.wait_body();
        if (down_done_ || stream_.gone() || stream_.deadline_passed()) break;
        const std::string_view body = stream_.body();
        if (!body.empty()) {
            auto [ec, n] = co_await conn->transport.write(asio::buffer(body.data(), body.size()));
            if (ec) break;
            tunnel_up_ += body.size();
            stream_.consume_body(body.size());
            stream_.watchdog().touch();
        }
        if (stream_.request_ended() && stream_.body().empty()) {
            // END_STREAM from the client: FIN to the upstream, whose answer may still come.
            client_ended = true;
            boost::system::error_code ec;
            conn->socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
            break;
        }
    }
    // After the client's END_STREAM the upstream's last bytes still go out; a
    // reset, a deadline or the upstream closing ends that wait too.
    if (!client_ended || stream_.gone() || stream_.deadline_passed()) conn->transport.close();
    while (!down_done_) {
        pump_done_.expires_at(Watchdog::time_point::max());
        co_await pump_done_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    const bool timed_out = stream_.deadline_passed();
    conn->transport.close();

    CloseReason reason = CloseReason::error;
    if (timed_out) reason = stream_.timed_out() == Deadline::max_duration ? CloseReason::max_duration : CloseReason::idle_timeout;
    else if (down_clean_) reason = CloseReason::upstream_closed;
    else if (stream_.gone() || client_ended) reason = CloseReason::client_closed;
    --counters.active;
    ++counters.closes[static_cast<std::size_t>(reason)];
    counters.bytes_upstream += tunnel_up_;
    counters.bytes_downstream += tunnel_down_;
    counters.duration.observe(std::chrono::duration<double>(Watchdog::Clock::now() - started).count());
    --view_->clusters[cluster_].pools[endpoint_]->active_tunnels;
    rec_.bytes_in += tunnel_up_;
    rec_.bytes_out += tunnel_down_;
    upstream_.reset();
    co_return ExchangeEnd::close;
}

asio::awaitable<void> H2Exchange::relay_upstream_to_stream(std::shared_ptr<UpstreamConn> conn) {
    std::vector<asio::const_buffer> spans;
    for (;;) {
        // Bytes read past the 101 head come first.
        if (!conn->in.empty()) {
            spans.assign({asio::buffer(conn->in.data().data(), conn->in.size())});
            const std::size_t n = conn->in.size();
            const bool sent = co_await stream_.send_body(spans, false);
            if (!sent) break;
            tunnel_down_ += n;
            conn->in.consume(n);
            stream_.watchdog().touch();
        }
        auto [ec, n] = co_await conn->transport.read_some(conn->in.prepare());
        if (ec) {
            if (ec == asio::error::eof) {
                // The upstream closed its side: so does the stream (END_STREAM).
                spans.clear();
                down_clean_ = co_await stream_.send_body(spans, true);
            }
            break;
        }
        conn->in.commit(n);
    }
    conn->in.consume(conn->in.size());
    down_done_ = true;
    stream_.wake_body();
    pump_done_.cancel();
}

}  // namespace sluice::proxy
