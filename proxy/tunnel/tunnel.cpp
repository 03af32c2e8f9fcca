#include "proxy/tunnel/tunnel.h"

#include "proxy/worker/worker_context.h"

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sluice::proxy {
namespace {

// Reads and writes per wake-up before yielding to other connections.
constexpr int kRoundsPerWake = 16;
// A splice that moves less than this means the burst is over: copy again.
constexpr std::size_t kBulkThreshold = 16 * 1024;
// A drain's goodbye: how long the tunnel waits for a message to end and for
// the peers to answer the Close frames before it closes anyway.
constexpr auto kCloseGrace = std::chrono::seconds(1);
// WebSocket 1001: the server is going away.
constexpr std::uint16_t kGoingAway = 1001;

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

// The descriptor, taken out of Asio (which stops watching it); -1 on failure.
int take_fd(Tunnel::tcp::socket& s) {
    boost::system::error_code ec;
    int fd = s.release(ec);
    if (ec) {
        s.close(ec);
        return -1;
    }
    return fd;
}

// What a tunnel's /connections entry and its access log line both say of it.
template <class Record>
void name_tunnel(const Tunnel::Setup& s, Record& out) {
    out.kind = "websocket";
    out.listener = s.listener->spec.name;
    out.route = s.route;
    out.cluster = s.cluster;
    out.endpoint = s.endpoint_key;
    out.client = s.client_address;
}

}  // namespace

Tunnel::Tunnel(WorkerContext& worker, Setup setup, tcp::socket client, tcp::socket upstream)
    : worker_(worker),
      s_(std::move(setup)),
      client_{take_fd(client)},
      upstream_{take_fd(upstream)},
      dog_(worker.io().get_executor()),
      counters_(s_.stats->tunnels) {
    up_ = Flow{&client_, &upstream_, true};
    down_ = Flow{&upstream_, &client_, false};
    start_flows(s_, counters_, up_, down_);
    tunnel_opened(worker_, this, s_, counters_);
}

Tunnel::~Tunnel() {
    for (Side* side : {&client_, &upstream_})
        if (side->fd >= 0) ::close(side->fd);
    tunnel_gone(worker_, this, s_);
}

void tunnel_opened(WorkerContext& worker, Downstream* tunnel, const Tunnel::Setup& s, TunnelCounters& counters) {
    s.listener->connections.fetch_add(1, std::memory_order_relaxed);
    worker.add_downstream(tunnel);
    ++counters.active;
    ++counters.opened;
    if (s.endpoint) ++s.endpoint->active_tunnels;
}

void tunnel_gone(WorkerContext& worker, Downstream* tunnel, const Tunnel::Setup& s) {
    if (s.endpoint) --s.endpoint->active_tunnels;
    s.listener->connections.fetch_sub(1, std::memory_order_relaxed);
    worker.remove_downstream(tunnel);
}

void describe_tunnel(const Tunnel::Setup& s, std::uint64_t bytes_from_client, std::uint64_t bytes_to_client,
                     ConnectionInfo& out) {
    name_tunnel(s, out);
    out.started = s.started;
    out.bytes_from_client = bytes_from_client;
    out.bytes_to_client = bytes_to_client;
    out.config_version = s.snapshot ? s.snapshot->version : 0;
}

void Tunnel::start() {
    if (client_.fd < 0 || upstream_.fd < 0) {
        spdlog::warn("tunnel on route \"{}\" could not take over its sockets; closing it", s_.route);
        finish(CloseReason::error);
        return;
    }
    // Both already have TCP_NODELAY (HttpConnection and connect_upstream set it).
    // splice(2) and send(2) must never block the worker, whatever mode Asio left.
    for (Side* side : {&client_, &upstream_})
        ::fcntl(side->fd, F_SETFL, ::fcntl(side->fd, F_GETFL) | O_NONBLOCK);
    readiness_key_ = worker_.readiness().add(std::shared_ptr<Readiness::Handler>(self(), this), client_.fd, upstream_.fd);
    if (readiness_key_ == 0) {
        spdlog::warn("tunnel on route \"{}\" could not watch its sockets ({}); closing it", s_.route,
                     std::strerror(errno));
        finish(CloseReason::error);
        return;
    }
    dog_.set_idle(s_.idle);
    dog_.set_hard(s_.hard_deadline);
    dog_.arm(self());
    worker_.join_drain(weak_from_this());
    // Bytes read past the handshake go first (pump flushes `pending` before reading).
    pump(up_);
    pump(down_);
}

void Tunnel::on_ready(int side, std::uint32_t events) {
    if (closed_) return;
    Side& s = side == 0 ? client_ : upstream_;
    const bool in = events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
    const bool out = events & (EPOLLOUT | EPOLLHUP | EPOLLERR);
    if (in) s.readable = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s.peer_closed = true;
    if (out) s.writable = true;
    // The direction that writes to this socket, then the one that reads from it.
    if (out) pump(side == 0 ? down_ : up_);
    if (in && !closed_) pump(side == 0 ? up_ : down_);
}

void Tunnel::pump(Flow& f) {
    for (int round = 0; round < kRoundsPerWake; ++round) {
        if (closed_) return;
        if (!flush(f)) return;
        if (f.close_queued) {
            // Our Close frame is out: FIN after it; what the source still
            // sends (its own Close) is read and dropped until its FIN.
            if (!f.done) {
                f.done = true;
                ::shutdown(f.to->fd, SHUT_WR);
            }
            if (f.eof) {
                if (up_.done && down_.done && up_.eof && down_.eof) finish(CloseReason::drain);
                return;
            }
            if (!read_some(f)) return;
            continue;
        }
        if (f.eof && closing_) return finish(CloseReason::drain);  // a peer left before the goodbye
        if (f.eof) {
            if (!f.done) {
                // Pass the FIN on: the other side sees end of stream, and may still answer.
                f.done = true;
                ::shutdown(f.to->fd, SHUT_WR);
                if (!any_eof_) {
                    any_eof_ = true;
                    first_eof_from_client_ = f.from_client;
                }
                if (up_.done && down_.done)
                    finish(first_eof_from_client_ ? CloseReason::client_closed : CloseReason::upstream_closed);
            }
            return;
        }
        if (!read_some(f)) return;
    }
    // Busy: let the worker's other connections run, then continue.
    boost::asio::post(worker_.io(), [self = self(), &f] {
        if (!self->closed_) self->pump(f);
    });
}

bool Tunnel::flush(Flow& f) {
    int to = f.to->fd;
    if ((f.in_pipe > 0 || f.pending_off < f.pending.size()) && !f.to->writable) return false;
    while (f.in_pipe > 0) {
        ssize_t n = ::splice(f.pipe.read_fd, nullptr, to, nullptr, f.in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n < 0) return write_failed(f);
        f.in_pipe -= static_cast<std::size_t>(n);
        dog_.touch();
    }
    if (f.pipe) {  // empty again: an idle direction holds no pipe
        worker_.pipes().give(f.pipe);
        f.pipe = {};
    }
    while (f.pending_off < f.pending.size()) {
        ssize_t n = ::send(to, f.pending.data() + f.pending_off, f.pending.size() - f.pending_off,
                           MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) return write_failed(f);
        f.pending_off += static_cast<std::size_t>(n);
        dog_.touch();
    }
    if (!f.pending.empty()) {
        std::string().swap(f.pending);  // give the memory back: idle tunnels hold none
        f.pending_off = 0;
    }
    return true;
}

bool Tunnel::read_some(Flow& f) {
    if (!f.from->readable) return false;  // an EPOLLIN edge comes with more
    int from = f.from->fd;
    // Splice stays within a frame's payload; a frame header is read by a copy.
    // So does the short tail of a frame: two splices through a pipe for a few
    // bytes cost more than one copy (64 KiB ping-pong measured it).
    const std::size_t splice_limit =
        f.frames.lost() ? PipePool::kCapacity
                        : static_cast<std::size_t>(std::min<std::uint64_t>(PipePool::kCapacity, f.frames.payload_left()));
    if (f.bulk && worker_.splice_enabled() && !closing_ && splice_limit >= kBulkThreshold) {
        f.pipe = worker_.pipes().take();
        if (f.pipe) {
            ssize_t n = ::splice(from, nullptr, f.pipe.write_fd, nullptr, splice_limit, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n > 0) {
                const auto moved = static_cast<std::size_t>(n);
                f.in_pipe = moved;
                if (!f.frames.lost()) f.frames.skip(moved);
                count_moved(f, moved, worker_.stats().paths().spliced_bytes);
                // Small: the burst is over. (A frame's end is not: the limit is at least this.)
                if (moved < kBulkThreshold) f.bulk = false;
                dog_.touch();
                return true;
            }
            int err = errno;
            worker_.pipes().give(f.pipe);
            f.pipe = {};
            if (n == 0) {
                f.eof = true;
                return true;
            }
            if (would_block(err)) {
                f.from->readable = false;
                return false;
            }
            if (err != EINVAL) {
                fail(f, err, false);
                return false;
            }
            f.bulk = false;  // this socket cannot splice: copy
        } else {
            f.bulk = false;  // out of descriptors for pipes: copy
        }
    }
    auto scratch = worker_.scratch();
    ssize_t n = ::recv(from, scratch.data(), scratch.size(), MSG_DONTWAIT);
    if (n == 0) {
        f.eof = true;
        return true;
    }
    if (n < 0) {
        if (would_block(errno)) f.from->readable = false;
        else fail(f, errno, false);
        return false;
    }
    auto got = static_cast<std::size_t>(n);
    if (f.close_queued) return true;  // closing: the source's answer is dropped
    bool close_after = false;
    if (!take_copied(f, closing_, scratch.data(), got, close_after, worker_.stats().paths())) {
        finish(CloseReason::drain);  // no boundary to speak at
        return false;
    }
    dog_.touch();
    if (got == scratch.size()) f.bulk = true;  // a burst: splice the rest
    // Straight on to the destination; keep only what it did not take.
    ssize_t sent = f.to->writable && got > 0 ? ::send(f.to->fd, scratch.data(), got, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;
    if (sent < 0) {
        if (!would_block(errno)) {
            fail(f, errno, true);
            return false;
        }
        f.to->writable = false;
        sent = 0;
    }
    if (static_cast<std::size_t>(sent) < got) f.pending.assign(scratch.data() + sent, got - static_cast<std::size_t>(sent));
    if (close_after) queue_close(f);
    if (!f.pending.empty()) return true;  // pump's flush waits for the destination
    if (got < scratch.size()) {
        // A short read took all that was queued: wait for the next edge instead
        // of spending a recv on EAGAIN. Bytes (or a FIN) that arrive after the
        // recv raise a new edge. A FIN that came with the bytes raises none,
        // so after one the next recv reads the end of stream.
        if (f.from->peer_closed) return true;
        f.from->readable = false;
        return false;
    }
    return true;
}

void Tunnel::abort(CloseReason reason) {
    if (closed_) return;
    if (closing_) {  // saying goodbye already; only a harder stop cuts it short
        if (reason != CloseReason::drain) finish(reason);
        return;
    }
    if (reason != CloseReason::drain || up_.frames.lost() || down_.frames.lost() || up_.eof || down_.eof)
        return finish(reason);
    closing_ = true;
    dog_.set_idle(Watchdog::Clock::duration::zero());
    dog_.set_phase(Watchdog::Clock::now() + kCloseGrace);
    dog_.arm(self());
    // A direction between messages (or frames) says goodbye now; one in the
    // middle of one does when it ends (read_some).
    for (Flow* f : {&up_, &down_})
        if (f->frames.at_chosen_boundary()) queue_close(*f);
    pump(up_);
    pump(down_);
}

void Tunnel::queue_close(Flow& f) {
    // After what is in flight (the pipe, then `pending`); a client's frame is masked.
    f.pending.erase(0, f.pending_off);
    f.pending_off = 0;
    f.pending += WebSocketFrames::close_frame(kGoingAway, f.from_client, static_cast<std::uint32_t>(worker_.rng()()));
    f.close_queued = true;
}

bool Tunnel::write_failed(Flow& f) {
    if (would_block(errno)) f.to->writable = false;  // an EPOLLOUT edge comes when there is room
    else fail(f, errno, true);
    return false;
}

void Tunnel::fail(Flow& f, int err, bool on_destination) {
    // A side that reset or vanished ended the tunnel; anything else is an error.
    bool client_side = on_destination ? !f.from_client : f.from_client;
    bool gone = err == ECONNRESET || err == EPIPE || err == ENOTCONN || err == ECONNABORTED;
    if (!gone) spdlog::debug("tunnel on route \"{}\" failed: {}", s_.route, std::strerror(err));
    finish(gone ? (client_side ? CloseReason::client_closed : CloseReason::upstream_closed) : CloseReason::error);
}

void tunnel_ended(WorkerContext& worker, const Tunnel::Setup& s, TunnelCounters& counters, CloseReason reason,
                  std::uint64_t bytes_from_client, std::uint64_t bytes_to_client) {
    --counters.active;
    ++counters.closes[static_cast<std::size_t>(reason)];
    const auto took = Watchdog::Clock::now() - s.started;
    counters.duration.observe(std::chrono::duration<double>(took).count());
    if (!worker.access_log_enabled()) return;
    AccessRecord r;
    r.duration = std::chrono::duration<double>(took).count();
    r.start = std::chrono::system_clock::now() - std::chrono::duration_cast<std::chrono::system_clock::duration>(took);
    name_tunnel(s, r);
    r.method = s.method;
    r.path = s.path;
    r.status = 101;
    r.bytes_received = bytes_from_client;
    r.bytes_sent = bytes_to_client;
    if (s.connect) r.upstream_connect = std::chrono::duration<double>(*s.connect).count();
    if (s.first_byte) r.upstream_first_byte = std::chrono::duration<double>(*s.first_byte).count();
    r.close_reason = close_reason_name(reason);
    r.config_version = s.snapshot ? s.snapshot->version : 0;
    worker.log_access(r);
}

void Tunnel::describe(std::vector<ConnectionInfo>& out) const {
    if (!closed_) describe_tunnel(s_, up_.moved, down_.moved, out.emplace_back());
}

void Tunnel::on_deadline(Watchdog::Which which) {
    if (closing_) return finish(CloseReason::drain);  // the goodbye took too long
    finish(which == Watchdog::Which::hard ? CloseReason::max_duration : CloseReason::idle_timeout);
}

void Tunnel::finish(CloseReason reason) {
    if (closed_) return;
    closed_ = true;
    dog_.stop();
    for (Flow* f : {&up_, &down_}) {
        if (!f->pipe) continue;
        if (f->in_pipe) worker_.pipes().discard(f->pipe);
        else worker_.pipes().give(f->pipe);
        f->pipe = {};
    }
    // Closing the descriptors takes them out of the readiness set; the set
    // lets go of this tunnel on a later turn.
    if (readiness_key_) worker_.readiness().drop(readiness_key_);
    for (Side* side : {&client_, &upstream_}) {
        if (side->fd >= 0) ::close(side->fd);
        side->fd = -1;
    }
    tunnel_ended(worker_, s_, counters_, reason, up_.moved, down_.moved);
    spdlog::debug("tunnel on route \"{}\" closed: {}", s_.route, close_reason_name(reason));
}

}  // namespace sluice::proxy
