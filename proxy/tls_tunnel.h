// A WebSocket tunnel whose client side is TLS (wss://). splice(2) cannot see
// through TLS, so each direction is a coroutine copying through its own 16 KiB
// buffer: read, then write, then read again (bounded, with backpressure).
//
// Ends: the client's close_notify is passed on as a FIN to the upstream, and
// the upstream's answer keeps flowing (half-close). A FIN from the upstream
// ends the tunnel: sluice sends close_notify, then closes. A client that drops
// TCP without close_notify (a truncated TLS stream) ends it as an error.
//
// Runs on its worker's thread only.
#pragma once
#include "proxy/tunnel.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <optional>

namespace sluice::proxy {

class TlsTunnel final : public Downstream {
public:
    using TlsStream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;
    // `meta` carries everything but the client socket (its `client` is unused).
    TlsTunnel(Worker& worker, Tunnel::Setup meta, TlsStream client);
    ~TlsTunnel() override;

    void start();
    void close_if_idle() override {}
    void abort(CloseReason reason) override { finish(reason); }
    const ListenerInfo* listener() const override { return s_.listener.get(); }
    bool describe(ConnectionInfo& out) const override;

    Watchdog& watchdog() { return dog_; }
    void on_deadline(Watchdog::Which which);

private:
    std::shared_ptr<TlsTunnel> self() { return std::static_pointer_cast<TlsTunnel>(shared_from_this()); }
    boost::asio::awaitable<void> client_to_upstream();
    boost::asio::awaitable<void> upstream_to_client();
    void finish(CloseReason reason);

    static constexpr std::size_t kBuffer = 16 * 1024;
    Worker& worker_;
    Tunnel::Setup s_;
    TlsStream client_;
    Watchdog dog_;
    TunnelCounters& counters_;
    std::unique_ptr<char[]> up_buf_{new char[kBuffer]}, down_buf_{new char[kBuffer]};
    std::uint64_t up_bytes_ = 0, down_bytes_ = 0;
    bool client_done_ = false;   // the client's close_notify went on as a FIN
    bool upstream_eof_ = false;  // the upstream sent FIN: stopping the client reader to say close_notify
    bool reader_running_ = false;
    boost::asio::steady_timer reader_stopped_;
    std::optional<CloseReason> lingering_;  // closing: waiting for the client's side to end
    bool closed_ = false;
};

}  // namespace sluice::proxy
