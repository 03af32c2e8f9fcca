// What the admin API shows of the running proxy: GET /metrics, /clusters and
// /connections. Each view asks every worker for its own counters (posted to
// the worker, so nothing on the request path is shared or locked) and adds
// them up here on the asking thread.
#pragma once
#include "admin/admin_server.h"
#include "admin/backend.h"
#include "proxy/server/listener_set.h"
#include "proxy/snapshot/snapshot_store.h"
#include "proxy/worker/access_log.h"
#include "proxy/worker/worker_context.h"
#include "proxy/worker/worker_stats.h"

#include <nlohmann/json.hpp>
#include <prometheus/registry.h>

#include <string>
#include <unordered_map>

namespace sluice::proxy {

class AdminViews {
public:
    // All owned by the Server and outliving this; `metrics` holds the
    // control-plane families (sluice_build_info is registered here).
    AdminViews(ListenerSet::Workers& workers, const SnapshotStore& store, const ListenerSet& listeners,
               const AccessLog& access_log, prometheus::Registry& metrics);

    // The Prometheus text format; the admin and probes servers report their
    // own accept errors (either may be null).
    std::string metrics_text(const admin::AdminServer* admin, const admin::AdminServer* probes);
    nlohmann::json clusters_json();
    nlohmann::json connections_json(const admin::ConnectionsQuery& q);
    // Every worker's counters, summed (blocks until each worker answered).
    StatsTotals collect_stats();
    // Requests and tunnels in flight per endpoint pool key, summed over workers.
    std::unordered_map<std::string, WorkerContext::EndpointLoad> endpoint_loads();

private:
    ListenerSet::Workers& workers_;
    const SnapshotStore& store_;
    const ListenerSet& listeners_;
    const AccessLog& access_log_;
    prometheus::Registry& metrics_;
};

}  // namespace sluice::proxy
