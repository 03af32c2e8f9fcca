// A worker: one thread, one io_context, its own acceptors, connections, buffers
// and upstream pools. Nothing here is shared with other workers; the control
// thread talks to a worker only by posting to its io_context.
#pragma once
#include "admin/connections_query.h"
#include "proxy/access_log.h"
#include "proxy/downstream.h"
#include "proxy/io_buffer.h"
#include "proxy/listener.h"
#include "proxy/pipe_pool.h"
#include "proxy/readiness.h"
#include "proxy/worker_stats.h"
#include "proxy/snapshot_store.h"
#include "proxy/upstream_pool.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <optional>
#include <random>
#include <future>
#include <span>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace sluice::proxy {

// One worker's view of a snapshot: the snapshot plus this worker's pools and
// round-robin positions for its clusters. Requests hold it while they run.
struct WorkerView {
    struct Cluster {
        std::vector<std::shared_ptr<EndpointPool>> pools;  // parallel to ClusterRuntime::endpoints
        std::uint32_t next = 0;                            // round robin
        std::int64_t active = 0;    // exchanges on this worker, for the retry budget
        std::int64_t retrying = 0;  // of which are retrying
    };
    std::shared_ptr<const Snapshot> snapshot;
    std::vector<Cluster> clusters;  // parallel to Snapshot::clusters
    std::vector<std::shared_ptr<RouteStats>> route_stats;      // parallel to Snapshot::routes (this worker's counters)
    std::vector<std::shared_ptr<ClusterStats>> cluster_stats;  // parallel to Snapshot::clusters
};

struct ConnectionList {
    std::size_t total = 0, websockets = 0, streams = 0;  // everything that matched
    std::vector<ConnectionInfo> oldest;                  // at most `limit`, oldest first
};

class Worker {
public:
    Worker(std::size_t index, SnapshotStore& store, AccessLog& access_log, bool splice = true);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Control thread.
    void start();
    // Takes over listening descriptor `fd` of `listener` (posted to the worker).
    void adopt_listener(std::shared_ptr<ListenerInfo> listener, int fd);
    // Drain, step 1: responses from now on tell clients to close the connection.
    void announce_drain();
    // Drain, step 2: stop accepting, close idle connections, close the rest
    // after their current exchange; those still open are closed at evenly spread
    // instants over `window`.
    void drain(std::chrono::milliseconds window);
    // A config change removed `listener`: stop accepting on it and drain its
    // connections as drain() does, over `window`.
    void remove_listener(std::shared_ptr<ListenerInfo> listener, std::chrono::milliseconds window);
    // After a publish: move this worker's view to the new snapshot now, so an
    // idle worker does not keep an old snapshot alive until its next request.
    void refresh();
    // Closes every connection now and stops the thread.
    void stop();
    std::size_t live_connections() const { return live_.load(std::memory_order_acquire); }

    // Worker thread.
    boost::asio::io_context& io() { return io_; }
    BufferPool& buffers() { return buffers_; }
    PipePool& pipes() { return pipes_; }
    Readiness& readiness() { return readiness_; }
    WorkerStats& stats() { return stats_; }
    // Writes one access log line when the log is on.
    void log_access(const AccessRecord& r) {
        if (access_log_.enabled()) access_log_.write(index_, r);
    }
    bool access_log_enabled() const { return access_log_.enabled(); }
    // Live tunnels and streams that match `q` (runs on the worker thread).
    ConnectionList connections(const admin::ConnectionsQuery& q) const;
    bool splice_enabled() const { return splice_; }
    // A buffer for bytes that pass straight through (read, then written at once).
    std::span<char> scratch() { return {scratch_.get(), kScratchSize}; }
    std::size_t index() const { return index_; }
    std::minstd_rand& rng() { return rng_; }
    bool draining() const { return draining_; }
    // The current snapshot, refreshed when the store published a new one.
    const std::shared_ptr<WorkerView>& view();
    // An exchange lets go of its view. When it held the last reference to an
    // older view, that view may have held the last references to a removed
    // route's counters: they go now (one sweep per old view, not per exchange).
    void release_view(std::shared_ptr<WorkerView>& v) {
        bool last_of_old = v && v != view_ && v.use_count() == 1;
        v.reset();
        if (last_of_old) stats_.sweep(view_->snapshot->config.listeners);
    }
    void add_downstream(Downstream* d);
    // A tunnel that opened after the drain planned its instants (its upgrade
    // was in flight then) gets an instant of its own in what is left of the window.
    void join_drain(std::weak_ptr<Downstream> d);
    void remove_downstream(Downstream* d);
    // Upstream connections opened to `key` by this worker (tests count reuse with it).
    std::uint64_t upstream_connects(const std::string& key) const;
    struct EndpointLoad {
        std::int64_t active_requests = 0, active_tunnels = 0;
    };
    std::unordered_map<std::string, EndpointLoad> endpoint_loads() const;

    // Any thread, blocking: runs `fn` on the worker thread and returns its result.
    template <class Fn>
    auto call(Fn fn) -> decltype(fn());

private:
    static constexpr std::size_t kScratchSize = 64 * 1024;
    struct Acceptor;
    void refresh_view();
    void sweep_pools();
    void accept_next(Acceptor* a);
    // Stops the acceptors `listener` (all when null) and drains their connections.
    void drain_connections(const ListenerInfo* listener, std::chrono::milliseconds window);

    std::size_t index_;
    SnapshotStore& store_;
    AccessLog& access_log_;
    bool splice_;
    // Outlive io_: handlers destroyed with io_ may still give buffers and pipes back.
    BufferPool buffers_;
    PipePool pipes_;
    WorkerStats stats_;
    std::unique_ptr<char[]> scratch_{new char[kScratchSize]};
    std::unordered_set<Downstream*> downstreams_;
    std::atomic<std::size_t> live_{0};

    boost::asio::io_context io_{1};
    Readiness readiness_{io_};  // plain tunnels' sockets
    std::unordered_map<std::string, std::shared_ptr<EndpointPool>> pools_;
    std::shared_ptr<WorkerView> view_;
    std::uint64_t view_generation_ = 0;
    std::vector<std::unique_ptr<Acceptor>> acceptors_;
    boost::asio::steady_timer sweep_timer_{io_};
    bool draining_ = false;
    std::optional<std::chrono::steady_clock::time_point> drain_ends_;  // set when a drain planned its instants
    std::minstd_rand rng_{static_cast<unsigned>(index_ * 7919 + 17)};
    std::atomic<bool> running_{false};
    std::thread thread_;
};

template <class Fn>
auto Worker::call(Fn fn) -> decltype(fn()) {
    if (!running_.load(std::memory_order_acquire)) return fn();  // stopped: nothing runs concurrently
    std::promise<decltype(fn())> p;
    boost::asio::post(io_, [&] { p.set_value(fn()); });
    return p.get_future().get();
}

}  // namespace sluice::proxy
