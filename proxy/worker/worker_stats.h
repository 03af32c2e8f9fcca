// Per-worker counters behind /metrics. Only the owning worker writes them;
// the control thread reads them by posting to the worker (Server::collect_stats),
// so the request path touches no shared cache line and takes no lock. A scrape
// copies each worker's counters and adds them up.
#pragma once
#include "config/spec.h"
#include "proxy/message/proxy_error.h"
#include "proxy/net/downstream.h"

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace sluice::proxy {

// Bucket upper bounds, in seconds.
inline constexpr double kRequestBounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                            0.25,  0.5,    1,     2.5,  5,     10,   30, 60, 300};
inline constexpr double kFirstByteBounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                              0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
// Between two pieces of a stream: a token every few ms to a model thinking for a minute.
inline constexpr double kGapBounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
// WebSocket lifetimes, from a quick test to a day.
inline constexpr double kTunnelBounds[] = {0.1, 1, 10, 60, 300, 1800, 3600, 14400, 86400};

class Histogram {
public:
    explicit Histogram(std::span<const double> bounds) : bounds_(bounds), counts_(bounds.size() + 1) {}
    void observe(double seconds);
    void add(const Histogram& other);
    std::span<const double> bounds() const { return bounds_; }
    const std::vector<std::uint64_t>& counts() const { return counts_; }  // per bucket, last: +Inf
    double sum() const { return sum_; }
    std::uint64_t count() const { return count_; }

private:
    std::span<const double> bounds_;
    std::vector<std::uint64_t> counts_;
    double sum_ = 0;
    std::uint64_t count_ = 0;
};

struct TunnelCounters {
    std::int64_t active = 0;
    std::uint64_t opened = 0;
    std::uint64_t bytes_upstream = 0;    // client to upstream
    std::uint64_t bytes_downstream = 0;  // upstream to client
    std::array<std::uint64_t, 6> closes{};  // by CloseReason
    Histogram duration{kTunnelBounds};
    void add(const TunnelCounters& other);
};

struct RouteStats {
    struct Responses {
        std::string listener;
        int code = 0;
        std::uint64_t count = 0;
    };
    std::vector<Responses> responses;  // by listener and exact status code; a handful per route
    std::array<std::uint64_t, kErrorKindCount> errors{};  // answers made by sluice, by x-sluice-error
    Histogram duration{kRequestBounds};      // head received to response complete (or 101 relayed)
    Histogram first_byte{kFirstByteBounds};  // streams: request sent upstream to first body byte relayed
    Histogram gap{kGapBounds};               // streams: between two body pieces relayed
    std::int64_t streams_active = 0;
    std::uint64_t streams = 0;
    std::array<std::uint64_t, 4> cancels{};  // the client left, by CancelPhase
    TunnelCounters tunnels;

    void count_response(const std::string& listener, int code);
    void add(const RouteStats& other);
};

// Time in an admission queue: none at all to a generation's length.
inline constexpr double kQueueWaitBounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5,
                                              7.5, 10, 15, 20, 30, 45, 60, 120, 300};

struct ClusterStats {
    std::uint64_t connect_failures = 0;  // refused, unreachable, timed out, unresolvable
    std::uint64_t retries = 0;
    Histogram queue_wait{kQueueWaitBounds};  // capped clusters: each admitted request's wait (0 when none)
    void add(const ClusterStats& o) {
        connect_failures += o.connect_failures;
        retries += o.retries;
        queue_wait.add(o.queue_wait);
    }
};

struct ListenerStats {
    std::uint64_t tls_handshakes = 0;          // completed
    std::uint64_t tls_handshake_failures = 0;  // failed or timed out
    std::uint64_t accept_errors = 0;           // accepts that failed (out of descriptors): each paused the acceptor
    void add(const ListenerStats& o) {
        tls_handshakes += o.tls_handshakes;
        tls_handshake_failures += o.tls_handshake_failures;
        accept_errors += o.accept_errors;
    }
};

// How tunnel bytes moved on one worker: through a pipe (zero-copy) or copied.
struct TunnelPaths {
    std::uint64_t spliced_bytes = 0;
    std::uint64_t copied_bytes = 0;
};

// A copy of the counters, summed over workers; names sorted for stable output.
struct StatsTotals {
    std::map<std::string, RouteStats> routes;
    std::map<std::string, ClusterStats> clusters;
    std::map<std::string, ListenerStats> listeners;
    TunnelPaths paths;
    void add(const StatsTotals& other);
};

class WorkerStats {
public:
    // Counters of one route or cluster live as long as something holds them:
    // the worker's view of a snapshot naming it, an exchange still running on
    // an older view, or a tunnel. sweep() then drops them, so a removed route
    // leaves /metrics (and memory) once nothing live uses it.
    // "" holds requests that matched no route or were refused before routing.
    std::shared_ptr<RouteStats> route_ptr(const std::string& name);
    std::shared_ptr<ClusterStats> cluster_ptr(const std::string& name);
    RouteStats& route(const std::string& name) { return *route_ptr(name); }
    ListenerStats& listener(const std::string& name) { return listeners_[name]; }
    TunnelPaths& paths() { return paths_; }
    StatsTotals copy() const;
    // Drops route and cluster counters only this map holds, and listener
    // counters of listeners not in `listeners`.
    void sweep(const std::vector<config::ListenerSpec>& listeners);
    std::size_t route_count() const { return routes_.size(); }

private:
    std::unordered_map<std::string, std::shared_ptr<RouteStats>> routes_;
    std::unordered_map<std::string, std::shared_ptr<ClusterStats>> clusters_;
    std::unordered_map<std::string, ListenerStats> listeners_;
    TunnelPaths paths_;
};

}  // namespace sluice::proxy
