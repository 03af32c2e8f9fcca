// Per-worker counters of tunnels, by route name. Only the owning worker writes
// them; other threads read them by posting to the worker (Server::tunnel_stats),
// so the data path touches no shared cache line and takes no lock.
#pragma once
#include "proxy/downstream.h"

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>

namespace sluice::proxy {

struct Histogram {
    // Seconds; the buckets suit WebSocket lifetimes, from a quick test to a day.
    static constexpr std::array<double, 9> kBounds = {0.1, 1, 10, 60, 300, 1800, 3600, 14400, 86400};
    std::array<std::uint64_t, kBounds.size() + 1> counts{};  // last: +Inf
    double sum = 0;
    std::uint64_t count = 0;
    void observe(double seconds);
    void add(const Histogram& other);
};

struct TunnelCounters {
    std::uint64_t active = 0;
    std::uint64_t opened = 0;
    std::uint64_t bytes_upstream = 0;    // client to upstream
    std::uint64_t bytes_downstream = 0;  // upstream to client
    std::array<std::uint64_t, 6> closes{};  // by CloseReason
    Histogram duration;
    void add(const TunnelCounters& other);
};

// How tunnel bytes moved on one worker: through a pipe (zero-copy) or copied.
struct TunnelPaths {
    std::uint64_t spliced_bytes = 0;
    std::uint64_t copied_bytes = 0;
};

class WorkerStats {
public:
    // Stable for the worker's life (node-based map).
    TunnelCounters& tunnels(const std::string& route) { return tunnels_[route]; }
    TunnelPaths& paths() { return paths_; }
    const std::unordered_map<std::string, TunnelCounters>& all_tunnels() const { return tunnels_; }

private:
    std::unordered_map<std::string, TunnelCounters> tunnels_;
    TunnelPaths paths_;
};

}  // namespace sluice::proxy
