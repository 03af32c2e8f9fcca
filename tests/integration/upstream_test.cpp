// Upstream pools: health checks, outlier ejection, the five policies, retries,
// and health state across config changes. Real sockets and real origins.
#include "tests/support/client.h"
#include "tests/support/origin.h"
#include "tests/support/proxy_fixture.h"
#include "tests/support/websocket.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <thread>

using namespace sluice::test;
using json = nlohmann::json;

namespace {

json endpoint_status(RunningProxy& p, const std::string& cluster, const std::string& address) {
    auto all = json::parse(http_get(p.admin_port(), "/clusters").body);
    for (const auto& c : all["clusters"])
        if (c["name"] == cluster)
            for (const auto& e : c["endpoints"])
                if (e["address"] == address) return e;
    return {};
}

std::string who(const Response& r) { return r.header("x-origin"); }

struct Healthy {
    std::shared_ptr<std::atomic<bool>> flag = std::make_shared<std::atomic<bool>>(true);
};

std::string two_endpoints(const std::string& a, const std::string& b, const std::string& cluster_extra) {
    return fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters:
  - {name: c, endpoints: ["{a}", "{b}"] {extra}}
routes: [{name: all, match: {path_prefix: /}, cluster: c}]
)",
                {{"a", a}, {"b", b}, {"extra", cluster_extra}});
}

// Fast checks, with room for a slow machine: under TSan a check of a healthy
// origin took over 40 ms, and two in a row marked it down (every request 503).
const char* kChecks = ", health_check: {interval: 100ms, timeout: 90ms, healthy_threshold: 2, unhealthy_threshold: 3}";

}  // namespace

TEST(Upstream, AKilledEndpointLeavesRotationAndComesBackWithoutAFailedRequest) {
    Healthy ha, hb;
    TestOrigin a(checked_echo_handler("a", ha.flag));
    auto b = std::make_unique<TestOrigin>(checked_echo_handler("b", hb.flag));
    const auto b_port = b->port();
    const std::string b_address = b->address();
    RunningProxy p(two_endpoints(a.address(), b_address, kChecks));
    std::atomic<bool> stop{false};
    std::atomic<int> ok{0}, failed{0};
    std::thread load([&] {
        while (!stop) {
            try {
                auto r = http_get(p.port(), "/x");
                (r.status == 200 ? ok : failed)++;
            } catch (const std::exception&) {
                ++failed;
            }
        }
    });
    EXPECT_TRUE(eventually([&] { return ok > 20; }));
    b.reset();  // killed: connections refused from now on
    EXPECT_TRUE(eventually([&] { return endpoint_status(p, "c", b_address)["healthy"] == false; }));
    int ok_while_down = ok;
    EXPECT_TRUE(eventually([&] { return ok > ok_while_down + 20; }));
    // Back on the same port: two passing checks bring it back into rotation.
    b = std::make_unique<TestOrigin>(checked_echo_handler("b", hb.flag), b_port);
    EXPECT_TRUE(eventually([&] { return endpoint_status(p, "c", b_address)["healthy"] == true; }));
    std::set<std::string> seen;
    EXPECT_TRUE(eventually([&] {
        seen.insert(who(http_get(p.port(), "/y")));
        return seen.count("b") == 1;
    }));
    stop = true;
    load.join();
    EXPECT_EQ(failed.load(), 0) << "requests failed while an endpoint was healthy";
}

TEST(Upstream, AFailedHealthCheckTakesTheEndpointOutForNewRequestsOnly) {
    Healthy ha, hb;
    TestOrigin a(checked_echo_handler("a", ha.flag));
    auto ws_echo = websocket_echo_handler();
    auto b_handler = checked_echo_handler("b", hb.flag);
    TestOrigin b([&](OriginExchange& ex) {
        if (ex.target() == "/ws") return ws_echo(ex);
        b_handler(ex);
    });
    RunningProxy p(fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters:
  - {name: c, endpoints: ["{a}", "{b}"] {checks}}
  - {name: wsb, endpoints: ["{b}"] {checks}}
routes:
  - {name: ws, match: {path: /ws}, cluster: wsb}
  - {name: all, match: {path_prefix: /}, cluster: c}
)",
                        {{"a", a.address()}, {"b", b.address()}, {"checks", kChecks}}));
    WsClient ws(p.port());
    ws.send("before");
    EXPECT_EQ(ws.receive(), "before");
    *hb.flag = false;
    EXPECT_TRUE(eventually([&] { return endpoint_status(p, "c", b.address())["healthy"] == false; }));
    EXPECT_TRUE(eventually([&] { return endpoint_status(p, "wsb", b.address())["healthy"] == false; }));
    for (int i = 0; i < 10; ++i) EXPECT_EQ(who(http_get(p.port(), "/n")), "a");
    // The tunnel to the unhealthy endpoint is not cut.
    ws.send("after");
    EXPECT_EQ(ws.receive(), "after");
    // And a cluster with no healthy endpoint answers 503 in SPEC's words.
    auto r = http_get(p.port(), "/ws");
    EXPECT_EQ(r.status, 503u);
    EXPECT_EQ(r.header("x-sluice-error"), "no_healthy_endpoint");
    EXPECT_EQ(r.body, "no healthy endpoint in cluster \"wsb\" (0 of 1 healthy)\n");
}

TEST(Upstream, NoEndpointHealthyIs503) {
    Healthy ha, hb;
    *ha.flag = false;
    *hb.flag = false;
    TestOrigin a(checked_echo_handler("a", ha.flag)), b(checked_echo_handler("b", hb.flag));
    RunningProxy p(two_endpoints(a.address(), b.address(), kChecks));
    EXPECT_TRUE(eventually([&] { return http_get(p.port(), "/x").status == 503; }));
    auto r = http_get(p.port(), "/x");
    EXPECT_EQ(r.body, "no healthy endpoint in cluster \"c\" (0 of 2 healthy)\n");
    *ha.flag = true;
    EXPECT_TRUE(eventually([&] { return http_get(p.port(), "/x").status == 200; }));
}

TEST(Upstream, OutlierEjectionWithGrowingBackOffNeverTheLastEndpoint) {
    std::atomic<bool> b_fails{true};
    TestOrigin a(echo_handler("a"));
    TestOrigin b([&](OriginExchange& ex) {
        if (b_fails) ex.respond(500, "b broken", {{"x-origin", "b"}});
        else ex.respond(200, "b ok", {{"x-origin", "b"}});
    });
    RunningProxy p(two_endpoints(a.address(), b.address(),
                                 ", outlier_detection: {consecutive_failures: 3, base_ejection: 300ms}"),
                   1);
    RawClient c(p.port());
    int b_hits = 0;
    for (int i = 0; i < 6; ++i) b_hits += who(c.get("/x")) == "b";
    EXPECT_EQ(b_hits, 3);  // round robin: b answered 500 three times, then was ejected
    auto st = endpoint_status(p, "c", b.address());
    EXPECT_EQ(st["ejected"], true);
    EXPECT_EQ(st["ejections"], 1);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(who(c.get("/x")), "a");
    // The ejection ends; b fails again and is ejected for longer (back-off grows).
    EXPECT_TRUE(eventually([&] { return endpoint_status(p, "c", b.address())["ejected"] == false; }));
    EXPECT_TRUE(eventually([&] {
        c.get("/x");
        return endpoint_status(p, "c", b.address())["ejected"] == true;
    }));
    EXPECT_EQ(endpoint_status(p, "c", b.address())["ejections"], 2);
    // a fails too: it is the last available endpoint, so it is never ejected.
    TestOrigin c500([](OriginExchange& ex) { ex.respond(500, "down", {{"x-origin", "c500"}}); });
    RunningProxy solo(two_endpoints(c500.address(), b.address(), ", outlier_detection: {consecutive_failures: 1}"), 1);
    RawClient s(solo.port());
    for (int i = 0; i < 10; ++i) EXPECT_EQ(s.get("/x").status, 500u);
    int ejected = endpoint_status(solo, "c", c500.address())["ejected"].get<bool>() +
                  endpoint_status(solo, "c", b.address())["ejected"].get<bool>();
    EXPECT_EQ(ejected, 1);  // one of two at most (50%), never both
}

TEST(Upstream, RetriesGoToAnotherEndpointWhenNothingReachedTheApp) {
    TestOrigin a(echo_handler("a"));
    std::uint16_t dead;
    {
        asio::io_context io;
        tcp::acceptor t(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        dead = t.local_endpoint().port();
    }
    RunningProxy p(two_endpoints(a.address(), "127.0.0.1:" + std::to_string(dead), ", outlier_detection: {consecutive_failures: 0}"), 1);
    RawClient c(p.port());
    for (int i = 0; i < 6; ++i) {
        // Any method: the refused connect sent nothing.
        c.send("POST /p" + std::to_string(i) + " HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody");
        auto r = c.read_response();
        EXPECT_EQ(r.status, 200u);
        EXPECT_EQ(r.body, "a POST /p" + std::to_string(i));
    }
}

TEST(Upstream, PostsOnAKeepAliveConnectionKeepItOpenWhateverTheOriginsSpeed) {
    // Each body is written upstream by its own coroutine while the exchange
    // reads the answer. An answer read before that write had finished made
    // the request look unfinished: the client got Connection: close (one
    // request in about a hundred ran into it, with a stale "just wrote" hint).
    TestOrigin a(echo_handler("a"));
    RunningProxy p(fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: c, endpoints: ["{a}"]}]
routes: [{name: all, match: {path_prefix: /}, cluster: c}]
)",
                        {{"a", a.address()}}),
                   1);
    RawClient c(p.port());
    for (int i = 0; i < 200; ++i) {
        c.send("POST /k" + std::to_string(i) + " HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody");
        auto r = c.read_response();
        ASSERT_EQ(r.status, 200u) << "request " << i;
        ASSERT_EQ(r.body, "a POST /k" + std::to_string(i));
        ASSERT_TRUE(r.keep_alive) << "request " << i << " was answered with Connection: close";
    }
}

TEST(Upstream, OnlyIdempotentBodilessRequestsAreRetriedAfterBytesWentUp) {
    TestOrigin a(echo_handler("a"));
    std::atomic<int> b_seen{0};
    TestOrigin b([&](OriginExchange& ex) {
        ++b_seen;
        ex.reset();  // took the request, answered nothing
    });
    RunningProxy p(two_endpoints(b.address(), a.address(), ", outlier_detection: {consecutive_failures: 0}"), 1);
    RawClient c(p.port());
    // GET: b gets it first (round robin), fails before any response byte, retried on a.
    auto r = c.get("/idempotent");
    EXPECT_EQ(r.status, 200u);
    EXPECT_EQ(r.body, "a GET /idempotent");
    EXPECT_EQ(b_seen.load(), 1);
    // POST: not idempotent, so not repeated: the client hears 502.
    int before = b_seen;
    std::string body;
    for (int i = 0; i < 4; ++i) {
        RawClient fresh(p.port());
        fresh.send("POST /once HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi");
        auto pr = fresh.read_response();
        body += std::to_string(pr.status) + " ";
    }
    EXPECT_NE(body.find("502"), std::string::npos) << body;
    EXPECT_EQ(b_seen.load() - before, 2);  // each POST that went to b reached it exactly once
}

TEST(Upstream, LeastRequestPrefersTheIdleEndpoint) {
    Gate release;
    TestOrigin a([&](OriginExchange& ex) {
        if (ex.target() == "/slow") {
            release.wait();
        }
        ex.respond(200, "a", {{"x-origin", "a"}});
    });
    TestOrigin b(echo_handler("b"));
    RunningProxy p(two_endpoints(a.address(), b.address(), ", lb_policy: least_request"), 1);
    // Make sure a is busy: hold a slow request open on it.
    std::thread slow;
    for (int i = 0; i < 20 && !slow.joinable(); ++i) {
        RawClient probe(p.port());
        if (who(probe.get("/fast")) != "a") continue;
        slow = std::thread([&] { http_get(p.port(), "/slow"); });
    }
    ASSERT_TRUE(slow.joinable());
    EXPECT_TRUE(eventually([&] { return endpoint_status(p, "c", a.address())["active_requests"] == 1; }));
    for (int i = 0; i < 20; ++i) EXPECT_EQ(who(http_get(p.port(), "/x")), "b");
    release.open();
    slow.join();
}

TEST(Upstream, RandomUsesEveryEndpoint) {
    TestOrigin a(echo_handler("a")), b(echo_handler("b")), c(echo_handler("c"));
    RunningProxy p(fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: c, endpoints: ["{a}", "{b}", "{c}"], lb_policy: random}]
routes: [{name: all, match: {path_prefix: /}, cluster: c}]
)",
                        {{"a", a.address()}, {"b", b.address()}, {"c", c.address()}}));
    RawClient client(p.port());
    std::map<std::string, int> hits;
    for (int i = 0; i < 300; ++i) ++hits[who(client.get("/r"))];
    for (const char* n : {"a", "b", "c"}) EXPECT_GT(hits[n], 50) << n;
}

TEST(Upstream, HashKeepsAKeyOnOneEndpointAndAddingOneMovesOnlyItsShare) {
    std::vector<std::unique_ptr<TestOrigin>> origins;
    for (const char* n : {"a", "b", "c", "d"}) origins.push_back(std::make_unique<TestOrigin>(echo_handler(n)));
    auto cluster = [&](int n) {
        json eps = json::array();
        for (int i = 0; i < n; ++i) eps.push_back(origins[static_cast<std::size_t>(i)]->address());
        return json{{"endpoints", eps}, {"lb_policy", "hash"}, {"hash_on", {{"header", "x-user"}}}}.dump();
    };
    RunningProxy p(one_route(origins[0]->address()));
    ASSERT_EQ(http_request(p.admin_port(), "PUT", "/clusters/o", cluster(3)).status, 200u);
    constexpr int kKeys = 400;
    std::vector<std::string> before(kKeys), after(kKeys);
    RawClient c(p.port());
    for (int k = 0; k < kKeys; ++k) before[static_cast<std::size_t>(k)] = who(c.get("/h", "X-User: user" + std::to_string(k) + "\r\n"));
    for (int k = 0; k < 50; ++k)  // the same key, the same endpoint
        EXPECT_EQ(who(c.get("/h", "X-User: user" + std::to_string(k) + "\r\n")), before[static_cast<std::size_t>(k)]);
    ASSERT_EQ(http_request(p.admin_port(), "PUT", "/clusters/o", cluster(4)).status, 200u);
    int moved = 0;
    for (int k = 0; k < kKeys; ++k) {
        after[static_cast<std::size_t>(k)] = who(c.get("/h", "X-User: user" + std::to_string(k) + "\r\n"));
        if (after[static_cast<std::size_t>(k)] != before[static_cast<std::size_t>(k)]) {
            ++moved;
            EXPECT_EQ(after[static_cast<std::size_t>(k)], "d") << "a key moved between old endpoints";
        }
    }
    RecordProperty("keys_moved_of_400", moved);
    EXPECT_GT(moved, kKeys / 8);   // the new endpoint took a share...
    EXPECT_LT(moved, kKeys * 4 / 10);  // ...about 1/4, not a reshuffle
}

TEST(Upstream, HashOnCookieQueryAndSourceIp) {
    TestOrigin a(echo_handler("a")), b(echo_handler("b")), c(echo_handler("c"));
    auto cfg = [&](const std::string& on) {
        return fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: c, endpoints: ["{a}", "{b}", "{c}"], lb_policy: hash, hash_on: {on}}]
routes: [{name: all, match: {path_prefix: /}, cluster: c}]
)",
                    {{"a", a.address()}, {"b", b.address()}, {"c", c.address()}, {"on", on}});
    };
    {
        RunningProxy p(cfg("{cookie: sid}"));
        std::set<std::string> endpoints_for_one_key, all;
        for (int i = 0; i < 20; ++i) endpoints_for_one_key.insert(who(http_get(p.port(), "/", "Cookie: a=1; sid=alice; z=2\r\n")));
        for (int i = 0; i < 60; ++i) all.insert(who(http_get(p.port(), "/", "Cookie: sid=u" + std::to_string(i) + "\r\n")));
        EXPECT_EQ(endpoints_for_one_key.size(), 1u);
        EXPECT_EQ(all.size(), 3u);
    }
    {
        RunningProxy p(cfg("{query: user}"));
        std::set<std::string> one, all;
        for (int i = 0; i < 20; ++i) one.insert(who(http_get(p.port(), "/q?x=1&user=bob")));
        for (int i = 0; i < 60; ++i) all.insert(who(http_get(p.port(), "/q?user=u" + std::to_string(i))));
        EXPECT_EQ(one.size(), 1u);
        EXPECT_EQ(all.size(), 3u);
    }
    {
        RunningProxy p(cfg("{source_ip: true}"));
        std::set<std::string> one;
        for (int i = 0; i < 30; ++i) one.insert(who(http_get(p.port(), "/s")));
        EXPECT_EQ(one.size(), 1u);  // every test client is 127.0.0.1
    }
}

TEST(Upstream, BoundedLoadKeepsKeysPutAndSpillsFromAnEndpointAboveTheBound) {
    Gate release;
    auto handler = [&](std::string name) {
        return [&release, name](OriginExchange& ex) {
            if (ex.target() == "/hold") release.wait();
            ex.respond(200, name, {{"x-origin", name}});
        };
    };
    TestOrigin a(handler("a")), b(handler("b")), c(handler("c"));
    RunningProxy p(fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: c, endpoints: ["{a}", "{b}", "{c}"], lb_policy: hash, hash_on: {header: x-key, bounded_load: 1.25}}]
routes: [{name: all, match: {path_prefix: /}, cluster: c}]
)",
                        {{"a", a.address()}, {"b", b.address()}, {"c", c.address()}}),
                   1);  // one worker: the loads it bounds are all in one place
    auto key = [](int k) { return "X-Key: k" + std::to_string(k) + "\r\n"; };
    RawClient client(p.port());
    // Even load (one request at a time): every key stays on its endpoint.
    std::vector<std::string> home(30);
    for (int k = 0; k < 30; ++k) home[static_cast<std::size_t>(k)] = who(client.get("/x", key(k)));
    for (int k = 0; k < 30; ++k) EXPECT_EQ(who(client.get("/x", key(k))), home[static_cast<std::size_t>(k)]) << k;
    // Key 0's endpoint carries one request while the others carry none: at
    // 1.25 times the mean it is above the bound, so key 0 spills, always to
    // the same next endpoint on the ring; keys of the other endpoints stay.
    std::thread held([&] { http_get(p.port(), "/hold", key(0)); });
    const std::string home0 = home[0] == "a" ? a.address() : home[0] == "b" ? b.address() : c.address();
    ASSERT_TRUE(eventually([&] { return endpoint_status(p, "c", home0)["active_requests"] == 1; }));
    const std::string spill = who(client.get("/x", key(0)));
    EXPECT_NE(spill, home[0]);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(who(client.get("/x", key(0))), spill);
    for (int k = 1; k < 30; ++k) {
        if (home[static_cast<std::size_t>(k)] == home[0]) continue;
        EXPECT_EQ(who(client.get("/x", key(k))), home[static_cast<std::size_t>(k)]) << k;
    }
    release.open();
    held.join();
    EXPECT_EQ(who(client.get("/x", key(0))), home[0]);  // back home once the load is gone
}

TEST(Upstream, StickySetsAnAffinityCookieAndMovesWhenItsEndpointGoes) {
    Healthy ha, hb;
    TestOrigin a(checked_echo_handler("a", ha.flag)), b(checked_echo_handler("b", hb.flag));
    RunningProxy p(two_endpoints(a.address(), b.address(), std::string(", lb_policy: sticky") + kChecks));
    auto first = http_get(p.port(), "/s");
    auto set_cookie = first.header("Set-Cookie");
    ASSERT_EQ(set_cookie.rfind("sluice-affinity=", 0), 0u) << set_cookie;
    EXPECT_NE(set_cookie.find("Path=/"), std::string::npos);
    std::string id = set_cookie.substr(16, set_cookie.find(';') - 16);
    EXPECT_EQ(id.find('.'), std::string::npos) << "the cookie names the endpoint, not its address";
    std::string home = who(first);
    for (int i = 0; i < 20; ++i) {
        auto r = http_get(p.port(), "/s", "Cookie: sluice-affinity=" + id + "\r\n");
        EXPECT_EQ(who(r), home);
        EXPECT_EQ(r.header("Set-Cookie"), "");  // already right: no new cookie
    }
    (home == "a" ? ha : hb).flag->store(false);
    auto r = http_get(p.port(), "/s", "Cookie: sluice-affinity=" + id + "\r\n");
    EXPECT_TRUE(eventually([&] {
        r = http_get(p.port(), "/s", "Cookie: sluice-affinity=" + id + "\r\n");
        return who(r) != home;
    }));
    EXPECT_EQ(r.header("Set-Cookie").rfind("sluice-affinity=", 0), 0u);
    EXPECT_EQ(r.header("Set-Cookie").find(id), std::string::npos);  // reset to the new endpoint
}

TEST(Upstream, HealthStateSurvivesAConfigChange) {
    Healthy ha, hb;
    TestOrigin a(checked_echo_handler("a", ha.flag)), b(checked_echo_handler("b", hb.flag));
    RunningProxy p(two_endpoints(a.address(), b.address(), ", health_check: {interval: 100ms, unhealthy_threshold: 1, healthy_threshold: 50}"));
    *hb.flag = false;
    EXPECT_TRUE(eventually([&] { return endpoint_status(p, "c", b.address())["healthy"] == false; }));
    *hb.flag = true;  // would need 50 passing checks (5s) to come back
    ASSERT_EQ(http_request(p.admin_port(), "POST", "/routes", R"({"name": "extra", "match": {"path": "/e"}, "cluster": "c"})").status, 201u);
    // Right after the change b is still out: its state carried over.
    EXPECT_EQ(endpoint_status(p, "c", b.address())["healthy"], false);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(who(http_get(p.port(), "/e")), "a");
}
