#include "proxy/snapshot/router.h"

#include <boost/beast/core/string.hpp>

#include <algorithm>

namespace sluice::proxy {

using boost::beast::iequals;

Router::Router(const std::vector<config::RouteSpec>& routes) : routes_(&routes) {
    for (std::uint32_t i = 0; i < routes.size(); ++i) {
        const auto& m = routes[i].match;
        if (m.path) exact_[*m.path].push_back(i);
        else if (m.path_prefix) {
            auto& bucket = prefix_[*m.path_prefix];
            if (bucket.empty()) prefix_lengths_.push_back(m.path_prefix->size());
            bucket.push_back(i);
        }
    }
    std::sort(prefix_lengths_.begin(), prefix_lengths_.end(), std::greater<>());
    prefix_lengths_.erase(std::unique(prefix_lengths_.begin(), prefix_lengths_.end()), prefix_lengths_.end());
}

bool host_matches(std::string_view pattern, std::string_view host) {
    if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
        std::string_view suffix = pattern.substr(1);  // ".example.com"
        return host.size() > suffix.size() && iequals(host.substr(host.size() - suffix.size()), suffix);
    }
    return iequals(pattern, host);
}

bool Router::conditions_hold(std::uint32_t index, const RequestHead& req) const {
    const auto& m = (*routes_)[index].match;
    if (m.host && !host_matches(*m.host, req.host_name())) return false;
    if (!m.methods.empty() &&
        std::find(m.methods.begin(), m.methods.end(), req.method) == m.methods.end())
        return false;
    for (const auto& h : m.headers) {
        bool present = false, equal = false;
        for (const auto& f : req.fields) {
            if (!iequals(f.name, h.name)) continue;
            present = true;
            if (h.value && f.value == *h.value) equal = true;
        }
        if (h.value ? !equal : present != h.present) return false;
    }
    return true;
}

std::size_t Router::match(const RequestHead& req) const {
    if (!routes_) return npos;
    std::string_view path = req.path;
    if (auto it = exact_.find(path); it != exact_.end())
        for (auto i : it->second)
            if (conditions_hold(i, req)) return i;
    for (std::size_t len : prefix_lengths_) {
        if (len > path.size()) continue;
        auto it = prefix_.find(path.substr(0, len));
        if (it == prefix_.end()) continue;
        for (auto i : it->second)
            if (conditions_hold(i, req)) return i;
    }
    return npos;
}

}  // namespace sluice::proxy
