#include "config/serialize.h"

#include "config/duration.h"

#include <openssl/evp.h>

namespace sluice::config {
namespace {

using json = nlohmann::json;

json timeouts_json(const Timeouts& t) {
    return {{"connect", format_duration(t.connect)},
            {"request_headers", format_duration(t.request_headers)},
            {"http_idle", format_duration(t.http_idle)},
            {"upstream_response", format_duration(t.upstream_response)},
            {"stream_idle", format_duration(t.stream_idle)},
            {"websocket_idle", format_duration(t.websocket_idle)},
            {"max_duration", format_duration(t.max_duration)},
            {"drain_delay", format_duration(t.drain_delay)},
            {"drain", format_duration(t.drain)}};
}

json route_json(const RouteSpec& r) {
    json match = json::object();
    if (r.match.path) match["path"] = *r.match.path;
    if (r.match.path_prefix) match["path_prefix"] = *r.match.path_prefix;
    if (r.match.host) match["host"] = *r.match.host;
    if (!r.match.methods.empty()) match["methods"] = r.match.methods;
    if (!r.match.headers.empty()) {
        json hs = json::array();
        for (const auto& h : r.match.headers) {
            json one = {{"name", h.name}};
            if (h.value) one["value"] = *h.value;
            else one["present"] = h.present;
            hs.push_back(one);
        }
        match["headers"] = hs;
    }
    json out = {{"name", r.name}, {"match", match}, {"cluster", r.cluster}, {"websocket", r.websocket}};
    if (r.rewrite) {
        json rw = json::object();
        if (r.rewrite->path) rw["path"] = *r.rewrite->path;
        if (r.rewrite->path_prefix) rw["path_prefix"] = *r.rewrite->path_prefix;
        out["rewrite"] = rw;
    }
    json t = json::object();
    auto put = [&](const char* key, const std::optional<Duration>& d) {
        if (d) t[key] = format_duration(*d);
    };
    put("connect", r.timeouts.connect);
    put("upstream_response", r.timeouts.upstream_response);
    put("stream_idle", r.timeouts.stream_idle);
    put("websocket_idle", r.timeouts.websocket_idle);
    put("max_duration", r.timeouts.max_duration);
    if (!t.empty()) out["timeouts"] = t;
    return out;
}

}  // namespace

const char* lb_policy_name(LbPolicy p) {
    switch (p) {
    case LbPolicy::round_robin: return "round_robin";
    case LbPolicy::least_request: return "least_request";
    case LbPolicy::random: return "random";
    case LbPolicy::hash: return "hash";
    case LbPolicy::sticky: return "sticky";
    }
    return "round_robin";
}

const char* encoded_slash_name(Paths::EncodedSlash e) {
    switch (e) {
    case Paths::EncodedSlash::keep: return "keep";
    case Paths::EncodedSlash::reject: return "reject";
    case Paths::EncodedSlash::decode: return "decode";
    }
    return "keep";
}

json admin_json(const AdminSpec& a) {
    json out = {{"address", a.address}, {"port", a.port}};
    if (a.token_file) out["token_file"] = *a.token_file;
    return out;
}

json to_json(const Config& cfg) {
    json out;
    out["admin"] = admin_json(cfg.admin);
    if (cfg.probes)
        out["probes"] = {{"address", cfg.probes->address},
                         {"port", cfg.probes->port},
                         {"metrics", cfg.probes->metrics},
                         {"ready_clusters", cfg.probes->ready_clusters}};
    out["listeners"] = json::array();
    for (const auto& l : cfg.listeners) {
        json listener = {{"name", l.name}, {"address", l.address}, {"port", l.port}, {"http2", l.http2}};
        if (l.tls && l.tls->single && l.tls->certificates.size() == 1 && l.tls->certificates[0].server_names.empty()) {
            listener["tls"] = {{"cert", l.tls->certificates[0].cert}, {"key", l.tls->certificates[0].key}};
        } else if (l.tls) {
            json certs = json::array();
            for (const auto& c : l.tls->certificates)
                certs.push_back({{"cert", c.cert}, {"key", c.key}, {"server_names", c.server_names}});
            listener["tls"] = {{"certificates", certs}};
        }
        out["listeners"].push_back(listener);
    }
    out["clusters"] = json::array();
    for (const auto& c : cfg.clusters) {
        json eps = json::array();
        for (const auto& e : c.endpoints) eps.push_back(e.text);
        json cluster = {{"name", c.name}, {"endpoints", eps}, {"lb_policy", lb_policy_name(c.lb_policy)},
                        {"protocol", c.http2 ? "http2" : "http1"}};
        if (c.hash_on) {
            switch (c.hash_on->kind) {
            case HashOn::Kind::header: cluster["hash_on"] = {{"header", c.hash_on->name}}; break;
            case HashOn::Kind::cookie: cluster["hash_on"] = {{"cookie", c.hash_on->name}}; break;
            case HashOn::Kind::query: cluster["hash_on"] = {{"query", c.hash_on->name}}; break;
            case HashOn::Kind::source_ip: cluster["hash_on"] = {{"source_ip", true}}; break;
            }
            if (c.hash_on->bounded_load) cluster["hash_on"]["bounded_load"] = *c.hash_on->bounded_load;
        }
        if (c.health_check) {
            const auto& h = *c.health_check;
            cluster["health_check"] = {{"path", h.path},
                                       {"interval", format_duration(h.interval)},
                                       {"timeout", format_duration(h.timeout)},
                                       {"healthy_threshold", h.healthy_threshold},
                                       {"unhealthy_threshold", h.unhealthy_threshold}};
        }
        cluster["max_requests_per_endpoint"] = c.max_requests_per_endpoint;
        cluster["queue"] = {{"size", c.queue.size}, {"timeout", format_duration(c.queue.timeout)}};
        cluster["outlier_detection"] = {{"consecutive_failures", c.outlier_detection.consecutive_failures},
                                        {"base_ejection", format_duration(c.outlier_detection.base_ejection)},
                                        {"max_ejection_percent", c.outlier_detection.max_ejection_percent}};
        if (c.tls) {
            json tls = {{"verify", c.tls->verify}};
            if (c.tls->sni) tls["sni"] = *c.tls->sni;
            if (!c.tls->ca.empty()) tls["ca"] = c.tls->ca;
            if (!c.tls->cert.empty()) tls["cert"] = c.tls->cert;
            if (!c.tls->key.empty()) tls["key"] = c.tls->key;
            cluster["tls"] = tls;
        }
        out["clusters"].push_back(cluster);
    }
    out["routes"] = json::array();
    for (const auto& r : cfg.routes) out["routes"].push_back(route_json(r));
    out["timeouts"] = timeouts_json(cfg.timeouts);
    out["limits"] = {{"request_headers", format_size(cfg.limits.request_headers)},
                     {"request_line", format_size(cfg.limits.request_line)},
                     {"http2_max_concurrent_streams", cfg.limits.http2_max_concurrent_streams}};
    out["paths"] = {{"encoded_slash", encoded_slash_name(cfg.paths.encoded_slash)},
                    {"merge_slashes", cfg.paths.merge_slashes}};
    out["access_log"] = {{"enabled", cfg.access_log.enabled}, {"path", cfg.access_log.path}};
    return out;
}

std::string config_hash(const Config& cfg) {
    const std::string text = to_json(cfg).dump();
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(text.data(), text.size(), digest, &n, EVP_sha256(), nullptr);
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "sha256:";
    for (unsigned int i = 0; i < n; ++i) {
        out += hex[digest[i] >> 4];
        out += hex[digest[i] & 15];
    }
    return out;
}

}  // namespace sluice::config
