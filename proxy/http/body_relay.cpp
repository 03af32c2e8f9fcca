// The bodies of an exchange: the request body pump (beside the response, so an
// early answer is never stuck behind an upload), the response head with its
// interim 1xx heads, and the response body relayed as it arrives; the upstream
// connection goes back to the pool when the response ended cleanly. How bytes
// reach the client is the client protocol's hook (http1_exchange.cpp, h2_exchange.cpp).
#include "proxy/http/balancer.h"
#include "proxy/http/exchange.h"
#include "proxy/http/h2_upstream_conn.h"
#include "proxy/http/h2_upstream_stream.h"
#include "proxy/net/log.h"
#include "proxy/worker/worker_context.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace sluice::proxy {

namespace asio = boost::asio;
using Retry = UpstreamFailure::Retry;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxResponseHead = 64 * 1024;

}  // namespace

void Exchange::start_pump(const std::shared_ptr<UpstreamConn>& conn) {
    pump_ = Pump::running;
    pump_conn_ = conn;
    client_body_error_ = {};
    pump_done_.expires_at(Watchdog::time_point::max());
    client_.set_streaming(Phase::request, view_->snapshot->routes[route_].timeouts.stream_idle);
    asio::co_spawn(client_.executor(), [keep = client_.keep_alive(), this, conn] { return run_pump(conn); },
                   log_if_thrown("request body relay"));
}

asio::awaitable<void> Exchange::run_pump(std::shared_ptr<UpstreamConn> conn) {
    Pump end = co_await pump_body();
    pump_ = end;
    if (end == Pump::client_left) record_cancel(CancelPhase::request);
    if (end == Pump::client_left || end == Pump::client_stalled || end == Pump::client_bad_body) {
        // A request cut short must not look complete to the app: drop the upstream connection (or stream).
        if (conn) conn->transport.close();
        else end_h2_stream();
    } else if (end == Pump::done && client_.phase() == Phase::request) {
        client_.set_phase(Phase::request, deadline_after(view_->snapshot->routes[route_].timeouts.upstream_response));
    }
    pump_conn_.reset();
    pump_done_.cancel();
}

asio::awaitable<void> Exchange::wait_pump() {
    while (pump_ == Pump::running) co_await pump_done_.async_wait(nothrow);
}

asio::awaitable<bool> Exchange::send_request_body(const std::vector<asio::const_buffer>& spans, bool last,
                                                  const H2Fields* trailers) {
    if (!pump_conn_) {
        // HTTP/2: the head went with the stream's HEADERS; DATA frames carry the body.
        // Held here: the attempt may end the stream while this waits.
        const auto stream = h2_up_;
        const auto conn = h2_conn_;
        if (!stream || client_.deadline_passed()) co_return false;
        const bool ok = co_await stream->send_body(spans, last, *conn, trailers);
        if (ok) client_.watchdog().touch();
        co_return ok;
    }
    pump_gather_.clear();
    if (!pump_head_sent_) pump_gather_.emplace_back(asio::buffer(up_head_));
    const bool chunked_end = last && up_.framing == Framing::chunked;
    // Trailers travel in the last chunk; a body with a length has no room for them.
    const bool with_trailers = chunked_end && trailers && !trailers->empty();
    append_body(pump_gather_, spans, up_.framing, pump_chunk_line_, chunked_end && !with_trailers);
    if (with_trailers) append_last_chunk(pump_gather_, *trailers, pump_last_chunk_);
    if (pump_gather_.empty()) co_return true;
    auto [ec, n] = client_.deadline_passed() ? cancelled_io() : co_await pump_conn_->transport.write(pump_gather_);
    if (ec) co_return false;
    if (!pump_head_sent_) rec_.sent = Watchdog::Clock::now();
    pump_head_sent_ = true;
    client_.watchdog().touch();
    co_return true;
}

void Exchange::drop_upstream() {
    if (h2_up_) end_h2_stream();
    else if (upstream_) upstream_->transport.close();
}

asio::awaitable<void> Exchange::finish_pump() {
    if (pump_ != Pump::running) co_return;
    // The exchange is over before the request body: stop sending it.
    stop_pump_ = true;
    drop_upstream();
    stop_client_reads();
    co_await wait_pump();
}

asio::awaitable<Exchange::AttemptEnd> Exchange::abandon() {
    drop_upstream();
    co_await finish_pump();
    co_return AttemptEnd{ExchangeEnd::close, {}};
}

void Exchange::start_response(const ResponseParser& parser) {
    client_.set_streaming(Phase::response, view_->snapshot->routes[route_].timeouts.stream_idle);
    rec_.status = resp_.status;
    resp_trailers_.clear();
    begin_response(parser);
    if (rec_.stream) {
        RouteStats& stats = *view_->route_stats[route_];
        ++stats.streams_active;
        ++stats.streams;
        rec_.streaming = true;
    }
}

asio::awaitable<bool> Exchange::relay_piece(const std::vector<asio::const_buffer>& body, bool last,
                                           std::size_t bytes) {
    // Not `if (!co_await ...)`: with that form and this frame, GCC 12 resumed
    // a garbage state (SIGILL in the first proxied response). Awaited values
    // go into locals first everywhere for that reason.
    const bool sent = co_await send_response(body, last);
    if (!sent) {
        // The client left (a reset shows here first), or stopped reading for stream_idle.
        if (!client_.deadline_passed() && !client_.aborted()) record_cancel(CancelPhase::streaming);
        co_return false;
    }
    count_body_sent(bytes);
    co_return true;
}

asio::awaitable<Exchange::AttemptEnd> Exchange::upstream_io_failed(const boost::system::error_code& ec,
                                                                   std::string_view step, Retry retry) {
    // A deadline cancelled both sides: let the pump finish so we know which side stalled.
    if (client_.deadline_passed()) co_await wait_pump();
    co_return AttemptEnd{std::nullopt,
                         io_failure(place(), client_.timed_out(), pump_ == Pump::client_stalled, ec, step, retry)};
}

asio::awaitable<std::optional<Exchange::AttemptEnd>> Exchange::read_response_head(UpstreamConn& conn,
                                                                                  std::optional<ResponseParser>& parser) {
    bool got_bytes = false;
    for (;;) {
        std::size_t end = find_head_end(conn.in.data());
        if (end == 0) {
            if (conn.in.size() >= kMaxResponseHead)
                co_return AttemptEnd{std::nullopt,
                                     bad_response(place(), "upstream response headers are larger than 64KiB")};
            auto [ec, n] = client_.deadline_passed() ? cancelled_io()
                                                   : co_await conn.transport.read_some(conn.in.prepare());
            if (ec) {
                // Closed or reset before a byte of the answer: the upstream may or may not have acted on it.
                co_return co_await upstream_io_failed(
                    ec, got_bytes ? "in the middle of the response headers" : "before sending response headers",
                    got_bytes ? Retry::no : Retry::if_idempotent);
            }
            conn.in.commit(n);
            if (!got_bytes && rec_.sent != Watchdog::time_point{}) rec_.first_byte = Watchdog::Clock::now() - rec_.sent;
            got_bytes = true;
            continue;
        }
        resp_.clear();
        resp_.raw.assign(conn.in.data().data(), end);
        conn.in.consume(end);
        parser.emplace(resp_);
        if (auto refusal = parse_response_head(resp_, *parser, req_.verb == http::verb::head))
            co_return AttemptEnd{std::nullopt, bad_response(place(), refusal->message)};
        if (resp_.status == 101 && upgrade_) co_return std::nullopt;  // becomes a tunnel
        if (resp_.status == 101)
            co_return AttemptEnd{std::nullopt,
                                 bad_response(place(), "upstream answered 101 Switching Protocols to a request that "
                                                       "did not ask to upgrade")};
        if (resp_.status >= 200) co_return std::nullopt;
        // Interim 1xx (100 Continue, 103 Early Hints): relayed where the client can take them, then read on.
        const bool relayed = co_await relay_interim();
        if (!relayed) co_return co_await abandon();  // the client left
    }
}

asio::awaitable<Exchange::AttemptEnd> Exchange::relay_response(const std::shared_ptr<UpstreamConn>& conn) {
    std::optional<ResponseParser> parser;
    if (auto done = co_await read_response_head(*conn, parser)) co_return std::move(*done);
    // Passive outlier detection counts 5xx answers as failures of the endpoint.
    report_endpoint_result(view_->snapshot->clusters[cluster_], endpoint_, resp_.status >= 500, coarse_now_ns());
    if (resp_.status == 101) {
        // Not inside the braces: GCC 12 mishandles a co_await in an aggregate's initializer.
        ExchangeEnd tunneled = co_await start_tunnel(conn);
        co_return AttemptEnd{tunneled, {}};
    }

    start_response(*parser);

    bool head_sent = false;
    for (;;) {
        auto step = feed_body(*parser, conn->in.data(), kMaxResponseHead);
        if (step.refusal) {
            spdlog::debug("upstream sent a bad response body ({}): {}", step.refusal->message, place().upstream_label());
            if (!head_sent)
                co_return AttemptEnd{std::nullopt,
                                     bad_response(place(), "upstream sent a bad response body: " + step.refusal->message)};
            co_return co_await abandon();  // the client sees a cut response, never a wrong one
        }
        const std::size_t used = step.used;
        const bool last = parser->is_done();
        std::size_t body_bytes = 0;
        for (const auto& b : parser->body()) body_bytes += b.size();
        if (!head_sent || body_bytes || last) {
            if (last) {
                resp_trailers_ = parser->trailers();  // a chunked body's trailers follow it
                for (const auto& [n, v] : resp_trailers_) note_grpc_status(n, v);
            }
            const bool relayed = co_await relay_piece(parser->body(), last, body_bytes);
            if (!relayed) co_return co_await abandon();
            head_sent = true;
        }
        parser->body().clear();
        conn->in.consume(used);
        if (last) break;
        auto [ec, n] = client_.deadline_passed() ? cancelled_io()
                                                 : co_await conn->transport.read_some(conn->in.prepare());
        if (ec == asio::error::eof && parser->need_eof()) {
            boost::beast::error_code eof_ec;
            parser->put_eof(eof_ec);
            continue;  // writes the last chunk
        }
        if (ec) {
            // Cut short (upstream gone, stream_idle or max_duration): close without
            // the last chunk so the client can tell the response is incomplete.
            spdlog::debug("response cut short ({}): {}", ec.message(), place().upstream_label());
            co_return co_await abandon();
        }
        conn->in.commit(n);
        client_.watchdog().touch();
    }

    const bool reusable = parser->keep_alive() && !parser->need_eof() && conn->in.empty() && !client_.deadline_passed();
    co_await finish_pump();
    if (reusable && (pump_ == Pump::idle || pump_ == Pump::done))
        view_->clusters[cluster_].pools[endpoint_]->give(conn);
    else
        conn->transport.close();
    upstream_.reset();
    co_return AttemptEnd{response_closes() || pump_ == Pump::stopped ? ExchangeEnd::close : ExchangeEnd::keep_alive, {}};
}

}  // namespace sluice::proxy
