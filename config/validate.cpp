#include "config/validate.h"

#include "config/json_pointer.h"

#include <arpa/inet.h>

#include <map>
#include <set>
#include <string_view>

namespace sluice::config {
namespace {

bool is_ip(const std::string& s) {
    unsigned char buf[16];
    return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool is_wildcard(const std::string& s) { return s == "0.0.0.0" || s == "::"; }

// Reports a second use of a name in one list, pointing at both places.
template <class T>
void unique_names(const std::vector<T>& items, const std::string& list, std::string_view what, ConfigErrors& errors) {
    std::map<std::string, std::size_t> seen;
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (items[i].name.empty()) continue;
        auto [it, fresh] = seen.emplace(items[i].name, i);
        if (!fresh)
            errors.push_back({pointer_join(pointer_join(list, i), "name"),
                              std::string(what) + " name \"" + items[i].name + "\" is already used by " +
                                  pointer_join(list, it->second) + "; names must be unique"});
    }
}

struct Socket {
    std::string who;      // "listener \"public\"" / "the admin server"
    std::string pointer;  // where its address is
    std::string address;
    std::uint16_t port;
};

// Two sockets clash on the same port when their addresses are equal or either is a wildcard.
void address_clashes(const std::vector<Socket>& sockets, ConfigErrors& errors) {
    for (std::size_t i = 0; i < sockets.size(); ++i) {
        for (std::size_t j = 0; j < i; ++j) {
            const auto& a = sockets[j];
            const auto& b = sockets[i];
            if (a.port == 0 || a.port != b.port) continue;
            bool v6a = a.address.find(':') != std::string::npos, v6b = b.address.find(':') != std::string::npos;
            bool same = a.address == b.address || (v6a == v6b && (is_wildcard(a.address) || is_wildcard(b.address)));
            if (same)
                errors.push_back({b.pointer, b.who + " wants " + b.address + ":" + std::to_string(b.port) +
                                                 ", which " + a.who + " (" + a.pointer +
                                                 ") already uses; pick another port"});
        }
    }
}

// A "." or ".." segment, also when written %2e: request paths are normalized
// before routing, so a route path holding one could never match, and a
// rewrite holding one could climb out of where it points.
bool has_dot_segment(std::string_view path) {
    std::string decoded;
    for (std::size_t i = 0; i < path.size(); ++i) {
        if (path[i] == '%' && i + 2 < path.size() && path[i + 1] == '2' && (path[i + 2] == 'e' || path[i + 2] == 'E')) {
            decoded += '.';
            i += 2;
        } else {
            decoded += path[i];
        }
    }
    for (std::size_t start = 0; start <= decoded.size();) {
        auto slash = decoded.find('/', start);
        std::string_view seg = std::string_view(decoded).substr(start, slash == std::string::npos ? std::string::npos : slash - start);
        if (seg == "." || seg == "..") return true;
        if (slash == std::string::npos) break;
        start = slash + 1;
    }
    return false;
}

void check_path(const std::optional<std::string>& path, const std::string& pointer, ConfigErrors& errors) {
    if (path && has_dot_segment(*path))
        errors.push_back({pointer, "\"" + *path + "\" holds a \".\" or \"..\" segment; request paths are normalized before "
                                   "routing, so write the path without them"});
}

}  // namespace

void validate_config(const Config& cfg, ConfigErrors& errors) {
    unique_names(cfg.listeners, "/listeners", "listener", errors);
    unique_names(cfg.clusters, "/clusters", "cluster", errors);
    unique_names(cfg.routes, "/routes", "route", errors);

    std::vector<Socket> sockets;
    auto check_ip = [&](const std::string& address, const std::string& pointer) {
        if (!address.empty() && !is_ip(address))
            errors.push_back({pointer, "\"" + address + "\" is not an IP address; use one such as 127.0.0.1, 0.0.0.0 or ::"});
    };
    check_ip(cfg.admin.address, "/admin/address");
    sockets.push_back({"the admin server", "/admin", cfg.admin.address, cfg.admin.port});
    if (cfg.probes) {
        check_ip(cfg.probes->address, "/probes/address");
        sockets.push_back({"the probes server", "/probes", cfg.probes->address, cfg.probes->port});
    }
    for (std::size_t i = 0; i < cfg.listeners.size(); ++i) {
        const auto& l = cfg.listeners[i];
        std::string p = pointer_join("/listeners", i);
        check_ip(l.address, pointer_join(p, "address"));
        sockets.push_back({"listener \"" + l.name + "\"", p, l.address, l.port});
    }
    address_clashes(sockets, errors);

    for (std::size_t i = 0; i < cfg.clusters.size(); ++i) {
        const auto& c = cfg.clusters[i];
        if (c.health_check && c.health_check->timeout > c.health_check->interval)
            errors.push_back({pointer_join(pointer_join(pointer_join("/clusters", i), "health_check"), "timeout"),
                              "the health check timeout is longer than its interval; make it at most the interval"});
        for (std::size_t e = 0; e < c.endpoints.size(); ++e) {
            const auto& ep = c.endpoints[e];
            if (!ep.text.empty() && ep.text.front() == '[' && !is_ip(ep.host))
                errors.push_back({pointer_join(pointer_join(pointer_join("/clusters", i), "endpoints"), e),
                                  "\"" + ep.host + "\" in brackets is not an IPv6 address"});
        }
    }

    for (std::size_t i = 0; i < cfg.routes.size(); ++i) {
        const auto& r = cfg.routes[i];
        const std::string p = pointer_join("/routes", i);
        check_path(r.match.path, pointer_join(pointer_join(p, "match"), "path"), errors);
        check_path(r.match.path_prefix, pointer_join(pointer_join(p, "match"), "path_prefix"), errors);
        if (r.rewrite) {
            check_path(r.rewrite->path, pointer_join(pointer_join(p, "rewrite"), "path"), errors);
            check_path(r.rewrite->path_prefix, pointer_join(pointer_join(p, "rewrite"), "path_prefix"), errors);
        }
    }

    std::set<std::string> clusters;
    std::string defined;
    for (const auto& c : cfg.clusters) {
        if (clusters.insert(c.name).second) defined += (defined.empty() ? "" : ", ") + c.name;
    }
    for (std::size_t i = 0; i < cfg.routes.size(); ++i) {
        const auto& r = cfg.routes[i];
        if (r.cluster.empty() || clusters.count(r.cluster)) continue;
        std::string msg = "cluster \"" + r.cluster + "\" is not defined; ";
        msg += defined.empty() ? "no clusters are defined: add one under /clusters"
                               : "defined clusters: " + defined;
        errors.push_back({pointer_join(pointer_join("/routes", i), "cluster"), msg});
    }
    if (cfg.probes) {
        const auto& ready = cfg.probes->ready_clusters;
        for (std::size_t i = 0; i < ready.size(); ++i) {
            if (clusters.count(ready[i])) continue;
            errors.push_back({pointer_join("/probes/ready_clusters", i),
                              "cluster \"" + ready[i] + "\" is not defined, so /ready could never pass; " +
                                  (defined.empty() ? std::string("no clusters are defined") : "defined clusters: " + defined)});
        }
    }
}

}  // namespace sluice::config
