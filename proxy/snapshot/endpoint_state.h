// Health of one endpoint of one cluster, shared by every worker and the health
// checker. Only atomics: workers read it on every pick without a lock.
//
// The registry keeps one state per (cluster, endpoint) across config changes,
// so an endpoint that stays in its cluster keeps its health and ejection.
#pragma once
#include "config/spec.h"
#include "proxy/net/coarse_clock.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

namespace sluice::proxy {

// Ejections last seconds: the coarse clock (proxy/net/coarse_clock.h, a
// memory read) is enough to start them and to check against them.
inline std::int64_t coarse_now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(coarse_now().time_since_epoch()).count();
}

struct EndpointState {
    std::atomic<bool> healthy{true};             // active checks; new endpoints are used until proven bad
    std::atomic<bool> passed_check{false};       // an active check has passed once (probes.ready_clusters)
    std::atomic<std::int64_t> ejected_until{0};  // passive ejection, steady-clock ns
    std::atomic<std::uint32_t> failures{0};      // consecutive connect failures or 5xx
    std::atomic<std::uint32_t> ejections{0};     // grows the next ejection's length
    std::atomic<std::uint32_t> admitted{0};      // requests in flight under max_requests_per_endpoint (admission.h)

    bool ejected(std::int64_t now) const { return ejected_until.load(std::memory_order_relaxed) > now; }
    bool available(std::int64_t now) const { return healthy.load(std::memory_order_relaxed) && !ejected(now); }
};

class Admission;

// Control thread only.
class EndpointRegistry {
public:
    std::shared_ptr<EndpointState> get(const std::string& cluster, const std::string& endpoint);
    // The admission state of a cluster (its in-flight cap and queue).
    std::shared_ptr<Admission> admission(const std::string& cluster);
    // Forgets endpoints and clusters no longer in `cfg` (snapshots still holding them keep them alive).
    void retain(const config::Config& cfg);

private:
    std::map<std::pair<std::string, std::string>, std::shared_ptr<EndpointState>> states_;
    std::map<std::string, std::shared_ptr<Admission>> admissions_;
};

}  // namespace sluice::proxy
