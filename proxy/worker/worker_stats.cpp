#include "proxy/worker/worker_stats.h"

namespace sluice::proxy {

const char* close_reason_name(CloseReason r) {
    switch (r) {
    case CloseReason::client_closed: return "client_closed";
    case CloseReason::upstream_closed: return "upstream_closed";
    case CloseReason::idle_timeout: return "idle_timeout";
    case CloseReason::max_duration: return "max_duration";
    case CloseReason::drain: return "drain";
    case CloseReason::error: return "error";
    }
    return "error";
}

void Histogram::observe(double seconds) {
    std::size_t i = 0;
    while (i < bounds_.size() && seconds > bounds_[i]) ++i;
    ++counts_[i];
    sum_ += seconds;
    ++count_;
}

void Histogram::add(const Histogram& o) {
    for (std::size_t i = 0; i < counts_.size() && i < o.counts_.size(); ++i) counts_[i] += o.counts_[i];
    sum_ += o.sum_;
    count_ += o.count_;
}

void TunnelCounters::add(const TunnelCounters& o) {
    active += o.active;
    opened += o.opened;
    bytes_upstream += o.bytes_upstream;
    bytes_downstream += o.bytes_downstream;
    for (std::size_t i = 0; i < closes.size(); ++i) closes[i] += o.closes[i];
    duration.add(o.duration);
}

void RouteStats::count_response(const std::string& listener, int code) {
    for (auto& r : responses)
        if (r.code == code && r.listener == listener) {
            ++r.count;
            return;
        }
    responses.push_back({listener, code, 1});
}

void RouteStats::add(const RouteStats& o) {
    for (const auto& r : o.responses) {
        bool found = false;
        for (auto& mine : responses)
            if (mine.code == r.code && mine.listener == r.listener) {
                mine.count += r.count;
                found = true;
                break;
            }
        if (!found) responses.push_back(r);
    }
    for (std::size_t i = 0; i < errors.size(); ++i) errors[i] += o.errors[i];
    duration.add(o.duration);
    first_byte.add(o.first_byte);
    gap.add(o.gap);
    streams_active += o.streams_active;
    streams += o.streams;
    for (std::size_t i = 0; i < cancels.size(); ++i) cancels[i] += o.cancels[i];
    tunnels.add(o.tunnels);
}

void StatsTotals::add(const StatsTotals& o) {
    for (const auto& [name, r] : o.routes) routes[name].add(r);
    for (const auto& [name, c] : o.clusters) clusters[name].add(c);
    for (const auto& [name, l] : o.listeners) listeners[name].add(l);
    paths.spliced_bytes += o.paths.spliced_bytes;
    paths.copied_bytes += o.paths.copied_bytes;
}

std::shared_ptr<RouteStats> WorkerStats::route_ptr(const std::string& name) {
    auto& p = routes_[name];
    if (!p) p = std::make_shared<RouteStats>();
    return p;
}

std::shared_ptr<ClusterStats> WorkerStats::cluster_ptr(const std::string& name) {
    auto& p = clusters_[name];
    if (!p) p = std::make_shared<ClusterStats>();
    return p;
}

void WorkerStats::sweep(const std::vector<config::ListenerSpec>& listeners) {
    std::erase_if(routes_, [](const auto& kv) { return !kv.first.empty() && kv.second.use_count() == 1; });
    std::erase_if(clusters_, [](const auto& kv) { return kv.second.use_count() == 1; });
    std::erase_if(listeners_, [&](const auto& kv) {
        for (const auto& l : listeners)
            if (l.name == kv.first) return false;
        return true;
    });
}

StatsTotals WorkerStats::copy() const {
    StatsTotals t;
    for (const auto& [name, r] : routes_) t.routes.emplace(name, *r);
    for (const auto& [name, c] : clusters_) t.clusters.emplace(name, *c);
    for (const auto& [name, l] : listeners_) t.listeners.emplace(name, l);
    t.paths = paths_;
    return t;
}

}  // namespace sluice::proxy
