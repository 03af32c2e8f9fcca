#include "proxy/worker.h"

#include "proxy/http_connection.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

namespace sluice::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr std::size_t kMaxIdlePerEndpoint = 1024;
constexpr auto kUpstreamIdle = std::chrono::seconds(60);
constexpr auto kSweepEvery = std::chrono::seconds(5);
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);
constexpr auto kAcceptLogEvery = std::chrono::seconds(10);

}  // namespace

struct Worker::Acceptor {
    Acceptor(asio::io_context& io, std::shared_ptr<ListenerInfo> l) : info(std::move(l)), acceptor(io), backoff(io) {}
    std::shared_ptr<ListenerInfo> info;
    tcp::acceptor acceptor;
    asio::steady_timer backoff;
    std::chrono::steady_clock::time_point logged{};  // the last "cannot accept" warning
};

Worker::Worker(std::size_t index, SnapshotStore& store, AccessLog& access_log, bool splice)
    : index_(index), store_(store), access_log_(access_log), splice_(splice) {}

Worker::~Worker() { stop(); }

void Worker::start() {
    running_ = true;
    thread_ = std::thread([this] {
        auto guard = asio::make_work_guard(io_);
        sweep_pools();
        io_.run();
    });
}

void Worker::adopt_listener(std::shared_ptr<ListenerInfo> listener, int fd) {
    asio::post(io_, [this, listener = std::move(listener), fd] {
        auto a = std::make_unique<Acceptor>(io_, listener);
        boost::system::error_code ec;
        a->acceptor.assign(listener->bound.protocol(), fd, ec);
        if (ec) {
            spdlog::error("worker {}: cannot use the socket of listener \"{}\": {}", index_, listener->spec.name,
                          ec.message());
            return;
        }
        accept_next(a.get());
        acceptors_.push_back(std::move(a));
    });
}

void Worker::accept_next(Acceptor* a) {
    a->acceptor.async_accept([this, a](const boost::system::error_code& ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || !a->acceptor.is_open()) return;
        if (ec) {
            // Out of descriptors or memory: the connection stays in the backlog
            // and the socket stays readable, so an immediate retry would spin.
            // Pause this acceptor, count it, and warn once per interval.
            ++stats_.listener(a->info->spec.name).accept_errors;
            if (auto now = std::chrono::steady_clock::now(); now - a->logged >= kAcceptLogEvery) {
                a->logged = now;
                spdlog::warn("listener \"{}\" cannot accept connections: {}; retrying every {}ms{}", a->info->spec.name,
                             ec.message(), kAcceptBackoff.count(),
                             ec == asio::error::no_descriptors ? " (raise the open-file limit, ulimit -n)" : "");
            }
            a->backoff.expires_after(kAcceptBackoff);
            a->backoff.async_wait([this, a](const boost::system::error_code& wec) {
                if (!wec) accept_next(a);
            });
            return;
        }
        std::make_shared<HttpConnection>(*this, a->info, std::move(socket))->start();
        accept_next(a);
    });
}

const std::shared_ptr<WorkerView>& Worker::view() {
    // One atomic load per request; the pointer itself is reloaded only after a publish.
    std::uint64_t generation = store_.generation();
    if (generation != view_generation_) {
        view_generation_ = generation;
        refresh_view();
    }
    return view_;
}

void Worker::refresh() {
    asio::post(io_, [this] { view(); });
}

void Worker::refresh_view() {
    auto v = std::make_shared<WorkerView>();
    v->snapshot = store_.current();
    for (const auto& c : v->snapshot->clusters) {
        WorkerView::Cluster wc;
        wc.next = static_cast<std::uint32_t>(index_);  // workers start at different endpoints
        for (const auto& e : c.endpoints) {
            auto& pool = pools_[e.pool_key];
            if (!pool) pool = std::make_shared<EndpointPool>(e.pool_key, kMaxIdlePerEndpoint);
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

void Worker::sweep_pools() {
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

std::uint64_t Worker::upstream_connects(const std::string& key) const {
    auto it = pools_.find(key);
    return it == pools_.end() ? 0 : it->second->connects;
}

void Worker::add_downstream(Downstream* d) {
    downstreams_.insert(d);
    live_.fetch_add(1, std::memory_order_release);
}

void Worker::remove_downstream(Downstream* d) {
    downstreams_.erase(d);
    live_.fetch_sub(1, std::memory_order_release);
}

void Worker::announce_drain() {
    asio::post(io_, [this] { draining_ = true; });
}

void Worker::drain(std::chrono::milliseconds window) {
    asio::post(io_, [this, window] {
        draining_ = true;
        drain_connections(nullptr, window);
    });
}

void Worker::remove_listener(std::shared_ptr<ListenerInfo> listener, std::chrono::milliseconds window) {
    asio::post(io_, [this, listener, window] { drain_connections(listener.get(), window); });
}

void Worker::drain_connections(const ListenerInfo* listener, std::chrono::milliseconds window) {
    for (auto& a : acceptors_) {
        if (listener && a->info.get() != listener) continue;
        boost::system::error_code ec;
        a->acceptor.close(ec);
    }
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

void Worker::join_drain(std::weak_ptr<Downstream> d) {
    if (!drain_ends_) return;
    const auto left = *drain_ends_ - std::chrono::steady_clock::now();
    auto timer = std::make_shared<asio::steady_timer>(io_, left > left.zero() ? left / 2 : left.zero());
    timer->async_wait([timer, connection = std::move(d)](const boost::system::error_code& ec) {
        if (ec) return;
        if (auto c = connection.lock()) c->abort(CloseReason::drain);
    });
}

ConnectionList Worker::connections(const admin::ConnectionsQuery& q) const {
    ConnectionList out;
    ConnectionInfo info;
    for (const auto* d : downstreams_) {
        info = ConnectionInfo{};
        if (!d->describe(info)) continue;
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

std::unordered_map<std::string, Worker::EndpointLoad> Worker::endpoint_loads() const {
    std::unordered_map<std::string, EndpointLoad> out;
    for (const auto& [key, pool] : pools_) out[key] = {pool->active_requests, pool->active_tunnels};
    return out;
}

void Worker::stop() {
    if (!thread_.joinable()) return;
    asio::post(io_, [this] {
        for (auto* d : downstreams_) d->abort(CloseReason::error);
        for (auto& a : acceptors_) {
            boost::system::error_code ec;
            a->acceptor.close(ec);
        }
        sweep_timer_.cancel();
        io_.stop();
    });
    thread_.join();
    running_ = false;
}

}  // namespace sluice::proxy
