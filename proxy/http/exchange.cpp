#include "proxy/http/exchange.h"

#include "proxy/http/balancer.h"
#include "proxy/http/h2_upstream_conn.h"
#include "proxy/http/h2_upstream_stream.h"
#include "proxy/net/downstream.h"
#include "proxy/net/listener.h"
#include "proxy/net/log.h"
#include "proxy/worker/worker_context.h"

#include <boost/beast/core/string.hpp>

namespace sluice::proxy {

namespace asio = boost::asio;

namespace {

// Client-supplied text in our messages stays short and on one line.
std::string printable(std::string_view s, std::size_t max = 200) {
    std::string out;
    for (char c : s.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    if (s.size() > max) out += "...";
    return out;
}

// The 404 of the built-in default config says how to add a route.
std::string first_route_hint(const Snapshot& snap) {
    const auto& a = snap.config.admin;
    std::string admin =
        "http://" + (a.address.find(':') != std::string::npos ? "[" + a.address + "]" : a.address) + ":" +
        std::to_string(a.port);
    return "\nsluice is running its built-in default config, which has no routes. Add a cluster and a route "
           "on the admin API:\n  curl -X PUT " + admin +
           "/clusters/app -H 'Content-Type: application/json' -d '{\"endpoints\": [\"127.0.0.1:3000\"]}'\n"
           "  curl -X POST " + admin +
           "/routes -H 'Content-Type: application/json' -d '{\"name\": \"all\", \"match\": {\"path_prefix\": "
           "\"/\"}, \"cluster\": \"app\"}'"
           "\nor start sluice with --config FILE (see docs/config.md)";
}

}  // namespace

Exchange::Exchange(ClientSide& client)
    : client_(client), queue_timer_(client.executor()), pump_done_(client.executor()) {}

void Exchange::note_grpc_status(std::string_view name, std::string_view value) {
    // A status code is a small number; anything else is logged cut short.
    if (boost::beast::iequals(name, "grpc-status")) rec_.grpc_status.assign(value.substr(0, 12));
}

void Exchange::begin() {
    rec_ = Record{};
    resp_trailers_.clear();
    rec_.start = Watchdog::Clock::now();
    req_.clear();
}

asio::awaitable<ExchangeEnd> Exchange::run() {
    view_ = client_.worker().view();
    const Snapshot& snap = *view_->snapshot;
    const ListenerInfo& listener = *client_.listener_info();
    std::size_t r = snap.router.match(req_);
    if (r == Router::npos) {
        std::string msg = "no route matches " + printable(req_.method, 32) + " " + printable(req_.path) +
                          " on listener \"" + listener.spec.name + "\"";
        if (snap.builtin_default) msg += first_route_hint(snap);
        co_return co_await send_error(ErrorKind::no_route, msg);
    }
    route_ = r;
    rec_.routed = true;
    const RouteRuntime& route = snap.routes[r];
    // Upgrade: websocket with an "upgrade" token in Connection, any case, any
    // order. HTTP/1.0 has no upgrades (RFC 9110 7.8): the request goes on as a
    // plain one, its Upgrade dropped as hop-by-hop.
    bool upgrade = req_.extended_connect || (req_.version >= 11 && req_.connection_has("upgrade") &&
                                             boost::beast::iequals(req_.find(http::field::upgrade), "websocket"));
    upgrade_ = upgrade && route.spec->websocket;
    if (upgrade && !route.spec->websocket)
        co_return co_await send_error(ErrorKind::websocket_disabled,
                                      "route \"" + route.spec->name +
                                          "\" does not accept WebSocket upgrades (websocket: false)");
    if (upgrade_ && snap.clusters[route.cluster].http2)
        co_return co_await send_error(ErrorKind::websocket_disabled,
                                      "route \"" + route.spec->name + "\" sends WebSocket upgrades to cluster \"" +
                                          snap.clusters[route.cluster].name +
                                          "\", which speaks HTTP/2 (protocol: http2); WebSocket needs an HTTP/1.1 "
                                          "cluster");
    // After a 101 every byte is tunnel data: a body would be read as frames.
    if (upgrade_ && !request_complete())
        co_return co_await send_error(ErrorKind::bad_request, "a WebSocket upgrade request cannot carry a body", true);
    co_return co_await forward();
}

void Exchange::record_error(ErrorKind kind, std::string_view message) {
    rec_.status = status_of(kind);
    rec_.error = kind;
    ++route_stats().errors[static_cast<std::size_t>(kind)];
    log_proxy_error(client_.listener_info()->spec.name, status_of(kind), code_of(kind), message);
}

void Exchange::finish() {
    release_slot();  // the response has ended: the next queued request may go
    account();
    client_.worker().release_view(view_);
    upstream_.reset();
}

void Exchange::finish_refused() {
    if (rec_.status) account();  // refused with an answer (400, 408, 414, 431)
}

void Exchange::cancel_upstream() {
    if (queued_) queue_timer_.cancel();
    boost::system::error_code ec;
    if (upstream_) upstream_->socket().cancel(ec);
    if (h2_up_) h2_up_->wake();
    if (resolver_) resolver_->cancel();
}

void Exchange::close_upstream() {
    if (queued_) queue_timer_.cancel();
    if (upstream_) upstream_->transport.close();
    if (h2_up_) end_h2_stream();
}

void Exchange::client_left() {
    if (rec_.websocket) {
        close_upstream();  // a WebSocket's client going is its normal end, not a cancel
        return;
    }
    if (queued_) record_cancel(CancelPhase::queued);
    else if (client_.phase() == Phase::response) record_cancel(CancelPhase::streaming);
    else if (!request_complete() || pump_ == Pump::running) record_cancel(CancelPhase::request);
    else record_cancel(CancelPhase::waiting);
    close_upstream();  // also ends a connect in progress
    if (resolver_) resolver_->cancel();
}

void Exchange::record_cancel(CancelPhase phase) {
    if (rec_.cancel) return;
    rec_.cancel = phase;
    ++route_stats().cancels[static_cast<std::size_t>(phase)];
}

AttemptPlace Exchange::place() const { return {*view_->snapshot, route_, cluster_, endpoint_}; }

std::string Exchange::affinity_cookie() const {
    // Names the endpoint by an opaque id, never its address; the client moves
    // (and gets a new cookie) when that endpoint is gone or unavailable.
    return "Set-Cookie: " + affinity_value() + "\r\n";
}

std::string Exchange::affinity_value() const {
    return std::string(kAffinityCookie) + "=" + view_->snapshot->clusters[cluster_].endpoints[endpoint_].id +
           "; Path=/; HttpOnly; SameSite=Lax";
}

void Exchange::count_body_sent(std::size_t bytes) {
    client_.watchdog().touch();
    rec_.bytes_out += bytes;
    if (!bytes || !rec_.stream) return;
    const auto now = Watchdog::Clock::now();  // precise: token gaps are milliseconds
    // Time to the first token, then the gaps between tokens (SSE and NDJSON
    // servers send the head at once, so the body is what counts).
    RouteStats& stats = *view_->route_stats[route_];
    if (!rec_.first_body_byte) stats.first_byte.observe(std::chrono::duration<double>(now - rec_.sent).count());
    else stats.gap.observe(std::chrono::duration<double>(now - rec_.last_body_byte).count());
    rec_.first_body_byte = true;
    rec_.last_body_byte = now;
}

RouteStats& Exchange::route_stats() {
    if (rec_.routed && view_) return *view_->route_stats[route_];
    return client_.worker().stats().route("");
}

void Exchange::count_response(int status, Watchdog::time_point now) {
    RouteStats& rs = route_stats();
    rs.count_response(client_.listener_info()->spec.name, status);
    rs.duration.observe(std::chrono::duration<double>(now - rec_.start).count());
}

void Exchange::account() {
    if (rec_.tunneled) return;  // counted at the upgrade; the tunnel logs its own line
    RouteStats& rs = route_stats();
    if (rec_.streaming) {
        --rs.streams_active;
        rec_.streaming = false;
    }
    const auto now = Watchdog::Clock::now();
    if (rec_.status) count_response(rec_.status, now);
    WorkerContext& worker = client_.worker();
    if (!worker.access_log_enabled()) return;
    const auto& snap = view_ ? *view_->snapshot : *worker.view()->snapshot;
    AccessRecord r;
    const auto took = now - rec_.start;
    r.duration = std::chrono::duration<double>(took).count();
    r.start = std::chrono::system_clock::now() - std::chrono::duration_cast<std::chrono::system_clock::duration>(took);
    r.kind = rec_.websocket ? "websocket" : rec_.stream ? "stream" : "http";
    r.listener = client_.listener_info()->spec.name;
    if (rec_.routed && view_) r.route = snap.routes[route_].spec->name;
    if (rec_.upstream && view_) {
        r.cluster = snap.clusters[cluster_].name;
        r.endpoint = snap.clusters[cluster_].endpoints[endpoint_].key;
    }
    std::string client = client_.client_address();
    r.client = client;
    r.method = req_.method;
    r.path = req_.path;
    r.status = rec_.status;
    r.bytes_received = rec_.bytes_in;
    r.bytes_sent = rec_.bytes_out;
    if (rec_.connect) r.upstream_connect = std::chrono::duration<double>(*rec_.connect).count();
    if (rec_.first_byte) r.upstream_first_byte = std::chrono::duration<double>(*rec_.first_byte).count();
    if (rec_.error) r.error = code_of(*rec_.error);
    if (rec_.cancel) r.client_cancel = kCancelPhaseNames[static_cast<std::size_t>(*rec_.cancel)];
    r.grpc_status = rec_.grpc_status;
    r.config_version = snap.version;
    worker.log_access(r);
}

bool Exchange::describe(ConnectionInfo& out) const {
    if (!rec_.streaming || !view_) return false;
    const Snapshot& snap = *view_->snapshot;
    out.kind = "stream";
    out.listener = client_.listener_info()->spec.name;
    out.route = snap.routes[route_].spec->name;
    out.cluster = snap.clusters[cluster_].name;
    out.endpoint = snap.clusters[cluster_].endpoints[endpoint_].key;
    out.client = client_.client_address();
    out.started = rec_.start;
    out.bytes_from_client = rec_.bytes_in;
    out.bytes_to_client = rec_.bytes_out;
    out.config_version = snap.version;
    return true;
}

}  // namespace sluice::proxy
