// One downstream HTTP/1.1 connection on one worker: the client's transport,
// its read buffer, the deadlines, the wait between requests and the close.
// Each request on it is an Exchange (exchange.h); exchanges run one after
// another, so pipelined requests are answered in order, and the one Exchange
// object is re-initialised in place for the next request so the buffers and
// strings it grew are reused.
//
// Every method runs on the worker thread that accepted the connection.
#pragma once
#include "proxy/http/client_side.h"
#include "proxy/http/client_watch.h"
#include "proxy/http/http1_exchange.h"
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

class HttpConnection final : public Downstream, public ClientSide {
public:
    using tcp = boost::asio::ip::tcp;

    HttpConnection(WorkerContext& worker, std::shared_ptr<ListenerInfo> listener, tcp::socket socket);
    ~HttpConnection();

    void start();

    // Downstream: what the worker asks of every connection it owns.
    void close_if_idle() override;
    void abort(CloseReason reason) override;
    const ListenerInfo* listener() const override { return listener_.get(); }
    void describe(std::vector<ConnectionInfo>& out) const override;

    // ClientSide: what the exchange running on this connection reads and sets.
    WorkerContext& worker() const override { return worker_; }
    const std::shared_ptr<ListenerInfo>& listener_info() const override { return listener_; }
    const std::string& peer_ip() const override { return peer_ip_; }
    std::string client_address() const override;
    bool draining() const override;
    boost::asio::any_io_executor executor() override { return client_.socket().get_executor(); }
    std::shared_ptr<void> keep_alive() override { return shared_from_this(); }
    Watchdog& watchdog() override { return dog_; }
    void set_phase(Phase p, Watchdog::time_point deadline) override;
    void set_streaming(Phase p, Watchdog::Clock::duration idle) override;
    Phase phase() const override { return phase_; }
    Deadline timed_out() const override { return timed_out_; }
    void clear_timeout() override { timed_out_ = Deadline::none; }
    bool aborted() const override { return aborted_; }
    void watch_for_hangup() override { watch_.arm(); }

    // Watchdog owner interface.
    void on_deadline(Watchdog::Which which);

    // What the HTTP/1.1 exchange reads and writes.
    Transport& client() { return client_; }
    IoBuffer& in() { return in_; }
    std::shared_ptr<HttpConnection> self() {
        return std::static_pointer_cast<HttpConnection>(shared_from_this());
    }
    // Sees the client close or reset while an exchange waits (client_watch.h).
    ClientWatch& watch() { return watch_; }
    // The watch saw the client close or reset during an exchange: the upstream
    // closes now, and so does this connection.
    void client_left();

private:
    boost::asio::awaitable<void> run();
    // Waits for the first byte of the next request without holding a buffer.
    boost::asio::awaitable<bool> wait_for_request(bool first);
    // Reads until a whole request head is buffered, under the head limits;
    // the exchange parses it. False: the connection ends (answered or not).
    boost::asio::awaitable<bool> read_request_head();
    // A plain connection whose first bytes are the HTTP/2 preface, on a
    // listener with http2 on (h2c with prior knowledge).
    boost::asio::awaitable<bool> prior_knowledge();
    // The connection speaks HTTP/2 from here: an H2Connection takes its socket
    // and the bytes read so far; this object ends.
    void hand_to_h2();
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
    Http1Exchange exchange_;

    // What an idle keep-alive connection reads its next request's first bytes
    // into: the connection's own, so no pooled buffer is held while idle.
    static constexpr std::size_t kIdleRead = 512;
    char idle_read_[kIdleRead];
};

}  // namespace sluice::proxy
