// A WebSocket tunnel with TLS on either side or both: wss:// from the client,
// a TLS upstream, or both. splice(2) cannot see through TLS, so each direction
// is a coroutine that waits for its source to be readable, then reads into the
// worker's scratch buffer and writes on at once. Only bytes the destination
// does not take are kept (in a buffer of their own, until they are written),
// and nothing is read meanwhile: bounded, with backpressure. An idle tunnel
// holds no buffer: its two waits, and OpenSSL's state without its record
// buffers (Transport).
//
// Ends: a clean end from one side (TCP FIN, or TLS close_notify) is passed on.
// To a plain side it goes as a FIN and the other direction keeps flowing
// (half-close). To a TLS side it ends the tunnel: the other direction stops
// (a TLS stream cannot send close_notify beside a pending read or write, and a
// WebSocket has said goodbye in its Close frames by then), both TLS sides get
// close_notify and both get a FIN, and a short linger lets the peer finish.
// A TLS peer that drops TCP without close_notify (a truncated TLS stream) ends
// the tunnel as an error.
//
// A drain ends it as Tunnel does: each direction follows its WebSocket frames,
// Close 1001 goes to the client after the message in flight and masked to the
// upstream between two frames; then both loops stop, each TLS side gets
// close_notify, both get a FIN, and the peers have a moment to answer.
//
// Runs on its worker's thread only.
#pragma once
#include "proxy/message/websocket_frames.h"
#include "proxy/net/transport.h"
#include "proxy/tunnel/tunnel.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <optional>

namespace sluice::proxy {

class TlsTunnel final : public Downstream {
public:
    TlsTunnel(WorkerContext& worker, Tunnel::Setup meta, Transport client, Transport upstream);
    ~TlsTunnel() override;

    void start();
    void close_if_idle() override {}
    // A drain says goodbye in WebSocket Close frames; anything else closes now.
    void abort(CloseReason reason) override;
    const ListenerInfo* listener() const override { return s_.listener.get(); }
    void describe(std::vector<ConnectionInfo>& out) const override;

    Watchdog& watchdog() { return dog_; }
    void on_deadline(Watchdog::Which which);

private:
    struct Side {
        Side(Transport s, bool c) : transport(std::move(s)), client(c), loop_stopped(transport.socket().get_executor()) {}
        Transport transport;
        bool client;                    // the client side, else the upstream
        bool running = false;           // the copy loop reading from this side is alive
        bool reading = false;           // ... and waiting in a read on it
        bool stop_reading = false;      // no new read: we are about to close_notify it
        boost::asio::steady_timer loop_stopped;
        bool ended = false;             // it ended its sending cleanly (FIN or close_notify)
        std::uint64_t moved = 0;        // bytes read from it and delivered
        WebSocketFrames frames;         // where the frames it sends end
        bool goodbye = false;           // closing: our Close frame went to the other side; its bytes are dropped
    };

    std::shared_ptr<TlsTunnel> self() { return std::static_pointer_cast<TlsTunnel>(shared_from_this()); }
    boost::asio::awaitable<void> copy(Side& from, Side& to, std::string pending);
    // Writes bytes read into the worker's scratch buffer: what `to` does not
    // take at once is copied out before waiting, as the scratch is shared.
    boost::asio::awaitable<boost::system::error_code> deliver(Side& to, const char* data, std::size_t n);
    // Reads and drops what a peer still sends after our close_notify, until it ends.
    boost::asio::awaitable<void> drain_peer(Side& s);
    // `from` ended cleanly: tell `to`.
    boost::asio::awaitable<void> pass_end(Side& from, Side& to);
    CloseReason closed_by(const Side& s) const {
        return s.client ? CloseReason::client_closed : CloseReason::upstream_closed;
    }
    // Closing: Close 1001 to `to`, for the direction from `from`.
    boost::asio::awaitable<void> send_goodbye(Side& from, Side& to);
    // Both Close frames are out: stop both loops, close_notify, FIN, linger, end.
    boost::asio::awaitable<void> end_after_goodbye();
    void finish(CloseReason reason);

    WorkerContext& worker_;
    Tunnel::Setup s_;
    Side client_, upstream_;
    Watchdog dog_;
    TunnelCounters& counters_;
    std::optional<CloseReason> first_end_;  // the reason when both sides end cleanly
    std::optional<CloseReason> lingering_;  // closing: waiting for a TLS peer's side to end
    bool closing_ = false;        // a drain asked for Close frames
    int goodbyes_sent_ = 0;       // Close frames written (one per direction)
    bool closed_ = false;
};

}  // namespace sluice::proxy
