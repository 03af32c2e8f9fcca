// One downstream HTTP/1.1 connection on one worker: the client's transport,
// its read buffer, the deadlines, the wait between requests and the close.
// Each request on it is an Exchange (exchange.h); exchanges run one after
// another, so pipelined requests are answered in order, and the one Exchange
// object is re-initialised in place for the next request so the buffers and
// strings it grew are reused.
//
// Every method runs on the worker thread that accepted the connection.
#pragma once
#include "proxy/http/client_watch.h"
#include "proxy/http/exchange.h"
#include "proxy/http/exchange_phase.h"
#include "proxy/net/downstream.h"
#include "proxy/net/io_buffer.h"
#include "proxy/net/listener.h"
#include "proxy/net/transport.h"
#include "proxy/net/watchdog.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <memory>
#include <string>
#include <tuple>

namespace sluice::proxy {

class WorkerContext;
class ServerTls;

class HttpConnection final : public Downstream {
public:
    using tcp = boost::asio::ip::tcp;

    HttpConnection(WorkerContext& worker, std::shared_ptr<ListenerInfo> listener, tcp::socket socket);
    ~HttpConnection();

    void start();

    // Downstream: what the worker asks of every connection it owns.
    void close_if_idle() override;
    void abort(CloseReason reason) override;
    const ListenerInfo* listener() const override { return listener_.get(); }
    bool describe(ConnectionInfo& out) const override;

    // Watchdog owner interface.
    Watchdog& watchdog() { return dog_; }
    void on_deadline(Watchdog::Which which);

    // What the exchange running on this connection reads, writes and sets.
    WorkerContext& worker() const { return worker_; }
    const std::shared_ptr<ListenerInfo>& listener_info() const { return listener_; }
    Transport& client() { return client_; }
    IoBuffer& in() { return in_; }
    const std::string& peer_ip() const { return peer_ip_; }
    std::string client_address() const;  // 10.0.0.1:51234, [::1]:51234
    std::shared_ptr<HttpConnection> self() {
        return std::static_pointer_cast<HttpConnection>(shared_from_this());
    }
    // A phase with a fixed deadline (time_point::max() for none) and no idle timeout.
    void set_phase(Phase p, Watchdog::time_point deadline);
    // A phase with no fixed deadline that ends after `idle` without bytes moving.
    void set_streaming(Phase p, Watchdog::Clock::duration idle);
    Phase phase() const { return phase_; }
    Deadline timed_out() const { return timed_out_; }
    // Forgets a passed deadline (an attempt that failed on one is being retried).
    void clear_timeout() { timed_out_ = Deadline::none; }
    // A deadline passed: on_deadline() cancelled what was pending, but an
    // operation whose completion was already queued escaped the cancel, so
    // every loop checks this before starting the next read or write.
    bool deadline_passed() const { return timed_out_ != Deadline::none; }
    bool aborted() const { return aborted_; }
    // Sees the client close or reset while an exchange waits (client_watch.h).
    ClientWatch& watch() { return watch_; }
    // The watch saw the client close or reset during an exchange: the upstream
    // closes now, and so does this connection.
    void client_left();
    // The server or this connection's listener is draining: no further request here.
    bool draining() const;

    static std::tuple<boost::system::error_code, std::size_t> cancelled_io() {
        return {boost::asio::error::operation_aborted, 0};
    }

private:
    boost::asio::awaitable<void> run();
    // Waits for the first byte of the next request without holding a buffer.
    boost::asio::awaitable<bool> wait_for_request(bool first);
    // Reads until a whole request head is buffered, under the head limits;
    // the exchange parses it. False: the connection ends (answered or not).
    boost::asio::awaitable<bool> read_request_head();
    boost::asio::awaitable<void> close_gracefully();

    WorkerContext& worker_;
    std::shared_ptr<ListenerInfo> listener_;
    Transport client_;
    std::shared_ptr<ServerTls> tls_;  // held during the handshake (its SNI callback points to it)
    std::string peer_ip_;
    std::uint16_t peer_port_ = 0;
    IoBuffer in_;
    Watchdog dog_;
    Phase phase_ = Phase::idle;
    Deadline timed_out_ = Deadline::none;
    bool aborted_ = false;
    ClientWatch watch_;
    Exchange exchange_;

    // What an idle keep-alive connection reads its next request's first bytes
    // into: the connection's own, so no pooled buffer is held while idle.
    static constexpr std::size_t kIdleRead = 512;
    char idle_read_[kIdleRead];
};

}  // namespace sluice::proxy
