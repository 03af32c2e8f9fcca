// Picking an endpoint for a new exchange: the five policies of SPEC, over the
// endpoints that are available (healthy and not ejected), skipping the ones a
// retry already tried. Runs on a worker; reads shared state through atomics.
#pragma once
#include "proxy/message/http_head.h"
#include "proxy/snapshot/snapshot.h"
#include "proxy/worker/worker_view.h"

#include <cstdint>
#include <random>
#include <span>
#include <string_view>

namespace sluice::proxy {

inline constexpr std::string_view kAffinityCookie = "sluice-affinity";

struct Pick {
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);
    std::size_t endpoint = npos;
    bool set_affinity = false;  // sticky: the client has no valid cookie for this endpoint yet
};

struct PickInput {
    const ClusterRuntime& cluster;
    WorkerView::Cluster& local;  // round-robin position, per-worker loads
    const RequestHead& request;
    std::string_view peer_ip;
    std::span<const std::size_t> tried;  // endpoints a retry must avoid
    std::minstd_rand& rng;
    std::int64_t now;
};

Pick pick_endpoint(const PickInput& in);

// The value of cookie `name` in the request's Cookie fields, or empty.
std::string_view find_cookie(const RequestHead& req, std::string_view name);
// The value of query parameter `name` (not percent-decoded), or empty.
std::string_view find_query(std::string_view query, std::string_view name);

// Passive outlier detection: the result of an exchange (or connect) on an endpoint.
void report_endpoint_result(const ClusterRuntime& cluster, std::size_t endpoint, bool failed, std::int64_t now);

// How many of the cluster's endpoints are available now.
std::size_t available_count(const ClusterRuntime& cluster, std::int64_t now);

}  // namespace sluice::proxy
