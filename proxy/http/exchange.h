// One request and its response on an HTTP/1.1 connection (HAProxy's "stream",
// Envoy's "active stream"): the config snapshot taken once when its head has
// arrived, the route, the request and response heads, the upstream connection,
// the body relays both ways, and what it did, for metrics and the access log.
//
// The connection owns one Exchange and re-initialises it in place for each
// request (begin()), so the strings and vectors it grew stay allocated. Files:
//   exchange.cpp          the head, routing, errors sluice answers, accounting
//   upstream_attempt.cpp  the attempt loop: pick, attempt, retry if the failure allows
//   upstream_connect.cpp  a new upstream connection (DNS, TCP, TLS)
//   body_relay.cpp        request body pump, response head and body relay
//   tunnel_handoff.cpp    after a 101: both sockets to a tunnel
//
// Every method runs on the worker thread of its connection.
#pragma once
#include "proxy/http/exchange_phase.h"
#include "proxy/http/upstream_failure.h"
#include "proxy/message/forward_headers.h"
#include "proxy/message/http_head.h"
#include "proxy/message/message_rules.h"
#include "proxy/message/proxy_error.h"
#include "proxy/net/upstream_pool.h"
#include "proxy/net/watchdog.h"
#include "proxy/snapshot/admission.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sluice::proxy {

class HttpConnection;
struct ConnectionInfo;
struct RouteStats;
struct WorkerView;

// What the connection does after an exchange.
enum class ExchangeEnd { keep_alive, close };

class Exchange {
public:
    explicit Exchange(HttpConnection& conn);
    ~Exchange();
    Exchange(const Exchange&) = delete;
    Exchange& operator=(const Exchange&) = delete;

    // A new request starts on the connection: forget the last one, keep the storage.
    void begin();
    // Parses the head that is the first `end` bytes of the connection's buffer,
    // under the path rules of the snapshot the connection read it with.
    // False after refusing it with an answer (400, 501).
    boost::asio::awaitable<bool> take_head(std::size_t end, const config::Paths& paths);
    // Routes the request and forwards it; the response has been relayed or answered.
    boost::asio::awaitable<ExchangeEnd> run();
    // Answers with an error made by sluice; closes afterwards unless the request
    // was read completely and the client wants to keep the connection.
    boost::asio::awaitable<ExchangeEnd> send_error(ErrorKind kind, std::string_view message, bool force_close = false);
    // The end of the exchange: metrics, the access log line, and letting go of
    // the snapshot (an old config dies with its last request).
    void finish();
    // Metrics and the access log line for a request refused before it was routed.
    void finish_refused();

    // The unread client bytes of a request body mean the close must linger.
    bool request_body_done() const;
    // A deadline passed or the connection is closing: stop the upstream side.
    void cancel_upstream();
    void close_upstream();
    // The client closed or reset its connection before the response ended:
    // counts the cancel in the phase the exchange is in and closes the upstream
    // (never pooled), so the server stops working for nobody.
    void client_left();
    // GET /connections: a streaming response in progress.
    bool describe(ConnectionInfo& out) const;

private:
    // upstream_attempt.cpp
    boost::asio::awaitable<ExchangeEnd> forward();
    struct AttemptEnd {
        std::optional<ExchangeEnd> end;  // set: the exchange is over
        UpstreamFailure failure;         // otherwise: nothing reached the client yet
        bool reused = false;             // the attempt ran on a pooled connection
    };
    boost::asio::awaitable<AttemptEnd> attempt(bool fresh_connection);

    // upstream_connect.cpp: null after `failure` was set.
    boost::asio::awaitable<std::shared_ptr<UpstreamConn>> connect_upstream(UpstreamFailure& failure);

    // body_relay.cpp
    boost::asio::awaitable<void> pump_request_body(std::shared_ptr<UpstreamConn> conn);
    // Reads the response head (relaying interim 1xx heads). Set: the attempt is over.
    boost::asio::awaitable<std::optional<AttemptEnd>> read_response_head(UpstreamConn& conn,
                                                                         std::optional<ResponseParser>& parser);
    boost::asio::awaitable<AttemptEnd> relay_response(const std::shared_ptr<UpstreamConn>& conn);
    // A failed upstream read or write, once the pump has settled if a deadline passed.
    boost::asio::awaitable<AttemptEnd> upstream_io_failed(const boost::system::error_code& ec, std::string_view step,
                                                          UpstreamFailure::Retry retry);
    // The response cannot be completed (the client left, or the upstream
    // broke off mid-body): the upstream connection closes, the exchange ends.
    boost::asio::awaitable<AttemptEnd> abandon(UpstreamConn& conn);
    // Ends an exchange that failed before a response head reached the client:
    // a client that left or sent a bad body decides the answer over the upstream's failure.
    boost::asio::awaitable<ExchangeEnd> fail(const UpstreamFailure& failure);
    // Waits for the request body pump; stops it first if the response is over.
    boost::asio::awaitable<void> finish_pump(UpstreamConn& conn);
    // Waits for a pump that is ending on its own (its sockets were cancelled).
    boost::asio::awaitable<void> wait_pump();
    void start_pump(const std::shared_ptr<UpstreamConn>& conn);

    // admission_wait.cpp: a slot under the cluster's max_requests_per_endpoint
    // for endpoint_ or another with room, waiting in the queue when none has.
    // Set: the exchange is over (answered 503, or the client left).
    boost::asio::awaitable<std::optional<ExchangeEnd>> admit();
    // A retry moves its slot to the new endpoint_ without queueing; false when none is free.
    bool readmit();
    // Holds `slot` (null: uncounted, the cap was lifted) and goes to its endpoint;
    // false when this exchange's config does not know that endpoint.
    bool take_slot(EndpointState* slot, std::size_t preferred);
    // `wake_waiters` false: only at teardown, when other workers may be gone.
    void release_slot(bool wake_waiters = true);

    // tunnel_handoff.cpp: after a 101, hands both sockets and the bytes read
    // past the handshake to a Tunnel.
    boost::asio::awaitable<ExchangeEnd> start_tunnel(std::shared_ptr<UpstreamConn> conn);

    AttemptPlace place() const;
    std::string affinity_cookie() const;  // the Set-Cookie line for sticky clusters
    // Counts a response head sent to the client (status, duration) on the route's counters.
    void count_response(int status);
    // Counts the client leaving once, in `phase`.
    void record_cancel(CancelPhase phase);
    void account();
    RouteStats& route_stats();

    HttpConnection& conn_;

    std::shared_ptr<WorkerView> view_;  // snapped once, when the head has arrived
    std::size_t route_ = 0;
    RequestHead req_;
    std::optional<RequestParser> req_parser_;
    bool client_keep_alive_ = true;
    bool upgrade_ = false;  // a WebSocket upgrade request on a route that allows it
    std::string out_head_;  // response head for the client; reused
    std::shared_ptr<UpstreamConn> upstream_;
    std::size_t cluster_ = 0, endpoint_ = 0;  // where this exchange goes

    UpstreamRequest up_;   // how the request goes upstream (path, framing, fallback Host)
    std::string rewritten_path_;
    std::string up_head_;  // request head for the upstream
    std::optional<boost::asio::ip::tcp::resolver> resolver_;
    bool set_affinity_ = false;  // sticky: send the sluice-affinity cookie with the response

    // What the exchange did, for metrics, GET /connections and the access log.
    struct Record {
        Watchdog::time_point start;
        bool routed = false;     // route_ names the route
        bool upstream = false;   // cluster_ and endpoint_ name where it went
        bool tunneled = false;   // became a tunnel, which logs itself
        bool stream = false;     // a response of unknown length, relayed as it arrives
        bool streaming = false;  // counted in streams_active now
        bool first_body_byte = false;
        int status = 0;
        std::optional<ErrorKind> error;
        std::optional<CancelPhase> cancel;  // the client left before the response ended
        std::uint64_t bytes_in = 0, bytes_out = 0;  // bodies from and to the client
        std::optional<Watchdog::Clock::duration> connect, first_byte;
        Watchdog::time_point sent{};  // request head written upstream
        Watchdog::time_point last_body_byte{};  // streams: the last body piece relayed
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
    // Admission (admission_wait.cpp): set while this exchange waits or holds a slot.
    std::shared_ptr<Admission> admission_;
    EndpointState* slot_ = nullptr;
    std::shared_ptr<Admission::Waiter> waiter_;  // kept: one allocation per connection, not per request
    bool queued_ = false;
    boost::asio::steady_timer queue_timer_;

    Pump pump_ = Pump::idle;
    bool stop_pump_ = false;  // finish_pump() asked the running pump to end
    Refusal client_body_error_;  // why the body was refused (client_bad_body)
    boost::asio::steady_timer pump_done_;
    std::vector<boost::asio::const_buffer> pump_gather_;
    char pump_chunk_line_[24];

    ResponseHead resp_;
    std::vector<boost::asio::const_buffer> gather_;
    char chunk_line_[24];
};

}  // namespace sluice::proxy
