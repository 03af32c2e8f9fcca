// The bodies of an exchange: the request body pump (beside the response, so an
// early answer is never stuck behind an upload), the response head with its
// interim 1xx heads, and the response body relayed as it arrives; the upstream
// connection goes back to the pool when the response ended cleanly.
#include "proxy/http/balancer.h"
#include "proxy/http/exchange.h"
#include "proxy/http/http_connection.h"
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
constexpr std::size_t kBodyRead = 4096;  // at least this much room for each read of a request body

void log_exception(std::exception_ptr e) {
    if (!e) return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        spdlog::error("request body relay ended by an internal error: {}", x.what());
    }
}

}  // namespace

void Exchange::start_pump(const std::shared_ptr<UpstreamConn>& conn) {
    pump_ = Pump::running;
    client_body_error_ = {};
    pump_done_.expires_at(Watchdog::time_point::max());
    conn_.set_streaming(Phase::request, view_->snapshot->routes[route_].timeouts.stream_idle);
    asio::co_spawn(conn_.client().socket().get_executor(),
                   [keep = conn_.self(), this, conn] { return pump_request_body(conn); }, log_exception);
}

asio::awaitable<void> Exchange::pump_request_body(std::shared_ptr<UpstreamConn> conn) {
    IoBuffer& in = conn_.in();
    bool head_sent = false;
    Pump end = Pump::done;
    for (;;) {
        // Trailers count against the request head limit (limits.request_headers).
        auto step = feed_body(*req_parser_, in.data(), view_->snapshot->config.limits.request_headers);
        if (step.refusal) {
            client_body_error_ = std::move(*step.refusal);
            end = Pump::client_bad_body;
            break;
        }
        const std::size_t used = step.used;
        const bool last = req_parser_->is_done();
        for (const auto& b : req_parser_->body()) rec_.bytes_in += b.size();
        pump_gather_.clear();
        if (!head_sent) pump_gather_.emplace_back(asio::buffer(up_head_));
        append_body(pump_gather_, req_parser_->body(), up_.framing, pump_chunk_line_,
                    last && up_.framing == Framing::chunked);
        req_parser_->body().clear();
        if (!pump_gather_.empty()) {
            auto [ec, n] = conn_.deadline_passed() ? HttpConnection::cancelled_io()
                                                   : co_await conn->transport.write(pump_gather_);
            if (ec) {
                end = stop_pump_ ? Pump::stopped : Pump::upstream_failed;
                break;
            }
            if (!head_sent) rec_.sent = Watchdog::Clock::now();
            head_sent = true;
            conn_.watchdog().touch();
        }
        in.consume(used);
        if (last) break;
        // Body bytes go into a large block (the head used a small one).
        auto [ec, n] = conn_.deadline_passed() ? HttpConnection::cancelled_io()
                                               : co_await conn_.client().read_some(in.prepare(kBodyRead));
        if (ec) {
            if (stop_pump_) end = Pump::stopped;
            else end = conn_.deadline_passed() ? Pump::client_stalled : Pump::client_left;
            if (end == Pump::client_left) record_cancel(CancelPhase::request);
            break;
        }
        in.commit(n);
        conn_.watchdog().touch();
    }
    pump_ = end;
    if (end == Pump::client_left || end == Pump::client_stalled || end == Pump::client_bad_body) {
        // A request cut short must not look complete to the app: drop the upstream connection.
        conn->transport.close();
    } else if (end == Pump::done && conn_.phase() == Phase::request) {
        conn_.set_phase(Phase::request, deadline_after(view_->snapshot->routes[route_].timeouts.upstream_response));
    }
    pump_done_.cancel();
}

asio::awaitable<void> Exchange::wait_pump() {
    while (pump_ == Pump::running) co_await pump_done_.async_wait(nothrow);
}

asio::awaitable<void> Exchange::finish_pump(UpstreamConn& conn) {
    if (pump_ != Pump::running) co_return;
    // The exchange is over before the request body: stop sending it.
    stop_pump_ = true;
    boost::system::error_code ec;
    conn.transport.close();
    conn_.client().socket().cancel(ec);
    co_await wait_pump();
}

asio::awaitable<Exchange::AttemptEnd> Exchange::abandon(UpstreamConn& conn) {
    conn.transport.close();
    co_await finish_pump(conn);
    co_return AttemptEnd{ExchangeEnd::close, {}};
}

asio::awaitable<Exchange::AttemptEnd> Exchange::upstream_io_failed(const boost::system::error_code& ec,
                                                                   std::string_view step, Retry retry) {
    // A deadline cancelled both sides: let the pump finish so we know which side stalled.
    if (conn_.deadline_passed()) co_await wait_pump();
    co_return AttemptEnd{std::nullopt,
                         io_failure(place(), conn_.timed_out(), pump_ == Pump::client_stalled, ec, step, retry)};
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
            auto [ec, n] = conn_.deadline_passed() ? HttpConnection::cancelled_io()
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
        if (resp_.status >= 200) {
            parser->eager(true);
            co_return std::nullopt;
        }
        // Interim 1xx (100 Continue, 103 Early Hints): relay to HTTP/1.1 clients, then read on.
        if (req_.version >= 11) {
            out_head_.clear();
            build_interim_response(resp_, out_head_);
            auto [wec, n] = conn_.deadline_passed() ? HttpConnection::cancelled_io()
                                                    : co_await conn_.client().write(asio::buffer(out_head_));
            if (wec) {
                if (!conn_.deadline_passed() && !conn_.aborted()) record_cancel(CancelPhase::waiting);
                co_return co_await abandon(conn);  // the client left
            }
        }
    }
}

asio::awaitable<Exchange::AttemptEnd> Exchange::relay_response(const std::shared_ptr<UpstreamConn>& conn) {
    std::optional<ResponseParser> parser;
    if (auto done = co_await read_response_head(*conn, parser)) co_return std::move(*done);
    // Passive outlier detection counts 5xx answers as failures of the endpoint.
    report_endpoint_result(view_->snapshot->clusters[cluster_], endpoint_, resp_.status >= 500, steady_now_ns());
    if (resp_.status == 101) {
        // Not inside the braces: GCC 12 mishandles a co_await in an aggregate's initializer.
        ExchangeEnd tunneled = co_await start_tunnel(conn);
        co_return AttemptEnd{tunneled, {}};
    }

    conn_.set_streaming(Phase::response, view_->snapshot->routes[route_].timeouts.stream_idle);
    ClientResponse down;
    down.client_http10 = req_.version < 11;
    set_response_framing(down, *parser, resp_);
    down.close = !client_keep_alive_ || !request_body_done() || conn_.draining() || down.framing == Framing::until_close;
    rec_.status = resp_.status;
    rec_.stream = down.framing == Framing::chunked || down.framing == Framing::until_close;
    RouteStats& stats = *view_->route_stats[route_];
    if (rec_.stream) {
        ++stats.streams_active;
        ++stats.streams;
        rec_.streaming = true;
    }
    if (set_affinity_) down.extra_fields = affinity_cookie();
    out_head_.clear();
    build_client_response(resp_, down, out_head_);

    bool head_sent = false;
    for (;;) {
        auto step = feed_body(*parser, conn->in.data(), kMaxResponseHead);
        if (step.refusal) {
            spdlog::debug("upstream sent a bad response body ({}): {}", step.refusal->message, place().upstream_label());
            if (!head_sent)
                co_return AttemptEnd{std::nullopt,
                                     bad_response(place(), "upstream sent a bad response body: " + step.refusal->message)};
            co_return co_await abandon(*conn);  // the client sees a cut response, never a wrong one
        }
        const std::size_t used = step.used;
        const bool last = parser->is_done();
        std::size_t body_bytes = 0;
        for (const auto& b : parser->body()) body_bytes += b.size();
        gather_.clear();
        if (!head_sent) gather_.emplace_back(asio::buffer(out_head_));
        append_body(gather_, parser->body(), down.framing, chunk_line_, last && down.framing == Framing::chunked);
        parser->body().clear();
        if (!gather_.empty()) {
            auto [ec, n] = conn_.deadline_passed() ? HttpConnection::cancelled_io() : co_await conn_.client().write(gather_);
            if (ec) {
                // The client left (a reset shows here first), or stopped reading for stream_idle.
                if (!conn_.deadline_passed() && !conn_.aborted()) record_cancel(CancelPhase::streaming);
                co_return co_await abandon(*conn);
            }
            head_sent = true;
            const auto now = Watchdog::Clock::now();
            conn_.watchdog().touch(now);
            rec_.bytes_out += body_bytes;
            if (body_bytes && rec_.stream) {
                // Time to the first token, then the gaps between tokens (SSE and
                // NDJSON servers send the head at once, so the body is what counts).
                if (!rec_.first_body_byte) stats.first_byte.observe(std::chrono::duration<double>(now - rec_.sent).count());
                else stats.gap.observe(std::chrono::duration<double>(now - rec_.last_body_byte).count());
                rec_.first_body_byte = true;
                rec_.last_body_byte = now;
            }
        }
        conn->in.consume(used);
        if (last) break;
        auto [ec, n] = conn_.deadline_passed() ? HttpConnection::cancelled_io()
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
            co_return co_await abandon(*conn);
        }
        conn->in.commit(n);
        conn_.watchdog().touch();
    }

    const bool reusable = parser->keep_alive() && !parser->need_eof() && conn->in.empty() && !conn_.deadline_passed();
    co_await finish_pump(*conn);
    if (reusable && (pump_ == Pump::idle || pump_ == Pump::done))
        view_->clusters[cluster_].pools[endpoint_]->give(conn);
    else
        conn->transport.close();
    upstream_.reset();
    co_return AttemptEnd{down.close || pump_ == Pump::stopped ? ExchangeEnd::close : ExchangeEnd::keep_alive, {}};
}

}  // namespace sluice::proxy
