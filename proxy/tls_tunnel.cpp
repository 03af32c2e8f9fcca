#include "proxy/tls_tunnel.h"

#include "proxy/worker.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace sluice::proxy {
namespace asio = boost::asio;
namespace {
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
}

TlsTunnel::TlsTunnel(Worker& worker, Tunnel::Setup meta, Stream client, Stream upstream)
    : worker_(worker),
      s_(std::move(meta)),
      client_(std::move(client), true),
      upstream_(std::move(upstream), false),
      dog_(client_.stream.socket().get_executor()),
      counters_(s_.stats->tunnels) {
    tunnel_opened(worker_, this, s_, counters_);
}

TlsTunnel::~TlsTunnel() { tunnel_gone(worker_, this, s_); }

void TlsTunnel::start() {
    // Both sockets already have TCP_NODELAY (the session and connect_upstream set it).
    for (Side* s : {&client_, &upstream_}) {
        s->loop_stopped.expires_at(asio::steady_timer::time_point::max());
        s->running = true;
    }
    dog_.set_idle(s_.idle);
    dog_.set_hard(s_.hard_deadline);
    dog_.arm(self());
    // Bytes read past the handshakes go first.
    auto ex = client_.stream.socket().get_executor();
    asio::co_spawn(ex, [self = self(), p = std::move(s_.to_upstream)]() mutable {
        return self->copy(self->client_, self->upstream_, std::move(p));
    }, asio::detached);
    asio::co_spawn(ex, [self = self(), p = std::move(s_.to_client)]() mutable {
        return self->copy(self->upstream_, self->client_, std::move(p));
    }, asio::detached);
}

asio::awaitable<void> TlsTunnel::copy(Side& from, Side& to, std::string pending) {
    struct Stopped {  // wakes a pass_end waiting for this loop to be gone
        Side& s;
        ~Stopped() {
            s.running = false;
            s.loop_stopped.cancel();
        }
    } stopped{from};
    std::uint64_t& route_bytes = from.client ? counters_.bytes_upstream : counters_.bytes_downstream;
    if (!pending.empty()) {
        auto [ec, n] = co_await to.stream.write(asio::buffer(pending));
        if (closed_) co_return;
        if (ec) co_return finish(closed_by(to));
        from.moved += n;
        route_bytes += n;
    }
    for (;;) {
        if (from.stop_reading) co_return;
        from.reading = true;
        auto [ec, n] = co_await from.stream.read_some(asio::buffer(from.buf.get(), kBuffer));
        from.reading = false;
        if (closed_ || from.stop_reading) co_return;
        if (ec == asio::error::eof) {  // FIN, or close_notify: this side is done sending
            from.ended = true;
            co_return co_await pass_end(from, to);
        }
        if (ec == asio::ssl::error::stream_truncated) {
            spdlog::debug("TLS tunnel on route \"{}\": the {} closed TCP without TLS close_notify (truncated)", s_.route,
                          from.client ? "client" : "upstream");
            co_return finish(CloseReason::error);
        }
        if (ec) co_return finish(closed_by(from));
        dog_.touch();
        auto [wec, m] = co_await to.stream.write(asio::buffer(from.buf.get(), n));
        if (closed_) co_return;
        if (wec) co_return finish(closed_by(to));
        from.moved += n;
        route_bytes += n;
    }
}

asio::awaitable<void> TlsTunnel::pass_end(Side& from, Side& to) {
    if (!first_end_) first_end_ = closed_by(from);
    boost::system::error_code ignored;
    if (!to.stream.tls()) {
        // Half-close: `to` hears FIN and may go on answering.
        to.stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
        if (to.ended) finish(*first_end_);
        co_return;
    }
    // The tunnel ends. close_notify cannot go out beside a pending read or
    // write on the same TLS stream: stop the other direction first.
    to.stop_reading = true;
    if (to.reading) to.stream.socket().cancel(ignored);
    while (to.running) co_await to.loop_stopped.async_wait(nothrow);
    if (closed_) co_return;
    co_await to.stream.close_notify();
    if (closed_) co_return;
    to.stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    // `from` said goodbye; a TLS `from` hears ours too, not a bare FIN (a truncation).
    co_await from.stream.close_notify();
    if (closed_) co_return;
    from.stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    if (to.ended) co_return finish(*first_end_);
    // Let the peer finish its side (its own close_notify) for a moment:
    // closing at once would answer those bytes with a reset.
    lingering_ = *first_end_;
    dog_.set_idle(Watchdog::Clock::duration::zero());
    dog_.set_phase(Watchdog::Clock::now() + std::chrono::seconds(2));
    dog_.arm(self());
    for (;;) {
        auto [ec, n] = co_await to.stream.socket().async_read_some(asio::buffer(to.buf.get(), kBuffer), nothrow);
        if (closed_) co_return;
        if (ec) break;
    }
    finish(*first_end_);
}

bool TlsTunnel::describe(ConnectionInfo& out) const {
    if (closed_) return false;
    describe_tunnel(s_, client_.moved, upstream_.moved, out);
    return true;
}

void TlsTunnel::on_deadline(Watchdog::Which which) {
    if (lingering_) return finish(*lingering_);
    finish(which == Watchdog::Which::hard ? CloseReason::max_duration : CloseReason::idle_timeout);
}

void TlsTunnel::finish(CloseReason reason) {
    if (closed_) return;
    closed_ = true;
    dog_.stop();
    for (Side* s : {&client_, &upstream_}) {
        s->stream.close();
        s->loop_stopped.cancel();
    }
    tunnel_ended(worker_, s_, counters_, reason, client_.moved, upstream_.moved);
}

}  // namespace sluice::proxy
