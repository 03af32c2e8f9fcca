// The route table: a pure lookup from a request head to a route.
//
// Exact paths and prefixes sit in hash maps; a lookup probes the exact path,
// then each distinct prefix length from the longest down, so its cost grows
// with the number of distinct prefix lengths, not with the number of routes.
// Within one key, routes keep config order: on a tie the earlier route wins.
#pragma once
#include "config/spec.h"
#include "proxy/message/http_head.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sluice::proxy {

struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

class Router {
public:
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    Router() = default;
    explicit Router(const std::vector<config::RouteSpec>& routes);

    // Index of the route that serves `req`, or npos.
    std::size_t match(const RequestHead& req) const;

private:
    using Bucket = std::vector<std::uint32_t>;
    bool conditions_hold(std::uint32_t route, const RequestHead& req) const;

    const std::vector<config::RouteSpec>* routes_ = nullptr;
    std::unordered_map<std::string, Bucket, StringHash, std::equal_to<>> exact_;
    std::unordered_map<std::string, Bucket, StringHash, std::equal_to<>> prefix_;
    std::vector<std::size_t> prefix_lengths_;  // distinct, longest first
};

// Host matching: exact (case-insensitive) or "*.example.com" for any name ending
// in ".example.com". `pattern` is lower case; `host` has no port.
bool host_matches(std::string_view pattern, std::string_view host);

}  // namespace sluice::proxy
