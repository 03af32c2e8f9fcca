// One downstream connection (a "session" in HAProxy's words) on one worker:
// read a request head under limits, route it with the current snapshot, forward
// it to an upstream endpoint, stream the bodies both ways, and loop for the next
// request on the same connection. Exchanges on a connection run strictly one
// after another, so pipelined requests are answered in order.
//
// Every method runs on the worker thread that accepted the connection.
// The byte transport is a plain TCP socket for now; reads and writes go through
// the few helpers below so a TLS stream can slot in, and the upstream socket is
// already separate so an upgraded connection can become a tunnel.
#pragma once
#include "proxy/stream.h"
#include "proxy/forward_headers.h"
#include "proxy/http_head.h"
#include "proxy/io_buffer.h"
#include "proxy/listener.h"
#include "proxy/message_rules.h"
#include "proxy/proxy_error.h"
#include "proxy/tunnel.h"
#include "proxy/watchdog.h"
#include "proxy/worker.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sluice::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

class Session final : public Downstream {
public:
    Session(Worker& worker, std::shared_ptr<ListenerInfo> listener, tcp::socket socket);
    ~Session();

    void start();

    void close_if_idle() override;
    void abort(CloseReason reason) override;
    const ListenerInfo* listener() const override { return listener_.get(); }
    bool describe(ConnectionInfo& out) const override;

    // Watchdog owner interface.
    Watchdog& watchdog() { return dog_; }
    void on_deadline(Watchdog::Which which);

private:
    std::shared_ptr<Session> self() { return std::static_pointer_cast<Session>(shared_from_this()); }

    enum class Phase { idle, head, connect, request, response, closing };
    enum class Timeout { none, http_idle, request_headers, connect, upstream_response, stream_idle, max_duration };
    enum class Exchange { keep_alive, close };

    asio::awaitable<void> run();
    // Waits for the first byte of the next request without holding a buffer.
    asio::awaitable<bool> wait_for_request(bool first);
    // Reads and parses a request head into req_; answers malformed ones itself.
    asio::awaitable<bool> read_request_head();
    asio::awaitable<Exchange> handle_request();
    asio::awaitable<void> close_gracefully();

    // session_forward.cpp: the upstream half.
    asio::awaitable<Exchange> forward(std::size_t route_index);
    asio::awaitable<std::shared_ptr<UpstreamConn>> connect_upstream(std::size_t cluster, std::size_t endpoint);
    asio::awaitable<void> pump_request_body(std::shared_ptr<UpstreamConn> conn);
    // Reads the response head (relaying interim 1xx heads); false after answering an error.
    asio::awaitable<std::optional<Exchange>> read_response_head(UpstreamConn& conn, std::optional<ResponseParser>& parser,
                                                                bool may_retry, bool& retry);
    // Ends an exchange that failed before a response head reached the client.
    asio::awaitable<Exchange> fail_exchange(ErrorKind kind, std::string message);
    // The error for a failed upstream read or write, from what timed out and `ec`.
    asio::awaitable<Exchange> fail_upstream_io(const boost::system::error_code& ec, std::string_view step);
    asio::awaitable<Exchange> relay_response(const std::shared_ptr<UpstreamConn>& conn, bool may_retry, bool& retry);
    // After a 101: hands both sockets, and the bytes read past the handshake, to a Tunnel.
    asio::awaitable<Exchange> start_tunnel(std::shared_ptr<UpstreamConn> conn);
    // Waits for the request body pump; stops it first if the response is over.
    asio::awaitable<void> finish_pump(UpstreamConn& conn);
    // Waits for a pump that is ending on its own (its sockets were cancelled).
    asio::awaitable<void> wait_pump();

    // Answers with an error made by sluice; closes afterwards unless the request
    // was read completely and the client wants to keep the connection.
    asio::awaitable<Exchange> send_error(ErrorKind kind, std::string_view message, bool force_close = false);
    void set_phase(Phase p, Watchdog::time_point deadline);
    // A deadline passed: on_deadline() cancelled what was pending, but an
    // operation whose completion was already queued escaped the cancel, so
    // every loop checks this before starting the next read or write.
    bool deadline_passed() const { return timed_out_ != Timeout::none; }
    static std::tuple<boost::system::error_code, std::size_t> cancelled_io() {
        return {asio::error::operation_aborted, 0};
    }
    void set_streaming();
    bool request_body_done() const;
    // The server or this connection's listener is draining: no further request here.
    bool draining() const { return worker_.draining() || listener_->closing.load(std::memory_order_relaxed); }
    // `cluster "chat" endpoint 127.0.0.1:3000`, for messages.
    std::string upstream_label() const;
    std::string route_label() const;
    std::string affinity_cookie() const;  // the Set-Cookie line for sticky clusters
    // Counts a response head sent to the client (status, duration) on the route's counters.
    void count_response(int status);
    // The end of an exchange: metrics and the access log line.
    void account_exchange();
    RouteStats& route_stats();
    std::string client_address() const;

    Worker& worker_;
    std::shared_ptr<ListenerInfo> listener_;
    Stream client_;
    std::shared_ptr<ServerTls> tls_;  // held during the handshake (its SNI callback points to it)
    std::string peer_ip_;
    std::uint16_t peer_port_ = 0;
    IoBuffer in_;
    Watchdog dog_;
    Phase phase_ = Phase::idle;
    Timeout timed_out_ = Timeout::none;
    bool aborted_ = false;

    // The exchange in progress.
    std::shared_ptr<WorkerView> view_;
    std::size_t route_ = 0;
    RequestHead req_;
    std::optional<RequestParser> req_parser_;
    bool client_keep_alive_ = true;
    bool upgrade_ = false;  // a WebSocket upgrade request on a route that allows it
    std::string out_head_;  // response head for the client; reused
    std::shared_ptr<UpstreamConn> upstream_;
    std::size_t cluster_ = 0, endpoint_ = 0;  // where this exchange goes

    std::string up_head_;  // request head for the upstream
    Framing up_framing_ = Framing::none;
    std::optional<tcp::resolver> resolver_;
    ErrorKind connect_error_ = ErrorKind::upstream_connect_failed;  // the last failure of this exchange
    std::string connect_message_;
    std::string retry_message_;  // why a retryable attempt failed
    bool set_affinity_ = false;  // sticky: send the sluice-affinity cookie with the response

    // What the exchange did, for metrics, GET /connections and the access log.
    struct Record {
        Watchdog::time_point start;
        bool routed = false;     // route_ names the route
        bool upstream = false;   // cluster_ and endpoint_ name where it went
        bool counted = false;    // count_response() ran
        bool tunneled = false;   // became a tunnel, which logs itself
        bool stream = false;     // a response of unknown length, relayed as it arrives
        bool streaming = false;  // counted in streams_active now
        bool first_body_byte = false;
        int status = 0;
        std::optional<ErrorKind> error;
        std::uint64_t bytes_in = 0, bytes_out = 0;  // bodies from and to the client
        std::optional<Watchdog::Clock::duration> connect, first_byte;
        Watchdog::time_point sent{};  // request head written upstream
    };
    Record rec_;

    // Request body pump, which runs beside the response relay.
    enum class Pump {
        idle,             // no body, or not started
        running,
        done,             // the whole body went upstream
        client_left,      // the client closed or reset mid-body
        client_stalled,   // a deadline passed while waiting for client bytes
        client_bad_body,  // malformed chunked framing (client_body_error_ says how)
        upstream_failed,  // the upstream stopped taking the body
        stopped,          // stopped by us: the exchange ended first
    };
    Pump pump_ = Pump::idle;
    bool stop_pump_ = false;  // finish_pump() asked the running pump to end
    Refusal client_body_error_;  // why the body was refused (client_bad_body)
    asio::steady_timer pump_done_;
    std::vector<asio::const_buffer> pump_gather_;
    char pump_chunk_line_[24];

    ResponseHead resp_;
    std::vector<asio::const_buffer> gather_;
    char chunk_line_[24];

    // What an idle keep-alive connection reads its next request's first bytes
    // into: the session's own, so no pooled buffer is held while idle.
    static constexpr std::size_t kIdleRead = 512;
    char idle_read_[kIdleRead];
};

}  // namespace sluice::proxy
