// An attempt on a cluster with protocol: http2: a stream on a connection from
// the worker's pool for the endpoint (a new connection when none has room),
// the request head as HEADERS, the body pumped as DATA, and the response relayed
// as its frames arrive, trailers included. A stream the upstream refused (or
// left unprocessed by a GOAWAY) is sent again like a request that never left.
#include "proxy/http/balancer.h"
#include "proxy/http/exchange.h"
#include "proxy/http/h2_pending_conn.h"
#include "proxy/http/h2_upstream_conn.h"
#include "proxy/http/h2_upstream_stream.h"
#include "proxy/net/log.h"
#include "proxy/worker/worker_context.h"

#include <spdlog/spdlog.h>

namespace sluice::proxy {

namespace asio = boost::asio;
using Retry = UpstreamFailure::Retry;

namespace {

constexpr std::size_t kMaxResponseHead = 64 * 1024;

}  // namespace

asio::awaitable<std::shared_ptr<H2UpstreamConn>> Exchange::h2_connection(bool fresh, bool& reused,
                                                                          UpstreamFailure& failure) {
    const auto& pool = view_->clusters[cluster_].pools[endpoint_];
    // A connection being made, or just made (it takes one stream until its
    // peer's SETTINGS say how many): the others wait for it, one round trip or
    // two, rather than open a connection each.
    // The waits together count against one connect deadline; each ends by it.
    const auto deadline = deadline_after(view_->snapshot->routes[route_].timeouts.connect);
    for (int waits = 0; !fresh; ++waits) {
        if (auto shared = pool->shared_with_room()) {
            reused = true;
            co_return std::static_pointer_cast<H2UpstreamConn>(shared);
        }
        auto starting = pool->shared_starting();
        if (!starting || waits == 3) break;
        client_.set_phase(Phase::connect, deadline);
        const auto left = deadline - Watchdog::Clock::now();
        if (left > left.zero()) co_await starting->wait_ready(std::min<Watchdog::Clock::duration>(std::chrono::seconds(1), left));
        // The wait may end on its own timer before the watchdog's fires.
        const bool out_of_time = Watchdog::Clock::now() >= deadline;
        if (client_.deadline_passed() || client_.aborted() || out_of_time) {
            const Deadline passed = client_.deadline_passed() ? client_.timed_out()
                                    : out_of_time             ? Deadline::connect
                                                              : Deadline::none;
            failure = connect_failure(place(), passed, asio::error::timed_out, false, {});
            co_return nullptr;
        }
    }
    // However the connect ends (an exception included), the placeholder goes
    // and its waiters look again (after this exchange has opened its stream).
    struct Pending {
        std::shared_ptr<EndpointPool> pool;
        std::shared_ptr<H2PendingConn> conn;
        ~Pending() {
            pool->remove_shared(conn.get());
            conn->close();
        }
    } pending{pool, std::make_shared<H2PendingConn>(client_.executor())};
    pool->add_shared(pending.conn);
    auto raw = co_await connect_upstream(failure);
    upstream_.reset();  // the connection belongs to the pool, not to this exchange
    if (!raw) co_return nullptr;
    if (raw->transport.tls() && !UpstreamTls::agreed_h2(raw->transport.ssl())) {
        raw->transport.close();
        const auto& c = view_->snapshot->clusters[cluster_];
        failure = {ErrorKind::upstream_connect_failed,
                   "upstream did not agree to HTTP/2 by ALPN: " + place().upstream_label() +
                       " (enable h2 on the upstream, or set protocol: http1 on cluster \"" + c.name + "\")",
                   Retry::unsent, true};
        co_return nullptr;
    }
    auto conn = std::make_shared<H2UpstreamConn>(std::move(raw), pool);
    conn->start();
    pool->add_shared(conn);
    co_return conn;
}

asio::awaitable<Exchange::AttemptEnd> Exchange::attempt_h2(bool fresh_connection) {
    const RouteRuntime& route = view_->snapshot->routes[route_];
    bool reused = false;
    AttemptEnd failed;
    auto conn = co_await h2_connection(fresh_connection, reused, failed.failure);
    if (!conn) co_return failed;
    if (client_.aborted()) co_return AttemptEnd{ExchangeEnd::close, {}};

    const bool has_body = !request_complete();
    h2_request_fields(up_head_, view_->snapshot->clusters[cluster_].tls ? "https" : "http", wants_trailers(req_),
                      h2_fields_);
    auto stream = std::make_shared<H2UpstreamStream>(client_.executor(), kMaxResponseHead);
    if (!conn->open(stream, h2_fields_, has_body)) {
        failed.failure = stream_failure(place(), 7, {}, "before the request was sent", Retry::unsent);
        failed.reused = reused;
        co_return failed;
    }
    h2_conn_ = std::move(conn);
    h2_up_ = std::move(stream);
    // However the attempt ends, its stream ends with it.
    struct StreamEnd {
        Exchange& x;
        ~StreamEnd() { x.end_h2_stream(); }
    } stream_end{*this};

    rec_.sent = Watchdog::Clock::now();
    pump_ = Pump::idle;
    stop_pump_ = false;
    pump_head_sent_ = true;  // with the HEADERS frame
    if (has_body) start_pump(nullptr);
    else client_.set_phase(Phase::request, deadline_after(route.timeouts.upstream_response));
    AttemptEnd end = co_await relay_h2_response();
    end.reused = reused;
    co_return end;
}

void Exchange::end_h2_stream() {
    if (!h2_up_) return;
    auto stream = std::move(h2_up_);
    auto conn = std::move(h2_conn_);
    conn->release(*stream);
    stream->on_close(stream->closed() ? stream->close_code() : H2ClientSession::kCancel);
}

asio::awaitable<Exchange::AttemptEnd> Exchange::relay_h2_response() {
    // Held here: end_h2_stream() (a client leaving) lets go of the members.
    const auto st = h2_up_;
    const auto conn = h2_conn_;
    while (!st->head_ready() && !st->closed() && !client_.deadline_passed() && !client_.aborted())
        co_await st->wait_response();
    if (client_.aborted()) co_return co_await abandon();
    if (!st->head_ready()) {
        if (client_.deadline_passed()) {
            co_await wait_pump();
            co_return AttemptEnd{std::nullopt, io_failure(place(), client_.timed_out(), pump_ == Pump::client_stalled,
                                                          asio::error::operation_aborted,
                                                          "before sending response headers", Retry::no)};
        }
        if (!st->refusal().empty()) co_return AttemptEnd{std::nullopt, bad_response(place(), st->refusal())};
        // The upstream may have acted on it: a bodiless idempotent request may go again.
        AttemptEnd failed{std::nullopt, stream_failure(place(), st->close_code(), conn->failure(),
                                                       "before sending response headers", Retry::if_idempotent)};
        // Body bytes that went into a refused stream are gone: that request cannot go again.
        co_await finish_pump();
        if (rec_.bytes_in > 0) failed.failure.retry = Retry::no;
        co_return failed;
    }
    rec_.first_byte = Watchdog::Clock::now() - rec_.sent;
    resp_.clear();
    resp_.raw = st->head();
    std::optional<ResponseParser> parser;
    parser.emplace(resp_);
    if (auto refusal = parse_response_head(resp_, *parser, req_.verb == http::verb::head))
        co_return AttemptEnd{std::nullopt, bad_response(place(), refusal->message)};
    if (resp_.status < 200)
        co_return AttemptEnd{std::nullopt, bad_response(place(), "upstream answered " + std::to_string(resp_.status) +
                                                                     " as its final HTTP/2 response")};
    report_endpoint_result(view_->snapshot->clusters[cluster_], endpoint_, resp_.status >= 500, coarse_now_ns());

    for (const auto& f : resp_.fields) note_grpc_status(f.name, f.value);  // a trailers-only answer
    start_response(*parser);
    const bool no_body = parser->is_done();  // HEAD, 204, 304, or a head that ended the stream
    std::vector<asio::const_buffer> spans;
    bool head_sent = false;
    for (;;) {
        while (head_sent && !st->has_body() && !st->ended() && !st->closed() && !client_.deadline_passed() &&
               !client_.aborted())
            co_await st->wait_response();
        if (client_.aborted()) co_return co_await abandon();
        st->take_body(relay_buf_);
        const bool last = no_body || st->ended();
        if (!last && relay_buf_.empty() && head_sent) {
            // Reset mid-body, its connection gone, or a deadline: the client sees a cut response.
            spdlog::debug("HTTP/2 response cut short (stream code {}): {}", st->close_code(), place().upstream_label());
            co_return co_await abandon();
        }
        if (last) {
            resp_trailers_ = st->trailers();
            for (const auto& [n, v] : resp_trailers_) note_grpc_status(n, v);
        }
        spans.clear();
        if (!no_body && !relay_buf_.empty()) spans.emplace_back(asio::buffer(relay_buf_));
        const bool relayed = co_await relay_piece(spans, last, no_body ? 0 : relay_buf_.size());
        if (!relayed) co_return co_await abandon();
        head_sent = true;
        // Only now, with the bytes at the client, may the upstream send as many more.
        if (relay_buf_.size() && !st->closed()) conn->consumed(st->id, relay_buf_.size());
        if (last) break;
    }
    co_await finish_pump();
    co_return AttemptEnd{response_closes() || pump_ == Pump::stopped ? ExchangeEnd::close : ExchangeEnd::keep_alive, {}};
}

}  // namespace sluice::proxy
