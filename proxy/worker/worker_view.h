// One worker's view of a config snapshot: the snapshot plus this worker's
// upstream pools, balancer positions and counters for its clusters and
// routes. An exchange holds the view it started with until it ends.
#pragma once
#include "proxy/net/upstream_pool.h"
#include "proxy/snapshot/snapshot.h"
#include "proxy/worker/worker_stats.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace sluice::proxy {

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

}  // namespace sluice::proxy
