#include "proxy/tunnel/tls_tunnel.h"

#include "proxy/worker/worker_context.h"

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
// How long a drain's goodbye may wait for a message to end and for the peers' answers.
constexpr auto kCloseGrace = std::chrono::seconds(1);
constexpr std::uint16_t kGoingAway = 1001;
}

TlsTunnel::TlsTunnel(WorkerContext& worker, Tunnel::Setup meta, Transport client, Transport upstream)
    : worker_(worker),
      s_(std::move(meta)),
      client_(std::move(client), true),
      upstream_(std::move(upstream), false),
      dog_(client_.transport.socket().get_executor()),
      counters_(s_.stats->tunnels) {
    tunnel_opened(worker_, this, s_, counters_);
}

TlsTunnel::~TlsTunnel() { tunnel_gone(worker_, this, s_); }

void TlsTunnel::start() {
    // Both sockets already have TCP_NODELAY (HttpConnection and connect_upstream set it).
    for (Side* s : {&client_, &upstream_}) {
        s->loop_stopped.expires_at(asio::steady_timer::time_point::max());
        s->running = true;
    }
    dog_.set_idle(s_.idle);
    dog_.set_hard(s_.hard_deadline);
    dog_.arm(self());
    worker_.join_drain(weak_from_this());
    // The client gets whole messages; the upstream may get a Close between frames.
    upstream_.frames.want_message_boundary(true);
    client_.frames.want_message_boundary(false);
    client_.frames.feed(s_.to_upstream.data(), s_.to_upstream.size());
    upstream_.frames.feed(s_.to_client.data(), s_.to_client.size());
    // Bytes read past the handshakes go first.
    auto ex = client_.transport.socket().get_executor();
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
        auto [ec, n] = co_await to.transport.write(asio::buffer(pending));
        if (closed_) co_return;
        if (ec) co_return finish(closed_by(to));
        from.moved += n;
        route_bytes += n;
        std::string().swap(pending);  // the frame outlives it: give the memory back
    }
    for (;;) {
        if (from.stop_reading) co_return;
        if (closing_ && !from.goodbye && from.frames.at_chosen_boundary()) {
            from.goodbye = true;
            co_await send_goodbye(from, to);
            continue;
        }
        from.reading = true;
        auto ec = co_await from.transport.wait_readable();
        from.reading = false;
        if (closed_ || from.stop_reading) co_return;
        auto scratch = worker_.scratch();
        std::size_t n = 0;
        if (!ec) {
            bool want_write = false;
            n = from.transport.read_now(asio::buffer(scratch.data(), scratch.size()), ec, want_write);
            if (ec == asio::error::would_block) {  // woken for nothing, or TLS must write first
                if (want_write) {
                    from.reading = true;
                    ec = co_await from.transport.wait_writable();
                    from.reading = false;
                    if (closed_ || from.stop_reading) co_return;
                    if (ec) co_return finish(closed_by(from));
                }
                continue;
            }
        }
        if (from.goodbye) {  // closing: what it still sends (its own Close) is dropped
            if (ec) co_return;
            continue;
        }
        if (ec && closing_) co_return finish(CloseReason::drain);  // a peer left before the goodbye
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
        bool goodbye_after = false;
        if (closing_) {
            if (from.frames.lost()) co_return finish(CloseReason::drain);  // no boundary to speak at
            n = from.frames.feed(scratch.data(), n, true);  // bytes past the boundary are dropped
            goodbye_after = from.frames.at_chosen_boundary();
        } else if (!from.frames.lost()) {
            from.frames.feed(scratch.data(), n);
        }
        if (n > 0) {
            auto wec = co_await deliver(to, scratch.data(), n);
            if (closed_) co_return;
            if (wec) co_return finish(closed_by(to));
            from.moved += n;
            route_bytes += n;
        }
        if (goodbye_after && !from.goodbye) {
            from.goodbye = true;
            co_await send_goodbye(from, to);
        }
    }
}

asio::awaitable<boost::system::error_code> TlsTunnel::deliver(Side& to, const char* data, std::size_t n) {
    std::size_t done = 0;
    boost::system::error_code ec;
    while (done < n) {
        bool want_write = true;
        done += to.transport.write_now(asio::buffer(data + done, n - done), ec, want_write);
        if (ec == asio::error::would_block) break;
        if (ec) co_return ec;
    }
    if (done == n) co_return boost::system::error_code{};
    // Pushed back: the rest in a buffer of its own (TLS repeats the write with
    // these same bytes), held only until it is written.
    std::string rest(data + done, n - done);
    auto [wec, m] = co_await to.transport.write(asio::buffer(rest));
    co_return wec;
}

void TlsTunnel::abort(CloseReason reason) {
    if (closed_) return;
    if (closing_) {  // saying goodbye already; only a harder stop cuts it short
        if (reason != CloseReason::drain) finish(reason);
        return;
    }
    if (reason != CloseReason::drain || !client_.running || !upstream_.running || client_.frames.lost() ||
        upstream_.frames.lost())
        return finish(reason);
    closing_ = true;
    dog_.set_idle(Watchdog::Clock::duration::zero());
    dog_.set_phase(Watchdog::Clock::now() + kCloseGrace);
    dog_.arm(self());
    // A direction waiting for bytes between messages says goodbye now; a busy
    // one does when its write is done, or when its message ends.
    auto ex = client_.transport.socket().get_executor();
    for (auto [from, to] : {std::pair{&client_, &upstream_}, std::pair{&upstream_, &client_}}) {
        if (!from->reading || from->goodbye || !from->frames.at_chosen_boundary()) continue;
        from->goodbye = true;
        asio::co_spawn(ex, [self = self(), from, to]() { return self->send_goodbye(*from, *to); }, asio::detached);
    }
}

asio::awaitable<void> TlsTunnel::send_goodbye(Side& from, Side& to) {
    // Toward the upstream sluice speaks as a client, so the frame is masked.
    const std::string frame =
        WebSocketFrames::close_frame(kGoingAway, from.client, static_cast<std::uint32_t>(worker_.rng()()));
    auto [ec, n] = co_await to.transport.write(asio::buffer(frame));
    if (closed_) co_return;
    if (ec) co_return finish(CloseReason::drain);
    if (++goodbyes_sent_ == 2)
        asio::co_spawn(client_.transport.socket().get_executor(),
                       [self = self()]() { return self->end_after_goodbye(); }, asio::detached);
}

asio::awaitable<void> TlsTunnel::end_after_goodbye() {
    // No write is pending now; stop the reads so close_notify may go out.
    boost::system::error_code ignored;
    for (Side* s : {&client_, &upstream_}) {
        s->stop_reading = true;
        if (s->reading) s->transport.socket().cancel(ignored);
    }
    for (Side* s : {&client_, &upstream_})
        while (s->running && !closed_) co_await s->loop_stopped.async_wait(nothrow);
    for (Side* s : {&client_, &upstream_}) {
        if (closed_) co_return;
        co_await s->transport.close_notify();
        if (closed_) co_return;
        s->transport.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    }
    // The peers answer (their Close, close_notify, FIN); the grace deadline cuts a slow one.
    for (Side* s : {&client_, &upstream_}) {
        co_await drain_peer(*s);
        if (closed_) co_return;
    }
    finish(CloseReason::drain);
}

asio::awaitable<void> TlsTunnel::pass_end(Side& from, Side& to) {
    if (!first_end_) first_end_ = closed_by(from);
    boost::system::error_code ignored;
    if (!to.transport.tls()) {
        // Half-close: `to` hears FIN and may go on answering.
        to.transport.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
        if (to.ended) finish(*first_end_);
        co_return;
    }
    // The tunnel ends. close_notify cannot go out beside a pending read or
    // write on the same TLS stream: stop the other direction first.
    to.stop_reading = true;
    if (to.reading) to.transport.socket().cancel(ignored);
    while (to.running) co_await to.loop_stopped.async_wait(nothrow);
    if (closed_) co_return;
    co_await to.transport.close_notify();
    if (closed_) co_return;
    to.transport.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    // `from` said goodbye; a TLS `from` hears ours too, not a bare FIN (a truncation).
    co_await from.transport.close_notify();
    if (closed_) co_return;
    from.transport.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    if (to.ended) co_return finish(*first_end_);
    // Let the peer finish its side (its own close_notify) for a moment:
    // closing at once would answer those bytes with a reset.
    lingering_ = *first_end_;
    dog_.set_idle(Watchdog::Clock::duration::zero());
    dog_.set_phase(Watchdog::Clock::now() + std::chrono::seconds(2));
    dog_.arm(self());
    co_await drain_peer(to);
    if (closed_) co_return;
    finish(*first_end_);
}

asio::awaitable<void> TlsTunnel::drain_peer(Side& s) {
    // The raw bytes (its Close frame, close_notify): nobody reads them.
    char sink[2048];
    for (;;) {
        auto [ec, n] = co_await s.transport.socket().async_read_some(asio::buffer(sink), nothrow);
        if (closed_ || ec) co_return;
    }
}

void TlsTunnel::describe(std::vector<ConnectionInfo>& out) const {
    if (!closed_) describe_tunnel(s_, client_.moved, upstream_.moved, out.emplace_back());
}

void TlsTunnel::on_deadline(Watchdog::Which which) {
    if (closing_) return finish(CloseReason::drain);  // the goodbye took too long
    if (lingering_) return finish(*lingering_);
    finish(which == Watchdog::Which::hard ? CloseReason::max_duration : CloseReason::idle_timeout);
}

void TlsTunnel::finish(CloseReason reason) {
    if (closed_) return;
    closed_ = true;
    dog_.stop();
    for (Side* s : {&client_, &upstream_}) {
        s->transport.close();
        s->loop_stopped.cancel();
    }
    tunnel_ended(worker_, s_, counters_, reason, client_.moved, upstream_.moved);
}

}  // namespace sluice::proxy
