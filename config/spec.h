// The config model: plain values as read from a JSON or YAML document, with the
// defaults of SPEC.md. Pure data: no sockets, no threads.
#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sluice::config {

// A duration from the config; zero means "no limit".
using Duration = std::chrono::milliseconds;

struct Timeouts {
    Duration connect{std::chrono::seconds(5)};
    Duration request_headers{std::chrono::seconds(10)};
    Duration http_idle{std::chrono::seconds(60)};
    Duration upstream_response{std::chrono::minutes(5)};
    Duration stream_idle{std::chrono::minutes(5)};
    Duration websocket_idle{std::chrono::hours(1)};
    Duration max_duration{0};
    Duration drain_delay{std::chrono::seconds(5)};
    Duration drain{std::chrono::seconds(30)};
    bool operator==(const Timeouts&) const = default;
};

// The timeouts a route may override; unset ones inherit the global value.
struct RouteTimeouts {
    std::optional<Duration> connect;
    std::optional<Duration> upstream_response;
    std::optional<Duration> stream_idle;
    std::optional<Duration> websocket_idle;
    std::optional<Duration> max_duration;
    bool operator==(const RouteTimeouts&) const = default;
};

struct Limits {
    std::uint64_t request_headers = 64 * 1024;
    std::uint64_t request_line = 8 * 1024;
    std::uint32_t http2_max_concurrent_streams = 100;  // per HTTP/2 client connection
    bool operator==(const Limits&) const = default;
};

// How request paths are normalized before routing (docs/security.md).
struct Paths {
    enum class EncodedSlash { keep, reject, decode };  // %2F and %5C in a path
    EncodedSlash encoded_slash = EncodedSlash::keep;
    bool merge_slashes = false;  // "//a///b" is routed and forwarded as "/a/b"
    bool operator==(const Paths&) const = default;
};

struct AdminSpec {
    std::string address = "127.0.0.1";
    std::uint16_t port = 9901;
    // When set, every admin request but GET /healthz, /ready and /metrics needs
    // "Authorization: Bearer <the file's first line>"; the file is re-read when it changes.
    std::optional<std::string> token_file;
    bool operator==(const AdminSpec&) const = default;
};

struct ProbesSpec {
    std::string address = "0.0.0.0";
    std::uint16_t port = 9902;
    bool metrics = false;  // also serve GET /metrics (read-only) for a scraper outside the pod
    // GET /ready is 503 until each of these clusters has an endpoint that can serve.
    std::vector<std::string> ready_clusters;
    bool operator==(const ProbesSpec&) const = default;
};

// One JSON line per request or tunnel when it ends (docs/observability.md).
struct AccessLogSpec {
    bool enabled = true;
    std::string path = "/dev/stdout";  // "/dev/stdout", "/dev/stderr" or an absolute file path
    bool operator==(const AccessLogSpec&) const = default;
};

// A listener's TLS certificates.
struct TlsCertificate {
    std::string cert;  // PEM file: the certificate, then its chain
    std::string key;   // PEM file: its private key
    std::vector<std::string> server_names;  // SNI names: exact or "*.example.com"; none: default only
    bool operator==(const TlsCertificate&) const = default;
};

struct ListenerTls {
    std::vector<TlsCertificate> certificates;  // the first is the default
    bool single = false;  // given as {cert, key}: GET /config writes it back in that shape
    bool operator==(const ListenerTls&) const = default;
};

struct ListenerSpec {
    std::string name;
    std::string address = "0.0.0.0";
    std::uint16_t port = 0;
    std::optional<ListenerTls> tls;  // HTTPS and wss:// when set
    bool http2 = true;  // TLS: ALPN offers h2; plain: h2c by prior knowledge
    bool operator==(const ListenerSpec&) const = default;
    // Same socket: name, address, port, and whether it speaks TLS (certificates may differ).
    bool same_socket(const ListenerSpec& o) const {
        return name == o.name && address == o.address && port == o.port && tls.has_value() == o.tls.has_value();
    }
};

struct EndpointSpec {
    std::string host;  // hostname or IP literal, without IPv6 brackets
    std::uint16_t port = 0;
    std::string text;  // as written: "127.0.0.1:3000" or "[::1]:3000"
    bool operator==(const EndpointSpec&) const = default;
};

enum class LbPolicy { round_robin, least_request, random, hash, sticky };

// What `lb_policy: hash` hashes: one request property.
struct HashOn {
    enum class Kind { header, cookie, query, source_ip };
    Kind kind = Kind::source_ip;
    std::string name;  // header, cookie or query parameter name; empty for source_ip
    // Consistent hashing with bounded loads: a key leaves its endpoint for the
    // next one on the ring while that one carries more than this many times
    // the cluster's mean in-flight requests. Unset: keys never move for load.
    std::optional<double> bounded_load;
    bool operator==(const HashOn&) const = default;
};

// Requests over max_requests_per_endpoint wait here, first in, first out.
struct AdmissionQueue {
    std::uint32_t size = 0;  // 0: a request over the cap is refused at once (queue_full)
    Duration timeout{std::chrono::seconds(30)};  // then queue_timeout; 0s: no limit
    bool operator==(const AdmissionQueue&) const = default;
};

struct HealthCheck {
    std::string path = "/healthz";
    Duration interval{std::chrono::seconds(2)};
    Duration timeout{std::chrono::seconds(1)};
    std::uint32_t healthy_threshold = 2;
    std::uint32_t unhealthy_threshold = 3;
    bool operator==(const HealthCheck&) const = default;
};

// Passive outlier detection: endpoints that keep failing are ejected for a while.
struct OutlierDetection {
    std::uint32_t consecutive_failures = 5;  // connect failures or 5xx in a row; 0 turns it off
    Duration base_ejection{std::chrono::seconds(30)};  // times the number of ejections so far
    std::uint32_t max_ejection_percent = 50;           // never more of the cluster at once
    bool operator==(const OutlierDetection&) const = default;
};

// TLS to a cluster's endpoints (docs/tls.md).
struct ClusterTls {
    std::optional<std::string> sni;  // server name sent and verified; default: the endpoint's host name
    std::string ca;                  // PEM bundle to verify with; empty: the system store
    bool verify = true;              // false: any certificate is accepted (encrypted, not authenticated)
    std::string cert;                // client certificate (mTLS): PEM with its chain; empty: none
    std::string key;                 // its private key
    bool operator==(const ClusterTls&) const = default;
};

struct ClusterSpec {
    std::string name;
    std::vector<EndpointSpec> endpoints;
    LbPolicy lb_policy = LbPolicy::round_robin;
    std::optional<HashOn> hash_on;             // with lb_policy hash only
    std::optional<HealthCheck> health_check;   // none: no active checks
    OutlierDetection outlier_detection;
    std::optional<ClusterTls> tls;             // none: plaintext to the endpoints
    std::uint32_t max_requests_per_endpoint = 0;  // in flight per endpoint, all workers; 0: no cap
    AdmissionQueue queue;
    bool http2 = false;  // protocol: http2 (h2c, or h2 by ALPN over tls); false: HTTP/1.1
    bool operator==(const ClusterSpec&) const = default;
};

const char* lb_policy_name(LbPolicy p);

struct HeaderMatch {
    std::string name;
    std::optional<std::string> value;  // exact value; unset means "present" decides
    bool present = true;               // with no value: must be present (true) or absent (false)
    bool operator==(const HeaderMatch&) const = default;
};

struct RouteMatch {
    std::optional<std::string> path;         // exact
    std::optional<std::string> path_prefix;  // exactly one of path / path_prefix
    std::optional<std::string> host;         // exact or "*.example.com", lower case
    std::vector<std::string> methods;        // empty: any method
    std::vector<HeaderMatch> headers;
    bool operator==(const RouteMatch&) const = default;
};

struct Rewrite {
    std::optional<std::string> path;         // replaces the whole path
    std::optional<std::string> path_prefix;  // replaces the matched prefix
    bool operator==(const Rewrite&) const = default;
};

struct RouteSpec {
    std::string name;
    RouteMatch match;
    std::optional<Rewrite> rewrite;
    std::string cluster;
    RouteTimeouts timeouts;
    bool websocket = true;
    bool operator==(const RouteSpec&) const = default;
};

struct Config {
    AdminSpec admin;
    std::optional<ProbesSpec> probes;
    std::vector<ListenerSpec> listeners;
    std::vector<ClusterSpec> clusters;
    std::vector<RouteSpec> routes;
    Timeouts timeouts;
    Limits limits;
    Paths paths;
    AccessLogSpec access_log;
    bool operator==(const Config&) const = default;
};

// The built-in config used when `sluice run` gets no --config: one listener on
// 127.0.0.1:8080 with no routes, admin on 127.0.0.1:9901.
Config default_config();

// One problem found in a config document, located by JSON pointer.
struct ConfigError {
    std::string pointer;  // "" is the whole document
    std::string message;
};
using ConfigErrors = std::vector<ConfigError>;

}  // namespace sluice::config
