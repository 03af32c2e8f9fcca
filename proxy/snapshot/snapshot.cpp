#include "proxy/snapshot/snapshot.h"

#include "config/serialize.h"
#include "proxy/snapshot/admission.h"

#include <algorithm>
#include <cstdio>
#include <map>

namespace sluice::proxy {

namespace {
constexpr int kRingPointsPerEndpoint = 160;
}

std::uint64_t hash64(std::string_view data, std::uint64_t seed) {
    std::uint64_t h = seed;
    for (unsigned char c : data) {
        h ^= c;
        h *= 1099511628211ull;
    }
    // FNV alone mixes its last bytes poorly; a finaliser spreads them over the ring.
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

std::shared_ptr<const Snapshot> build_snapshot(config::Config cfg, std::uint64_t version, EndpointRegistry& registry,
                                               bool builtin_default, TlsMaterial tls) {
    auto snap = std::make_shared<Snapshot>();
    snap->tls = std::move(tls);
    snap->version = version;
    snap->builtin_default = builtin_default;
    snap->config = std::move(cfg);
    snap->hash = config::config_hash(snap->config);
    const auto& c = snap->config;

    std::map<std::string, std::size_t> cluster_index;
    for (const auto& cs : c.clusters) {
        ClusterRuntime cr;
        cr.name = cs.name;
        cr.policy = cs.lb_policy;
        cr.hash_on = cs.hash_on;
        cr.outlier = cs.outlier_detection;
        cr.http2 = cs.http2;
        const std::size_t ci = static_cast<std::size_t>(&cs - c.clusters.data());
        if (ci < snap->tls.clusters.size()) cr.tls = snap->tls.clusters[ci];
        for (const auto& e : cs.endpoints) {
            EndpointRuntime er{e.text, cr.tls ? e.text + "|" + cr.tls->id() : e.text, e.host, e.port, std::nullopt};
            boost::system::error_code ec;
            auto ip = boost::asio::ip::make_address(e.host, ec);
            if (!ec) er.ip = ip;
            char id[17];
            std::snprintf(id, sizeof id, "%016llx",
                          static_cast<unsigned long long>(hash64(cs.name + "/" + e.text)));
            er.id.assign(id, 12);
            er.state = registry.get(cs.name, e.text);
            cr.endpoints.push_back(std::move(er));
        }
        // build_snapshot runs only for a config being applied, so the shared
        // admission state takes the new cap here (the next admission sees it).
        cr.admission = registry.admission(cs.name);
        cr.queue_timeout = cs.queue.timeout;
        {
            std::vector<std::shared_ptr<EndpointState>> states;
            for (const auto& er : cr.endpoints) states.push_back(er.state);
            cr.admission->configure(cs.max_requests_per_endpoint, cs.queue.size, std::move(states));
        }
        if (cs.lb_policy == config::LbPolicy::hash) {
            // Each endpoint owns many points, keyed by its address, so adding one
            // takes only its share of keys from the others.
            for (std::uint32_t i = 0; i < cr.endpoints.size(); ++i)
                for (int p = 0; p < kRingPointsPerEndpoint; ++p)
                    cr.ring.emplace_back(hash64(cr.endpoints[i].key + "#" + std::to_string(p)), i);
            std::sort(cr.ring.begin(), cr.ring.end());
        }
        cluster_index[cs.name] = snap->clusters.size();
        snap->clusters.push_back(std::move(cr));
    }
    for (const auto& rs : c.routes) {
        RouteRuntime rr;
        rr.spec = &rs;
        rr.cluster = cluster_index.at(rs.cluster);  // validated: the cluster exists
        rr.timeouts = c.timeouts;
        const auto& o = rs.timeouts;
        if (o.connect) rr.timeouts.connect = *o.connect;
        if (o.upstream_response) rr.timeouts.upstream_response = *o.upstream_response;
        if (o.stream_idle) rr.timeouts.stream_idle = *o.stream_idle;
        if (o.websocket_idle) rr.timeouts.websocket_idle = *o.websocket_idle;
        if (o.max_duration) rr.timeouts.max_duration = *o.max_duration;
        snap->routes.push_back(rr);
    }
    snap->router = Router(c.routes);
    return snap;
}

}  // namespace sluice::proxy
