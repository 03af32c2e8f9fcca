#include "config/parse.h"

#include "config/duration.h"
#include "config/json_pointer.h"
#include "config/patterns.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <initializer_list>
#include <set>

namespace sluice::config {
namespace {

using json = nlohmann::json;

class Reader {
public:
    explicit Reader(ConfigErrors& errors) : errors_(errors) {}

    void error(std::string pointer, std::string message) {
        errors_.push_back({std::move(pointer), std::move(message)});
    }

    // Checks that `j` is an object holding only `allowed` fields.
    bool object(const json& j, const std::string& p, std::string_view what,
                std::initializer_list<std::string_view> allowed) {
        if (!j.is_object()) {
            error(p, std::string("must be an object (") + std::string(what) + "), got " + describe_json(j));
            return false;
        }
        for (auto it = j.begin(); it != j.end(); ++it) {
            bool known = false;
            for (auto a : allowed) known = known || a == it.key();
            if (known) continue;
            std::string list;
            for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
            error(pointer_join(p, it.key()), "unknown field \"" + it.key() + "\" in " + std::string(what) + "; expected one of: " + list);
        }
        return true;
    }

    bool string(const json& j, const std::string& p, std::string& out) {
        if (!j.is_string()) {
            error(p, "must be a string, got " + describe_json(j));
            return false;
        }
        out = j.get<std::string>();
        return true;
    }

    // A string in one of the shared formats; `hint` says what a good value looks like.
    bool formatted(const json& j, const std::string& p, Pattern pat, std::string_view hint, std::string& out) {
        if (!string(j, p, out)) return false;
        if (matches(pat, out)) return true;
        error(p, describe_json(j) + " is not valid: " + std::string(hint));
        return false;
    }

    bool boolean(const json& j, const std::string& p, bool& out) {
        if (!j.is_boolean()) {
            error(p, "must be true or false, got " + describe_json(j));
            return false;
        }
        out = j.get<bool>();
        return true;
    }

    bool integer(const json& j, const std::string& p, std::int64_t lo, std::int64_t hi, std::int64_t& out) {
        bool integral = j.is_number_integer() ||
                        (j.is_number_float() && std::isfinite(j.get<double>()) && std::floor(j.get<double>()) == j.get<double>());
        if (integral) {
            double d = j.get<double>();
            if (d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) {
                out = static_cast<std::int64_t>(d);
                return true;
            }
        }
        error(p, "must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi) + ", got " + describe_json(j));
        return false;
    }

    void port(const json& j, const std::string& p, std::uint16_t& out) {
        std::int64_t v = 0;
        if (integer(j, p, 0, 65535, v)) out = static_cast<std::uint16_t>(v);
    }

    void duration(const json& j, const std::string& p, Duration& out) {
        std::string s;
        if (formatted(j, p, Pattern::duration, "use a whole number with a unit: 250ms, 5s, 2m or 1h (0s means no limit)", s))
            out = *parse_duration(s);
    }

    void size(const json& j, const std::string& p, std::uint64_t& out) {
        std::string s;
        if (formatted(j, p, Pattern::size, "use a whole number above 0 with a unit: 512B, 64KiB or 1MiB", s))
            out = *parse_size(s);
    }

    void name(const json& obj, const std::string& p, std::string_view what, std::string& out) {
        auto it = obj.find("name");
        if (it == obj.end()) {
            error(pointer_join(p, "name"), "missing: every " + std::string(what) + " needs a name");
            return;
        }
        formatted(*it, pointer_join(p, "name"), Pattern::name,
                  "names start with a letter or digit and use only letters, digits, '_', '.' and '-' (at most 63)", out);
    }

    // Calls fn(value, pointer) when the field is present.
    template <class F>
    void opt(const json& obj, const std::string& p, std::string_view key, F&& fn) {
        auto it = obj.find(key);
        if (it != obj.end()) fn(*it, pointer_join(p, key));
    }

    template <class F>
    void array(const json& j, const std::string& p, F&& fn) {
        if (!j.is_array()) {
            error(p, "must be an array, got " + describe_json(j));
            return;
        }
        for (std::size_t i = 0; i < j.size(); ++i) fn(j[i], pointer_join(p, i));
    }

private:
    ConfigErrors& errors_;
};

void read_address(Reader& r, const json& j, const std::string& p, std::string& out) {
    r.formatted(j, p, Pattern::ip_address, "use an IP address such as 127.0.0.1, 0.0.0.0 or ::", out);
}

void read_timeouts(Reader& r, const json& j, const std::string& p, Timeouts& t) {
    if (!r.object(j, p, "timeouts", {"connect", "request_headers", "http_idle", "upstream_response", "stream_idle",
                                     "websocket_idle", "max_duration", "drain_delay", "drain"}))
        return;
    auto d = [&](std::string_view key, Duration& out) {
        r.opt(j, p, key, [&](const json& v, const std::string& vp) { r.duration(v, vp, out); });
    };
    d("connect", t.connect);
    d("request_headers", t.request_headers);
    d("http_idle", t.http_idle);
    d("upstream_response", t.upstream_response);
    d("stream_idle", t.stream_idle);
    d("websocket_idle", t.websocket_idle);
    d("max_duration", t.max_duration);
    d("drain_delay", t.drain_delay);
    d("drain", t.drain);
}

void read_route_timeouts(Reader& r, const json& j, const std::string& p, RouteTimeouts& t) {
    if (!j.is_object()) {
        r.error(p, "must be an object (route timeouts), got " + describe_json(j));
        return;
    }
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string vp = pointer_join(p, it.key());
        std::optional<Duration>* slot = nullptr;
        if (it.key() == "connect") slot = &t.connect;
        else if (it.key() == "upstream_response") slot = &t.upstream_response;
        else if (it.key() == "stream_idle") slot = &t.stream_idle;
        else if (it.key() == "websocket_idle") slot = &t.websocket_idle;
        else if (it.key() == "max_duration") slot = &t.max_duration;
        if (slot) {
            Duration d{};
            r.duration(it.value(), vp, d);
            *slot = d;
        } else if (it.key() == "request_headers" || it.key() == "http_idle" || it.key() == "drain_delay" ||
                   it.key() == "drain") {
            r.error(vp, "\"" + it.key() + "\" applies to a whole connection or to the process, not to one route; set it in /timeouts");
        } else {
            r.error(vp, "unknown field \"" + it.key() +
                            "\" in route timeouts; expected one of: connect, upstream_response, stream_idle, websocket_idle, max_duration");
        }
    }
}

void read_endpoint(Reader& r, const json& j, const std::string& p, EndpointSpec& e) {
    std::string s;
    if (!r.formatted(j, p, Pattern::endpoint, "use \"host:port\" such as \"127.0.0.1:3000\", \"app:8080\" or \"[::1]:3000\"", s))
        return;
    auto colon = s.rfind(':');
    e.text = s;
    e.host = s.substr(0, colon);
    if (!e.host.empty() && e.host.front() == '[') e.host = e.host.substr(1, e.host.size() - 2);
    e.port = static_cast<std::uint16_t>(std::stoi(s.substr(colon + 1)));
}

void read_health_check(Reader& r, const json& j, const std::string& p, HealthCheck& h) {
    if (!r.object(j, p, "a health check", {"path", "interval", "timeout", "healthy_threshold", "unhealthy_threshold"}))
        return;
    r.opt(j, p, "path", [&](const json& v, const std::string& vp) {
        r.formatted(v, vp, Pattern::path, "a path starts with '/' and holds no query, fragment or spaces", h.path);
    });
    auto positive = [&](const char* key, Duration& out) {
        r.opt(j, p, key, [&](const json& v, const std::string& vp) {
            std::string s;
            if (r.formatted(v, vp, Pattern::positive_duration,
                            "use a whole number above 0 with a unit: 250ms, 5s, 2m or 1h", s))
                out = *parse_duration(s);
        });
    };
    positive("interval", h.interval);
    positive("timeout", h.timeout);
    // Left out, the timeout is 1s or the interval, whichever is shorter.
    if (!j.contains("timeout")) h.timeout = std::min(h.timeout, h.interval);
    auto threshold = [&](const char* key, std::uint32_t& out) {
        r.opt(j, p, key, [&](const json& v, const std::string& vp) {
            std::int64_t n = 0;
            if (r.integer(v, vp, 1, 100, n)) out = static_cast<std::uint32_t>(n);
        });
    };
    threshold("healthy_threshold", h.healthy_threshold);
    threshold("unhealthy_threshold", h.unhealthy_threshold);
}

void read_hash_on(Reader& r, const json& j, const std::string& p, HashOn& h) {
    if (!r.object(j, p, "hash_on", {"header", "cookie", "query", "source_ip", "bounded_load"})) return;
    r.opt(j, p, "bounded_load", [&](const json& v, const std::string& vp) {
        if (v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() > 1 && v.get<double>() <= 100)
            h.bounded_load = v.get<double>();
        else
            r.error(vp, "must be a number above 1 and at most 100 (1.25: an endpoint takes up to 1.25 times the mean "
                        "load before its keys spill to the next one), got " + describe_json(v));
    });
    if (j.size() != (j.contains("bounded_load") ? 2u : 1u)) {
        r.error(p, "set exactly one of header, cookie, query or source_ip, e.g. {\"header\": \"x-user\"}");
        return;
    }
    auto it = j.begin();
    if (it.key() == "bounded_load") ++it;
    const std::string vp = pointer_join(p, it.key());
    if (it.key() == "source_ip") {
        h.kind = HashOn::Kind::source_ip;
        if (!it.value().is_boolean() || !it.value().get<bool>()) r.error(vp, "must be true, got " + describe_json(it.value()));
        return;
    }
    if (it.key() == "header") {
        h.kind = HashOn::Kind::header;
        r.formatted(it.value(), vp, Pattern::header_name, "use a header name such as x-user", h.name);
    } else if (it.key() == "cookie") {
        h.kind = HashOn::Kind::cookie;
        r.formatted(it.value(), vp, Pattern::cookie_name, "use a cookie name such as session", h.name);
    } else {
        h.kind = HashOn::Kind::query;
        r.formatted(it.value(), vp, Pattern::header_name, "use a query parameter name such as user", h.name);
    }
}

// tls: {sni, ca, verify, cert, key}: TLS to the endpoints, optionally with a client certificate.
void read_cluster_tls(Reader& r, const json& v, const std::string& p, ClusterTls& tls) {
    if (!r.object(v, p, "cluster tls", {"sni", "ca", "verify", "cert", "key"})) return;
    r.opt(v, p, "sni", [&](const json& x, const std::string& xp) {
        std::string name;
        if (r.formatted(x, xp, Pattern::host, "use the host name the upstream's certificate names, such as ai.internal",
                        name) &&
            name.rfind("*.", 0) == 0)
            r.error(xp, "must be one host name, not a wildcard");
        else tls.sni = name;
    });
    auto file = [&](const char* key, std::string& dst) {
        r.opt(v, p, key, [&](const json& x, const std::string& xp) {
            if (r.string(x, xp, dst) && dst.empty()) r.error(xp, "must name a file");
        });
    };
    file("ca", tls.ca);
    file("cert", tls.cert);
    file("key", tls.key);
    r.opt(v, p, "verify", [&](const json& x, const std::string& xp) {
        r.boolean(x, xp, tls.verify);
    });
    if (v.contains("cert") != v.contains("key"))
        r.error(pointer_join(p, v.contains("cert") ? "key" : "cert"),
                "missing: a client certificate (mTLS) needs both cert and key");
    if (!tls.verify && v.contains("ca"))
        r.error(pointer_join(p, "ca"), "ca is only used to verify the upstream; remove it, or set verify: true");
}

void read_cluster(Reader& r, const json& j, const std::string& p, ClusterSpec& c) {
    if (!r.object(j, p, "a cluster",
                  {"name", "endpoints", "lb_policy", "hash_on", "health_check", "outlier_detection", "tls",
                   "max_requests_per_endpoint", "queue", "protocol"}))
        return;
    r.name(j, p, "cluster", c.name);
    auto it = j.find("endpoints");
    if (it == j.end()) {
        r.error(pointer_join(p, "endpoints"), "missing: every cluster needs endpoints, e.g. [\"127.0.0.1:3000\"]");
    } else if (it->is_array() && it->empty()) {
        r.error(pointer_join(p, "endpoints"), "must list at least one endpoint, e.g. [\"127.0.0.1:3000\"]");
    } else {
        r.array(*it, pointer_join(p, "endpoints"), [&](const json& v, const std::string& vp) {
            EndpointSpec e;
            read_endpoint(r, v, vp, e);
            for (const auto& other : c.endpoints)
                if (!e.text.empty() && other.text == e.text)
                    r.error(vp, "endpoint \"" + e.text + "\" is listed twice in this cluster");
            c.endpoints.push_back(std::move(e));
        });
    }
    r.opt(j, p, "lb_policy", [&](const json& v, const std::string& vp) {
        std::string s;
        if (!r.string(v, vp, s)) return;
        if (s == "round_robin") c.lb_policy = LbPolicy::round_robin;
        else if (s == "least_request") c.lb_policy = LbPolicy::least_request;
        else if (s == "random") c.lb_policy = LbPolicy::random;
        else if (s == "hash") c.lb_policy = LbPolicy::hash;
        else if (s == "sticky") c.lb_policy = LbPolicy::sticky;
        else
            r.error(vp, describe_json(v) +
                            " is not a load-balancing policy; use round_robin, least_request, random, hash or sticky");
    });
    r.opt(j, p, "protocol", [&](const json& v, const std::string& vp) {
        std::string s;
        if (!r.string(v, vp, s)) return;
        if (s == "http1") c.http2 = false;
        else if (s == "http2") c.http2 = true;
        else r.error(vp, describe_json(v) + " is not an upstream protocol; use http1 or http2 (for gRPC)");
    });
    r.opt(j, p, "hash_on", [&](const json& v, const std::string& vp) {
        HashOn h;
        read_hash_on(r, v, vp, h);
        c.hash_on = h;
    });
    r.opt(j, p, "health_check", [&](const json& v, const std::string& vp) {
        HealthCheck h;
        read_health_check(r, v, vp, h);
        c.health_check = h;
    });
    r.opt(j, p, "tls", [&](const json& v, const std::string& vp) {
        ClusterTls t;
        read_cluster_tls(r, v, vp, t);
        c.tls = t;
    });
    r.opt(j, p, "outlier_detection", [&](const json& v, const std::string& vp) {
        if (!r.object(v, vp, "outlier_detection", {"consecutive_failures", "base_ejection", "max_ejection_percent"}))
            return;
        auto& o = c.outlier_detection;
        r.opt(v, vp, "consecutive_failures", [&](const json& x, const std::string& xp) {
            std::int64_t n = 0;
            if (r.integer(x, xp, 0, 1000, n)) o.consecutive_failures = static_cast<std::uint32_t>(n);
        });
        r.opt(v, vp, "base_ejection", [&](const json& x, const std::string& xp) {
            std::string s;
            if (r.formatted(x, xp, Pattern::positive_duration, "use a whole number above 0 with a unit: 250ms, 5s, 2m or 1h", s))
                o.base_ejection = *parse_duration(s);
        });
        r.opt(v, vp, "max_ejection_percent", [&](const json& x, const std::string& xp) {
            std::int64_t n = 0;
            if (r.integer(x, xp, 0, 100, n)) o.max_ejection_percent = static_cast<std::uint32_t>(n);
        });
    });
    r.opt(j, p, "max_requests_per_endpoint", [&](const json& v, const std::string& vp) {
        std::int64_t n = 0;
        if (r.integer(v, vp, 0, 100000, n)) c.max_requests_per_endpoint = static_cast<std::uint32_t>(n);
    });
    r.opt(j, p, "queue", [&](const json& v, const std::string& vp) {
        if (!r.object(v, vp, "queue", {"size", "timeout"})) return;
        r.opt(v, vp, "size", [&](const json& x, const std::string& xp) {
            std::int64_t n = 0;
            if (r.integer(x, xp, 0, 100000, n)) c.queue.size = static_cast<std::uint32_t>(n);
        });
        r.opt(v, vp, "timeout", [&](const json& x, const std::string& xp) { r.duration(x, xp, c.queue.timeout); });
    });
    const bool hash = j.contains("lb_policy") && j["lb_policy"] == "hash";
    if (hash && !j.contains("hash_on"))
        r.error(pointer_join(p, "hash_on"),
                "missing: lb_policy hash needs hash_on, e.g. {\"header\": \"x-user\"} or {\"source_ip\": true}");
    if (!hash && j.contains("hash_on"))
        r.error(pointer_join(p, "hash_on"), "hash_on is used only with lb_policy: hash");
}

void read_match(Reader& r, const json& j, const std::string& p, RouteMatch& m) {
    if (!r.object(j, p, "a route match", {"path", "path_prefix", "host", "methods", "headers"})) return;
    const char* path_hint = "a path starts with '/' and holds no query, fragment or spaces";
    r.opt(j, p, "path", [&](const json& v, const std::string& vp) {
        std::string s;
        if (r.formatted(v, vp, Pattern::path, path_hint, s)) m.path = s;
    });
    r.opt(j, p, "path_prefix", [&](const json& v, const std::string& vp) {
        std::string s;
        if (r.formatted(v, vp, Pattern::path, path_hint, s)) m.path_prefix = s;
    });
    if (j.contains("path") == j.contains("path_prefix"))
        r.error(p, "set exactly one of \"path\" (exact) or \"path_prefix\"");
    r.opt(j, p, "host", [&](const json& v, const std::string& vp) {
        std::string s;
        if (!r.formatted(v, vp, Pattern::host, "use a host name such as \"api.example.com\" or \"*.example.com\" (no port)", s))
            return;
        for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        m.host = s;
    });
    r.opt(j, p, "methods", [&](const json& v, const std::string& vp) {
        if (v.is_array() && v.empty()) r.error(vp, "must list at least one method, or be left out to match any method");
        r.array(v, vp, [&](const json& mv, const std::string& mp) {
            std::string s;
            if (!r.formatted(mv, mp, Pattern::method, "methods are upper case, such as GET or POST", s)) return;
            for (const auto& other : m.methods)
                if (other == s) r.error(mp, "method " + s + " is listed twice");
            m.methods.push_back(s);
        });
    });
    r.opt(j, p, "headers", [&](const json& v, const std::string& vp) {
        r.array(v, vp, [&](const json& hv, const std::string& hp) {
            if (!r.object(hv, hp, "a header match", {"name", "value", "present"})) return;
            HeaderMatch h;
            auto n = hv.find("name");
            if (n == hv.end()) r.error(pointer_join(hp, "name"), "missing: a header match needs the header name");
            else r.formatted(*n, pointer_join(hp, "name"), Pattern::header_name, "use a header name such as x-user", h.name);
            r.opt(hv, hp, "value", [&](const json& x, const std::string& xp) {
                std::string s;
                if (r.string(x, xp, s)) h.value = s;
            });
            r.opt(hv, hp, "present", [&](const json& x, const std::string& xp) { r.boolean(x, xp, h.present); });
            if (hv.contains("value") == hv.contains("present"))
                r.error(hp, "set exactly one of \"value\" (exact match) or \"present\" (true or false)");
            m.headers.push_back(std::move(h));
        });
    });
}

void read_route(Reader& r, const json& j, const std::string& p, RouteSpec& route) {
    if (!r.object(j, p, "a route", {"name", "match", "rewrite", "cluster", "timeouts", "websocket"})) return;
    r.name(j, p, "route", route.name);
    auto m = j.find("match");
    if (m == j.end()) r.error(pointer_join(p, "match"), "missing: every route needs a match, e.g. {\"path_prefix\": \"/\"}");
    else read_match(r, *m, pointer_join(p, "match"), route.match);
    auto c = j.find("cluster");
    if (c == j.end()) r.error(pointer_join(p, "cluster"), "missing: every route needs the name of the cluster it sends to");
    else r.formatted(*c, pointer_join(p, "cluster"), Pattern::name, "use the name of a cluster defined under /clusters", route.cluster);
    r.opt(j, p, "rewrite", [&](const json& v, const std::string& vp) {
        if (!r.object(v, vp, "a rewrite", {"path", "path_prefix"})) return;
        Rewrite rw;
        const char* hint = "a path starts with '/' and holds no query, fragment or spaces";
        r.opt(v, vp, "path", [&](const json& x, const std::string& xp) {
            std::string s;
            if (r.formatted(x, xp, Pattern::path, hint, s)) rw.path = s;
        });
        r.opt(v, vp, "path_prefix", [&](const json& x, const std::string& xp) {
            std::string s;
            if (r.formatted(x, xp, Pattern::path, hint, s)) rw.path_prefix = s;
        });
        if (v.contains("path") == v.contains("path_prefix"))
            r.error(vp, "set exactly one of \"path\" (whole path) or \"path_prefix\" (replaces the matched prefix)");
        route.rewrite = rw;
    });
    r.opt(j, p, "timeouts", [&](const json& v, const std::string& vp) { read_route_timeouts(r, v, vp, route.timeouts); });
    r.opt(j, p, "websocket", [&](const json& v, const std::string& vp) { r.boolean(v, vp, route.websocket); });
}

}  // namespace

std::string describe_json(const json& v) {
    switch (v.type()) {
    case json::value_t::string: {
        std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
        if (s.size() > 60) s = s.substr(0, 57) + "...\"";
        return "the string " + s;
    }
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return "the number " + v.dump();
    case json::value_t::boolean: return v.get<bool>() ? "true" : "false";
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    default: return "an unsupported value";
    }
}

// tls: {cert, key} or {certificates: [{cert, key, server_names}]}.
void read_listener_tls(Reader& r, const json& v, const std::string& p, std::optional<ListenerTls>& out) {
    if (!r.object(v, p, "listener tls", {"cert", "key", "certificates"})) return;
    ListenerTls tls;
    auto file = [&](const json& obj, const std::string& op, const char* key, std::string& dst) {
        auto it = obj.find(key);
        if (it == obj.end()) {
            r.error(pointer_join(op, key), std::string("missing: a certificate needs its ") +
                                               (std::string(key) == "cert" ? "certificate file (PEM, with its chain)"
                                                                            : "private key file (PEM)"));
            return;
        }
        if (r.string(*it, pointer_join(op, key), dst) && dst.empty())
            r.error(pointer_join(op, key), "must name a file");
    };
    const bool one = v.contains("cert") || v.contains("key");
    if (one && v.contains("certificates")) {
        r.error(p, "use either cert and key (one certificate) or certificates (several, picked by SNI), not both");
        return;
    }
    if (one) {
        TlsCertificate c;
        file(v, p, "cert", c.cert);
        file(v, p, "key", c.key);
        tls.certificates.push_back(std::move(c));
        tls.single = true;
    } else if (auto it = v.find("certificates"); it != v.end()) {
        const std::string cp = pointer_join(p, "certificates");
        if (it->is_array() && it->empty()) r.error(cp, "must list at least one certificate");
        r.array(*it, cp, [&](const json& x, const std::string& xp) {
            TlsCertificate c;
            if (r.object(x, xp, "a certificate", {"cert", "key", "server_names"})) {
                file(x, xp, "cert", c.cert);
                file(x, xp, "key", c.key);
                r.opt(x, xp, "server_names", [&](const json& y, const std::string& yp) {
                    r.array(y, yp, [&](const json& z, const std::string& zp) {
                        std::string name;
                        if (r.formatted(z, zp, Pattern::host,
                                        "use a host name such as a.example.com, or *.example.com for a wildcard", name))
                            c.server_names.push_back(name);
                    });
                });
            }
            tls.certificates.push_back(std::move(c));
        });
    } else {
        r.error(p, "a TLS listener needs cert and key, or certificates");
        return;
    }
    out = std::move(tls);
}

Config parse_document(const json& doc, ConfigErrors& errors) {
    Reader r(errors);
    Config cfg;
    if (!r.object(doc, "", "the config document",
                  {"admin", "probes", "listeners", "clusters", "routes", "timeouts", "limits", "paths", "access_log"}))
        return cfg;
    r.opt(doc, "", "admin", [&](const json& v, const std::string& p) {
        if (!r.object(v, p, "admin", {"address", "port", "token_file"})) return;
        r.opt(v, p, "address", [&](const json& x, const std::string& xp) { read_address(r, x, xp, cfg.admin.address); });
        r.opt(v, p, "port", [&](const json& x, const std::string& xp) { r.port(x, xp, cfg.admin.port); });
        r.opt(v, p, "token_file", [&](const json& x, const std::string& xp) {
            std::string path;
            if (r.formatted(x, xp, Pattern::file_path,
                            "use an absolute path to a file holding the token, such as /var/run/sluice/admin-token", path))
                cfg.admin.token_file = path;
        });
    });
    r.opt(doc, "", "probes", [&](const json& v, const std::string& p) {
        if (!r.object(v, p, "probes", {"address", "port", "metrics", "ready_clusters"})) return;
        ProbesSpec probes;
        r.opt(v, p, "ready_clusters", [&](const json& x, const std::string& xp) {
            std::set<std::string> seen;
            r.array(x, xp, [&](const json& cv, const std::string& cp) {
                std::string name;
                if (!r.formatted(cv, cp, Pattern::name, "use the name of a cluster defined under /clusters", name))
                    return;
                if (!seen.insert(name).second) r.error(cp, "cluster \"" + name + "\" is listed twice");
                probes.ready_clusters.push_back(name);
            });
        });
        r.opt(v, p, "metrics", [&](const json& x, const std::string& xp) { r.boolean(x, xp, probes.metrics); });
        r.opt(v, p, "address", [&](const json& x, const std::string& xp) { read_address(r, x, xp, probes.address); });
        r.opt(v, p, "port", [&](const json& x, const std::string& xp) { r.port(x, xp, probes.port); });
        cfg.probes = probes;
    });
    r.opt(doc, "", "listeners", [&](const json& v, const std::string& p) {
        r.array(v, p, [&](const json& x, const std::string& xp) {
            ListenerSpec l;
            if (r.object(x, xp, "a listener", {"name", "address", "port", "tls", "http2"})) {
                r.opt(x, xp, "http2", [&](const json& y, const std::string& yp) { r.boolean(y, yp, l.http2); });
                r.opt(x, xp, "tls", [&](const json& y, const std::string& yp) { read_listener_tls(r, y, yp, l.tls); });
                r.name(x, xp, "listener", l.name);
                r.opt(x, xp, "address", [&](const json& y, const std::string& yp) { read_address(r, y, yp, l.address); });
                auto port = x.find("port");
                if (port == x.end()) r.error(pointer_join(xp, "port"), "missing: every listener needs a port (0 picks a free one)");
                else r.port(*port, pointer_join(xp, "port"), l.port);
            }
            cfg.listeners.push_back(std::move(l));
        });
    });
    r.opt(doc, "", "clusters", [&](const json& v, const std::string& p) {
        r.array(v, p, [&](const json& x, const std::string& xp) {
            ClusterSpec c;
            read_cluster(r, x, xp, c);
            cfg.clusters.push_back(std::move(c));
        });
    });
    r.opt(doc, "", "routes", [&](const json& v, const std::string& p) {
        r.array(v, p, [&](const json& x, const std::string& xp) {
            RouteSpec route;
            read_route(r, x, xp, route);
            cfg.routes.push_back(std::move(route));
        });
    });
    r.opt(doc, "", "timeouts", [&](const json& v, const std::string& p) { read_timeouts(r, v, p, cfg.timeouts); });
    r.opt(doc, "", "limits", [&](const json& v, const std::string& p) {
        if (!r.object(v, p, "limits", {"request_headers", "request_line", "http2_max_concurrent_streams"})) return;
        r.opt(v, p, "request_headers", [&](const json& x, const std::string& xp) { r.size(x, xp, cfg.limits.request_headers); });
        r.opt(v, p, "request_line", [&](const json& x, const std::string& xp) { r.size(x, xp, cfg.limits.request_line); });
        r.opt(v, p, "http2_max_concurrent_streams", [&](const json& x, const std::string& xp) {
            std::int64_t n = 0;
            if (r.integer(x, xp, 1, 10000, n)) cfg.limits.http2_max_concurrent_streams = static_cast<std::uint32_t>(n);
        });
    });
    r.opt(doc, "", "paths", [&](const json& v, const std::string& p) {
        if (!r.object(v, p, "paths", {"encoded_slash", "merge_slashes"})) return;
        r.opt(v, p, "encoded_slash", [&](const json& x, const std::string& xp) {
            std::string s;
            if (!r.string(x, xp, s)) return;
            if (s == "keep") cfg.paths.encoded_slash = Paths::EncodedSlash::keep;
            else if (s == "reject") cfg.paths.encoded_slash = Paths::EncodedSlash::reject;
            else if (s == "decode") cfg.paths.encoded_slash = Paths::EncodedSlash::decode;
            else r.error(xp, describe_json(x) + " is not a choice here; use keep, reject or decode");
        });
        r.opt(v, p, "merge_slashes", [&](const json& x, const std::string& xp) { r.boolean(x, xp, cfg.paths.merge_slashes); });
    });
    r.opt(doc, "", "access_log", [&](const json& v, const std::string& p) {
        if (!r.object(v, p, "access_log", {"enabled", "path"})) return;
        r.opt(v, p, "enabled", [&](const json& x, const std::string& xp) { r.boolean(x, xp, cfg.access_log.enabled); });
        r.opt(v, p, "path", [&](const json& x, const std::string& xp) {
            r.formatted(x, xp, Pattern::file_path,
                        "use an absolute file path such as /var/log/sluice/access.log, or /dev/stdout or /dev/stderr",
                        cfg.access_log.path);
        });
    });
    return cfg;
}

}  // namespace sluice::config
