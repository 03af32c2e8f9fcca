#include "proxy/snapshot.h"

#include <map>

namespace sluice::proxy {

std::shared_ptr<const Snapshot> build_snapshot(config::Config cfg, std::uint64_t version, bool builtin_default) {
    auto snap = std::make_shared<Snapshot>();
    snap->version = version;
    snap->builtin_default = builtin_default;
    snap->config = std::move(cfg);
    const auto& c = snap->config;

    std::map<std::string, std::size_t> cluster_index;
    for (const auto& cs : c.clusters) {
        ClusterRuntime cr;
        cr.name = cs.name;
        for (const auto& e : cs.endpoints) {
            EndpointRuntime er{e.text, e.host, e.port, std::nullopt};
            boost::system::error_code ec;
            auto ip = boost::asio::ip::make_address(e.host, ec);
            if (!ec) er.ip = ip;
            cr.endpoints.push_back(std::move(er));
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

ConfigStore::ConfigStore(std::shared_ptr<const Snapshot> initial) : snapshot_(std::move(initial)) {}

std::shared_ptr<const Snapshot> ConfigStore::current() const {
    std::lock_guard lock(mu_);
    return snapshot_;
}

void ConfigStore::publish(std::shared_ptr<const Snapshot> next) {
    {
        std::lock_guard lock(mu_);
        snapshot_ = std::move(next);
    }
    generation_.fetch_add(1, std::memory_order_release);
}

}  // namespace sluice::proxy
