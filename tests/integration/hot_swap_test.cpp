// The hot-swap guarantees, with real sockets: live tunnels and streams survive
// whole-config replacements; a thousand changes under load cause no error and
// leak no snapshot.
#include "config/bounded_json.h"
#include "proxy/snapshot/snapshot.h"
#include "tests/support/client.h"
#include "tests/support/deadline.h"
#include "tests/support/origin.h"
#include "tests/support/proxy_fixture.h"
#include "tests/support/websocket.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <random>

using namespace sluice::test;
using json = nlohmann::json;

namespace {

std::string table(const std::string& a, const std::string& b, const std::string& ws, const std::string& llm,
                  const std::string& variant) {
    // Every variant keeps the listener, so live connections stay.
    std::string routes;
    if (variant == "v1")
        routes = R"(
  - {name: chat, match: {path: /ws}, cluster: ws}
  - {name: llm, match: {path: /stream}, cluster: llm}
  - {name: rest, match: {path_prefix: /}, cluster: a})";
    else if (variant == "v2")  // the stream's route is gone; timeouts that would cut it
        routes = R"(
  - {name: chat, match: {path: /ws}, cluster: ws}
  - {name: rest, match: {path_prefix: /}, cluster: b}
timeouts: {stream_idle: 5ms, websocket_idle: 5ms, max_duration: 50ms})";
    else  // chat edited, rest back to a, tight timeouts kept
        routes = R"(
  - {name: chat, match: {path_prefix: /ws}, cluster: ws, timeouts: {websocket_idle: 5ms}}
  - {name: rest, match: {path_prefix: /}, cluster: a}
timeouts: {stream_idle: 5ms, max_duration: 50ms})";
    return fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: a, endpoints: ["{a}"]}, {name: b, endpoints: ["{b}"]},
           {name: ws, endpoints: ["{ws}"]}, {name: llm, endpoints: ["{llm}"]}]
routes:{routes}
)",
                {{"a", a}, {"b", b}, {"ws", ws}, {"llm", llm}, {"routes", routes}});
}

// YAML flow text to the JSON document the admin API takes.
std::string as_json(const std::string& yaml) {
    sluice::config::ConfigError problem;
    return sluice::config::parse_yaml_bounded(yaml, problem).value().dump();
}

}  // namespace

TEST(HotSwap, LiveTunnelsAndStreamsSurviveWholeConfigReplacements) {
    TestOrigin a(echo_handler("a")), b(echo_handler("b")), ws(websocket_echo_handler());
    TestOrigin llm([](OriginExchange& ex) {
        ex.begin_chunked(200, "application/x-ndjson");
        for (int i = 0; i < 40; ++i) {
            ex.chunk("{\"token\":" + std::to_string(i) + "}\n");
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        ex.end_chunked();
    });
    auto v = [&](const char* name) { return table(a.address(), b.address(), ws.address(), llm.address(), name); };
    RunningProxy proxy(v("v1"));
    const auto port = proxy.port(), admin = proxy.admin_port();

    std::atomic<int> failures{0};
    std::vector<std::thread> live;
    for (int w = 0; w < 3; ++w)
        live.emplace_back([&, w] {
            try {
                WsClient c(port);
                std::mt19937 rng(static_cast<unsigned>(w));
                for (int i = 0; i < 30; ++i) {
                    std::string msg(1 + rng() % 50000, static_cast<char>('a' + w));
                    c.send(msg, w == 1);
                    if (c.receive() != msg) ++failures;
                    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // longer than the new idle limits
                }
                c.close();
            } catch (const std::exception& e) {
                ADD_FAILURE() << "websocket " << w << ": " << e.what();
                ++failures;
            }
        });
    live.emplace_back([&] {
        try {
            RawClient c(port);
            c.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
            if (c.read_head().status != 200) ++failures;
            std::string body;
            while (!c.body_done()) body += c.read_body_some();
            std::string want;
            for (int i = 0; i < 40; ++i) want += "{\"token\":" + std::to_string(i) + "}\n";
            if (body != want) ++failures;
        } catch (const std::exception& e) {
            ADD_FAILURE() << "stream: " << e.what();
            ++failures;
        }
    });

    // Let the stream and the tunnels start on v1, then replace the config under them.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    for (const char* name : {"v2", "v3", "v2", "v3"}) {
        auto r = http_request(admin, "PUT", "/config", as_json(v(name)));
        ASSERT_EQ(r.status, 200u) << r.body;
        // New requests follow the new table at once.
        std::string want = std::string(name) == "v2" ? "b GET /stream" : "a GET /stream";
        EXPECT_EQ(http_get(port, "/stream").body, want);
        std::this_thread::sleep_for(std::chrono::milliseconds(60));
    }
    for (auto& t : live) t.join();
    EXPECT_EQ(failures.load(), 0);
}

TEST(HotSwap, AThousandChangesUnderLoadCauseNoErrorAndLeakNoSnapshot) {
    TestOrigin a(echo_handler("a")), b(echo_handler("b"));
    auto cfg = [&](const std::string& cluster) {
        return as_json(fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: a, endpoints: ["{a}"]}, {name: b, endpoints: ["{b}"]}]
routes: [{name: all, match: {path_prefix: /}, cluster: {c}}]
)",
                            {{"a", a.address()}, {"b", b.address()}, {"c", cluster}}));
    };
    RunningProxy proxy(one_route(a.address()));
    const auto port = proxy.port(), admin = proxy.admin_port();
    ASSERT_EQ(http_request(admin, "PUT", "/config", cfg("a")).status, 200u);

    std::atomic<bool> stop{false};
    std::atomic<int> requests{0}, bad{0};
    std::vector<std::thread> clients;
    for (int k = 0; k < 3; ++k)
        clients.emplace_back([&, k] {
            while (!stop) {
                try {
                    // Keep-alive connections and fresh ones, both.
                    RawClient c(port);
                    for (int i = 0; i < 20 && !stop; ++i) {
                        auto r = c.get("/k" + std::to_string(k));
                        ++requests;
                        std::string want_tail = " GET /k" + std::to_string(k);
                        if (r.status != 200 || (r.body != "a" + want_tail && r.body != "b" + want_tail)) ++bad;
                    }
                } catch (const std::exception& e) {
                    ++bad;  // a reset or a dropped connection
                    ADD_FAILURE() << e.what();
                }
            }
        });
    for (int i = 0; i < 1000; ++i) {
        auto r = http_request(admin, "PUT", "/config", cfg(i % 2 ? "a" : "b"));
        ASSERT_EQ(r.status, 200u) << r.body;
    }
    stop = true;
    for (auto& t : clients) t.join();
    EXPECT_EQ(bad.load(), 0);
    EXPECT_GT(requests.load(), 100);
    EXPECT_EQ(proxy.server->config_version(), 1002u);
    // Every old snapshot was freed when its last request ended.
    EXPECT_TRUE(eventually([] { return sluice::proxy::Snapshot::live_count() == 1; }));
    EXPECT_EQ(sluice::proxy::Snapshot::live_count(), 1);
}
