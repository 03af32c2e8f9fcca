// Observability: /metrics values move with requests, every x-sluice-error,
// WebSockets, streams and config changes, and the exposition parses strictly;
// GET /connections lists live tunnels and streams; the access log writes one
// JSON line per request or tunnel and follows config changes.
#include "tests/support/client.h"
#include "tests/support/origin.h"
#include "tests/support/prometheus_text.h"
#include "tests/support/proxy_fixture.h"
#include "tests/support/temp_dir.h"
#include "tests/support/websocket.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <thread>

using namespace sluice::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::uint16_t closed_port() {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port();
}

std::vector<json> read_json_lines(const fs::path& p) {
    std::vector<json> out;
    std::ifstream in(p);
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));  // throws on a bad line
    return out;
}

const char* kConfig = R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters:
  - {name: app, endpoints: ["{o}"]}
  - {name: dead, endpoints: ["127.0.0.1:{closed}"]}
  - {name: hole, endpoints: ["{hole}"]}
  - {name: notls, endpoints: ["{o}"], tls: {verify: false}}
  - name: sick
    endpoints: ["{o}"]
    health_check: {path: /healthz, interval: 100ms, timeout: 100ms, unhealthy_threshold: 1}
routes:
  - {name: dead, match: {path_prefix: /dead}, cluster: dead}
  - {name: hole, match: {path_prefix: /hole}, cluster: hole, timeouts: {connect: 200ms}}
  - {name: sick, match: {path_prefix: /sick}, cluster: sick}
  - {name: notls, match: {path_prefix: /notls}, cluster: notls}
  - {name: slow, match: {path_prefix: /slow}, cluster: app, timeouts: {upstream_response: 200ms}}
  - {name: capped, match: {path_prefix: /capped}, cluster: app, timeouts: {max_duration: 200ms}}
  - {name: nows, match: {path_prefix: /nows}, cluster: app, websocket: false}
  - {name: app, match: {path_prefix: /app/}, cluster: app}
limits: {request_headers: 2KiB, request_line: 256B}
timeouts: {request_headers: 300ms}
{extra}
)";

class Observability : public ::testing::Test {
protected:
    void SetUp() override {
        origin = std::make_unique<TestOrigin>([this](OriginExchange& ex) { handle(ex); });
        // A listener with a full backlog: the kernel drops further SYNs, so a connect hangs.
        hole.open(tcp::v4());
        hole.bind(tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        hole.listen(0);
        filler.connect(hole.local_endpoint());
    }
    void TearDown() override {
        release.open();
        sse_first.open();
        sse_second.open();
        proxy.reset();
    }
    void start(const std::string& extra = "") {
        proxy = std::make_unique<RunningProxy>(fill(kConfig, {{"o", origin->address()},
                                                             {"closed", std::to_string(closed_port())},
                                                             {"hole", "127.0.0.1:" + std::to_string(hole.local_endpoint().port())},
                                                             {"extra", extra}}));
    }
    void handle(OriginExchange& ex) {
        std::string t = ex.target();
        if (t == "/healthz") return ex.respond(503, "sick");
        if (t.ends_with("/ws")) return websocket_echo_handler()(ex);
        if (t.find("slow") != std::string::npos) {
            release.wait(3000);
            return ex.respond(200, "late");
        }
        if (t.ends_with("/reset")) return ex.reset();
        if (t.ends_with("/garbage")) return ex.write_raw("HTTP/1.1 2OO OK\r\n\r\n");
        if (t.ends_with("/sse")) {  // the head at once, the first token after the model thought
            ex.begin_chunked(200, "text/event-stream");
            sse_first.wait(5000);
            ex.chunk("data: 1\n\n");
            sse_second.wait(5000);
            ex.chunk("data: 2\n\n");
            return ex.end_chunked();
        }
        if (t.ends_with("/stream")) {
            ex.begin_chunked(200, "application/x-ndjson");
            ex.chunk("{\"token\":1}\n");
            stream_gate.wait(5000);
            ex.chunk("{\"token\":2}\n");
            return ex.end_chunked();
        }
        ex.respond(200, "ok " + t);
    }
    Exposition scrape() {
        auto r = http_request(proxy->admin_port(), "GET", "/metrics");
        EXPECT_EQ(r.status, 200u);
        EXPECT_EQ(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
        return parse_exposition(r.body);
    }
    json connections(const std::string& query = "") {
        auto r = http_request(proxy->admin_port(), "GET", "/connections" + query);
        EXPECT_EQ(r.status, 200u) << r.body;
        return json::parse(r.body);
    }

    Gate release, stream_gate, sse_first, sse_second;
    std::unique_ptr<TestOrigin> origin;
    asio::io_context io;
    tcp::acceptor hole{io};
    tcp::socket filler{io};
    std::unique_ptr<RunningProxy> proxy;
};

}  // namespace

TEST_F(Observability, RequestsAreCountedByListenerRouteAndExactCode) {
    start();
    RawClient c(proxy->port());
    for (int i = 0; i < 3; ++i) EXPECT_EQ(c.get("/app/x").status, 200u);
    ASSERT_TRUE(eventually([&] { return scrape().value("sluice_request_duration_seconds_count", {{"route", "app"}}) == 3; }));
    auto m = scrape();
    EXPECT_EQ(m.value("sluice_requests_total", {{"listener", "public"}, {"route", "app"}, {"code", "200"}}), 3);
    EXPECT_EQ(m.value("sluice_request_duration_seconds_count", {{"route", "app"}}), 3);
    EXPECT_EQ(m.value("sluice_request_duration_seconds_bucket", {{"route", "app"}, {"le", "+Inf"}}), 3);
    EXPECT_EQ(m.value("sluice_config_version"), 1);
    EXPECT_EQ(m.value("sluice_downstream_connections_active", {{"listener", "public"}}), 1);
    EXPECT_EQ(m.value("sluice_upstream_endpoint_healthy", {{"cluster", "app"}, {"endpoint", origin->address()}}), 1);
    EXPECT_EQ(m.types["sluice_request_duration_seconds"], "histogram");
    EXPECT_EQ(m.value("sluice_build_info", {{"version", SLUICE_VERSION}}), 1);
    EXPECT_GT(m.value_or_zero("process_resident_memory_bytes"), 1e6);
    EXPECT_GT(m.value_or_zero("process_open_fds"), 3);
    EXPECT_GT(m.value_or_zero("process_start_time_seconds"), 1.7e9);
}

TEST_F(Observability, EverySluiceErrorCodeIsCountedWithItsStatus) {
    start();
    auto expect_error = [&](const std::string& what, unsigned status, const Response& r) {
        EXPECT_EQ(r.status, status) << what << ": " << r.body;
        EXPECT_EQ(r.header("x-sluice-error"), what) << r.body;
    };
    expect_error("upstream_connect_failed", 502, http_get(proxy->port(), "/dead"));
    expect_error("upstream_connect_timeout", 504, http_get(proxy->port(), "/hole"));
    expect_error("upstream_tls_failed", 502, http_get(proxy->port(), "/notls"));
    expect_error("upstream_timeout", 504, http_get(proxy->port(), "/slow"));
    expect_error("max_duration", 504, http_get(proxy->port(), "/capped/slow"));
    expect_error("upstream_reset", 502, http_get(proxy->port(), "/app/reset"));
    expect_error("upstream_bad_response", 502, http_get(proxy->port(), "/app/garbage"));
    expect_error("websocket_disabled", 403,
                 http_get(proxy->port(), "/nows", "Connection: Upgrade\r\nUpgrade: websocket\r\n"
                                                  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
    expect_error("no_route", 404, http_get(proxy->port(), "/nothing"));
    {
        RawClient c(proxy->port());
        c.send("NOT A REQUEST\r\n\r\n");
        expect_error("bad_request", 400, c.read_response());
    }
    {
        RawClient c(proxy->port());
        c.send("GET /" + std::string(300, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n");
        expect_error("uri_too_long", 414, c.read_response());
    }
    {
        RawClient c(proxy->port());
        c.send("GET /app/x HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(3000, 'b') + "\r\n\r\n");
        expect_error("headers_too_large", 431, c.read_response());
    }
    {
        RawClient c(proxy->port());
        c.send("GET /app/x HTTP/1.1\r\nHost: x\r\n");  // never finished
        expect_error("request_timeout", 408, c.read_response());
    }
    // The health checker marks the sick cluster's only endpoint down first.
    ASSERT_TRUE(eventually([&] {
        return scrape().value("sluice_upstream_endpoint_healthy", {{"cluster", "sick"}}) == 0;
    }));
    expect_error("no_healthy_endpoint", 503, http_get(proxy->port(), "/sick"));

    ASSERT_TRUE(eventually([&] { return scrape().value("sluice_proxy_errors_total") == 14; }));
    auto m = scrape();
    const std::pair<const char*, const char*> errors[] = {
        {"upstream_connect_failed", "dead"}, {"upstream_connect_timeout", "hole"}, {"upstream_timeout", "slow"},
        {"max_duration", "capped"},          {"upstream_reset", "app"},            {"upstream_bad_response", "app"},
        {"websocket_disabled", "nows"},      {"no_route", ""},                     {"bad_request", ""},
        {"uri_too_long", ""},                {"headers_too_large", ""},            {"request_timeout", ""},
        {"no_healthy_endpoint", "sick"},     {"upstream_tls_failed", "notls"},
    };
    for (const auto& [code, route] : errors)
        EXPECT_EQ(m.value("sluice_proxy_errors_total", {{"error", code}, {"route", route}}), 1) << code;
    EXPECT_EQ(m.value("sluice_proxy_errors_total"), 14);  // and nothing else
    EXPECT_EQ(m.value("sluice_requests_total", {{"code", "502"}}), 4);
    EXPECT_EQ(m.value("sluice_requests_total", {{"code", "504"}}), 3);
    EXPECT_EQ(m.value("sluice_requests_total", {{"code", "404"}, {"route", ""}}), 1);
    EXPECT_EQ(m.value("sluice_requests_total", {{"code", "400"}}), 1);
    EXPECT_EQ(m.value("sluice_requests_total", {{"code", "408"}}), 1);
    EXPECT_EQ(m.value("sluice_requests_total", {{"code", "503"}, {"route", "sick"}}), 1);
    EXPECT_EQ(m.value("sluice_upstream_connect_failures_total", {{"cluster", "dead"}}), 1);
    EXPECT_EQ(m.value("sluice_upstream_connect_failures_total", {{"cluster", "hole"}}), 1);
    EXPECT_EQ(m.value("sluice_upstream_connect_failures_total", {{"cluster", "notls"}}), 1);
    EXPECT_EQ(m.value("sluice_upstream_connect_failures_total", {{"cluster", "app"}}), 0);
}

TEST_F(Observability, TimeToFirstTokenCountsToTheFirstBodyByteAndGapsBetweenTokens) {
    start();
    RawClient c(proxy->port());
    c.send("GET /app/sse HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(c.read_head().status, 200u);  // SSE servers send the head at once
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    sse_first.open();
    EXPECT_EQ(c.read_body_some(), "data: 1\n\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    sse_second.open();
    EXPECT_EQ(c.read_body_some(), "data: 2\n\n");
    EXPECT_EQ(c.read_body_some(), "");
    ASSERT_TRUE(eventually([&] { return scrape().value_or_zero("sluice_stream_gap_seconds_count", {{"route", "app"}}) == 1; }));
    auto m = scrape();
    // Lower bounds the origin's pauses make certain: the first body byte came
    // at least 300 ms after the request, the second token 200 ms after the first.
    EXPECT_EQ(m.value("sluice_stream_first_byte_seconds_count", {{"route", "app"}}), 1);
    EXPECT_GE(m.value_or_zero("sluice_stream_first_byte_seconds_sum", {{"route", "app"}}), 0.3);
    EXPECT_GE(m.value_or_zero("sluice_stream_gap_seconds_sum", {{"route", "app"}}), 0.2);
    EXPECT_EQ(m.value_or_zero("sluice_stream_gap_seconds_bucket", {{"route", "app"}, {"le", "0.1"}}), 0);
}

TEST_F(Observability, WebSocketsAndStreamsShowInMetricsAndConnections) {
    start();
    auto ws = std::make_unique<WsClient>(proxy->port(), "/app/ws");
    ws->send("hello");
    EXPECT_EQ(ws->receive(), "hello");

    RawClient stream(proxy->port());
    stream.send("GET /app/stream HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(stream.read_head().status, 200u);
    EXPECT_EQ(stream.read_body_some(), "{\"token\":1}\n");

    ASSERT_TRUE(eventually([&] {
        auto s = scrape();
        return s.value("sluice_requests_total", {{"route", "app"}, {"code", "101"}}) == 1 &&
               s.value("sluice_stream_first_byte_seconds_count", {{"route", "app"}}) == 1;
    }));
    ASSERT_TRUE(eventually([&] { return connections()["connections"][1]["bytes_to_client"] == 12; }));
    auto m = scrape();
    EXPECT_EQ(m.value("sluice_websocket_connections_active", {{"route", "app"}}), 1);
    EXPECT_EQ(m.value("sluice_websocket_connections_total", {{"route", "app"}}), 1);
    EXPECT_EQ(m.value("sluice_requests_total", {{"route", "app"}, {"code", "101"}}), 1);
    EXPECT_EQ(m.value("sluice_streams_active", {{"route", "app"}}), 1);
    EXPECT_EQ(m.value("sluice_streams_total", {{"route", "app"}}), 1);
    EXPECT_EQ(m.value("sluice_stream_first_byte_seconds_count", {{"route", "app"}}), 1);
    EXPECT_EQ(m.value("sluice_config_snapshots_live"), 1);

    auto all = connections();
    EXPECT_EQ(all["total"], 2);
    EXPECT_EQ(all["websockets"], 1);
    EXPECT_EQ(all["streams"], 1);
    EXPECT_EQ(all["truncated"], false);
    ASSERT_EQ(all["connections"].size(), 2u);
    const auto& first = all["connections"][0];  // oldest first: the WebSocket
    EXPECT_EQ(first["kind"], "websocket");
    EXPECT_EQ(first["listener"], "public");
    EXPECT_EQ(first["route"], "app");
    EXPECT_EQ(first["cluster"], "app");
    EXPECT_EQ(first["endpoint"], origin->address());
    EXPECT_EQ(first["client"].get<std::string>().rfind("127.0.0.1:", 0), 0u);
    EXPECT_GT(first["bytes_from_client"].get<std::uint64_t>(), 5u);  // the framed "hello"
    EXPECT_GT(first["bytes_to_client"].get<std::uint64_t>(), 5u);
    EXPECT_EQ(first["config_version"], 1);
    EXPECT_GE(first["age_seconds"].get<double>(), all["connections"][1]["age_seconds"].get<double>());
    EXPECT_EQ(all["connections"][1]["kind"], "stream");
    EXPECT_EQ(all["connections"][1]["bytes_to_client"], 12);

    auto capped = connections("?limit=1");
    EXPECT_EQ(capped["total"], 2);
    EXPECT_EQ(capped["returned"], 1);
    EXPECT_EQ(capped["truncated"], true);
    EXPECT_EQ(capped["connections"][0]["kind"], "websocket");
    EXPECT_EQ(connections("?kind=stream")["connections"][0]["kind"], "stream");
    EXPECT_EQ(connections("?kind=stream")["total"], 1);
    EXPECT_EQ(connections("?route=nope")["total"], 0);
    for (const char* bad : {"?limit=0", "?limit=x", "?kind=tcp", "?colour=red"}) {
        auto r = http_request(proxy->admin_port(), "GET", std::string("/connections") + bad);
        EXPECT_EQ(r.status, 400u) << bad;
        EXPECT_NE(r.body.find("error"), std::string::npos);
    }

    stream_gate.open();
    std::string rest;
    while (!stream.body_done()) rest += stream.read_body_some();
    EXPECT_EQ(rest, "{\"token\":2}\n");
    ws->close();
    ws.reset();
    ASSERT_TRUE(eventually([&] {
        auto s = scrape();
        return s.value("sluice_websocket_connections_active", {{"route", "app"}}) == 0 &&
               s.value("sluice_streams_active", {{"route", "app"}}) == 0;
    }));
    m = scrape();
    // A clean close: whichever side sent its FIN first (usually the server, per RFC 6455).
    EXPECT_EQ(m.value_or_zero("sluice_tunnel_closes_total", {{"route", "app"}, {"reason", "client_closed"}}) +
                  m.value_or_zero("sluice_tunnel_closes_total", {{"route", "app"}, {"reason", "upstream_closed"}}),
              1);
    EXPECT_EQ(m.value("sluice_tunnel_closes_total", {{"route", "app"}}), 1);
    EXPECT_EQ(m.value("sluice_websocket_duration_seconds_count", {{"route", "app"}}), 1);
    EXPECT_GT(m.value_or_zero("sluice_websocket_bytes_total", {{"route", "app"}, {"direction", "upstream"}}), 5);
    EXPECT_GT(m.value_or_zero("sluice_websocket_bytes_total", {{"route", "app"}, {"direction", "downstream"}}), 5);
    EXPECT_EQ(m.value("sluice_requests_total", {{"route", "app"}, {"code", "200"}}), 1);  // the stream, at its end
    EXPECT_EQ(connections()["total"], 0);
}

TEST_F(Observability, ConfigChangesAreCountedByResult) {
    start();
    auto admin = proxy->admin_port();
    EXPECT_EQ(http_request(admin, "PUT", "/routes/extra", R"({"match": {"path": "/extra"}, "cluster": "app"})").status, 200u);
    EXPECT_EQ(http_request(admin, "PUT", "/routes/bad", R"({"match": {"path": "/b"}, "cluster": "nope"})").status, 400u);
    auto current = json::parse(http_request(admin, "GET", "/config").body)["config"];
    EXPECT_EQ(http_request(admin, "PUT", "/config", current.dump()).status, 200u);  // identical: unchanged
    auto m = scrape();
    EXPECT_EQ(m.value("sluice_config_changes_total", {{"result", "applied"}}), 1);
    EXPECT_EQ(m.value("sluice_config_changes_total", {{"result", "rejected"}}), 1);
    EXPECT_EQ(m.value("sluice_config_changes_total", {{"result", "unchanged"}}), 1);
    EXPECT_EQ(m.value("sluice_config_version"), 2);
    EXPECT_EQ(m.value("sluice_websocket_connections_active", {{"route", "extra"}}), 0);  // new routes show at once
}

TEST_F(Observability, ConnectionsStayCappedWithManyLiveTunnels) {
    start();
    std::vector<std::unique_ptr<WsClient>> clients;
    for (int i = 0; i < 150; ++i) clients.push_back(std::make_unique<WsClient>(proxy->port(), "/app/ws"));
    ASSERT_TRUE(eventually([&] { return connections()["total"] == 150; }));
    auto page = connections();
    EXPECT_EQ(page["returned"], 100);
    EXPECT_EQ(page["truncated"], true);
    for (std::size_t i = 1; i < page["connections"].size(); ++i)
        EXPECT_GE(page["connections"][i - 1]["age_seconds"].get<double>(),
                  page["connections"][i]["age_seconds"].get<double>());
    EXPECT_EQ(connections("?limit=10000")["returned"], 150);
    EXPECT_EQ(scrape().value("sluice_websocket_connections_active", {{"route", "app"}}), 150);
}

TEST_F(Observability, AccessLogWritesOneJsonLinePerRequestOrTunnelAndFollowsChanges) {
    const TempDir tmp("sluice-obs-");
    const fs::path dir = tmp.path;
    const auto a = dir / "a.log", b = dir / "b.log";
    start("access_log: {path: " + a.string() + "}");

    EXPECT_EQ(http_get(proxy->port(), "/app/ok?token=secret").status, 200u);
    EXPECT_EQ(http_get(proxy->port(), "/nothing").status, 404u);
    {
        WsClient ws(proxy->port(), "/app/ws");
        ws.send("ping");
        EXPECT_EQ(ws.receive(), "ping");
        ws.close();
    }
    stream_gate.open();
    EXPECT_EQ(http_get(proxy->port(), "/app/stream").status, 200u);
    ASSERT_TRUE(eventually([&] { return fs::exists(a) && read_json_lines(a).size() == 4; }));

    auto lines = read_json_lines(a);
    std::map<std::string, json> by_kind;
    for (const auto& l : lines) {
        for (const char* f : {"time", "kind", "listener", "route", "cluster", "endpoint", "client", "method", "path",
                              "status", "bytes_received", "bytes_sent", "duration_ms", "upstream_connect_ms",
                              "upstream_first_byte_ms", "error", "config_version"})
            EXPECT_TRUE(l.contains(f)) << f << " missing in " << l.dump();
        EXPECT_EQ(l["listener"], "public");
        by_kind[l["kind"].get<std::string>() + std::to_string(l["status"].get<int>())] = l;
    }
    ASSERT_EQ(by_kind.size(), 4u) << lines.size();
    const auto& ok = by_kind["http200"];
    EXPECT_EQ(ok["route"], "app");
    EXPECT_EQ(ok["endpoint"], origin->address());
    EXPECT_EQ(ok["method"], "GET");
    EXPECT_EQ(ok["path"], "/app/ok");  // query strings often carry tokens: left out
    EXPECT_EQ(ok["bytes_sent"], std::string("ok /app/ok?token=secret").size());
    EXPECT_EQ(ok["error"], "");
    EXPECT_TRUE(ok["upstream_first_byte_ms"].is_number());
    const auto& missing = by_kind["http404"];
    EXPECT_EQ(missing["route"], "");
    EXPECT_EQ(missing["error"], "no_route");
    EXPECT_TRUE(missing["upstream_connect_ms"].is_null());
    const auto& ws = by_kind["websocket101"];
    EXPECT_EQ(ws["route"], "app");
    EXPECT_TRUE(ws["close_reason"] == "client_closed" || ws["close_reason"] == "upstream_closed") << ws.dump();
    EXPECT_GT(ws["bytes_received"].get<int>(), 4);
    EXPECT_GT(ws["bytes_sent"].get<int>(), 4);
    const auto& stream = by_kind["stream200"];
    EXPECT_EQ(stream["bytes_sent"], 24);

    // A file that cannot be opened refuses the change and the log stays where it was.
    auto admin = proxy->admin_port();
    auto cfg = json::parse(http_request(admin, "GET", "/config").body)["config"];
    cfg["access_log"]["path"] = (dir / "missing" / "x.log").string();
    auto refused = http_request(admin, "PUT", "/config", cfg.dump());
    EXPECT_EQ(refused.status, 400u);
    EXPECT_EQ(json::parse(refused.body)["details"][0]["path"], "/access_log/path");
    EXPECT_NE(refused.body.find("No such file or directory"), std::string::npos) << refused.body;
    EXPECT_EQ(json::parse(http_request(admin, "GET", "/config").body)["version"], 1);

    cfg["access_log"]["path"] = b.string();
    EXPECT_EQ(http_request(admin, "PUT", "/config", cfg.dump()).status, 200u);
    EXPECT_EQ(http_get(proxy->port(), "/app/after").status, 200u);
    ASSERT_TRUE(eventually([&] { return fs::exists(b) && read_json_lines(b).size() == 1; }));
    EXPECT_EQ(read_json_lines(b)[0]["config_version"], 2);
    EXPECT_EQ(read_json_lines(a).size(), 4u);
    EXPECT_EQ(scrape().value("sluice_access_log_dropped_total"), 0);
}
