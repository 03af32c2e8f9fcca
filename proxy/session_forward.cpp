// The upstream half of a session: pick an endpoint, connect or reuse a pooled
// connection, send the head, stream the request body (beside the response, so
// an early answer is never stuck behind an upload), relay the response as it
// arrives, and give the connection back to the pool when it ended cleanly.
#include "config/duration.h"
#include "proxy/balancer.h"
#include "proxy/http_session.h"
#include "proxy/message_rules.h"
#include "proxy/request_path.h"
#include "proxy/tls_tunnel.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>

namespace sluice::proxy {
namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxResponseHead = 64 * 1024;
constexpr std::size_t kBodyRead = 4096;  // at least this much room for each read of a request body

std::string lower_first(std::string s) {
    if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
    return s;
}

void log_exception(std::exception_ptr e) {
    if (!e) return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        spdlog::error("request body relay ended by an internal error: {}", x.what());
    }
}

}  // namespace

std::string Session::upstream_label() const {
    const auto& c = view_->snapshot->clusters[cluster_];
    return "cluster \"" + c.name + "\" endpoint " + c.endpoints[endpoint_].key;
}

std::string Session::affinity_cookie() const {
    // Names the endpoint by an opaque id, never its address; the client moves
    // (and gets a new cookie) when that endpoint is gone or unavailable.
    return "Set-Cookie: " + std::string(kAffinityCookie) + "=" + view_->snapshot->clusters[cluster_].endpoints[endpoint_].id +
           "; Path=/; HttpOnly; SameSite=Lax\r\n";
}

std::string Session::route_label() const { return "route \"" + view_->snapshot->routes[route_].spec->name + "\""; }

namespace {

// Methods a retry may repeat once bytes went upstream (RFC 9110 9.2.2).
bool idempotent(http::verb v) {
    switch (v) {
    case http::verb::get:
    case http::verb::head:
    case http::verb::options:
    case http::verb::trace:
    case http::verb::put:
    case http::verb::delete_: return true;
    default: return false;
    }
}

constexpr int kMaxRetries = 2;  // on other endpoints, after the first attempt

}  // namespace

asio::awaitable<Session::Exchange> Session::forward(std::size_t route_index) {
    const Snapshot& snap = *view_->snapshot;
    const RouteRuntime& route = snap.routes[route_index];
    dog_.set_hard(deadline_after(route.timeouts.max_duration));
    auto& cluster = view_->clusters[route.cluster];
    const ClusterRuntime& cr = snap.clusters[route.cluster];
    cluster_ = route.cluster;

    std::string_view path = req_.path;
    std::string rewritten;
    if (const auto& rw = route.spec->rewrite) {
        if (rw->path) {
            path = *rw->path;
        } else {
            const auto& m = route.spec->match;
            std::string_view rest = req_.path.substr(m.path ? m.path->size() : m.path_prefix->size());
            rewritten = *rw->path_prefix;
            rewritten += rest;
            // The request path is normal, so only a remainder that starts with
            // '.' can make a dot segment where prefix and remainder meet.
            if (!rest.empty() && rest.front() == '.' && !rewrite_stays_within(rewritten, *rw->path_prefix))
                co_return co_await send_error(ErrorKind::bad_request,
                                              "the path " + std::string(req_.path.substr(0, 200)) + " rewritten by " +
                                                  route_label() + " would leave its prefix " + *rw->path_prefix);
            path = rewritten;
        }
    }
    UpstreamRequest up{path, peer_ip_, listener_->scheme, {}};
    if (upgrade_) up.upgrade = req_.find(http::field::upgrade);
    set_request_framing(up, *req_parser_, req_);
    up_framing_ = up.framing;
    const bool has_body = !req_parser_->is_done();

    // The retry budget: retries in flight on this worker stay under a fifth of
    // its exchanges on the cluster (and at least 3), so a failing cluster does
    // not see its load multiplied.
    struct InFlight {
        WorkerView::Cluster& c;
        bool retrying = false;
        explicit InFlight(WorkerView::Cluster& cl) : c(cl) { ++c.active; }
        ~InFlight() {
            --c.active;
            if (retrying) --c.retrying;
        }
        bool may_retry() {
            if (retrying) return true;
            if (c.retrying >= std::max<std::int64_t>(3, c.active / 5)) return false;
            retrying = true;
            ++c.retrying;
            return true;
        }
    } in_flight(cluster);

    std::array<std::size_t, kMaxRetries + 1> tried{};
    std::size_t ntried = 0;
    bool stale_retry_used = false;
    bool fresh_same_endpoint = false;
    for (;;) {
        if (!fresh_same_endpoint) {
            Pick pick = pick_endpoint({cr, cluster, req_, peer_ip_, std::span(tried.data(), ntried), worker_.rng(),
                                       steady_now_ns()});
            if (pick.endpoint == Pick::npos) {
                if (ntried > 0) co_return co_await send_error(connect_error_, connect_message_);  // the last failure
                co_return co_await send_error(ErrorKind::no_healthy_endpoint,
                                              "no healthy endpoint in cluster \"" + cr.name + "\" (" +
                                                  std::to_string(available_count(cr, steady_now_ns())) + " of " +
                                                  std::to_string(cr.endpoints.size()) + " healthy)");
            }
            endpoint_ = pick.endpoint;
            set_affinity_ = pick.set_affinity;
        }
        rec_.upstream = true;
        rec_.connect.reset();
        rec_.first_byte.reset();
        const EndpointRuntime& endpoint = cr.endpoints[endpoint_];
        // Counts this exchange on its endpoint until the attempt ends, on every path.
        struct Active {
            std::shared_ptr<EndpointPool> pool;
            explicit Active(std::shared_ptr<EndpointPool> p) : pool(std::move(p)) { ++pool->active_requests; }
            ~Active() { --pool->active_requests; }
        } active(cluster.pools[endpoint_]);
        up.fallback_host = endpoint.key;
        up_head_.clear();
        build_upstream_request(req_, up, up_head_);

        // A retry on the same endpoint never takes another pooled connection: it may be just as stale.
        std::shared_ptr<UpstreamConn> conn = fresh_same_endpoint ? nullptr : cluster.pools[endpoint_]->take();
        fresh_same_endpoint = false;
        const bool reused = conn != nullptr;
        const bool others_left = ntried < kMaxRetries && cr.endpoints.size() > ntried + 1;
        if (!conn) {
            conn = co_await connect_upstream(cluster_, endpoint_);
            if (!conn) {
                if (aborted_) co_return Exchange::close;
                if (timed_out_ != Timeout::max_duration) report_endpoint_result(cr, endpoint_, true, steady_now_ns());
                // Nothing reached the upstream: any method may go to another endpoint.
                if (timed_out_ != Timeout::max_duration && others_left && in_flight.may_retry()) {
                    tried[ntried++] = endpoint_;
                    ++view_->cluster_stats[cluster_]->retries;
                    timed_out_ = Timeout::none;
                    continue;
                }
                co_return co_await send_error(connect_error_, connect_message_);
            }
        }
        upstream_ = conn;
        // Before any response byte: a pooled connection the upstream had just
        // closed is retried fresh on the same endpoint; after that, a bodiless
        // idempotent request may go to another endpoint.
        const bool stale_possible = reused && !stale_retry_used && !has_body;
        // A head that failed to go out was never read by the upstream: any
        // method may be sent again. Once it went out, the upstream may have
        // acted on it even if it closed without an answer: only idempotent
        // methods are repeated (a POST must never reach an origin twice).
        const bool may_resend_unsent = stale_possible || others_left;
        const bool may_retry = !has_body && idempotent(req_.verb) && (stale_possible || others_left);
        pump_ = Pump::idle;
        stop_pump_ = false;
        if (has_body) {
            pump_ = Pump::running;
            client_body_error_ = {};
            pump_done_.expires_at(Watchdog::time_point::max());
            phase_ = Phase::request;
            set_streaming();
            asio::co_spawn(client_.socket().get_executor(),
                           [self = self(), conn] { return self->pump_request_body(conn); }, log_exception);
        }
        bool retry = false;
        Exchange e = Exchange::close;
        if (!has_body) {
            set_phase(Phase::request, deadline_after(route.timeouts.upstream_response));
            auto [ec, n] = deadline_passed() ? cancelled_io()
                                             : co_await conn->stream.write(asio::buffer(up_head_));
            rec_.sent = Watchdog::Clock::now();
            if (ec) {
                if (may_resend_unsent && timed_out_ == Timeout::none && !aborted_) {
                    retry = true;
                    retry_message_ = "upstream closed the connection while receiving the request: " + upstream_label();
                }
                else {
                    report_endpoint_result(cr, endpoint_, true, steady_now_ns());
                    co_return co_await fail_upstream_io(ec, "sending the request");
                }
            }
        }
        if (!retry) e = co_await relay_response(conn, may_retry, retry);
        if (!retry) co_return e;
        conn->stream.close();
        upstream_.reset();
        if (stale_possible) {
            stale_retry_used = true;
            fresh_same_endpoint = true;
            continue;
        }
        report_endpoint_result(cr, endpoint_, true, steady_now_ns());
        connect_error_ = ErrorKind::upstream_reset;  // what the client hears if no retry is left
        connect_message_ = retry_message_;
        if (!in_flight.may_retry()) co_return co_await send_error(connect_error_, connect_message_);
        tried[ntried++] = endpoint_;
        ++view_->cluster_stats[cluster_]->retries;
    }
}

asio::awaitable<std::shared_ptr<UpstreamConn>> Session::connect_upstream(std::size_t ci, std::size_t ei) {
    const auto& ep = view_->snapshot->clusters[ci].endpoints[ei];
    const auto& t = view_->snapshot->routes[route_].timeouts;
    auto conn = std::make_shared<UpstreamConn>(client_.socket().get_executor(), worker_.buffers());
    upstream_ = conn;
    set_phase(Phase::connect, deadline_after(t.connect));
    const auto began = Watchdog::Clock::now();
    boost::system::error_code ec;
    std::string resolve_error;
    if (ep.ip) {
        std::tie(ec) = co_await conn->socket().async_connect(tcp::endpoint(*ep.ip, ep.port), nothrow);
    } else {
        resolver_.emplace(client_.socket().get_executor());
        auto [rec, results] = co_await resolver_->async_resolve(ep.host, std::to_string(ep.port), nothrow);
        resolver_.reset();
        if (rec) {
            ec = rec;
            resolve_error = "cannot resolve \"" + ep.host + "\": " + lower_first(rec.message());
        } else {
            tcp::endpoint chosen;
            std::tie(ec, chosen) = co_await asio::async_connect(conn->socket(), results, nothrow);
        }
    }
    // Before any TLS handshake, so its flights go out at once.
    if (!ec) {
        boost::system::error_code ignored;
        conn->socket().set_option(tcp::no_delay(true), ignored);
    }
    // TLS: the handshake runs within the same timeouts.connect.
    const auto& cluster = view_->snapshot->clusters[ci];
    std::string tls_failure;
    if (!ec && timed_out_ == Timeout::none && !aborted_ && cluster.tls) {
        conn->stream.use_tls(cluster.tls->context());
        cluster.tls->prepare(conn->stream.ssl(), ep.host);
        ec = co_await conn->stream.handshake(asio::ssl::stream_base::client);
        if (ec && timed_out_ == Timeout::none && !aborted_)
            tls_failure = cluster.tls->describe_failure(conn->stream.ssl(), ec, ep.host);
    }
    if (timed_out_ == Timeout::connect) {
        connect_error_ = ErrorKind::upstream_connect_timeout;
        connect_message_ = "upstream connect timed out after " + config::describe_duration(t.connect) + ": " +
                           upstream_label() + " (timeouts.connect" + (cluster.tls ? ", which includes the TLS handshake)" : ")");
    } else if (timed_out_ == Timeout::max_duration) {
        connect_error_ = ErrorKind::max_duration;
        connect_message_ = "the request did not complete within max_duration " +
                           config::describe_duration(t.max_duration) + " (" + route_label() + ")";
    } else if (!tls_failure.empty()) {
        connect_error_ = ErrorKind::upstream_tls_failed;
        connect_message_ = "upstream TLS handshake failed: " + upstream_label() + ": " + tls_failure;
    } else if (ec) {
        connect_error_ = ErrorKind::upstream_connect_failed;
        connect_message_ = "upstream connect failed: " + upstream_label() + ": " +
                           (resolve_error.empty() ? lower_first(ec.message()) : resolve_error);
    }
    if (ec || timed_out_ != Timeout::none || aborted_) {
        if (!aborted_ && timed_out_ != Timeout::max_duration) ++view_->cluster_stats[ci]->connect_failures;
        upstream_.reset();
        co_return nullptr;
    }
    rec_.connect = Watchdog::Clock::now() - began;
    ++view_->clusters[ci].pools[ei]->connects;
    co_return conn;
}

asio::awaitable<void> Session::pump_request_body(std::shared_ptr<UpstreamConn> conn) {
    bool head_sent = false;
    Pump end = Pump::done;
    for (;;) {
        // Trailers count against the request head limit (limits.request_headers).
        auto step = feed_body(*req_parser_, in_.data(), view_->snapshot->config.limits.request_headers);
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
        append_body(pump_gather_, req_parser_->body(), up_framing_, pump_chunk_line_,
                    last && up_framing_ == Framing::chunked);
        req_parser_->body().clear();
        if (!pump_gather_.empty()) {
            auto [ec, n] = deadline_passed() ? cancelled_io()
                                             : co_await conn->stream.write(pump_gather_);
            if (ec) {
                end = stop_pump_ ? Pump::stopped : Pump::upstream_failed;
                break;
            }
            if (!head_sent) rec_.sent = Watchdog::Clock::now();
            head_sent = true;
            dog_.touch();
        }
        in_.consume(used);
        if (last) break;
        // Body bytes go into a large block (the head used a small one).
        auto [ec, n] = deadline_passed() ? cancelled_io() : co_await client_.read_some(in_.prepare(kBodyRead));
        if (ec) {
            if (stop_pump_) end = Pump::stopped;
            else end = timed_out_ != Timeout::none ? Pump::client_stalled : Pump::client_left;
            break;
        }
        in_.commit(n);
        dog_.touch();
    }
    pump_ = end;
    if (end == Pump::client_left || end == Pump::client_stalled || end == Pump::client_bad_body) {
        // A request cut short must not look complete to the app: drop the upstream connection.
        conn->stream.close();
    } else if (end == Pump::done && phase_ == Phase::request) {
        set_phase(Phase::request, deadline_after(view_->snapshot->routes[route_].timeouts.upstream_response));
    }
    pump_done_.cancel();
}

asio::awaitable<Session::Exchange> Session::start_tunnel(std::shared_ptr<UpstreamConn> conn) {
    co_await finish_pump(*conn);  // an upgrade request carries no body; nothing to stop
    out_head_.clear();
    build_switching_response(resp_, out_head_, set_affinity_ ? affinity_cookie() : std::string());
    auto [ec, n] = co_await client_.write(asio::buffer(out_head_));
    rec_.status = 101;
    if (ec) {
        conn->stream.close();
        co_return Exchange::close;
    }
    count_response(101);
    rec_.tunneled = true;
    const RouteRuntime& route = view_->snapshot->routes[route_];
    const ClusterRuntime& cluster = view_->snapshot->clusters[cluster_];
    Tunnel::Setup setup;
    setup.to_upstream.assign(in_.data());
    in_.consume(in_.size());
    setup.to_client.assign(conn->in.data());
    conn->in.consume(conn->in.size());
    setup.snapshot = view_->snapshot;
    setup.route = route.spec->name;
    setup.idle = route.timeouts.websocket_idle;
    setup.hard_deadline = dog_.hard();
    setup.started = Watchdog::Clock::now();
    setup.listener = listener_;
    setup.endpoint = view_->clusters[cluster_].pools[endpoint_];
    setup.stats = view_->route_stats[route_];
    setup.cluster = cluster.name;
    setup.endpoint_key = cluster.endpoints[endpoint_].key;
    setup.client_address = client_address();
    setup.method = std::string(req_.method);
    setup.path = std::string(req_.path);
    setup.connect = rec_.connect;
    setup.first_byte = rec_.first_byte;
    upstream_.reset();
    // splice(2) for plain TCP on both sides; TLS on either side needs a copying tunnel.
    if (client_.tls() || conn->stream.tls())
        std::make_shared<TlsTunnel>(worker_, std::move(setup), std::move(client_), std::move(conn->stream))->start();
    else
        std::make_shared<Tunnel>(worker_, std::move(setup), std::move(client_.socket()), std::move(conn->socket()))->start();
    co_return Exchange::close;  // this session is over; the socket lives on in the tunnel
}

asio::awaitable<void> Session::wait_pump() {
    while (pump_ == Pump::running) co_await pump_done_.async_wait(nothrow);
}

asio::awaitable<void> Session::finish_pump(UpstreamConn& conn) {
    if (pump_ != Pump::running) co_return;
    // The exchange is over before the request body: stop sending it.
    stop_pump_ = true;
    boost::system::error_code ec;
    conn.stream.close();
    client_.socket().cancel(ec);
    co_await wait_pump();
}

asio::awaitable<Session::Exchange> Session::fail_exchange(ErrorKind kind, std::string message) {
    if (upstream_) {
        upstream_->stream.close();
        co_await finish_pump(*upstream_);
    }
    if (aborted_ || pump_ == Pump::client_left) co_return Exchange::close;
    if (pump_ == Pump::client_bad_body)
        co_return co_await send_error(client_body_error_.kind, client_body_error_.message, true);
    co_return co_await send_error(kind, message);
}

asio::awaitable<Session::Exchange> Session::fail_upstream_io(const boost::system::error_code& ec, std::string_view step) {
    const auto& t = view_->snapshot->routes[route_].timeouts;
    // A deadline cancelled both sides: let the pump finish so we know which side stalled.
    if (timed_out_ != Timeout::none) co_await wait_pump();
    switch (timed_out_) {
    case Timeout::max_duration:
        co_return co_await fail_exchange(ErrorKind::max_duration, "the request did not complete within max_duration " +
                                                                      config::describe_duration(t.max_duration) + " (" +
                                                                      route_label() + ")");
    case Timeout::upstream_response:
        co_return co_await fail_exchange(ErrorKind::upstream_timeout,
                                         "upstream sent no response headers within " +
                                             config::describe_duration(t.upstream_response) + " (" + route_label() + ")");
    case Timeout::stream_idle:
        if (pump_ == Pump::client_stalled)
            co_return co_await fail_exchange(ErrorKind::request_timeout,
                                             "the request body stalled: no bytes for " +
                                                 config::describe_duration(t.stream_idle) + " (timeouts.stream_idle, " +
                                                 route_label() + ")");
        co_return co_await fail_exchange(ErrorKind::upstream_timeout,
                                         "upstream took no request body bytes for " +
                                             config::describe_duration(t.stream_idle) + " (timeouts.stream_idle, " +
                                             route_label() + ")");
    default: break;
    }
    std::string what;
    const auto& tls = view_->snapshot->clusters[cluster_].tls;
    if (tls && ec.category() == asio::error::get_ssl_category())
        co_return co_await fail_exchange(ErrorKind::upstream_tls_failed, "upstream TLS failed " + std::string(step) + ": " +
                                                                             upstream_label() + ": " +
                                                                             tls->describe_tls_error(ec));
    if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated)
        what = "upstream closed the connection " + std::string(step);
    else if (ec == asio::error::connection_reset) what = "upstream reset the connection " + std::string(step);
    else what = "upstream failed " + std::string(step) + " (" + lower_first(ec.message()) + ")";
    co_return co_await fail_exchange(ErrorKind::upstream_reset, what + ": " + upstream_label());
}

asio::awaitable<std::optional<Session::Exchange>> Session::read_response_head(UpstreamConn& conn,
                                                                              std::optional<ResponseParser>& parser,
                                                                              bool may_retry, bool& retry) {
    bool got_bytes = false;
    for (;;) {
        std::size_t end = find_head_end(conn.in.data());
        if (end == 0) {
            if (conn.in.size() >= kMaxResponseHead)
                co_return co_await fail_exchange(ErrorKind::upstream_bad_response,
                                                 "upstream response headers are larger than 64KiB: " + upstream_label());
            auto [ec, n] = deadline_passed() ? cancelled_io()
                                             : co_await conn.stream.read_some(conn.in.prepare());
            if (ec) {
                if (!got_bytes && may_retry && timed_out_ == Timeout::none && !aborted_ &&
                    (ec == asio::error::eof || ec == asio::error::connection_reset ||
                     ec == asio::ssl::error::stream_truncated)) {  // a TLS upstream that closed without close_notify
                    retry = true;
                    retry_message_ = std::string(ec == asio::error::connection_reset ? "upstream reset" : "upstream closed") +
                                     " the connection before sending response headers: " + upstream_label();
                    co_return Exchange::keep_alive;
                }
                co_return co_await fail_upstream_io(
                    ec, got_bytes ? "in the middle of the response headers" : "before sending response headers");
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
            co_return co_await fail_exchange(ErrorKind::upstream_bad_response, refusal->message + ": " + upstream_label());
        if (resp_.status == 101 && upgrade_) co_return std::nullopt;  // becomes a tunnel
        if (resp_.status == 101)
            co_return co_await fail_exchange(
                ErrorKind::upstream_bad_response,
                "upstream answered 101 Switching Protocols to a request that did not ask to upgrade: " + upstream_label());
        if (resp_.status >= 200) {
            parser->eager(true);
            co_return std::nullopt;
        }
        // Interim 1xx (100 Continue, 103 Early Hints): relay to HTTP/1.1 clients, then read on.
        if (req_.version >= 11) {
            out_head_.clear();
            build_interim_response(resp_, out_head_);
            auto [wec, n] = deadline_passed() ? cancelled_io() : co_await client_.write(asio::buffer(out_head_));
            if (wec) {  // the client left
                conn.stream.close();
                co_await finish_pump(conn);
                co_return Exchange::close;
            }
        }
    }
}

asio::awaitable<Session::Exchange> Session::relay_response(const std::shared_ptr<UpstreamConn>& conn, bool may_retry,
                                                           bool& retry) {
    std::optional<ResponseParser> parser;
    if (auto done = co_await read_response_head(*conn, parser, may_retry, retry)) co_return *done;
    // Passive outlier detection counts 5xx answers as failures of the endpoint.
    report_endpoint_result(view_->snapshot->clusters[cluster_], endpoint_, resp_.status >= 500, steady_now_ns());
    if (resp_.status == 101) co_return co_await start_tunnel(conn);

    phase_ = Phase::response;
    set_streaming();
    ClientResponse down;
    down.client_http10 = req_.version < 11;
    set_response_framing(down, *parser, resp_);
    down.close = !client_keep_alive_ || !request_body_done() || draining() || down.framing == Framing::until_close;
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
            spdlog::debug("upstream sent a bad response body ({}): {}", step.refusal->message, upstream_label());
            if (!head_sent)
                co_return co_await fail_exchange(ErrorKind::upstream_bad_response, "upstream sent a bad response body: " +
                                                                                       step.refusal->message + ": " +
                                                                                       upstream_label());
            conn->stream.close();
            co_await finish_pump(*conn);
            co_return Exchange::close;  // the client sees a cut response, never a wrong one
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
            auto [ec, n] = deadline_passed() ? cancelled_io() : co_await client_.write(gather_);
            if (ec) {  // the client left, or stopped reading for stream_idle
                conn->stream.close();
                co_await finish_pump(*conn);
                co_return Exchange::close;
            }
            head_sent = true;
            dog_.touch();
            rec_.bytes_out += body_bytes;
            if (body_bytes && rec_.stream && !rec_.first_body_byte) {
                rec_.first_body_byte = true;
                stats.first_byte.observe(std::chrono::duration<double>(Watchdog::Clock::now() - rec_.sent).count());
            }
        }
        conn->in.consume(used);
        if (last) break;
        auto [ec, n] = deadline_passed() ? cancelled_io()
                                         : co_await conn->stream.read_some(conn->in.prepare());
        if (ec == asio::error::eof && parser->need_eof()) {
            boost::beast::error_code eof_ec;
            parser->put_eof(eof_ec);
            continue;  // writes the last chunk
        }
        if (ec) {
            // Cut short (upstream gone, stream_idle or max_duration): close without
            // the last chunk so the client can tell the response is incomplete.
            spdlog::debug("response cut short ({}): {}", lower_first(ec.message()), upstream_label());
            conn->stream.close();
            co_await finish_pump(*conn);
            co_return Exchange::close;
        }
        conn->in.commit(n);
        dog_.touch();
    }

    const bool reusable = parser->keep_alive() && !parser->need_eof() && conn->in.empty() && timed_out_ == Timeout::none;
    co_await finish_pump(*conn);
    if (reusable && (pump_ == Pump::idle || pump_ == Pump::done))
        view_->clusters[cluster_].pools[endpoint_]->give(conn);
    else
        conn->stream.close();
    upstream_.reset();
    co_return down.close || pump_ == Pump::stopped ? Exchange::close : Exchange::keep_alive;
}

}  // namespace sluice::proxy
