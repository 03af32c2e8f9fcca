#include "proxy/snapshot/endpoint_state.h"

#include <set>

namespace sluice::proxy {

std::shared_ptr<EndpointState> EndpointRegistry::get(const std::string& cluster, const std::string& endpoint) {
    auto& s = states_[{cluster, endpoint}];
    if (!s) s = std::make_shared<EndpointState>();
    return s;
}

void EndpointRegistry::retain(const config::Config& cfg) {
    std::set<std::pair<std::string, std::string>> keep;
    for (const auto& c : cfg.clusters)
        for (const auto& e : c.endpoints) keep.emplace(c.name, e.text);
    for (auto it = states_.begin(); it != states_.end();) {
        if (keep.count(it->first)) ++it;
        else it = states_.erase(it);
    }
}

}  // namespace sluice::proxy
