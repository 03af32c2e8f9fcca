#include "proxy/http/balancer.h"

#include <boost/beast/core/string.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace sluice::proxy {
namespace {

bool usable(const PickInput& in, std::size_t i) {
    if (!in.cluster.endpoints[i].state->available(in.now)) return false;
    return std::find(in.tried.begin(), in.tried.end(), i) == in.tried.end();
}

std::int64_t load(const PickInput& in, std::size_t i) {
    const auto& pool = *in.local.pools[i];
    return pool.active_requests + pool.active_tunnels;
}

std::size_t round_robin(const PickInput& in) {
    const std::size_t n = in.cluster.endpoints.size();
    for (std::size_t k = 0; k < n; ++k) {
        std::size_t i = in.local.next++ % n;
        if (usable(in, i)) return i;
    }
    return Pick::npos;
}

std::size_t random_usable(const PickInput& in) {
    const std::size_t n = in.cluster.endpoints.size();
    std::uniform_int_distribution<std::size_t> d(0, n - 1);
    for (std::size_t k = 0; k < 2 * n; ++k) {
        std::size_t i = d(in.rng);
        if (usable(in, i)) return i;
    }
    return round_robin(in);  // few are usable: scan
}

// Power of two choices: of two random usable endpoints, the less loaded.
std::size_t least_request(const PickInput& in) {
    std::size_t a = random_usable(in);
    if (a == Pick::npos) return a;
    std::size_t b = random_usable(in);
    if (b == Pick::npos || b == a) {
        // Two draws agreeing is common in small clusters: look at the next usable one too.
        for (std::size_t k = 1; k < in.cluster.endpoints.size(); ++k) {
            std::size_t c = (a + k) % in.cluster.endpoints.size();
            if (usable(in, c)) {
                b = c;
                break;
            }
        }
        if (b == Pick::npos || b == a) return a;
    }
    return load(in, b) < load(in, a) ? b : a;
}

std::string_view hash_key(const PickInput& in) {
    const auto& h = *in.cluster.hash_on;
    switch (h.kind) {
    case config::HashOn::Kind::source_ip: return in.peer_ip;
    case config::HashOn::Kind::cookie: return find_cookie(in.request, h.name);
    case config::HashOn::Kind::query: return find_query(in.request.query, h.name);
    case config::HashOn::Kind::header:
        for (const auto& f : in.request.fields)
            if (boost::beast::iequals(f.name, h.name)) return f.value;
        return {};
    }
    return {};
}

// With bounded_load c: how many exchanges an endpoint may carry, counting the
// one being placed, so that none carries more than c times the mean
// (consistent hashing with bounded loads, Mirrokni, Thorup and Zadimoghaddam).
// Loads are this worker's, as for least_request.
std::int64_t load_bound(const PickInput& in) {
    const auto& c = in.cluster.hash_on->bounded_load;
    if (!c) return std::numeric_limits<std::int64_t>::max();
    std::int64_t total = 0, n = 0;
    for (std::size_t i = 0; i < in.cluster.endpoints.size(); ++i)
        if (usable(in, i)) {
            total += load(in, i);
            ++n;
        }
    if (n == 0) return 0;
    return static_cast<std::int64_t>(std::ceil(*c * static_cast<double>(total + 1) / static_cast<double>(n)));
}

// The first usable endpoint clockwise from the key's point on the ring that is
// within the load bound: a key stays put unless its endpoint is above it.
std::size_t consistent_hash(const PickInput& in) {
    std::string_view key = hash_key(in);
    const auto& ring = in.cluster.ring;
    if (key.empty() || ring.empty()) return random_usable(in);  // nothing to hash on
    const std::int64_t bound = load_bound(in);
    std::uint64_t h = hash64(key);
    const auto start = std::lower_bound(ring.begin(), ring.end(), std::make_pair(h, std::uint32_t{0}));
    std::size_t first_usable = Pick::npos;
    auto it = start;
    for (std::size_t k = 0; k < ring.size(); ++k, ++it) {
        if (it == ring.end()) it = ring.begin();
        if (!usable(in, it->second)) continue;
        if (load(in, it->second) < bound) return it->second;
        if (first_usable == Pick::npos) first_usable = it->second;
    }
    return first_usable;  // every endpoint at the bound cannot happen with c > 1; kept for safety
}

}  // namespace

std::string_view find_cookie(const RequestHead& req, std::string_view name) {
    for (const auto& f : req.fields) {
        if (f.id != http::field::cookie) continue;
        std::string_view v = f.value;
        while (!v.empty()) {
            auto semi = v.find(';');
            std::string_view pair = v.substr(0, semi);
            while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
            auto eq = pair.find('=');
            if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
                std::string_view value = pair.substr(eq + 1);
                if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
                return value;
            }
            if (semi == std::string_view::npos) break;
            v.remove_prefix(semi + 1);
        }
    }
    return {};
}

std::string_view find_query(std::string_view query, std::string_view name) {
    if (!query.empty() && query.front() == '?') query.remove_prefix(1);
    while (!query.empty()) {
        auto amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        auto eq = pair.find('=');
        if (pair.substr(0, eq) == name) return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return {};
}

Pick pick_endpoint(const PickInput& in) {
    Pick p;
    switch (in.cluster.policy) {
    case config::LbPolicy::round_robin: p.endpoint = round_robin(in); break;
    case config::LbPolicy::random: p.endpoint = random_usable(in); break;
    case config::LbPolicy::least_request: p.endpoint = least_request(in); break;
    case config::LbPolicy::hash: p.endpoint = consistent_hash(in); break;
    case config::LbPolicy::sticky: {
        std::string_view id = find_cookie(in.request, kAffinityCookie);
        for (std::size_t i = 0; !id.empty() && i < in.cluster.endpoints.size(); ++i)
            if (in.cluster.endpoints[i].id == id && usable(in, i)) {
                p.endpoint = i;
                return p;
            }
        // No cookie, or its endpoint is gone or unavailable: move, and say where.
        p.endpoint = round_robin(in);
        p.set_affinity = p.endpoint != Pick::npos;
        break;
    }
    }
    return p;
}

std::size_t available_count(const ClusterRuntime& cluster, std::int64_t now) {
    std::size_t n = 0;
    for (const auto& e : cluster.endpoints) n += e.state->available(now) ? 1 : 0;
    return n;
}

void report_endpoint_result(const ClusterRuntime& cluster, std::size_t endpoint, bool failed, std::int64_t now) {
    const auto& od = cluster.outlier;
    auto& st = *cluster.endpoints[endpoint].state;
    if (!failed) {
        if (st.failures.load(std::memory_order_relaxed) != 0) st.failures.store(0, std::memory_order_relaxed);
        // Healthy again for a whole base period after its last ejection: forget past ejections.
        auto base = std::chrono::duration_cast<std::chrono::nanoseconds>(od.base_ejection).count();
        if (st.ejections.load(std::memory_order_relaxed) != 0 &&
            now > st.ejected_until.load(std::memory_order_relaxed) + base)
            st.ejections.store(0, std::memory_order_relaxed);
        return;
    }
    if (od.consecutive_failures == 0) return;
    if (st.failures.fetch_add(1, std::memory_order_relaxed) + 1 < od.consecutive_failures) return;
    if (st.ejected(now)) return;
    // Never eject past max_ejection_percent, and never the last available endpoint:
    // a flake must not take the whole cluster dark.
    const std::size_t n = cluster.endpoints.size();
    std::size_t ejected = 0;
    for (const auto& e : cluster.endpoints) ejected += e.state->ejected(now) ? 1 : 0;
    std::size_t allowed = n * od.max_ejection_percent / 100;
    if (allowed == 0 && n > 1 && od.max_ejection_percent > 0) allowed = 1;
    if (ejected + 1 > allowed || available_count(cluster, now) <= 1) return;
    std::uint32_t k = st.ejections.fetch_add(1, std::memory_order_relaxed) + 1;
    auto length = od.base_ejection * std::min<std::uint32_t>(k, 10);
    st.ejected_until.store(now + std::chrono::duration_cast<std::chrono::nanoseconds>(length).count(),
                           std::memory_order_relaxed);
    st.failures.store(0, std::memory_order_relaxed);
    spdlog::warn("cluster \"{}\" endpoint {} ejected for {}ms after {} consecutive failures (ejection {})", cluster.name,
                 cluster.endpoints[endpoint].key, length.count(), od.consecutive_failures, k);
}

}  // namespace sluice::proxy
