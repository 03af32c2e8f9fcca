// A WebSocket tunnel with TLS on either side or both: wss:// from the client,
// a TLS upstream, or both. splice(2) cannot see through TLS, so each direction
// reads into the worker's scratch buffer and writes on at once. Only bytes the
// destination does not take are kept (in a buffer of their own, until they
// are written), and nothing is read meanwhile: bounded, with backpressure.
//
// Driven by readiness as Tunnel is: the sockets leave Asio, the worker's
// Readiness set watches them edge-triggered, and each side keeps readable and
// writable flags. TLS adds two things: OpenSSL may hold bytes it already read
// (no event announces them, so they are read before waiting), and a TLS read
// may need the socket writable (or a write readable) first. An idle tunnel
// holds its two sockets, OpenSSL's state without its record buffers
// (Transport) and its deadline's timer: no buffer, coroutine or socket
// operation.
//
// Ends: a clean end from one side (TCP FIN, or TLS close_notify) is passed on.
// To a plain side it goes as a FIN and the other direction keeps flowing
// (half-close). To a TLS side it ends the tunnel: reads stop (a WebSocket has
// said goodbye in its Close frames by then), what is in flight is written,
// both TLS sides get close_notify and both get a FIN, and a short linger lets
// the peer finish. A TLS peer that drops TCP without close_notify (a
// truncated TLS stream) ends the tunnel as an error.
//
// A drain ends it as Tunnel does: each direction follows its WebSocket frames,
// Close 1001 goes to the client after the message in flight and masked to the
// upstream between two frames; then reads stop, each TLS side gets
// close_notify, both get a FIN, and the peers have a moment to answer.
//
// Runs on its worker's thread only.
#pragma once
#include "proxy/message/websocket_frames.h"
#include "proxy/net/readiness.h"
#include "proxy/net/transport.h"
#include "proxy/tunnel/tunnel.h"

#include <array>
#include <memory>
#include <optional>

namespace sluice::proxy {

class TlsTunnel final : public Downstream, public Readiness::Handler {
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
    void on_ready(int side, std::uint32_t events) override;

private:
    // One connection, out of Asio's hands: OpenSSL (or nothing) over its descriptor.
    struct Side {
        Side(Transport t, bool c) : transport(std::move(t)), client(c) {}
        Transport transport;
        bool client;               // the client side, else the upstream
        int fd() { return transport.fd(); }
        bool readable = true;      // until a read finds the socket empty
        bool writable = true;      // until a write finds it full
        bool peer_closed = false;  // epoll saw the FIN (or an error): read until the read says so
        bool read_waits_write = false;  // TLS: the last read needs the socket writable first
        bool write_waits_read = false;  // TLS: the last write needs the socket readable first
        bool ended = false;        // it ended its sending cleanly (FIN or close_notify)
        bool notified = false;     // ending: our close_notify (TLS) and FIN went out
        bool heard_end = false;    // ending: what it still sent was read up to its end
    };
    struct Flow {
        Side* from;
        Side* to;
        std::string pending;       // bytes the destination did not take yet
        std::size_t pending_off = 0;
        bool stopped = false;      // nothing more is read from `from`
        bool goodbye = false;      // closing: our Close frame is queued; what `from` sends is dropped
        bool goodbye_out = false;  // ... and written
        std::uint64_t* bytes = nullptr;  // the route's counter
        std::uint64_t moved = 0;         // this tunnel's
        WebSocketFrames frames;          // where the frames `from` sends end
    };
    // How the tunnel ends once it must: write what is in flight, close_notify
    // and FIN the `notify` sides in order, read the `linger` sides to their end.
    struct Ending {
        CloseReason reason;
        std::array<Side*, 2> notify{};
        std::array<Side*, 2> linger{};
    };

    std::shared_ptr<TlsTunnel> self() { return std::static_pointer_cast<TlsTunnel>(shared_from_this()); }
    // Moves as much as possible without blocking; readiness calls it again.
    void pump(Flow& f);
    // Writes what is in flight; false when the destination pushed back or failed.
    bool flush(Flow& f);
    // Reads once and passes it on; false when there is nothing more to do now.
    bool read_once(Flow& f);
    // `from` ended cleanly: tell `to`.
    void pass_end(Flow& f);
    void queue_goodbye(Flow& f);
    void begin_ending(Ending e);
    void advance_ending();
    // One read or write on `s`, TLS or plain, without blocking; when it would
    // block, `ec` says so and the side's flags say what it waits for.
    // `empty_after`: the socket had nothing more (a short read).
    std::size_t read_side(Side& s, char* out, std::size_t n, boost::system::error_code& ec, bool& empty_after);
    std::size_t write_side(Side& s, const char* data, std::size_t n, boost::system::error_code& ec);
    bool can_read(const Side& s) const;
    bool can_write(const Side& s) const { return s.write_waits_read ? s.readable : s.writable; }
    // Ending: close_notify and FIN; read and drop to the end. True when done.
    bool notify_end(Side& s);
    bool read_to_end(Side& s);
    CloseReason closed_by(const Side& s) const {
        return s.client ? CloseReason::client_closed : CloseReason::upstream_closed;
    }
    void finish(CloseReason reason);

    WorkerContext& worker_;
    Tunnel::Setup s_;
    Side client_, upstream_;
    Flow up_;    // client -> upstream
    Flow down_;  // upstream -> client
    std::uint64_t readiness_key_ = 0;
    Watchdog dog_;
    TunnelCounters& counters_;
    std::optional<CloseReason> first_end_;  // the reason when both sides end cleanly
    std::optional<Ending> ending_;
    bool closing_ = false;  // a drain asked for Close frames
    int goodbyes_out_ = 0;  // Close frames written (one per direction)
    bool closed_ = false;
};

}  // namespace sluice::proxy
