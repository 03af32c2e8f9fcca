#include "proxy/snapshot/endpoint_state.h"

#include "proxy/snapshot/admission.h"

#include <set>

namespace sluice::proxy {

std::shared_ptr<EndpointState> EndpointRegistry::get(const std::string& cluster, const std::string& endpoint) {
    auto& s = states_[{cluster, endpoint}];
    if (!s) s = std::make_shared<EndpointState>();
    return s;
}

std::shared_ptr<Admission> EndpointRegistry::admission(const std::string& cluster) {
    auto& a = admissions_[cluster];
    if (!a) a = std::make_shared<Admission>();
    return a;
}

void EndpointRegistry::retain(const config::Config& cfg) {
    std::set<std::pair<std::string, std::string>> keep;
    std::set<std::string> clusters;
    for (const auto& c : cfg.clusters) {
        clusters.insert(c.name);
        for (const auto& e : c.endpoints) keep.emplace(c.name, e.text);
    }
    for (auto it = admissions_.begin(); it != admissions_.end();) {
        if (clusters.count(it->first)) ++it;
        else it = admissions_.erase(it);
    }
    for (auto it = states_.begin(); it != states_.end();) {
        if (keep.count(it->first)) ++it;
        else it = states_.erase(it);
    }
}

}  // namespace sluice::proxy
