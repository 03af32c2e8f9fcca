// What every connection, exchange and tunnel on one worker thread reaches:
// the thread's io_context, buffers, pipes, readiness set, counters and access
// log, the current view of the config with this worker's upstream pools, and
// the list of its client connections with their drain schedule. Nothing here
// is shared with other workers, so none of it takes a lock; the thread that
// runs it, its acceptors and the control thread's calls are Worker's (worker.h).
//
// Every method runs on the worker thread, except where it says otherwise.
#pragma once
#include "admin/connections_query.h"
#include "proxy/net/downstream.h"
#include "proxy/net/io_buffer.h"
#include "proxy/net/pipe_pool.h"
#include "proxy/net/readiness.h"
#include "proxy/snapshot/snapshot_store.h"
#include "proxy/worker/access_log.h"
#include "proxy/worker/worker_stats.h"
#include "proxy/worker/worker_view.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace sluice::proxy {

struct ConnectionList {
    std::size_t total = 0, websockets = 0, streams = 0;  // everything that matched
    std::vector<ConnectionInfo> oldest;                  // at most `limit`, oldest first
};

class WorkerContext {
public:
    WorkerContext(std::size_t index, SnapshotStore& store, AccessLog& access_log, bool splice);
    WorkerContext(const WorkerContext&) = delete;
    WorkerContext& operator=(const WorkerContext&) = delete;

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
    bool splice_enabled() const { return splice_; }
    // A buffer for bytes that pass straight through (read, then written at once).
    std::span<char> scratch() { return {scratch_.get(), kScratchSize}; }
    std::size_t index() const { return index_; }
    std::minstd_rand& rng() { return rng_; }

    // The current view, moved to a new snapshot when the store published one.
    const std::shared_ptr<WorkerView>& view();
    // An exchange lets go of its view. When it held the last reference to an
    // older view, that view may have held the last references to a removed
    // route's counters: they go now (one sweep per old view, not per exchange).
    void release_view(std::shared_ptr<WorkerView>& v) {
        bool last_of_old = v && v != view_ && v.use_count() == 1;
        v.reset();
        if (last_of_old) stats_.sweep(view_->snapshot->config.listeners);
    }
    // Every few seconds: idle upstream connections past their time close, and
    // pools no snapshot names any more go.
    void sweep_pools();

    // The client connections (HTTP connections and tunnels) of this worker.
    void add_downstream(Downstream* d);
    void remove_downstream(Downstream* d);
    // Any thread.
    std::size_t live_connections() const { return live_.load(std::memory_order_acquire); }
    // Responses from now on tell clients to close the connection.
    void announce_drain() { draining_ = true; }
    bool draining() const { return draining_; }
    // Closes the idle connections of `listener` (all when null) and plans an
    // instant for each of the others, evenly spread over the second half of `window`.
    void drain_connections(const ListenerInfo* listener, std::chrono::milliseconds window);
    // A tunnel that opened after the drain planned its instants (its upgrade
    // was in flight then) gets an instant of its own in what is left of the window.
    void join_drain(std::weak_ptr<Downstream> d);
    // Closes every connection now.
    void abort_all();
    // Live tunnels and streams that match `q`.
    ConnectionList connections(const admin::ConnectionsQuery& q) const;

    // Upstream connections opened to `key` by this worker (tests count reuse with it).
    std::uint64_t upstream_connects(const std::string& key) const;
    std::size_t upstream_idle(const std::string& key) const;
    struct EndpointLoad {
        std::int64_t active_requests = 0, active_tunnels = 0;
    };
    std::unordered_map<std::string, EndpointLoad> endpoint_loads() const;

private:
    static constexpr std::size_t kScratchSize = 64 * 1024;
    void refresh_view();

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
    boost::asio::steady_timer sweep_timer_{io_};
    bool draining_ = false;
    std::optional<std::chrono::steady_clock::time_point> drain_ends_;  // set when a drain planned its instants
    std::minstd_rand rng_{static_cast<unsigned>(index_ * 7919 + 17)};
};

}  // namespace sluice::proxy
