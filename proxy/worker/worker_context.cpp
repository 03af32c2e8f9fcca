#include "proxy/worker/worker_context.h"

#include <algorithm>
#include <random>

namespace sluice::proxy {

namespace asio = boost::asio;

namespace {

constexpr std::size_t kMaxIdlePerEndpoint = 1024;
constexpr auto kUpstreamIdle = std::chrono::seconds(60);
constexpr auto kSweepEvery = std::chrono::seconds(5);

}  // namespace

WorkerContext::WorkerContext(std::size_t index, SnapshotStore& store, AccessLog& access_log, bool splice)
    : index_(index), store_(store), access_log_(access_log), splice_(splice) {}

const std::shared_ptr<WorkerView>& WorkerContext::view() {
    // One atomic load; the pointer itself is reloaded only after a publish.
    std::uint64_t generation = store_.generation();
    if (generation != view_generation_) {
        view_generation_ = generation;
        refresh_view();
    }
    return view_;
}

void WorkerContext::refresh_view() {
    auto v = std::make_shared<WorkerView>();
    v->snapshot = store_.current();
    for (const auto& c : v->snapshot->clusters) {
        WorkerView::Cluster wc;
        wc.next = static_cast<std::uint32_t>(index_);  // workers start at different endpoints
        for (const auto& e : c.endpoints) {
            auto& pool = pools_[e.pool_key];
            if (!pool) pool = std::make_shared<EndpointPool>(e.pool_key, kMaxIdlePerEndpoint, readiness_);
            wc.pools.push_back(pool);
        }
        v->clusters.push_back(std::move(wc));
        v->cluster_stats.push_back(stats_.cluster_ptr(c.name));
    }
    for (const auto& r : v->snapshot->routes) v->route_stats.push_back(stats_.route_ptr(r.spec->name));
    view_ = std::move(v);
    // The old view may have been the last holder of removed routes' counters.
    stats_.sweep(view_->snapshot->config.listeners);
}

void WorkerContext::sweep_pools() {
    if (view_) stats_.sweep(view_->snapshot->config.listeners);  // exchanges on old views may have ended since
    auto now = std::chrono::steady_clock::now();
    for (auto it = pools_.begin(); it != pools_.end();) {
        it->second->sweep(now, kUpstreamIdle);
        // Only this map holds it: no snapshot names the endpoint any more.
        if (it->second.use_count() == 1) it = pools_.erase(it);
        else ++it;
    }
    sweep_timer_.expires_after(kSweepEvery);
    sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) sweep_pools();
    });
}

std::uint64_t WorkerContext::upstream_connects(const std::string& key) const {
    auto it = pools_.find(key);
    return it == pools_.end() ? 0 : it->second->connects;
}

std::size_t WorkerContext::upstream_idle(const std::string& key) const {
    auto it = pools_.find(key);
    return it == pools_.end() ? 0 : it->second->idle_count();
}

std::unordered_map<std::string, WorkerContext::EndpointLoad> WorkerContext::endpoint_loads() const {
    std::unordered_map<std::string, EndpointLoad> out;
    for (const auto& [key, pool] : pools_) out[key] = {pool->active_requests, pool->active_tunnels};
    return out;
}

void WorkerContext::add_downstream(Downstream* d) {
    downstreams_.insert(d);
    live_.fetch_add(1, std::memory_order_release);
}

void WorkerContext::remove_downstream(Downstream* d) {
    downstreams_.erase(d);
    live_.fetch_sub(1, std::memory_order_release);
}

void WorkerContext::drain_connections(const ListenerInfo* listener, std::chrono::milliseconds window) {
    if (!listener) drain_ends_ = std::chrono::steady_clock::now() + window;
    std::vector<std::weak_ptr<Downstream>> open;
    for (auto* d : downstreams_) {
        if (listener && d->listener() != listener) continue;
        d->close_if_idle();
        open.push_back(d->weak_from_this());
    }
    // Whatever is still open gets at least half the window, then is closed at
    // evenly spread instants so clients do not all reconnect at once.
    std::shuffle(open.begin(), open.end(), std::mt19937(static_cast<unsigned>(index_ + 1)));
    for (std::size_t i = 0; i < open.size(); ++i) {
        auto at = window / 2 + window * (i + 1) / (2 * open.size());
        auto timer = std::make_shared<asio::steady_timer>(io_, at);
        timer->async_wait([timer, connection = open[i]](const boost::system::error_code& ec) {
            if (ec) return;
            if (auto d = connection.lock()) d->abort(CloseReason::drain);
        });
    }
}

void WorkerContext::join_drain(std::weak_ptr<Downstream> d) {
    if (!drain_ends_) return;
    const auto left = *drain_ends_ - std::chrono::steady_clock::now();
    auto timer = std::make_shared<asio::steady_timer>(io_, left > left.zero() ? left / 2 : left.zero());
    timer->async_wait([timer, connection = std::move(d)](const boost::system::error_code& ec) {
        if (ec) return;
        if (auto c = connection.lock()) c->abort(CloseReason::drain);
    });
}

void WorkerContext::abort_all() {
    for (auto* d : downstreams_) d->abort(CloseReason::error);
    sweep_timer_.cancel();
}

ConnectionList WorkerContext::connections(const admin::ConnectionsQuery& q) const {
    ConnectionList out;
    std::vector<ConnectionInfo> live;
    for (const auto* d : downstreams_) d->describe(live);
    for (auto& info : live) {
        if (!q.kind.empty() && q.kind != info.kind) continue;
        if (!q.route.empty() && q.route != info.route) continue;
        ++out.total;
        ++(std::string_view(info.kind) == "websocket" ? out.websockets : out.streams);
        info.worker = index_;
        out.oldest.push_back(std::move(info));
    }
    // Keep the oldest `limit`: what an operator looks for first.
    auto older = [](const ConnectionInfo& a, const ConnectionInfo& b) { return a.started < b.started; };
    if (out.oldest.size() > q.limit) {
        std::nth_element(out.oldest.begin(), out.oldest.begin() + static_cast<std::ptrdiff_t>(q.limit), out.oldest.end(),
                         older);
        out.oldest.resize(q.limit);
    }
    std::sort(out.oldest.begin(), out.oldest.end(), older);
    return out;
}

}  // namespace sluice::proxy
