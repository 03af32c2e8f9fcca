// The admin API: every endpoint, every refusal, and that a refused change
// changes nothing.
#include "tests/support/client.h"
#include "tests/support/deadline.h"
#include "tests/support/origin.h"
#include "tests/support/proxy_fixture.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <thread>

using namespace sluice::test;
using json = nlohmann::json;

namespace {

class Admin : public ::testing::Test {
protected:
    void SetUp() override {
        a = std::make_unique<TestOrigin>(echo_handler("a"));
        b = std::make_unique<TestOrigin>(echo_handler("b"));
        proxy = std::make_unique<RunningProxy>(fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters:
  - {name: a, endpoints: ["{a}"]}
  - {name: b, endpoints: ["{b}"]}
routes:
  - {name: first, match: {path_prefix: /}, cluster: a}
)",
                                                     {{"a", a->address()}, {"b", b->address()}}));
    }
    Response call(const std::string& method, const std::string& path, const std::string& body = "",
                  const std::string& headers = "") {
        return http_request(proxy->admin_port(), method, path, body, headers);
    }
    json body(const Response& r) { return json::parse(r.body); }
    std::uint64_t version() { return body(call("GET", "/config"))["version"].get<std::uint64_t>(); }
    std::string via(const std::string& path) { return http_get(proxy->port(), path).body; }

    std::unique_ptr<TestOrigin> a, b;
    std::unique_ptr<RunningProxy> proxy;
};

}  // namespace

TEST_F(Admin, GetConfigCarriesVersionAndEtag) {
    auto r = call("GET", "/config");
    EXPECT_EQ(r.status, 200u);
    EXPECT_EQ(r.header("ETag"), "\"1\"");
    auto doc = body(r);
    EXPECT_EQ(doc["version"], 1);
    EXPECT_EQ(doc["config"]["listeners"][0]["port"], 0);  // a port 0 stays 0
    EXPECT_EQ(doc["config"]["timeouts"]["connect"], "5s");
}

TEST_F(Admin, RoutesAddReplaceDeleteAnswerAtOnce) {
    EXPECT_EQ(via("/x"), "a GET /x");
    auto add = call("POST", "/routes", R"({"name": "to-b", "match": {"path_prefix": "/b/"}, "cluster": "b"})");
    EXPECT_EQ(add.status, 201u);
    EXPECT_EQ(body(add)["version"], 2);
    EXPECT_EQ(via("/b/1"), "b GET /b/1");  // live before the response returned

    auto list = body(call("GET", "/routes"));
    ASSERT_EQ(list.size(), 2u);
    EXPECT_EQ(list[1]["name"], "to-b");
    EXPECT_EQ(body(call("GET", "/routes/to-b"))["cluster"], "b");

    auto put = call("PUT", "/routes/to-b", R"({"match": {"path_prefix": "/b/"}, "cluster": "a"})");
    EXPECT_EQ(put.status, 200u);
    EXPECT_EQ(via("/b/2"), "a GET /b/2");
    auto insert = call("PUT", "/routes/new", R"({"match": {"path": "/new"}, "cluster": "b"})");
    EXPECT_EQ(insert.status, 200u);
    EXPECT_EQ(via("/new"), "b GET /new");

    EXPECT_EQ(call("DELETE", "/routes/to-b").status, 200u);
    EXPECT_EQ(via("/b/3"), "a GET /b/3");
    EXPECT_EQ(call("DELETE", "/routes/to-b").status, 404u);
    EXPECT_EQ(call("GET", "/routes/to-b").status, 404u);
    EXPECT_EQ(version(), 5u);
}

TEST_F(Admin, NameClashesAreConflicts) {
    auto dup = call("POST", "/routes", R"({"name": "first", "match": {"path": "/"}, "cluster": "a"})");
    EXPECT_EQ(dup.status, 409u);
    EXPECT_NE(dup.body.find("exists already"), std::string::npos);
    auto mismatch = call("PUT", "/routes/one", R"({"name": "two", "match": {"path": "/"}, "cluster": "a"})");
    EXPECT_EQ(mismatch.status, 400u);
    EXPECT_NE(mismatch.body.find("differs from the name in the path"), std::string::npos);
    EXPECT_EQ(version(), 1u);
}

TEST_F(Admin, ClustersCannotBeDeletedWhileUsed) {
    auto used = call("DELETE", "/clusters/a");
    EXPECT_EQ(used.status, 409u);
    EXPECT_NE(used.body.find("used by route(s) first"), std::string::npos) << used.body;
    EXPECT_EQ(call("DELETE", "/clusters/b").status, 200u);
    EXPECT_EQ(call("DELETE", "/clusters/b").status, 404u);
    EXPECT_EQ(call("PUT", "/clusters/c", R"({"endpoints": [")" + b->address() + R"("]})").status, 200u);
    EXPECT_EQ(call("PUT", "/routes/first", R"({"match": {"path_prefix": "/"}, "cluster": "c"})").status, 200u);
    EXPECT_EQ(via("/z"), "b GET /z");
    // The client may read the response a moment before the worker has finished
    // the exchange (and stopped counting it as active).
    json clusters;
    EXPECT_TRUE(eventually([&] {
        clusters = body(call("GET", "/clusters"));
        return clusters["clusters"][1]["endpoints"][0]["active_requests"] == 0;
    }));
    ASSERT_EQ(clusters["clusters"].size(), 2u);
    EXPECT_EQ(clusters["clusters"][1]["name"], "c");
    auto ep = clusters["clusters"][1]["endpoints"][0];
    EXPECT_EQ(ep["address"], b->address());
    EXPECT_EQ(ep["healthy"], true);
    EXPECT_EQ(ep["ejected"], false);
    EXPECT_EQ(ep["active_requests"], 0);
    EXPECT_EQ(ep["active_tunnels"], 0);
}

TEST_F(Admin, TimeoutsAreReplacedWhole) {
    EXPECT_EQ(call("PUT", "/timeouts", R"({"connect": "2s", "stream_idle": "10m"})").status, 200u);
    auto t = body(call("GET", "/timeouts"));
    EXPECT_EQ(t["connect"], "2s");
    EXPECT_EQ(t["stream_idle"], "10m");
    EXPECT_EQ(t["http_idle"], "1m");  // left out: back to its default (60s)
    auto bad = call("PUT", "/timeouts", R"({"connect": "soon"})");
    EXPECT_EQ(bad.status, 400u);
    EXPECT_EQ(body(bad)["details"][0]["path"], "/timeouts/connect");
}

TEST_F(Admin, InvalidChangesNameTheJsonPointerAndChangeNothing) {
    auto r = call("POST", "/routes", R"({"name": "bad", "match": {"path": "/bad"}, "cluster": "missing"})");
    EXPECT_EQ(r.status, 400u);
    auto doc = body(r);
    EXPECT_EQ(doc["details"][0]["path"], "/routes/1/cluster");
    EXPECT_NE(doc["details"][0]["message"].get<std::string>().find("cluster \"missing\" is not defined"), std::string::npos);
    EXPECT_NE(doc["error"].get<std::string>().find("refused"), std::string::npos);
    auto whole = call("PUT", "/config", R"({"listeners": [{"name": "x", "port": "80"}], "routes": 5})");
    EXPECT_EQ(whole.status, 400u);
    EXPECT_EQ(body(whole)["details"].size(), 2u);
    EXPECT_EQ(version(), 1u);
    EXPECT_EQ(via("/still"), "a GET /still");
}

TEST_F(Admin, BadBodiesAndPaths) {
    auto not_json = call("POST", "/routes", "{name: oops}");
    EXPECT_EQ(not_json.status, 400u);
    EXPECT_NE(not_json.body.find("not JSON"), std::string::npos);
    auto array = call("POST", "/routes", "[1, 2]");
    EXPECT_EQ(array.status, 400u);
    EXPECT_NE(array.body.find("must be a JSON object (a route), not an array"), std::string::npos);
    auto empty = call("PUT", "/config", "");
    EXPECT_EQ(empty.status, 400u);
    EXPECT_NE(empty.body.find("needs a body"), std::string::npos);
    auto wrong_type = call("PUT", "/config", R"({"routes": {"name": "r"}})");
    EXPECT_EQ(wrong_type.status, 400u);
    EXPECT_EQ(body(wrong_type)["details"][0]["path"], "/routes");
    {
        // The answer comes as soon as the length is known: no need to send 9 MiB.
        RawClient c(proxy->admin_port());
        c.send("PUT /config HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(9 * 1024 * 1024) + "\r\n\r\n");
        auto huge = c.read_response();
        EXPECT_EQ(huge.status, 413u);
        EXPECT_NE(huge.body.find("larger than 8 MiB"), std::string::npos);
    }
    auto unknown = call("GET", "/nope");
    EXPECT_EQ(unknown.status, 404u);
    EXPECT_NE(unknown.body.find("no admin endpoint GET /nope"), std::string::npos);
    auto method = call("PATCH", "/routes/first");
    EXPECT_EQ(method.status, 405u);
    EXPECT_EQ(method.header("Allow"), "GET, PUT, DELETE");
    auto bad_if_match = call("DELETE", "/routes/first", "", "If-Match: soon\r\n");
    EXPECT_EQ(bad_if_match.status, 400u);
    EXPECT_EQ(version(), 1u);
}

TEST_F(Admin, IfMatchLetsExactlyOneOfTwoWritersWin) {
    auto etag = call("GET", "/config").header("ETag");
    auto one = call("PUT", "/routes/w1", R"({"match": {"path": "/w1"}, "cluster": "a"})", "If-Match: " + etag + "\r\n");
    auto two = call("PUT", "/routes/w2", R"({"match": {"path": "/w2"}, "cluster": "b"})", "If-Match: " + etag + "\r\n");
    EXPECT_EQ(one.status, 200u);
    EXPECT_EQ(two.status, 412u);
    EXPECT_EQ(body(two)["version"], 2);
    EXPECT_EQ(call("GET", "/routes/w2").status, 404u);
}

TEST_F(Admin, IfMatchRaceBetweenThreads) {
    // Many writers race with the same If-Match: the control thread serialises
    // them and exactly one wins.
    auto etag = call("GET", "/config").header("ETag");
    std::atomic<int> ok{0}, stale{0};
    std::vector<std::thread> writers;
    for (int i = 0; i < 8; ++i)
        writers.emplace_back([&, i] {
            auto r = call("PUT", "/routes/race" + std::to_string(i),
                          R"({"match": {"path": "/race"}, "cluster": "a"})", "If-Match: " + etag + "\r\n");
            if (r.status == 200) ++ok;
            if (r.status == 412) ++stale;
        });
    for (auto& t : writers) t.join();
    EXPECT_EQ(ok.load(), 1);
    EXPECT_EQ(stale.load(), 7);
    EXPECT_EQ(version(), 2u);
}

TEST_F(Admin, AnIdenticalConfigIsANoOp) {
    auto current = body(call("GET", "/config"));
    auto r = call("PUT", "/config", current["config"].dump());
    EXPECT_EQ(r.status, 200u);
    EXPECT_EQ(body(r)["version"], 1);
    EXPECT_EQ(body(r)["unchanged"], true);
    EXPECT_EQ(proxy->server->change_counts().unchanged, 1u);
    EXPECT_EQ(proxy->server->change_counts().applied, 0u);
}

TEST_F(Admin, ValidateIsADryRun) {
    auto good = call("POST", "/config/validate", R"({"clusters": [{"name": "x", "endpoints": ["127.0.0.1:1"]}]})");
    EXPECT_EQ(good.status, 200u);
    EXPECT_EQ(body(good)["valid"], true);
    auto bad = call("POST", "/config/validate", R"({"routes": [{"name": "r"}]})");
    EXPECT_EQ(bad.status, 400u);
    EXPECT_EQ(body(bad)["details"][0]["path"], "/routes/0/match");
    EXPECT_EQ(version(), 1u);
}

TEST_F(Admin, AdminAddressIsFixedAtStartUp) {
    auto doc = body(call("GET", "/config"))["config"];
    doc["admin"]["port"] = 1;
    auto r = call("PUT", "/config", doc.dump());
    EXPECT_EQ(r.status, 400u);
    EXPECT_EQ(body(r)["details"][0]["path"], "/admin");
    doc.erase("admin");  // left out: kept as it is
    EXPECT_EQ(call("PUT", "/config", doc.dump()).status, 200u);
}

TEST_F(Admin, ListenersAreAddedRemovedAndKept) {
    auto port = proxy->port();
    RawClient kept(port);
    EXPECT_EQ(kept.get("/k").status, 200u);
    auto doc = body(call("GET", "/config"))["config"];
    doc["listeners"].push_back({{"name", "second"}, {"address", "127.0.0.1"}, {"port", 0}});
    EXPECT_EQ(call("PUT", "/config", doc.dump()).status, 200u);
    auto second = proxy->port("second");
    ASSERT_NE(second, 0);
    EXPECT_EQ(http_get(second, "/s").body, "a GET /s");
    // The unchanged listener kept its socket: same port, and the idle
    // keep-alive connection made before the change still works.
    EXPECT_EQ(proxy->port(), port);
    EXPECT_EQ(kept.get("/k2").body, "a GET /k2");
    auto listeners = body(call("GET", "/listeners"));
    EXPECT_EQ(listeners.size(), 2u);

    // Remove "public": it stops accepting; "second" goes on.
    doc["listeners"].erase(0);
    EXPECT_EQ(call("PUT", "/config", doc.dump()).status, 200u);
    EXPECT_THROW(RawClient(port, 500).get("/gone"), std::exception);
    EXPECT_EQ(http_get(second, "/s2").body, "a GET /s2");
}

TEST_F(Admin, AListenerThatCannotBindRefusesTheWholeChange) {
    asio::io_context io;
    tcp::acceptor taken(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    auto doc = body(call("GET", "/config"))["config"];
    doc["listeners"].push_back({{"name", "clash"}, {"address", "127.0.0.1"}, {"port", taken.local_endpoint().port()}});
    doc["routes"][0]["cluster"] = "b";  // would change routing too, if applied
    auto r = call("PUT", "/config", doc.dump());
    EXPECT_EQ(r.status, 409u);
    EXPECT_NE(r.body.find("listener \\\"clash\\\" cannot listen"), std::string::npos) << r.body;
    EXPECT_EQ(version(), 1u);
    EXPECT_EQ(via("/x"), "a GET /x");
    EXPECT_EQ(body(call("GET", "/listeners")).size(), 1u);
}

TEST_F(Admin, ProbesServerAnswersOnlyHealth) {
    TestOrigin o(echo_handler("o"));
    RunningProxy p(one_route(o.address(), "probes: {address: 127.0.0.1, port: 0}"));
    auto probes = p.server->probes_endpoint();
    ASSERT_TRUE(probes);
    EXPECT_EQ(http_get(probes->port(), "/healthz").status, 200u);
    EXPECT_EQ(http_get(probes->port(), "/ready").status, 200u);
    EXPECT_EQ(http_get(probes->port(), "/config").status, 404u);
    EXPECT_EQ(http_request(probes->port(), "PUT", "/config", "{}").status, 404u);
    EXPECT_EQ(http_get(probes->port(), "/metrics").status, 404u);  // unless probes.metrics
}

TEST_F(Admin, ProbesCanServeMetricsForAScraperOutsideThePod) {
    TestOrigin o(echo_handler("o"));
    RunningProxy p(one_route(o.address(), "probes: {address: 127.0.0.1, port: 0, metrics: true}"));
    auto probes = p.server->probes_endpoint();
    ASSERT_TRUE(probes);
    auto m = http_get(probes->port(), "/metrics");
    EXPECT_EQ(m.status, 200u);
    EXPECT_NE(m.body.find("sluice_config_version 1"), std::string::npos);
    auto refused = http_request(probes->port(), "PUT", "/config", "{}");
    EXPECT_EQ(refused.status, 404u);
    EXPECT_NE(refused.body.find("GET /metrics"), std::string::npos) << refused.body;
    EXPECT_EQ(http_get(probes->port(), "/connections").status, 404u);
    // A change that leaves probes out keeps them, metrics included.
    auto doc = json::parse(http_request(p.admin_port(), "GET", "/config").body)["config"];
    doc.erase("probes");
    doc["routes"][0]["name"] = "renamed";
    EXPECT_EQ(http_request(p.admin_port(), "PUT", "/config", doc.dump()).status, 200u);
    EXPECT_EQ(http_get(probes->port(), "/metrics").status, 200u);
}

TEST_F(Admin, KeepAlivePoolsSurviveAChangeThatKeepsTheEndpoint) {
    RawClient c(proxy->port());
    for (int i = 0; i < 5; ++i) EXPECT_EQ(c.get("/p").status, 200u);
    auto before = proxy->server->upstream_connects(a->address());
    EXPECT_EQ(call("POST", "/routes", R"({"name": "other", "match": {"path": "/other"}, "cluster": "b"})").status, 201u);
    EXPECT_EQ(call("PUT", "/timeouts", R"({"connect": "3s"})").status, 200u);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(c.get("/p").status, 200u);
    EXPECT_EQ(proxy->server->upstream_connects(a->address()), before);  // no new upstream connection
    EXPECT_EQ(a->connections(), static_cast<int>(before));
}

TEST_F(Admin, ARemovedListenerClosesItsIdleConnectionsAndFinishesStreams) {
    Gate release;
    TestOrigin slow([&](OriginExchange& ex) {
        ex.begin_chunked();
        ex.chunk("one");
        release.wait();
        ex.chunk("two");
        ex.end_chunked();
    });
    EXPECT_EQ(call("PUT", "/clusters/slow", R"({"endpoints": [")" + slow.address() + R"("]})").status, 200u);
    EXPECT_EQ(call("POST", "/routes", R"({"name": "s", "match": {"path": "/s"}, "cluster": "slow"})").status, 201u);
    RawClient idle(proxy->port());
    EXPECT_EQ(idle.get("/i").status, 200u);
    RawClient streaming(proxy->port());
    streaming.send("GET /s HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(streaming.read_head().status, 200u);
    EXPECT_EQ(streaming.read_body_some(), "one");

    auto doc = body(call("GET", "/config"))["config"];
    doc["listeners"][0]["name"] = "renamed";  // a different listener: the old one goes
    auto t0 = std::chrono::steady_clock::now();
    auto ms = [&] { return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count(); };
    EXPECT_EQ(call("PUT", "/config", doc.dump()).status, 200u);
    std::cerr << "put " << ms() << "\n";
    EXPECT_TRUE(idle.closed_by_peer());
    std::cerr << "idle closed " << ms() << "\n";
    release.open();
    std::string rest;
    while (!streaming.body_done()) rest += streaming.read_body_some();
    EXPECT_EQ(rest, "two");  // the live stream finished on the removed listener
    std::cerr << "stream done " << ms() << "\n";
    EXPECT_TRUE(streaming.closed_by_peer());
    std::cerr << "stream closed " << ms() << "\n";
}
