// An upgraded connection (WebSocket after a 101) between two plain TCP
// sockets, joined into one opaque, bidirectional byte tunnel. (When either
// side speaks TLS, TlsTunnel does the job.)
//
// Each direction is a small state machine driven by readiness: wait until the
// source is readable, move bytes, wait until the destination is writable when
// it pushes back. Nothing is read while bytes are still in flight, so each
// direction holds at most one buffer's worth (backpressure), and an idle tunnel
// holds no buffer and no pipe: only its two sockets.
//
// The sockets leave Asio when the tunnel starts: the worker's Readiness set
// watches them edge-triggered, and the tunnel keeps a readable and a writable
// flag per socket, cleared when a recv or send finds nothing more to do. So a
// small message costs one recv and one send, and no epoll_ctl.
//
// Bytes move through a pipe with splice(2) (zero-copy) once a direction carries
// bulk data (a read filled the whole buffer), and are copied through the
// worker's scratch buffer otherwise: for small WebSocket messages a read and a
// write are cheaper than two splices and a pipe. A FIN is passed on as a FIN
// (half-close); a reset or error closes both sides.
//
// Each direction follows the WebSocket frames it carries (WebSocketFrames):
// the copy path reads their headers as they pass, and the splice path splices
// within a frame's payload only, reading the next header by a copy. So a drain
// can end the tunnel as a WebSocket server going away would: Close 1001 to the
// client after the message in flight, a masked Close 1001 to the upstream
// between two frames, a FIN after each, and a moment for the peers' answers.
//
// Runs on its worker's thread only.
#pragma once
#include "proxy/message/websocket_frames.h"
#include "proxy/net/downstream.h"
#include "proxy/net/listener.h"
#include "proxy/net/pipe_pool.h"
#include "proxy/net/readiness.h"
#include "proxy/net/upstream_pool.h"
#include "proxy/net/watchdog.h"
#include "proxy/snapshot/snapshot.h"
#include "proxy/worker/worker_stats.h"

#include <boost/asio/ip/tcp.hpp>

#include <memory>
#include <optional>
#include <string>

namespace sluice::proxy {

class WorkerContext;
class Tunnel;

class Tunnel final : public Downstream, public Readiness::Handler {
public:
    using tcp = boost::asio::ip::tcp;
    // Everything about a tunnel but its two connections.
    struct Setup {
        std::string to_upstream;  // client bytes read past the upgrade request
        std::string to_client;    // upstream bytes read past the 101 head
        std::shared_ptr<const Snapshot> snapshot;  // the config the tunnel started with
        std::string route;
        config::Duration idle{0};                  // websocket_idle; 0 = none
        Watchdog::time_point hard_deadline = Watchdog::time_point::max();  // max_duration
        Watchdog::time_point started;
        std::shared_ptr<ListenerInfo> listener;
        std::shared_ptr<EndpointPool> endpoint;  // counts the tunnel as active on its endpoint
        std::shared_ptr<RouteStats> stats;       // the route's counters, held while the tunnel lives
        // For GET /connections and the access log.
        std::string cluster, endpoint_key, client_address, method, path;
        std::optional<Watchdog::Clock::duration> connect, first_byte;
    };

    Tunnel(WorkerContext& worker, Setup setup, tcp::socket client, tcp::socket upstream);
    ~Tunnel() override;

    void start();
    void close_if_idle() override {}  // a tunnel is never between requests
    // A drain says goodbye in WebSocket Close frames; anything else closes now.
    void abort(CloseReason reason) override;
    const ListenerInfo* listener() const override { return s_.listener.get(); }
    void describe(std::vector<ConnectionInfo>& out) const override;

    Watchdog& watchdog() { return dog_; }
    void on_deadline(Watchdog::Which which);
    void on_ready(int side, std::uint32_t events) override;

private:
    // One socket, out of Asio's hands: its descriptor and what epoll last said.
    struct Side {
        int fd = -1;
        bool readable = true;  // until a recv says otherwise
        bool writable = true;
        bool peer_closed = false;  // epoll saw the FIN (or an error): read until recv says so
    };
    struct Flow {
        Side* from;
        Side* to;
        bool from_client;
        Pipe pipe;                 // held only while bytes sit in it
        std::size_t in_pipe = 0;
        std::string pending;       // copied bytes the destination did not take yet
        std::size_t pending_off = 0;
        bool bulk = false;         // large transfers: splice
        bool eof = false;          // the source sent FIN
        bool done = false;         // FIN passed on
        std::uint64_t* bytes = nullptr;  // the route's counter
        std::uint64_t moved = 0;         // this tunnel's
        WebSocketFrames frames;          // where the frames the source sends end
        bool close_queued = false;       // closing: our Close frame is in `pending`; reads are dropped
    };

    std::shared_ptr<Tunnel> self() { return std::static_pointer_cast<Tunnel>(shared_from_this()); }
    // Moves as much as possible without blocking; readiness calls it again.
    void pump(Flow& f);
    // Sends what is in flight; false when the destination pushed back or failed.
    bool flush(Flow& f);
    // Reads once; false when there is nothing to read (or it failed).
    bool read_some(Flow& f);
    void fail(Flow& f, int err, bool on_destination);
    // A write toward f.to returned -1: wait for room (EAGAIN) or end the tunnel. Always false.
    bool write_failed(Flow& f);
    // Closing: our Close frame goes after what is in flight; then the source is no longer relayed.
    void queue_close(Flow& f);
    void finish(CloseReason reason);

    WorkerContext& worker_;
    Setup s_;
    Side client_, upstream_;
    std::uint64_t readiness_key_ = 0;
    Watchdog dog_;
    TunnelCounters& counters_;
    Flow up_;    // client -> upstream
    Flow down_;  // upstream -> client
    bool closed_ = false;
    bool closing_ = false;  // a drain asked for Close frames
    bool first_eof_from_client_ = false, any_eof_ = false;
};

// What every tunnel (plain or TLS) does when it opens and when it is gone:
// counted on its listener, its worker's connection set, its route and its
// endpoint; and how it shows in GET /connections.
void tunnel_opened(WorkerContext& worker, Downstream* tunnel, const Tunnel::Setup& s, TunnelCounters& counters);
void tunnel_gone(WorkerContext& worker, Downstream* tunnel, const Tunnel::Setup& s);
void describe_tunnel(const Tunnel::Setup& s, std::uint64_t bytes_from_client, std::uint64_t bytes_to_client,
                     ConnectionInfo& out);

// Both directions of a new tunnel (Tunnel's flows or TlsTunnel's): the bytes
// read past the handshakes go first and count as tunnel bytes, and each
// direction follows its frames (the client gets whole messages; the upstream
// may get a Close between frames).
template <class Flow>
void start_flows(Tunnel::Setup& s, TunnelCounters& counters, Flow& up, Flow& down) {
    up.bytes = &counters.bytes_upstream;
    down.bytes = &counters.bytes_downstream;
    up.pending = std::move(s.to_upstream);
    down.pending = std::move(s.to_client);
    down.frames.want_message_boundary(true);
    up.frames.want_message_boundary(false);
    for (Flow* f : {&up, &down}) {
        f->frames.feed(f->pending.data(), f->pending.size());
        f->moved = f->pending.size();
        *f->bytes += f->moved;
    }
}

// Bytes that left one side of a flow, on either path: they count on the
// flow, on the route and on the worker's counter of that path.
template <class Flow>
void count_moved(Flow& f, std::size_t n, std::uint64_t& path_bytes) {
    *f.bytes += n;
    f.moved += n;
    path_bytes += n;
}

// A piece read on the copy path: its WebSocket frames are followed; while
// closing, the bytes past the chosen boundary are dropped (`n` shrinks) and
// `at_boundary` says the goodbye goes after it. What is kept counts on the
// flow, the route and the worker's copy path. False when there is no
// boundary to speak at (the frames were lost): the tunnel must end.
template <class Flow>
bool take_copied(Flow& f, bool closing, const char* data, std::size_t& n, bool& at_boundary, TunnelPaths& paths) {
    at_boundary = false;
    if (closing) {
        if (f.frames.lost()) return false;
        n = f.frames.feed(data, n, true);
        at_boundary = f.frames.at_chosen_boundary();
    } else if (!f.frames.lost()) {
        f.frames.feed(data, n);
    }
    count_moved(f, n, paths.copied_bytes);
    return true;
}

// The end of any tunnel: its route's counters, and its access log line.
void tunnel_ended(WorkerContext& worker, const Tunnel::Setup& s, TunnelCounters& counters, CloseReason reason,
                  std::uint64_t bytes_from_client, std::uint64_t bytes_to_client);

}  // namespace sluice::proxy
