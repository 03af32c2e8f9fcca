// The immutable runtime form of one config version: routes compiled into a
// router, clusters with resolved endpoints, each route's effective timeouts,
// the TLS material. Each exchange and tunnel holds the snapshot it started
// with; snapshot_store.h is where the current one is published.
#pragma once
#include "config/spec.h"
#include "proxy/snapshot/endpoint_state.h"
#include "proxy/snapshot/router.h"
#include "proxy/snapshot/tls_context.h"

#include <boost/asio/ip/address.hpp>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sluice::proxy {

struct EndpointRuntime {
    std::string key;   // "127.0.0.1:3000" as configured
    std::string pool_key;  // names the keep-alive pool: the key, plus the TLS material's id for a TLS cluster
    std::string host;  // for connect (resolved on each new connection unless an IP)
    std::uint16_t port = 0;
    std::optional<boost::asio::ip::address> ip;  // set when host is an IP literal
    std::string id;    // opaque name for the sluice-affinity cookie (not the address)
    std::shared_ptr<EndpointState> state;  // health and ejection, shared across workers and changes
};

struct ClusterRuntime {
    std::string name;
    std::vector<EndpointRuntime> endpoints;
    config::LbPolicy policy = config::LbPolicy::round_robin;
    std::optional<config::HashOn> hash_on;
    config::OutlierDetection outlier;
    std::shared_ptr<UpstreamTls> tls;  // null: plaintext
    bool http2 = false;                // protocol: http2
    std::shared_ptr<Admission> admission;  // max_requests_per_endpoint and the queue, shared across changes
    config::Duration queue_timeout{};
    // Consistent-hash ring (lb_policy hash): points sorted, each naming an endpoint.
    std::vector<std::pair<std::uint64_t, std::uint32_t>> ring;
};

struct RouteRuntime {
    const config::RouteSpec* spec = nullptr;
    std::size_t cluster = 0;    // index into Snapshot::clusters
    config::Timeouts timeouts;  // global values with the route's overrides applied
};

struct Snapshot {
    std::uint64_t version = 0;
    bool builtin_default = false;  // started without --config: 404s explain how to add a route
    config::Config config;
    std::string hash;  // config::config_hash(config): GET /config and sluice_config_info
    std::vector<ClusterRuntime> clusters;
    std::vector<RouteRuntime> routes;
    Router router;
    TlsMaterial tls;  // listener certificates and cluster TLS, loaded

    // Listener `name` as this config has it, or null.
    const config::ListenerSpec* listener(const std::string& name) const {
        for (const auto& l : config.listeners)
            if (l.name == name) return &l;
        return nullptr;
    }
    // The certificates of listener `name`, or null.
    std::shared_ptr<ServerTls> tls_for(const std::string& name) const {
        for (std::size_t i = 0; i < config.listeners.size() && i < tls.listeners.size(); ++i)
            if (config.listeners[i].name == name) return tls.listeners[i];
        return nullptr;
    }

    Snapshot() { live_.fetch_add(1, std::memory_order_relaxed); }
    ~Snapshot() { live_.fetch_sub(1, std::memory_order_relaxed); }
    Snapshot(const Snapshot&) = delete;  // routes and router point into `config`
    Snapshot& operator=(const Snapshot&) = delete;

    // Snapshots alive in the process: a request or tunnel still holding an old
    // one keeps it; when all have ended this is back to 1.
    static std::int64_t live_count() { return live_.load(std::memory_order_relaxed); }

private:
    static inline std::atomic<std::int64_t> live_{0};
};

// Builds the runtime form of a validated config; endpoint states come from
// `registry` (control thread), so they carry over from the previous snapshot.
std::shared_ptr<const Snapshot> build_snapshot(config::Config cfg, std::uint64_t version, EndpointRegistry& registry,
                                               bool builtin_default = false, TlsMaterial tls = {});

// A stable 64-bit hash (FNV-1a) for hash policies and endpoint ids.
std::uint64_t hash64(std::string_view data, std::uint64_t seed = 14695981039346656037ull);

}  // namespace sluice::proxy
