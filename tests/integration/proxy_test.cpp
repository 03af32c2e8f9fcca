// Requests through a real sluice (in-process, port 0) to real origins.
#include "tests/support/client.h"
#include "tests/support/deadline.h"
#include "tests/support/origin.h"
#include "tests/support/proxy_fixture.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <map>

using namespace sluice::test;

TEST(Proxy, RoutesByPrecedenceAndRewrites) {
    TestOrigin a(echo_handler("a")), b(echo_handler("b")), c(echo_handler("c"));
    RunningProxy proxy(fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters:
  - {name: a, endpoints: ["{a}"]}
  - {name: b, endpoints: ["{b}"]}
  - {name: c, endpoints: ["{c}"]}
routes:
  - {name: root, match: {path_prefix: /}, cluster: a}
  - {name: api, match: {path_prefix: /api/}, rewrite: {path_prefix: /v1/}, cluster: b}
  - {name: exact, match: {path: /api/status}, rewrite: {path: /healthz}, cluster: c}
  - {name: hosted, match: {path_prefix: /api/, host: "*.tenant.test"}, cluster: c}
)",
                                {{"a", a.address()}, {"b", b.address()}, {"c", c.address()}}));
    auto port = proxy.port();
    EXPECT_EQ(http_get(port, "/x").body, "a GET /x");
    EXPECT_EQ(http_get(port, "/api/users?id=7").body, "b GET /v1/users?id=7");
    EXPECT_EQ(http_get(port, "/api/status?verbose=1").body, "c GET /healthz?verbose=1");
    // Same prefix length: the earlier route (api) wins over the host-specific one.
    EXPECT_EQ(http_get(port, "/api/x", "").body, "b GET /v1/x");
}

TEST(Proxy, KeepAliveReusesUpstreamConnections) {
    TestOrigin origin(echo_handler("o"));
    RunningProxy proxy(one_route(origin.address()),
                       1);
    RawClient client(proxy.port());
    for (int i = 0; i < 20; ++i) {
        auto r = client.get("/req" + std::to_string(i));
        ASSERT_EQ(r.status, 200u);
        EXPECT_EQ(r.body, "o GET /req" + std::to_string(i));
    }
    // Separate client connections, one after another, share the worker's pool too.
    for (int i = 0; i < 5; ++i) EXPECT_EQ(http_get(proxy.port(), "/other").status, 200u);
    EXPECT_EQ(origin.requests(), 25);
    EXPECT_EQ(origin.connections(), 1);
    EXPECT_EQ(proxy.server->upstream_connects(origin.address()), 1u);
}

// An origin closes a kept-alive connection while it waits in sluice's pool:
// the hang-up watch takes it out at once, so the next request opens a new
// connection instead of being written to a dead one.
TEST(Proxy, AnIdleUpstreamConnectionTheOriginClosesLeavesThePool) {
    Gate close_it;
    TestOrigin origin([&](OriginExchange& ex) {
        ex.write_raw("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");  // keep-alive, as far as sluice knows
        close_it.wait();
        ex.keep_alive = false;  // then it closes the connection without a word
    });
    RunningProxy proxy(one_route(origin.address()), 1);
    ASSERT_EQ(http_get(proxy.port(), "/1").status, 200u);
    EXPECT_TRUE(eventually([&] { return proxy.server->upstream_idle(origin.address()) == 1; }));
    close_it.open();
    EXPECT_TRUE(eventually([&] { return proxy.server->upstream_idle(origin.address()) == 0; }))
        << "the closed connection is still in the pool";
    EXPECT_EQ(http_get(proxy.port(), "/2").status, 200u);
    EXPECT_EQ(origin.connections(), 2);
    EXPECT_EQ(proxy.server->upstream_connects(origin.address()), 2u);
}

TEST(Proxy, PipelinedRequestsAreAnsweredInOrder) {
    TestOrigin origin(echo_handler("o"));
    RunningProxy proxy(one_route(origin.address()));
    RawClient client(proxy.port());
    client.send(
        "GET /1 HTTP/1.1\r\nHost: t\r\n\r\n"
        "POST /2 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
        "GET /3 HTTP/1.1\r\nHost: t\r\n\r\n");
    auto r1 = client.read_response();
    auto r2 = client.read_response();
    auto r3 = client.read_response();
    EXPECT_EQ(r1.body, "o GET /1");
    EXPECT_EQ(r2.body, "o POST /2");
    EXPECT_EQ(r2.header("x-body-bytes"), "5");
    EXPECT_EQ(r3.body, "o GET /3");
}

TEST(Proxy, StreamingChunkArrivesBeforeTheOriginWritesTheNext) {
    Gate chunk1_seen, origin_done;
    TestOrigin origin([&](OriginExchange& ex) {
        ex.begin_chunked(200, "application/x-ndjson");
        ex.chunk("{\"token\":\"one\"}\n");
        // The next chunk is written only once the client has seen the first.
        chunk1_seen.wait();
        ex.chunk("{\"token\":\"two\"}\n");
        ex.end_chunked();
        origin_done.open();
    });
    RunningProxy proxy(one_route(origin.address()));
    RawClient client(proxy.port());
    client.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    auto head = client.read_head();
    EXPECT_EQ(head.status, 200u);
    EXPECT_EQ(head.header("Content-Type"), "application/x-ndjson");
    std::string got;
    while (got.find('\n') == std::string::npos) got += client.read_body_some();
    EXPECT_EQ(got, "{\"token\":\"one\"}\n");
    chunk1_seen.open();
    while (!client.body_done()) got += client.read_body_some();
    EXPECT_EQ(got, "{\"token\":\"one\"}\n{\"token\":\"two\"}\n");
    EXPECT_TRUE(origin_done.wait());
    // The connection is still good for another request.
    chunk1_seen.open();
    EXPECT_EQ(client.get("/again").status, 200u);
}

TEST(Proxy, ServerSentEventsStreamEventByEvent) {
    Gate next;
    TestOrigin origin([&](OriginExchange& ex) {
        // A close-delimited body (no length, no chunking): sluice re-chunks it.
        ex.keep_alive = false;
        ex.write_raw("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n");
        ex.write_raw("data: 1\n\n");
        next.wait();
        ex.write_raw("data: 2\n\n");
    });
    RunningProxy proxy(one_route(origin.address()));
    RawClient client(proxy.port());
    client.send("GET /sse HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n");
    auto head = client.read_head();
    EXPECT_EQ(head.header("Transfer-Encoding"), "chunked");
    EXPECT_EQ(client.read_body_some(), "data: 1\n\n");
    next.open();
    std::string rest;
    while (!client.body_done()) rest += client.read_body_some();
    EXPECT_EQ(rest, "data: 2\n\n");
    EXPECT_TRUE(head.keep_alive);  // re-chunked, so the client connection survives
}

TEST(Proxy, HopByHopHeadersAndForwardedHeaders) {
    nlohmann::json seen;
    TestOrigin origin([&](OriginExchange& ex) {
        for (const auto& f : ex.head()) seen[std::string(f.name_string())] = std::string(f.value());
        ex.respond(200, "ok", {{"Connection", "X-Upstream-Hop"}, {"X-Upstream-Hop", "1"}, {"Keep-Alive", "timeout=3"}});
    });
    RunningProxy proxy(one_route(origin.address()));
    auto r = http_get(proxy.port(), "/h",
                      "Connection: keep-alive, X-Client-Hop\r\nX-Client-Hop: secret\r\nProxy-Connection: keep-alive\r\n"
                      "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-App: kept\r\n");
    EXPECT_EQ(r.status, 200u);
    EXPECT_FALSE(seen.contains("X-Client-Hop"));
    EXPECT_FALSE(seen.contains("Proxy-Connection"));
    EXPECT_EQ(seen["X-App"], "kept");
    EXPECT_EQ(seen["Host"], "test.local");
    EXPECT_EQ(seen["X-Forwarded-For"], "203.0.113.7, 127.0.0.1");
    EXPECT_EQ(seen["X-Forwarded-Proto"], "http");
    EXPECT_EQ(seen["X-Forwarded-Host"], "test.local");
    EXPECT_EQ(r.header("X-Upstream-Hop"), "");
    EXPECT_EQ(r.header("Keep-Alive"), "");
}

TEST(Proxy, HeadNoContentAndNotModifiedHaveNoBody) {
    TestOrigin origin([](OriginExchange& ex) {
        auto t = ex.target();
        if (t == "/head") ex.write_raw("HTTP/1.1 200 OK\r\nContent-Length: 12345\r\n\r\n");
        else if (t == "/204") ex.write_raw("HTTP/1.1 204 No Content\r\n\r\n");
        else ex.write_raw("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n");
    });
    RunningProxy proxy(one_route(origin.address()));
    RawClient client(proxy.port());
    client.send("HEAD /head HTTP/1.1\r\nHost: t\r\n\r\n");
    auto h = client.read_response(true);
    EXPECT_EQ(h.status, 200u);
    EXPECT_EQ(h.header("Content-Length"), "12345");
    EXPECT_EQ(client.get("/204").status, 204u);
    auto nm = client.get("/304", "If-None-Match: \"v1\"\r\n");
    EXPECT_EQ(nm.status, 304u);
    EXPECT_EQ(nm.header("ETag"), "\"v1\"");
    EXPECT_EQ(client.get("/204").status, 204u);  // the connection stayed in step
}

TEST(Proxy, ExpectContinueIsRelayed) {
    TestOrigin origin([](OriginExchange& ex) {
        ex.write_raw("HTTP/1.1 100 Continue\r\n\r\n");
        auto body = ex.read_body();
        ex.respond(201, "got " + std::to_string(body.size()));
    });
    RunningProxy proxy(one_route(origin.address()));
    RawClient client(proxy.port());
    client.send("PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    auto interim = client.read_response();
    EXPECT_EQ(interim.status, 100u);
    client.send("data");
    auto r = client.read_response();
    EXPECT_EQ(r.status, 201u);
    EXPECT_EQ(r.body, "got 4");
}

TEST(Proxy, Http10ClientGetsAnHttp10Answer) {
    TestOrigin origin([](OriginExchange& ex) {
        ex.begin_chunked();
        ex.chunk("abc");
        ex.end_chunked();
    });
    RunningProxy proxy(one_route(origin.address()));
    RawClient client(proxy.port());
    client.send("GET /x HTTP/1.0\r\n\r\n");
    std::string raw = client.read_until_close();
    EXPECT_EQ(raw.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << raw;
    EXPECT_EQ(raw.find("chunked"), std::string::npos) << raw;
    EXPECT_EQ(raw.substr(raw.size() - 3), "abc");
}

TEST(Proxy, LargeHeadersUnderTheLimitPass) {
    TestOrigin origin(echo_handler("o"));
    RunningProxy proxy(one_route(origin.address()));
    std::string big(40000, 'x');
    auto r = http_get(proxy.port(), "/big", "X-Big: " + big + "\r\n");
    EXPECT_EQ(r.status, 200u);
}

TEST(Proxy, RoundRobinSpreadsRequestsOverEndpoints) {
    TestOrigin a(echo_handler("a")), b(echo_handler("b")), c(echo_handler("c"));
    RunningProxy proxy(fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: pool, endpoints: ["{a}", "{b}", "{c}"]}]
routes: [{name: all, match: {path_prefix: /}, cluster: pool}]
)",
                            {{"a", a.address()}, {"b", b.address()}, {"c", c.address()}}),
                       1);
    RawClient client(proxy.port());
    std::map<std::string, int> hits;
    for (int i = 0; i < 9; ++i) ++hits[client.get("/x").header("x-origin")];
    EXPECT_EQ(hits["a"], 3);
    EXPECT_EQ(hits["b"], 3);
    EXPECT_EQ(hits["c"], 3);
}

TEST(Proxy, EveryWorkerServesAndConnectionsStayOnTheirWorker) {
    TestOrigin origin(echo_handler("o"));
    RunningProxy proxy(one_route(origin.address()),
                       4);
    // Many connections, each with several requests: all answered, in order.
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int i = 0; i < 32; ++i) clients.push_back(std::make_unique<RawClient>(proxy.port()));
    for (int round = 0; round < 3; ++round)
        for (std::size_t i = 0; i < clients.size(); ++i)
            EXPECT_EQ(clients[i]->get("/c" + std::to_string(i)).body, "o GET /c" + std::to_string(i));
    // Each worker opens its own upstream connections: never more than one per
    // client connection, and reused across rounds.
    EXPECT_LE(origin.connections(), 32);
    EXPECT_EQ(origin.requests(), 96);
}
