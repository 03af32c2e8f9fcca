// GET /metrics is the Prometheus text format, written by prometheus-cpp's text
// serializer. Control-plane metrics live in prometheus-cpp's registry; the data
// plane counts in plain per-worker counters (no atomics or locks shared between
// workers on the request path), which a scrape copies and adds up here into
// prometheus-cpp metric families.
#include "proxy/server/admin_views.h"

#include "config/serialize.h"
#include "proxy/http/exchange_phase.h"
#include "proxy/snapshot/admission.h"
#include "proxy/server/process_stats.h"

#include <prometheus/gauge.h>

#include <prometheus/text_serializer.h>

#include <cmath>
#include <deque>
#include <limits>

namespace sluice::proxy {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

// A deque: references to earlier families stay valid as more are added.
MetricFamily& family(std::deque<MetricFamily>& out, std::string name, std::string help, MetricType type) {
    out.push_back(MetricFamily{std::move(name), std::move(help), type, {}});
    return out.back();
}

void add_value(MetricFamily& f, Labels labels, double v) {
    ClientMetric m;
    m.label = std::move(labels);
    if (f.type == MetricType::Counter) m.counter.value = v;
    else m.gauge.value = v;
    f.metric.push_back(std::move(m));
}

void add_histogram(MetricFamily& f, Labels labels, const Histogram& h) {
    ClientMetric m;
    m.label = std::move(labels);
    m.histogram.sample_count = h.count();
    m.histogram.sample_sum = h.sum();
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < h.counts().size(); ++i) {
        cumulative += h.counts()[i];
        double bound = i < h.bounds().size() ? h.bounds()[i] : std::numeric_limits<double>::infinity();
        m.histogram.bucket.push_back({cumulative, bound});
    }
    f.metric.push_back(std::move(m));
}

}  // namespace

AdminViews::AdminViews(ListenerSet::Workers& workers, const SnapshotStore& store, const ListenerSet& listeners,
                       const AccessLog& access_log, prometheus::Registry& metrics)
    : workers_(workers), store_(store), listeners_(listeners), access_log_(access_log), metrics_(metrics) {
    prometheus::BuildGauge()
        .Name("sluice_build_info")
        .Help("sluice's version; always 1")
        .Register(metrics_)
        .Add({{"version", SLUICE_VERSION}, {"compiler", __VERSION__}})
        .Set(1);
}

std::string AdminViews::metrics_text(const admin::AdminServer* admin, const admin::AdminServer* probes) {
    std::deque<MetricFamily> out;
    const auto snap = store_.current();
    const StatsTotals t = collect_stats();

    add_value(family(out, "sluice_config_version", "Version of the config in force", MetricType::Gauge), {},
              static_cast<double>(snap->version));
    add_value(family(out, "sluice_config_info",
                     "The config in force by its hash (as GET /config shows it); pods with the same hash applied the "
                     "same config. Always 1",
                     MetricType::Gauge),
              {{"hash", snap->hash}}, 1);
    add_value(family(out, "sluice_config_snapshots_live",
                     "Config versions still alive: the current one plus any held by open requests or tunnels",
                     MetricType::Gauge),
              {}, static_cast<double>(Snapshot::live_count()));

    auto& requests = family(out, "sluice_requests_total",
                            "Responses sent to clients, by listener, route and exact status code (route \"\" matched "
                            "no route or was refused before routing)",
                            MetricType::Counter);
    auto& duration = family(out, "sluice_request_duration_seconds",
                            "From the request head to the end of the response (to the 101 for WebSockets)",
                            MetricType::Histogram);
    auto& errors = family(out, "sluice_proxy_errors_total",
                          "Answers sluice made itself, by route and x-sluice-error code", MetricType::Counter);
    auto& ws_active = family(out, "sluice_websocket_connections_active", "Open WebSocket tunnels", MetricType::Gauge);
    auto& ws_total = family(out, "sluice_websocket_connections_total", "WebSocket tunnels opened", MetricType::Counter);
    auto& ws_bytes = family(out, "sluice_websocket_bytes_total",
                            "Tunnel bytes, by direction: upstream (client to app) and downstream (app to client)",
                            MetricType::Counter);
    auto& ws_duration = family(out, "sluice_websocket_duration_seconds", "Lifetimes of closed WebSocket tunnels",
                               MetricType::Histogram);
    auto& closes = family(out, "sluice_tunnel_closes_total", "Closed tunnels, by reason", MetricType::Counter);
    auto& streams_active = family(out, "sluice_streams_active",
                                  "Responses of unknown length (chunked, SSE, NDJSON) being relayed now",
                                  MetricType::Gauge);
    auto& streams_total = family(out, "sluice_streams_total", "Streaming responses started", MetricType::Counter);
    auto& first_byte = family(out, "sluice_stream_first_byte_seconds",
                              "Streams: from the request sent upstream to the first response body byte relayed",
                              MetricType::Histogram);
    auto& gap = family(out, "sluice_stream_gap_seconds",
                       "Streams: time between two body pieces relayed to the client (the inter-token gap)",
                       MetricType::Histogram);
    auto& cancels = family(out, "sluice_client_cancels_total",
                           "Clients that left before their response ended, by phase: request (body being sent), "
                           "waiting (for the response head), streaming (response under way), queued (admission)",
                           MetricType::Counter);
    for (const auto& [route, r] : t.routes) {
        for (const auto& c : r.responses)
            add_value(requests, {{"listener", c.listener}, {"route", route}, {"code", std::to_string(c.code)}},
                      static_cast<double>(c.count));
        if (r.duration.count()) add_histogram(duration, {{"route", route}}, r.duration);
        for (std::size_t k = 0; k < r.errors.size(); ++k)
            if (r.errors[k])
                add_value(errors, {{"route", route}, {"error", std::string(code_of(static_cast<ErrorKind>(k)))}},
                          static_cast<double>(r.errors[k]));
        if (route.empty()) continue;  // nothing below happens before routing
        add_value(ws_active, {{"route", route}}, static_cast<double>(r.tunnels.active));
        add_value(ws_total, {{"route", route}}, static_cast<double>(r.tunnels.opened));
        add_value(ws_bytes, {{"route", route}, {"direction", "upstream"}}, static_cast<double>(r.tunnels.bytes_upstream));
        add_value(ws_bytes, {{"route", route}, {"direction", "downstream"}},
                  static_cast<double>(r.tunnels.bytes_downstream));
        add_histogram(ws_duration, {{"route", route}}, r.tunnels.duration);
        for (std::size_t k = 0; k < r.tunnels.closes.size(); ++k)
            add_value(closes, {{"route", route}, {"reason", close_reason_name(static_cast<CloseReason>(k))}},
                      static_cast<double>(r.tunnels.closes[k]));
        add_value(streams_active, {{"route", route}}, static_cast<double>(r.streams_active));
        add_value(streams_total, {{"route", route}}, static_cast<double>(r.streams));
        add_histogram(first_byte, {{"route", route}}, r.first_byte);
        add_histogram(gap, {{"route", route}}, r.gap);
        for (std::size_t k = 0; k < kCancelPhaseCount; ++k)
            add_value(cancels, {{"route", route}, {"phase", kCancelPhaseNames[k]}}, static_cast<double>(r.cancels[k]));
    }
    auto& tunnel_path = family(out, "sluice_tunnel_bytes_total",
                               "Tunnel bytes by how they moved: splice (zero-copy, through a pipe) or copy",
                               MetricType::Counter);
    add_value(tunnel_path, {{"path", "splice"}}, static_cast<double>(t.paths.spliced_bytes));
    add_value(tunnel_path, {{"path", "copy"}}, static_cast<double>(t.paths.copied_bytes));

    auto& connect_failures = family(out, "sluice_upstream_connect_failures_total",
                                    "Upstream connects that failed: refused, unreachable, timed out or unresolvable",
                                    MetricType::Counter);
    auto& retries = family(out, "sluice_upstream_retries_total", "Requests retried on another attempt",
                           MetricType::Counter);
    auto& queue_wait = family(out, "sluice_queue_wait_seconds",
                              "Clusters with max_requests_per_endpoint: how long each admitted request waited in the "
                              "queue (0 when it found room)",
                              MetricType::Histogram);
    for (const auto& [cluster, c] : t.clusters) {
        add_value(connect_failures, {{"cluster", cluster}}, static_cast<double>(c.connect_failures));
        add_value(retries, {{"cluster", cluster}}, static_cast<double>(c.retries));
        if (c.queue_wait.count()) add_histogram(queue_wait, {{"cluster", cluster}}, c.queue_wait);
    }
    auto& queue_depth = family(out, "sluice_cluster_queue_depth",
                               "Requests waiting for an endpoint under max_requests_per_endpoint", MetricType::Gauge);
    auto& requests_active = family(out, "sluice_endpoint_requests_active",
                                   "Requests in flight to each endpoint (sent, or connecting, until the response ends)",
                                   MetricType::Gauge);
    const auto loads = endpoint_loads();
    for (const auto& c : snap->clusters) {
        add_value(queue_depth, {{"cluster", c.name}}, static_cast<double>(c.admission->depth()));
        for (const auto& e : c.endpoints) {
            auto it = loads.find(e.pool_key);
            add_value(requests_active, {{"cluster", c.name}, {"endpoint", e.key}},
                      it == loads.end() ? 0 : static_cast<double>(it->second.active_requests));
        }
    }
    auto& healthy = family(out, "sluice_upstream_endpoint_healthy",
                           "1 when the endpoint passes its active health checks (or has none)", MetricType::Gauge);
    auto& ejected = family(out, "sluice_upstream_endpoint_ejected",
                           "1 while passive outlier detection keeps the endpoint out of rotation", MetricType::Gauge);
    const auto now = coarse_now_ns();
    for (const auto& c : snap->clusters)
        for (const auto& e : c.endpoints) {
            add_value(healthy, {{"cluster", c.name}, {"endpoint", e.key}},
                      e.state->healthy.load(std::memory_order_relaxed) ? 1 : 0);
            add_value(ejected, {{"cluster", c.name}, {"endpoint", e.key}}, e.state->ejected(now) ? 1 : 0);
        }

    auto& downstream = family(out, "sluice_downstream_connections_active",
                              "Open client connections, tunnels included, by listener", MetricType::Gauge);
    for (const auto& l : listeners_.list())
        add_value(downstream, {{"listener", l->spec.name}},
                  static_cast<double>(l->connections.load(std::memory_order_relaxed)));
    auto& expiry = family(out, "sluice_tls_certificate_expiry_timestamp_seconds",
                          "When each listener certificate in force expires (its notAfter), Unix seconds; alert on "
                          "this minus time() falling below your renewal margin",
                          MetricType::Gauge);
    for (std::size_t i = 0; i < snap->tls.listeners.size() && i < snap->config.listeners.size(); ++i) {
        if (!snap->tls.listeners[i]) continue;
        for (const auto& e : snap->tls.listeners[i]->expiries())
            add_value(expiry, {{"listener", snap->config.listeners[i].name}, {"certificate", e.cert}},
                      static_cast<double>(e.not_after));
    }
    auto& handshakes = family(out, "sluice_tls_handshakes_total",
                              "TLS handshakes on a listener, by result: ok or failed (failed or timed out)",
                              MetricType::Counter);
    auto& accept_errors = family(out, "sluice_accept_errors_total",
                                 "Accepts that failed (out of file descriptors or memory), by listener; each pauses "
                                 "that listener's acceptor for 100ms",
                                 MetricType::Counter);
    for (const auto& [name, l] : t.listeners) {
        add_value(handshakes, {{"listener", name}, {"result", "ok"}}, static_cast<double>(l.tls_handshakes));
        add_value(handshakes, {{"listener", name}, {"result", "failed"}}, static_cast<double>(l.tls_handshake_failures));
        if (l.accept_errors) add_value(accept_errors, {{"listener", name}}, static_cast<double>(l.accept_errors));
    }
    auto& admin_accept_errors = family(out, "sluice_admin_accept_errors_total",
                                       "Accepts that failed on the admin API or the probes server (out of file "
                                       "descriptors or memory); each pauses it for 100ms",
                                       MetricType::Counter);
    if (admin) add_value(admin_accept_errors, {{"server", "admin"}}, static_cast<double>(admin->accept_errors()));
    if (probes) add_value(admin_accept_errors, {{"server", "probes"}}, static_cast<double>(probes->accept_errors()));
    add_value(family(out, "sluice_access_log_lines_total", "Access log lines queued for writing", MetricType::Counter),
              {}, static_cast<double>(access_log_.lines()));
    add_value(family(out, "sluice_access_log_dropped_total",
                     "Access log lines dropped because the output could not keep up", MetricType::Counter),
              {}, static_cast<double>(access_log_.dropped()));

    const ProcessStats p = read_process_stats();
    add_value(family(out, "process_cpu_seconds_total", "User and system CPU time spent, in seconds",
                     MetricType::Counter),
              {}, p.cpu_seconds);
    add_value(family(out, "process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds",
                     MetricType::Gauge),
              {}, p.start_time);
    add_value(family(out, "process_resident_memory_bytes", "Resident memory size, in bytes", MetricType::Gauge), {},
              p.resident);
    add_value(family(out, "process_virtual_memory_bytes", "Virtual memory size, in bytes", MetricType::Gauge), {},
              p.virtual_bytes);
    add_value(family(out, "process_open_fds", "Open file descriptors", MetricType::Gauge), {}, p.open_fds);
    add_value(family(out, "process_max_fds", "Limit on open file descriptors", MetricType::Gauge), {}, p.max_fds);

    // Families with no series (no traffic yet) still say what they are.
    std::vector<MetricFamily> all = metrics_.Collect();
    for (auto& f : out) all.push_back(std::move(f));
    return prometheus::TextSerializer().Serialize(all);
}

nlohmann::json AdminViews::connections_json(const admin::ConnectionsQuery& q) {
    ConnectionList all;
    for (auto& w : workers_) {
        ConnectionList mine = w->call([&] { return w->context().connections(q); });
        all.total += mine.total;
        all.websockets += mine.websockets;
        all.streams += mine.streams;
        for (auto& c : mine.oldest) all.oldest.push_back(std::move(c));
    }
    std::sort(all.oldest.begin(), all.oldest.end(),
              [](const ConnectionInfo& a, const ConnectionInfo& b) { return a.started < b.started; });
    if (all.oldest.size() > q.limit) all.oldest.resize(q.limit);
    const auto now = std::chrono::steady_clock::now();
    auto list = nlohmann::json::array();
    for (const auto& c : all.oldest)
        list.push_back({{"kind", c.kind},
                        {"listener", c.listener},
                        {"route", c.route},
                        {"cluster", c.cluster},
                        {"endpoint", c.endpoint},
                        {"client", c.client},
                        {"age_seconds", std::round(std::chrono::duration<double>(now - c.started).count() * 1000) / 1000},
                        {"bytes_from_client", c.bytes_from_client},
                        {"bytes_to_client", c.bytes_to_client},
                        {"config_version", c.config_version},
                        {"worker", c.worker}});
    return {{"total", all.total},         {"websockets", all.websockets}, {"streams", all.streams},
            {"returned", list.size()},    {"limit", q.limit},             {"truncated", list.size() < all.total},
            {"connections", list}};
}

StatsTotals AdminViews::collect_stats() {
    StatsTotals out;
    for (auto& w : workers_) out.add(w->call([&] { return w->context().stats().copy(); }));
    return out;
}

std::unordered_map<std::string, WorkerContext::EndpointLoad> AdminViews::endpoint_loads() {
    std::unordered_map<std::string, WorkerContext::EndpointLoad> loads;
    for (auto& w : workers_)
        for (const auto& [key, load] : w->call([&] { return w->context().endpoint_loads(); })) {
            loads[key].active_requests += load.active_requests;
            loads[key].active_tunnels += load.active_tunnels;
        }
    return loads;
}

nlohmann::json AdminViews::clusters_json() {
    auto snap = store_.current();
    const auto loads = endpoint_loads();
    auto clusters = nlohmann::json::array();
    const auto now = coarse_now_ns();
    for (const auto& c : snap->clusters) {
        auto endpoints = nlohmann::json::array();
        for (const auto& e : c.endpoints) {
            auto it = loads.find(e.pool_key);
            endpoints.push_back({{"address", e.key},
                                 {"id", e.id},
                                 {"healthy", e.state->healthy.load(std::memory_order_relaxed)},
                                 {"ejected", e.state->ejected(now)},
                                 {"ejections", e.state->ejections.load(std::memory_order_relaxed)},
                                 {"active_requests", it == loads.end() ? 0 : it->second.active_requests},
                                 {"active_tunnels", it == loads.end() ? 0 : it->second.active_tunnels}});
        }
        clusters.push_back({{"name", c.name}, {"lb_policy", config::lb_policy_name(c.policy)}, {"endpoints", endpoints}});
    }
    return {{"clusters", clusters}};
}

}  // namespace sluice::proxy
