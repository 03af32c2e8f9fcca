#include "config/duration.h"
#include "config/load.h"
#include "config/serialize.h"

#include <gtest/gtest.h>

using namespace sluice::config;
using namespace std::chrono_literals;

namespace {

LoadResult yaml(const std::string& text) { return load_text(text, Format::yaml); }
LoadResult json_text(const std::string& text) { return load_text(text, Format::json); }

// The error list as "pointer: message" lines, for readable failures.
std::string dump(const ConfigErrors& errors) {
    std::string out;
    for (const auto& e : errors) out += e.pointer + ": " + e.message + "\n";
    return out;
}

bool has_error(const LoadResult& r, const std::string& pointer, const std::string& words) {
    for (const auto& e : r.errors)
        if (e.pointer == pointer && e.message.find(words) != std::string::npos) return true;
    return false;
}

const char* kFull = R"(
admin: {address: 127.0.0.1, port: 9901}
probes: {address: 0.0.0.0, port: 9902}
listeners:
  - name: public
    address: 0.0.0.0
    port: 8080
clusters:
  - name: chat
    endpoints: ["127.0.0.1:3000", "127.0.0.1:3001"]
    lb_policy: round_robin
  - name: ai
    endpoints: ["ollama.internal:11434", "[::1]:11435"]
routes:
  - name: socketio
    match: {path_prefix: /socket.io/}
    cluster: chat
  - name: ollama
    match: {path_prefix: /api/ollama/, methods: [GET, POST], host: "*.example.com",
            headers: [{name: x-user, present: true}, {name: x-tier, value: gold}]}
    rewrite: {path_prefix: /api/}
    cluster: ai
    websocket: false
    timeouts: {stream_idle: 10m}
timeouts:
  connect: 5s
  request_headers: 10s
  http_idle: 60s
  upstream_response: 5m
  stream_idle: 5m
  websocket_idle: 1h
  max_duration: 0s
  drain_delay: 5s
  drain: 30s
limits:
  request_headers: 64KiB
  request_line: 8KiB
)";

}  // namespace

TEST(Duration, ParsesEveryUnitAndFormatsBack) {
    EXPECT_EQ(parse_duration("250ms"), 250ms);
    EXPECT_EQ(parse_duration("5s"), 5s);
    EXPECT_EQ(parse_duration("2m"), 2min);
    EXPECT_EQ(parse_duration("1h"), 1h);
    EXPECT_EQ(parse_duration("0s"), 0ms);
    EXPECT_FALSE(parse_duration("5"));
    EXPECT_FALSE(parse_duration("5 s"));
    EXPECT_FALSE(parse_duration("-5s"));
    EXPECT_FALSE(parse_duration("1d"));
    EXPECT_FALSE(parse_duration("1234567890s"));  // 10 digits
    EXPECT_EQ(format_duration(90s), "90s");
    EXPECT_EQ(format_duration(3600s), "1h");
    EXPECT_EQ(format_duration(1500ms), "1500ms");
    EXPECT_EQ(format_duration(0ms), "0s");
    EXPECT_EQ(describe_duration(0ms), "no limit");
}

TEST(Size, ParsesUnits) {
    EXPECT_EQ(parse_size("64KiB"), 65536u);
    EXPECT_EQ(parse_size("1MiB"), 1048576u);
    EXPECT_EQ(parse_size("512B"), 512u);
    EXPECT_FALSE(parse_size("0KiB"));
    EXPECT_FALSE(parse_size("64KB"));
    EXPECT_EQ(format_size(65536), "64KiB");
}

TEST(ConfigParse, EmptyObjectTakesEveryDefault) {
    auto r = json_text("{}");
    ASSERT_TRUE(r.config) << dump(r.errors);
    const Config& c = *r.config;
    EXPECT_EQ(c.admin.address, "127.0.0.1");
    EXPECT_EQ(c.admin.port, 9901);
    EXPECT_FALSE(c.probes);
    EXPECT_TRUE(c.listeners.empty());
    EXPECT_EQ(c.timeouts.connect, 5s);
    EXPECT_EQ(c.timeouts.request_headers, 10s);
    EXPECT_EQ(c.timeouts.http_idle, 60s);
    EXPECT_EQ(c.timeouts.upstream_response, 5min);
    EXPECT_EQ(c.timeouts.stream_idle, 5min);
    EXPECT_EQ(c.timeouts.websocket_idle, 1h);
    EXPECT_EQ(c.timeouts.max_duration, 0ms);
    EXPECT_EQ(c.timeouts.drain_delay, 5s);
    EXPECT_EQ(c.timeouts.drain, 30s);
    EXPECT_EQ(c.limits.request_headers, 64u * 1024);
    EXPECT_EQ(c.limits.request_line, 8u * 1024);
}

TEST(ConfigParse, FullExampleReadsEveryField) {
    auto r = yaml(kFull);
    ASSERT_TRUE(r.config) << dump(r.errors);
    const Config& c = *r.config;
    ASSERT_EQ(c.listeners.size(), 1u);
    EXPECT_EQ(c.listeners[0].port, 8080);
    ASSERT_EQ(c.clusters.size(), 2u);
    EXPECT_EQ(c.clusters[1].endpoints[0].host, "ollama.internal");
    EXPECT_EQ(c.clusters[1].endpoints[0].port, 11434);
    EXPECT_EQ(c.clusters[1].endpoints[1].host, "::1");
    const auto& r1 = c.routes[1];
    EXPECT_EQ(*r1.match.path_prefix, "/api/ollama/");
    EXPECT_EQ(r1.match.methods, (std::vector<std::string>{"GET", "POST"}));
    EXPECT_EQ(*r1.match.host, "*.example.com");
    ASSERT_EQ(r1.match.headers.size(), 2u);
    EXPECT_TRUE(r1.match.headers[0].present);
    EXPECT_EQ(*r1.match.headers[1].value, "gold");
    EXPECT_EQ(*r1.rewrite->path_prefix, "/api/");
    EXPECT_FALSE(r1.websocket);
    EXPECT_EQ(*r1.timeouts.stream_idle, 10min);
    EXPECT_FALSE(r1.timeouts.connect);
    ASSERT_TRUE(c.probes);
    EXPECT_EQ(c.probes->port, 9902);
}

TEST(ConfigParse, SerializedConfigReadsBackEqual) {
    auto r = yaml(kFull);
    ASSERT_TRUE(r.config);
    auto again = load_document(to_json(*r.config));
    ASSERT_TRUE(again.config) << dump(again.errors);
    EXPECT_EQ(*again.config, *r.config);
}

TEST(ConfigParse, YamlQuotedScalarsStayStrings) {
    auto r = yaml("listeners: [{name: a, port: \"8080\"}]");
    EXPECT_TRUE(has_error(r, "/listeners/0/port", "must be an integer from 0 to 65535, got the string \"8080\"")) << dump(r.errors);
    auto ok = yaml("listeners: [{name: a, port: 8080.0}]");
    EXPECT_TRUE(ok.config) << dump(ok.errors);
}

TEST(ConfigValidate, ReportsEveryErrorWithItsPointer) {
    auto r = yaml(R"(
listeners:
  - {name: public, port: 70000, colour: blue}
  - {name: public, port: 8081}
clusters:
  - {name: chat, endpoints: []}
  - {name: ai, endpoints: ["localhost"]}
routes:
  - {name: a, match: {path: /x, path_prefix: /y}, cluster: chat}
  - {name: b, match: {path_prefix: api}, cluster: chat}
  - {name: c, match: {path_prefix: /}, cluster: chat, timeouts: {request_headers: 1s, stream_idle: soon}}
timeouts: {connect: 5 seconds}
)");
    ASSERT_FALSE(r.config);
    EXPECT_TRUE(has_error(r, "/listeners/0/port", "from 0 to 65535")) << dump(r.errors);
    EXPECT_TRUE(has_error(r, "/listeners/0/colour", "unknown field \"colour\"")) << dump(r.errors);
    EXPECT_TRUE(has_error(r, "/clusters/0/endpoints", "at least one endpoint")) << dump(r.errors);
    EXPECT_TRUE(has_error(r, "/clusters/1/endpoints/0", "host:port")) << dump(r.errors);
    EXPECT_TRUE(has_error(r, "/routes/0/match", "exactly one of \"path\"")) << dump(r.errors);
    EXPECT_TRUE(has_error(r, "/routes/1/match/path_prefix", "starts with '/'")) << dump(r.errors);
    EXPECT_TRUE(has_error(r, "/routes/2/timeouts/request_headers", "set it in /timeouts")) << dump(r.errors);
    EXPECT_TRUE(has_error(r, "/routes/2/timeouts/stream_idle", "250ms, 5s, 2m or 1h")) << dump(r.errors);
    EXPECT_TRUE(has_error(r, "/timeouts/connect", "\"5 seconds\" is not valid")) << dump(r.errors);
    EXPECT_EQ(r.errors.size(), 9u) << dump(r.errors);
}

TEST(ConfigValidate, CrossReferencesAreChecked) {
    auto r = yaml(R"(
listeners:
  - {name: public, port: 8080}
  - {name: public, address: 127.0.0.1, port: 8080}
  - {name: other, address: "1:2:3:::5::6", port: 0}
clusters:
  - {name: chat, endpoints: ["127.0.0.1:3000"]}
routes:
  - {name: a, match: {path: /x}, cluster: chatt}
  - {name: a, match: {path: /y}, cluster: chat}
)");
    ASSERT_FALSE(r.config);
    EXPECT_TRUE(has_error(r, "/listeners/1/name", "already used by /listeners/0")) << dump(r.errors);
    EXPECT_TRUE(has_error(r, "/listeners/1", "127.0.0.1:8080, which listener \"public\" (/listeners/0) already uses"))
        << dump(r.errors);
    EXPECT_TRUE(has_error(r, "/listeners/2/address", "is not an IP address")) << dump(r.errors);
    EXPECT_TRUE(has_error(r, "/routes/0/cluster", "cluster \"chatt\" is not defined; defined clusters: chat"))
        << dump(r.errors);
    EXPECT_TRUE(has_error(r, "/routes/1/name", "already used by /routes/0")) << dump(r.errors);
}

TEST(ConfigParse, ClusterTlsTakesItsDefaultsAndRoundTrips) {
    auto r = yaml("clusters: [{name: a, endpoints: [\"a.internal:443\"], tls: {}},\n"
                  "           {name: b, endpoints: [\"10.0.0.1:443\"], tls: {sni: b.internal, ca: /ca.pem, "
                  "cert: /c.crt, key: /c.key}}]\n");
    ASSERT_TRUE(r.config) << dump(r.errors);
    const auto& a = *r.config->clusters[0].tls;
    EXPECT_TRUE(a.verify);
    EXPECT_FALSE(a.sni);
    EXPECT_TRUE(a.ca.empty());
    const auto& b = *r.config->clusters[1].tls;
    EXPECT_EQ(*b.sni, "b.internal");
    EXPECT_EQ(b.ca, "/ca.pem");
    EXPECT_EQ(b.cert, "/c.crt");
    EXPECT_EQ(b.key, "/c.key");
    auto again = sluice::config::load_document(sluice::config::to_json(*r.config));
    ASSERT_TRUE(again.config) << dump(again.errors);
    EXPECT_EQ(*again.config, *r.config);
}

TEST(ConfigParse, ClusterTlsMistakesAreNamed) {
    auto r = yaml("clusters: [{name: a, endpoints: [\"a:443\"], tls: {key: /k.pem, verify: false, ca: /ca.pem, "
                  "sni: \"*.a\", alpn: h2}}]\n");
    EXPECT_TRUE(has_error(r, "/clusters/0/tls/cert", "needs both cert and key")) << dump(r.errors);
    EXPECT_TRUE(has_error(r, "/clusters/0/tls/ca", "only used to verify")) << dump(r.errors);
    EXPECT_TRUE(has_error(r, "/clusters/0/tls/sni", "not a wildcard")) << dump(r.errors);
    EXPECT_TRUE(has_error(r, "/clusters/0/tls/alpn", "expected one of: sni, ca, verify, cert, key")) << dump(r.errors);
}

TEST(ConfigParse, ListenerTlsInBothForms) {
    auto one = yaml("listeners: [{name: a, port: 1, tls: {cert: a.crt, key: a.key}}]\n");
    ASSERT_TRUE(one.config) << dump(one.errors);
    ASSERT_TRUE(one.config->listeners[0].tls);
    EXPECT_EQ(one.config->listeners[0].tls->certificates.size(), 1u);
    EXPECT_EQ(one.config->listeners[0].tls->certificates[0].cert, "a.crt");
    auto many = yaml(R"(
listeners:
  - name: a
    port: 1
    tls: {certificates: [{cert: d.crt, key: d.key}, {cert: b.crt, key: b.key, server_names: ["*.b.example.com"]}]}
)");
    ASSERT_TRUE(many.config) << dump(many.errors);
    EXPECT_EQ(many.config->listeners[0].tls->certificates[1].server_names[0], "*.b.example.com");
    auto both = yaml("listeners: [{name: a, port: 1, tls: {cert: a, key: b, certificates: []}}]\n");
    EXPECT_TRUE(has_error(both, "/listeners/0/tls", "not both")) << dump(both.errors);
}

TEST(ConfigParse, UpstreamPoliciesAndChecks) {
    auto r = yaml(R"(
clusters:
  - {name: h, endpoints: ["127.0.0.1:1"], lb_policy: hash, hash_on: {cookie: sid}}
  - name: s
    endpoints: ["127.0.0.1:1"]
    lb_policy: sticky
    health_check: {path: /up, interval: 500ms}
    outlier_detection: {consecutive_failures: 2, base_ejection: 1s, max_ejection_percent: 100}
)");
    ASSERT_TRUE(r.config) << dump(r.errors);
    const auto& h = r.config->clusters[0];
    EXPECT_EQ(h.lb_policy, LbPolicy::hash);
    EXPECT_EQ(h.hash_on->kind, HashOn::Kind::cookie);
    EXPECT_EQ(h.hash_on->name, "sid");
    EXPECT_FALSE(h.health_check);
    EXPECT_EQ(h.outlier_detection, OutlierDetection{});
    const auto& s = r.config->clusters[1];
    EXPECT_EQ(s.lb_policy, LbPolicy::sticky);
    EXPECT_EQ(s.health_check->path, "/up");
    EXPECT_EQ(s.health_check->interval, 500ms);
    EXPECT_EQ(s.health_check->timeout, 500ms);  // left out: 1s, or the interval when shorter
    EXPECT_EQ(s.health_check->healthy_threshold, 2u);
    EXPECT_EQ(s.health_check->unhealthy_threshold, 3u);
    EXPECT_EQ(s.outlier_detection.consecutive_failures, 2u);
    EXPECT_EQ(s.outlier_detection.base_ejection, 1s);
    auto again = load_document(to_json(*r.config));
    ASSERT_TRUE(again.config) << dump(again.errors);
    EXPECT_EQ(*again.config, *r.config);
    auto bad = yaml("clusters: [{name: c, endpoints: [\"127.0.0.1:1\"], lb_policy: hash}]");
    EXPECT_TRUE(has_error(bad, "/clusters/0/hash_on", "lb_policy hash needs hash_on")) << dump(bad.errors);
}

TEST(ConfigLoad, SyntaxErrorsSayWhere) {
    auto j = json_text("{\"listeners\": [}");
    ASSERT_EQ(j.errors.size(), 1u);
    EXPECT_NE(j.errors[0].message.find("not valid JSON"), std::string::npos);
    EXPECT_NE(j.errors[0].message.find("line 1"), std::string::npos) << j.errors[0].message;
    auto y = yaml("listeners:\n  - name: a\n   port: [\n");
    ASSERT_EQ(y.errors.size(), 1u);
    EXPECT_NE(y.errors[0].message.find("not valid YAML at line"), std::string::npos) << y.errors[0].message;
    auto e = yaml("   \n");
    ASSERT_EQ(e.errors.size(), 1u);
    EXPECT_NE(e.errors[0].message.find("empty"), std::string::npos);
    auto ext = load_file("/tmp/x.toml");
    ASSERT_EQ(ext.errors.size(), 1u);
    EXPECT_NE(ext.errors[0].message.find(".json, .yaml or .yml"), std::string::npos);
}

TEST(ConfigDefault, BuiltInDefaultMatchesSpec) {
    Config c = default_config();
    ASSERT_EQ(c.listeners.size(), 1u);
    EXPECT_EQ(c.listeners[0].address, "127.0.0.1");
    EXPECT_EQ(c.listeners[0].port, 8080);
    EXPECT_TRUE(c.routes.empty());
    EXPECT_EQ(c.admin.port, 9901);
}

// A few hundred KB of '[' overflowed the stack in a recursive copy of the
// document; now the parse stops at 64 levels and names where.
TEST(ConfigLoad, DeepNestingIsRefusedWithAPointer) {
    std::string deep = "{\"listeners\": [{\"name\": \"p\", \"port\": 1, \"x\": " + std::string(300000, '[');
    auto r = json_text(deep);
    ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
    EXPECT_EQ(r.errors[0].pointer.rfind("/listeners/0/x/0/0/0/", 0), 0u) << r.errors[0].pointer;
    EXPECT_NE(r.errors[0].message.find("nested deeper than 64"), std::string::npos) << r.errors[0].message;
    auto y = yaml("listeners: [{name: p, port: 1, x: " + std::string(100, '[') + std::string(100, ']') + "}]");
    ASSERT_FALSE(y.errors.empty());
    EXPECT_NE(y.errors[0].message.find("nested deeper than 64"), std::string::npos) << dump(y.errors);
    // Deeper than yaml-cpp's own guard: its error, not a crash.
    EXPECT_FALSE(yaml("x: " + std::string(300000, '[')).errors.empty());
    // 63 levels inside the document are fine as far as depth goes.
    auto ok = json_text("{\"listeners\": " + std::string(62, '[') + std::string(62, ']') + "}");
    EXPECT_FALSE(has_error(ok, "", "nested"));
}

// A 50,000-character path_prefix overflowed the stack inside std::regex.
TEST(ConfigLoad, LongStringsAreRefusedWithAPointer) {
    auto r = yaml("listeners: [{name: p, port: 1}]\nclusters: [{name: c, endpoints: [\"127.0.0.1:1\"]}]\n"
                  "routes: [{name: r, cluster: c, match: {path_prefix: /" + std::string(50000, 'a') + "}}]\n");
    EXPECT_TRUE(has_error(r, "/routes/0/match/path_prefix", "50001 bytes long; the limit is 4096")) << dump(r.errors);
    auto key = json_text("{\"" + std::string(5000, 'k') + "\": 1}");
    EXPECT_TRUE(has_error(key, "", "an object key here is 5000 bytes long")) << dump(key.errors);
}

// Aliases let a few lines name billions of values.
TEST(ConfigLoad, YamlAliasesCannotExpandWithoutBound) {
    std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
    std::string prev = "a";
    for (char c = 'b'; c <= 'i'; ++c) {
        bomb += std::string(1, c) + ": &" + c + " [";
        for (int i = 0; i < 10; ++i) bomb += (i ? ", *" : "*") + prev;
        bomb += "]\n";
        prev = std::string(1, c);
    }
    auto r = yaml(bomb);
    ASSERT_FALSE(r.errors.empty());
    EXPECT_NE(r.errors[0].message.find("expands to more than"), std::string::npos) << dump(r.errors);
}

TEST(ConfigValidate, RoutePathsMustBeNormal) {
    auto r = yaml("listeners: [{name: p, port: 1}]\nclusters: [{name: c, endpoints: [\"127.0.0.1:1\"]}]\n"
                  "routes: [{name: r, cluster: c, match: {path_prefix: /a/../b}, rewrite: {path_prefix: /x/%2E/}}]\n");
    EXPECT_TRUE(has_error(r, "/routes/0/match/path_prefix", "segment")) << dump(r.errors);
    EXPECT_TRUE(has_error(r, "/routes/0/rewrite/path_prefix", "segment")) << dump(r.errors);
    auto ok = yaml("listeners: [{name: p, port: 1}]\nclusters: [{name: c, endpoints: [\"127.0.0.1:1\"]}]\n"
                   "routes: [{name: r, cluster: c, match: {path_prefix: /a..b/.c/}}]\n");
    EXPECT_TRUE(ok.errors.empty()) << dump(ok.errors);
}

TEST(ConfigParse, PathsAndAdminTokenRoundTrip) {
    auto r = yaml("admin: {token_file: /run/t}\nlisteners: [{name: p, port: 1}]\n"
                  "paths: {encoded_slash: decode, merge_slashes: true}\n");
    ASSERT_TRUE(r.config) << dump(r.errors);
    EXPECT_EQ(r.config->admin.token_file, "/run/t");
    EXPECT_EQ(r.config->paths.encoded_slash, Paths::EncodedSlash::decode);
    EXPECT_TRUE(r.config->paths.merge_slashes);
    auto back = load_document(to_json(*r.config));
    ASSERT_TRUE(back.config) << dump(back.errors);
    EXPECT_EQ(*back.config, *r.config);
}

// Found by the fuzzer: YAML-cpp passes invalid UTF-8 through, and writing it
// out (an error message, GET /config, the state file) threw.
TEST(ConfigLoad, YamlThatIsNotUtf8IsRefusedWithAPointer) {
    auto r = yaml("\xff{}\n");
    ASSERT_FALSE(r.errors.empty());
    EXPECT_NE(r.errors[0].message.find("not valid UTF-8"), std::string::npos) << dump(r.errors);
    auto v = yaml("listeners: [{name: p, port: 1}]\naccess_log: {path: \"/tmp/\xc3\"}\n");
    EXPECT_TRUE(has_error(v, "/access_log/path", "not valid UTF-8")) << dump(v.errors);
}
