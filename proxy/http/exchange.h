// One request and its response (HAProxy's "stream", Envoy's "active stream"):
// the config snapshot taken once when its head has arrived, the route, the
// request and response heads, the upstream connection, the body relays both
// ways, and what it did, for metrics and the access log.
//
// This class is what every exchange shares: routing, admission, the attempt
// loop and its retries, the upstream side, and the accounting. What differs
// with the client's protocol (reading the request body, writing the response,
// sluice's own answers) are the virtual hooks, implemented by Http1Exchange
// (one per HTTP/1.1 connection, re-initialised in place for each request) and
// H2Exchange (one per HTTP/2 stream). Files:
//   exchange.cpp          routing, errors sluice answers, accounting
//   upstream_attempt.cpp  the attempt loop: pick, attempt, retry if the failure allows
//   upstream_connect.cpp  a new upstream connection (DNS, TCP, TLS)
//   body_relay.cpp        request body pump, response head and body relay
//   admission_wait.cpp    max_requests_per_endpoint and the queue
//
// Every method runs on the worker thread of its connection.
#pragma once
#include "proxy/http/client_side.h"
#include "proxy/http/exchange_phase.h"
#include "proxy/http/upstream_failure.h"
#include "proxy/message/forward_headers.h"
#include "proxy/message/http_head.h"
#include "proxy/message/message_parser.h"
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

struct ConnectionInfo;
class H2UpstreamConn;
class H2UpstreamStream;
struct RouteStats;
struct WorkerView;

// What the connection does after an exchange.
enum class ExchangeEnd { keep_alive, close };

class Exchange {
public:
    explicit Exchange(ClientSide& client);
    virtual ~Exchange();
    Exchange(const Exchange&) = delete;
    Exchange& operator=(const Exchange&) = delete;

    // A new request starts: forget the last one, keep the storage.
    void begin();
    // Routes the request and forwards it; the response has been relayed or answered.
    boost::asio::awaitable<ExchangeEnd> run();
    // Answers with an error made by sluice; closes afterwards unless the request
    // was read completely and the client wants to keep the connection.
    virtual boost::asio::awaitable<ExchangeEnd> send_error(ErrorKind kind, std::string_view message,
                                                           bool force_close = false) = 0;
    // The end of the exchange: metrics, the access log line, and letting go of
    // the snapshot (an old config dies with its last request).
    virtual void finish();
    // Metrics and the access log line for a request refused before it was routed.
    void finish_refused();

    // The unread client bytes of a request body mean the close must linger.
    virtual bool request_body_done() const = 0;
    // A deadline passed or the connection is closing: stop the upstream side.
    void cancel_upstream();
    void close_upstream();
    // The client closed or reset its connection (or its stream) before the
    // response ended: counts the cancel in the phase the exchange is in and
    // closes the upstream (never pooled), so the server stops working for nobody.
    void client_left();
    // GET /connections: a streaming response in progress.
    bool describe(ConnectionInfo& out) const;
    const RequestHead& request() const { return req_; }

protected:
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

    // The client's protocol, one hook each.
    // Every request body byte has arrived (or there is none).
    virtual bool request_complete() const = 0;
    // The request body's framing on the upstream hop.
    virtual void set_request_framing(UpstreamRequest& up) = 0;
    // Sends the request body upstream as it arrives, through send_request_body(); returns how it ended.
    virtual boost::asio::awaitable<Pump> pump_body() = 0;
    // Wakes a pump waiting for client bytes (finish_pump stops it).
    virtual void stop_client_reads() = 0;
    // An interim 1xx response head (resp_) for the client. False: the client left.
    virtual boost::asio::awaitable<bool> relay_interim() = 0;
    // The final response head (resp_) is parsed: decides how it goes to the client.
    virtual void begin_response(const ResponseParser& parser) = 0;
    // The response head (on the first call) and body bytes; `last`: the end of
    // the body, followed by resp_trailers_ when there are any.
    // False: the client is gone or stopped reading.
    virtual boost::asio::awaitable<bool> send_response(const std::vector<boost::asio::const_buffer>& body,
                                                       bool last) = 0;
    // The client connection closes after this response.
    virtual bool response_closes() const = 0;
    // After a 101: hands both sides to a tunnel.
    virtual boost::asio::awaitable<ExchangeEnd> start_tunnel(std::shared_ptr<UpstreamConn> conn) = 0;

    // upstream_attempt.cpp
    boost::asio::awaitable<ExchangeEnd> forward();
    struct AttemptEnd {
        std::optional<ExchangeEnd> end;  // set: the exchange is over
        UpstreamFailure failure;         // otherwise: nothing reached the client yet
        bool reused = false;             // the attempt ran on a pooled connection
    };
    boost::asio::awaitable<AttemptEnd> attempt(bool fresh_connection);

    // upstream_h2.cpp: the attempt on an HTTP/2 upstream (a stream on a shared connection).
    boost::asio::awaitable<AttemptEnd> attempt_h2(bool fresh_connection);
    boost::asio::awaitable<std::shared_ptr<H2UpstreamConn>> h2_connection(bool fresh, bool& reused,
                                                                           UpstreamFailure& failure);
    boost::asio::awaitable<AttemptEnd> relay_h2_response();
    // The attempt's HTTP/2 stream ends (reset if still open); its waits wake.
    void end_h2_stream();

    // upstream_connect.cpp: null after `failure` was set.
    boost::asio::awaitable<std::shared_ptr<UpstreamConn>> connect_upstream(UpstreamFailure& failure);

    // body_relay.cpp
    boost::asio::awaitable<void> run_pump(std::shared_ptr<UpstreamConn> conn);
    // For the pump hooks: the request head (with the first call, HTTP/1.1) and
    // body bytes to the upstream, framed for its hop. False: the upstream
    // stopped taking them (or the exchange is stopping).
    boost::asio::awaitable<bool> send_request_body(const std::vector<boost::asio::const_buffer>& spans, bool last,
                                                   const H2Fields* trailers = nullptr);
    // Reads the response head (relaying interim 1xx heads). Set: the attempt is over.
    boost::asio::awaitable<std::optional<AttemptEnd>> read_response_head(UpstreamConn& conn,
                                                                         std::optional<ResponseParser>& parser);
    boost::asio::awaitable<AttemptEnd> relay_response(const std::shared_ptr<UpstreamConn>& conn);
    // The final response head is parsed: the response phase, its framing for the client, the stream counters.
    void start_response(const ResponseParser& parser);
    // A piece of the response (the head with the first) to the client, counted.
    // False: the client is gone or stopped reading (the exchange abandons).
    boost::asio::awaitable<bool> relay_piece(const std::vector<boost::asio::const_buffer>& body, bool last,
                                             std::size_t bytes);
    // A failed upstream read or write, once the pump has settled if a deadline passed.
    boost::asio::awaitable<AttemptEnd> upstream_io_failed(const boost::system::error_code& ec, std::string_view step,
                                                          UpstreamFailure::Retry retry);
    // The response cannot be completed (the client left, or the upstream
    // broke off mid-body): the upstream connection closes, the exchange ends.
    boost::asio::awaitable<AttemptEnd> abandon();
    // Ends an exchange that failed before a response head reached the client:
    // a client that left or sent a bad body decides the answer over the upstream's failure.
    boost::asio::awaitable<ExchangeEnd> fail(const UpstreamFailure& failure);
    // Waits for the request body pump; stops it first if the response is over.
    boost::asio::awaitable<void> finish_pump();
    // Stops the upstream side of the attempt: the HTTP/1.1 connection closes, an HTTP/2 stream is reset.
    void drop_upstream();
    // Waits for a pump that is ending on its own (its sockets were cancelled).
    boost::asio::awaitable<void> wait_pump();
    void start_pump(const std::shared_ptr<UpstreamConn>& conn);  // null: HTTP/2 upstream

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

    // A response field or trailer: keeps grpc-status for the access log.
    void note_grpc_status(std::string_view name, std::string_view value);
    // Counts and logs an error answer sluice makes; the hooks then write it.
    void record_error(ErrorKind kind, std::string_view message);
    AttemptPlace place() const;
    std::string affinity_cookie() const;  // the Set-Cookie line for sticky clusters
    std::string affinity_value() const;   // its value
    // Counts a response head sent to the client (status, duration) on the route's counters.
    void count_response(int status, Watchdog::time_point now = Watchdog::Clock::now());
    // Counts the client leaving once, in `phase`.
    void record_cancel(CancelPhase phase);
    // A body piece reached the client: activity, stream timing (first token, gaps) and bytes.
    void count_body_sent(std::size_t bytes);
    void account();
    RouteStats& route_stats();

    ClientSide& client_;

    std::shared_ptr<WorkerView> view_;  // snapped once, when the head has arrived
    std::size_t route_ = 0;
    RequestHead req_;
    bool upgrade_ = false;  // a WebSocket upgrade request on a route that allows it
    std::shared_ptr<UpstreamConn> upstream_;  // HTTP/1.1 upstream (or one being connected)
    std::shared_ptr<H2UpstreamConn> h2_conn_;   // HTTP/2 upstream: the shared connection
    std::shared_ptr<H2UpstreamStream> h2_up_;   // and this attempt's stream on it
    H2Fields h2_fields_;                        // the request head for it
    std::size_t cluster_ = 0, endpoint_ = 0;  // where this exchange goes

    UpstreamRequest up_;   // how the request goes upstream (path, framing, fallback Host)
    std::string rewritten_path_;
    std::string websocket_key_;  // WebSocket from an HTTP/2 client: the key for the upstream
    std::string up_head_;  // request head for the upstream
    std::optional<boost::asio::ip::tcp::resolver> resolver_;
    bool set_affinity_ = false;  // sticky: send the sluice-affinity cookie with the response

    // What the exchange did, for metrics, GET /connections and the access log.
    struct Record {
        Watchdog::time_point start;
        bool routed = false;     // route_ names the route
        bool upstream = false;   // cluster_ and endpoint_ name where it went
        bool tunneled = false;   // became a tunnel, which logs itself
        bool websocket = false;  // a WebSocket over an HTTP/2 stream (logged by the exchange)
        bool stream = false;     // a response of unknown length, relayed as it arrives
        bool streaming = false;  // counted in streams_active now
        bool first_body_byte = false;
        int status = 0;
        std::optional<ErrorKind> error;
        std::optional<CancelPhase> cancel;  // the client left before the response ended
        std::string grpc_status;            // from the response head or its trailers
        std::uint64_t bytes_in = 0, bytes_out = 0;  // bodies from and to the client
        std::optional<Watchdog::Clock::duration> connect, first_byte;
        Watchdog::time_point sent{};  // request head written upstream
        Watchdog::time_point last_body_byte{};  // streams: the last body piece relayed
    };
    Record rec_;

    // Admission (admission_wait.cpp): set while this exchange waits or holds a slot.
    std::shared_ptr<Admission> admission_;
    EndpointState* slot_ = nullptr;
    std::shared_ptr<Admission::Waiter> waiter_;  // kept: one allocation per connection, not per request
    bool queued_ = false;
    boost::asio::steady_timer queue_timer_;

    Pump pump_ = Pump::idle;
    bool pump_head_sent_ = false;  // the request head went upstream
    std::shared_ptr<UpstreamConn> pump_conn_;  // where the pump writes (HTTP/1.1); null: the HTTP/2 stream
    std::vector<boost::asio::const_buffer> pump_gather_;
    char pump_chunk_line_[24];
    std::string pump_last_chunk_;  // the last chunk with the request's trailers
    bool stop_pump_ = false;  // finish_pump() asked the running pump to end
    Refusal client_body_error_;  // why the body was refused (client_bad_body)
    boost::asio::steady_timer pump_done_;

    ResponseHead resp_;
    H2Fields resp_trailers_;  // from an HTTP/2 upstream, for the client after the last body bytes
    std::string relay_buf_;   // HTTP/2 upstream: the body bytes being relayed
};

}  // namespace sluice::proxy
