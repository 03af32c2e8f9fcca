#include "proxy/tunnel/tls_tunnel.h"

#include "proxy/worker/worker_context.h"

#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <spdlog/spdlog.h>

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sluice::proxy {
namespace asio = boost::asio;
namespace {
// Reads and writes per wake-up before yielding to other connections.
constexpr int kTlsRoundsPerWake = 16;
// How long a drain's goodbye may wait for a message to end and for the peers' answers.
constexpr auto kGoodbyeGrace = std::chrono::seconds(1);
// How long a tunnel that ends may take to write what is in flight and hear the peer's end.
constexpr auto kEndLinger = std::chrono::seconds(2);
constexpr std::uint16_t kGoingAwayCode = 1001;

bool blocked(int err) { return err == EAGAIN || err == EWOULDBLOCK; }
}  // namespace

TlsTunnel::TlsTunnel(WorkerContext& worker, Tunnel::Setup meta, Transport client, Transport upstream)
    : worker_(worker),
      s_(std::move(meta)),
      client_(std::move(client), true),
      upstream_(std::move(upstream), false),
      dog_(worker.io().get_executor()),
      counters_(s_.stats->tunnels) {
    up_.from = &client_;
    up_.to = &upstream_;
    down_.from = &upstream_;
    down_.to = &client_;
    start_flows(s_, counters_, up_, down_);  // pump flushes `pending` before reading
    tunnel_opened(worker_, this, s_, counters_);
}

TlsTunnel::~TlsTunnel() {
    for (Side* side : {&client_, &upstream_}) side->transport.close();
    tunnel_gone(worker_, this, s_);
}

void TlsTunnel::start() {
    // Both sockets already have TCP_NODELAY (HttpConnection and connect_upstream set it).
    const int client_fd = client_.transport.release_socket();
    const int upstream_fd = upstream_.transport.release_socket();
    if (client_fd < 0 || upstream_fd < 0) {
        spdlog::warn("TLS tunnel on route \"{}\" could not take over its sockets; closing it", s_.route);
        return finish(CloseReason::error);
    }
    readiness_key_ = worker_.readiness().add(std::shared_ptr<Readiness::Handler>(self(), this), client_fd, upstream_fd);
    if (readiness_key_ == 0) {
        spdlog::warn("TLS tunnel on route \"{}\" could not watch its sockets ({}); closing it", s_.route,
                     std::strerror(errno));
        return finish(CloseReason::error);
    }
    dog_.set_idle(s_.idle);
    dog_.set_hard(s_.hard_deadline);
    dog_.arm(self());
    worker_.join_drain(weak_from_this());
    pump(up_);
    pump(down_);
}

void TlsTunnel::on_ready(int side, std::uint32_t events) {
    if (closed_) return;
    Side& s = side == 0 ? client_ : upstream_;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s.readable = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s.peer_closed = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) s.writable = true;
    if (ending_) return advance_ending();
    // TLS ties both directions to each socket (a read may wait to write):
    // the direction that writes to this socket first, then the one that reads it.
    pump(side == 0 ? down_ : up_);
    pump(side == 0 ? up_ : down_);
}

bool TlsTunnel::can_read(const Side& s) const {
    if (s.transport.buffered()) return true;  // no event will announce these
    return s.read_waits_write ? s.writable : s.readable;
}

std::size_t TlsTunnel::read_side(Side& s, char* out, std::size_t n, boost::system::error_code& ec, bool& empty_after) {
    bool want_write = false;
    const std::size_t got = s.transport.read_now(asio::buffer(out, n), ec, want_write);
    if (ec == asio::error::would_block) {
        s.read_waits_write = want_write;
        (want_write ? s.writable : s.readable) = false;
        empty_after = false;
    } else {
        s.read_waits_write = false;
        empty_after = s.transport.tls() ? s.transport.drained() : got < n;
    }
    return got;
}

std::size_t TlsTunnel::write_side(Side& s, const char* data, std::size_t n, boost::system::error_code& ec) {
    bool want_write = true;
    const std::size_t put = s.transport.write_now(asio::buffer(data, n), ec, want_write);
    if (ec == asio::error::would_block) {
        s.write_waits_read = !want_write;
        (want_write ? s.writable : s.readable) = false;
    } else {
        s.write_waits_read = false;
    }
    return put;
}

void TlsTunnel::pump(Flow& f) {
    for (int round = 0; round < kTlsRoundsPerWake; ++round) {
        if (closed_ || ending_) return;  // an ending moves its own bytes
        if (!flush(f)) return;
        if (f.goodbye && !f.goodbye_out) {
            f.goodbye_out = true;
            if (++goodbyes_out_ == 2) {
                // Both Close frames are out: close_notify, FIN, and the peers' answers.
                return begin_ending({CloseReason::drain, {&client_, &upstream_}, {&client_, &upstream_}});
            }
        }
        if (f.stopped) return;
        if (closing_ && !f.goodbye && f.frames.at_chosen_boundary()) {
            queue_goodbye(f);
            continue;
        }
        if (!read_once(f)) return;
    }
    // Busy: let the worker's other connections run, then continue.
    asio::post(worker_.io(), [self = self(), &f] { self->pump(f); });
}

bool TlsTunnel::flush(Flow& f) {
    while (f.pending_off < f.pending.size()) {
        if (!can_write(*f.to)) return false;
        boost::system::error_code ec;
        // A TLS write that would block is repeated from the same byte (OpenSSL may hold part of a record).
        f.pending_off += write_side(*f.to, f.pending.data() + f.pending_off, f.pending.size() - f.pending_off, ec);
        if (ec == asio::error::would_block) return false;
        if (ec) {
            finish(closing_ ? CloseReason::drain : closed_by(*f.to));
            return false;
        }
        dog_.touch();
    }
    if (!f.pending.empty()) {
        std::string().swap(f.pending);  // give the memory back: idle tunnels hold none
        f.pending_off = 0;
    }
    return true;
}

bool TlsTunnel::read_once(Flow& f) {
    Side& from = *f.from;
    if (!can_read(from)) return false;
    auto scratch = worker_.scratch();
    boost::system::error_code ec;
    bool empty_after = false;
    std::size_t n = read_side(from, scratch.data(), scratch.size(), ec, empty_after);
    if (ec == asio::error::would_block) return false;
    if (f.goodbye) {  // closing: what it still sends (its own Close) is dropped, up to its end
        if (ec) f.stopped = true;
        return !ec;
    }
    if (ec && closing_) {  // a peer left before the goodbye
        finish(CloseReason::drain);
        return false;
    }
    if (ec == asio::error::eof) {  // FIN, or close_notify: this side is done sending
        from.ended = true;
        f.stopped = true;
        pass_end(f);
        return false;
    }
    if (ec == asio::ssl::error::stream_truncated) {
        spdlog::debug("TLS tunnel on route \"{}\": the {} closed TCP without TLS close_notify (truncated)", s_.route,
                      from.client ? "client" : "upstream");
        finish(CloseReason::error);
        return false;
    }
    if (ec) {
        finish(closed_by(from));
        return false;
    }
    dog_.touch();
    bool goodbye_after = false;
    if (!take_copied(f, closing_, scratch.data(), n, goodbye_after, worker_.stats().paths())) {
        finish(CloseReason::drain);  // no boundary to speak at
        return false;
    }
    // Straight on to the destination; keep only what it did not take.
    std::size_t sent = 0;
    while (sent < n && can_write(*f.to)) {
        const std::size_t put = write_side(*f.to, scratch.data() + sent, n - sent, ec);
        if (ec == asio::error::would_block) break;
        if (ec) {
            finish(closing_ ? CloseReason::drain : closed_by(*f.to));
            return false;
        }
        sent += put;
    }
    if (sent < n) f.pending.assign(scratch.data() + sent, n - sent);
    if (goodbye_after) queue_goodbye(f);
    // A short read took all there was: wait for the next edge instead of an
    // EAGAIN. A FIN that came with the bytes raises none, so after one read on.
    if (empty_after && !from.peer_closed) from.readable = false;
    return true;
}

void TlsTunnel::queue_goodbye(Flow& f) {
    // After what is in flight; toward the upstream sluice speaks as a client, so the frame is masked.
    f.pending.erase(0, f.pending_off);
    f.pending_off = 0;
    f.pending += WebSocketFrames::close_frame(kGoingAwayCode, f.from->client, static_cast<std::uint32_t>(worker_.rng()()));
    f.goodbye = true;
}

void TlsTunnel::pass_end(Flow& f) {
    Side& from = *f.from;
    Side& to = *f.to;
    if (!first_end_) first_end_ = closed_by(from);
    if (!to.transport.tls()) {
        // Half-close: `to` hears FIN and may go on answering.
        ::shutdown(to.fd(), SHUT_WR);
        if (to.ended) finish(*first_end_);
        return;
    }
    // The tunnel ends: close_notify to `to`, and to a TLS `from` too (a bare
    // FIN would be a truncation); then `to` may finish its side for a moment:
    // closing at once would answer its last bytes with a reset.
    Ending e{*first_end_, {&to, &from}, {}};
    if (!to.ended) e.linger[0] = &to;
    dog_.set_idle(Watchdog::Clock::duration::zero());
    dog_.set_phase(Watchdog::Clock::now() + kEndLinger);
    dog_.arm(self());
    begin_ending(e);
}

void TlsTunnel::begin_ending(Ending e) {
    up_.stopped = down_.stopped = true;
    ending_ = e;
    advance_ending();
}

void TlsTunnel::advance_ending() {
    // What is in flight goes before close_notify (TLS cannot send it beside a pending write).
    for (Flow* f : {&up_, &down_})
        if (!flush(*f)) return;
    for (Side* s : ending_->notify)
        if (s && !s->notified) {
            if (!notify_end(*s)) return;
            s->notified = true;
        }
    bool all_heard = true;
    for (Side* s : ending_->linger)
        if (s && !s->heard_end) {
            s->heard_end = read_to_end(*s);
            if (closed_) return;
            all_heard = all_heard && s->heard_end;
        }
    if (all_heard) finish(ending_->reason);
}

bool TlsTunnel::notify_end(Side& s) {
    if (s.transport.tls()) {
        if (!can_write(s)) return false;
        bool want_write = false;
        if (!s.transport.close_notify_now(want_write)) {
            s.write_waits_read = !want_write;
            (want_write ? s.writable : s.readable) = false;
            return false;
        }
        s.write_waits_read = false;
    }
    ::shutdown(s.fd(), SHUT_WR);
    return true;
}

bool TlsTunnel::read_to_end(Side& s) {
    // The raw bytes (its Close frame, its close_notify): nobody reads them.
    auto scratch = worker_.scratch();
    while (s.readable) {
        const ssize_t n = ::recv(s.fd(), scratch.data(), scratch.size(), MSG_DONTWAIT);
        if (n > 0) continue;
        if (n < 0 && blocked(errno)) {
            s.readable = false;
            return false;
        }
        return true;  // its end, or an error: nothing more will come
    }
    return false;
}

void TlsTunnel::abort(CloseReason reason) {
    if (closed_) return;
    if (closing_) {  // saying goodbye already; only a harder stop cuts it short
        if (reason != CloseReason::drain) finish(reason);
        return;
    }
    if (reason != CloseReason::drain || ending_ || up_.stopped || down_.stopped || up_.frames.lost() ||
        down_.frames.lost())
        return finish(reason);
    closing_ = true;
    dog_.set_idle(Watchdog::Clock::duration::zero());
    dog_.set_phase(Watchdog::Clock::now() + kGoodbyeGrace);
    dog_.arm(self());
    // A direction between messages (or frames) says goodbye now; one in the
    // middle of one does when its message ends (read_once).
    pump(up_);
    pump(down_);
}

void TlsTunnel::describe(std::vector<ConnectionInfo>& out) const {
    if (!closed_) describe_tunnel(s_, up_.moved, down_.moved, out.emplace_back());
}

void TlsTunnel::on_deadline(Watchdog::Which which) {
    if (closing_) return finish(CloseReason::drain);  // the goodbye took too long
    if (ending_) return finish(ending_->reason);      // the peer did not finish in time
    finish(which == Watchdog::Which::hard ? CloseReason::max_duration : CloseReason::idle_timeout);
}

void TlsTunnel::finish(CloseReason reason) {
    if (closed_) return;
    closed_ = true;
    dog_.stop();
    // Closing the descriptors takes them out of the readiness set; the set
    // lets go of this tunnel on a later turn.
    if (readiness_key_) worker_.readiness().drop(readiness_key_);
    for (Side* side : {&client_, &upstream_}) side->transport.close();
    tunnel_ended(worker_, s_, counters_, reason, up_.moved, down_.moved);
}

}  // namespace sluice::proxy
