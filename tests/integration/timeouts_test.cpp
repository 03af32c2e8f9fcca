// Each timeout of SPEC, enforced where SPEC says. Short values keep the tests
// quick; the assertions are about what happens, never how long it took.
#include "tests/support/client.h"
#include "tests/support/origin.h"
#include "tests/support/proxy_fixture.h"

#include <gtest/gtest.h>

using namespace sluice::test;

namespace {

std::string config(const std::string& origin, const std::string& timeouts, const std::string& route_timeouts = "") {
    return fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: app, endpoints: ["{o}"]}]
routes:
  - {name: all, match: {path_prefix: /}, cluster: app}
  - {name: quick, match: {path_prefix: /quick}, cluster: app, timeouts: {{rt}}}
timeouts: {{t}}
)",
                {{"o", origin}, {"t", timeouts}, {"rt", route_timeouts}});
}

}  // namespace

TEST(Timeouts, RequestHeadersNotCompleteIs408AndClose) {
    TestOrigin o(echo_handler("o"));
    RunningProxy p(config(o.address(), "request_headers: 200ms"));
    RawClient c(p.port());
    c.send("GET /slow HTTP/1.1\r\nHost: t\r\n");  // no blank line, ever
    auto r = c.read_response();
    EXPECT_EQ(r.status, 408u);
    EXPECT_EQ(r.header("x-sluice-error"), "request_timeout");
    EXPECT_EQ(r.body, "the request headers did not arrive within 200ms (timeouts.request_headers)\n");
    EXPECT_TRUE(c.closed_by_peer());
    EXPECT_EQ(o.requests(), 0);
}

TEST(Timeouts, SilentNewConnectionIsClosedWithoutAnAnswer) {
    TestOrigin o(echo_handler("o"));
    RunningProxy p(config(o.address(), "request_headers: 200ms"));
    RawClient c(p.port());
    EXPECT_EQ(c.read_until_close(), "");
}

TEST(Timeouts, IdleKeepAliveConnectionIsClosed) {
    TestOrigin o(echo_handler("o"));
    RunningProxy p(config(o.address(), "http_idle: 200ms"));
    RawClient c(p.port());
    EXPECT_EQ(c.get("/x").status, 200u);
    EXPECT_TRUE(c.closed_by_peer());
}

TEST(Timeouts, ConnectTimeoutIs504) {
    // A listener with a full backlog: the kernel drops further SYNs, so a connect hangs.
    asio::io_context io;
    tcp::acceptor blackhole(io);
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    blackhole.open(ep.protocol());
    blackhole.bind(ep);
    blackhole.listen(0);
    tcp::socket filler(io);
    filler.connect(blackhole.local_endpoint());
    std::string target = "127.0.0.1:" + std::to_string(blackhole.local_endpoint().port());
    RunningProxy p(config(target, "connect: 200ms"));
    auto r = http_get(p.port(), "/x");
    EXPECT_EQ(r.status, 504u);
    EXPECT_EQ(r.header("x-sluice-error"), "upstream_connect_timeout");
    EXPECT_EQ(r.body, "upstream connect timed out after 200ms: cluster \"app\" endpoint " + target +
                          " (timeouts.connect)\n");
}

TEST(Timeouts, NoResponseHeadersIs504WithSpecWording) {
    Gate release;
    TestOrigin o([&](OriginExchange& ex) {
        release.wait();
        ex.keep_alive = false;
    });
    RunningProxy p(config(o.address(), "upstream_response: 10s", "upstream_response: 200ms"));
    auto r = http_get(p.port(), "/quick/x");
    release.open();
    EXPECT_EQ(r.status, 504u);
    EXPECT_EQ(r.header("x-sluice-error"), "upstream_timeout");
    EXPECT_EQ(r.body, "upstream sent no response headers within 200ms (route \"quick\")\n");
}

TEST(Timeouts, StalledResponseStreamIsCut) {
    Gate release;
    TestOrigin o([&](OriginExchange& ex) {
        ex.begin_chunked();
        ex.chunk("first");
        release.wait();
        ex.keep_alive = false;
    });
    RunningProxy p(config(o.address(), "stream_idle: 300ms"));
    RawClient c(p.port());
    c.send("GET /s HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(c.read_head().status, 200u);
    EXPECT_EQ(c.read_body_some(), "first");
    // No last chunk: the client can tell the response was cut.
    EXPECT_THROW(c.read_body_some(), std::exception);
    EXPECT_FALSE(c.body_done());
    release.open();
}

TEST(Timeouts, StalledUploadIs408) {
    Gate release;
    TestOrigin o([&](OriginExchange& ex) {
        try {
            ex.read_body();
        } catch (...) {
        }
        release.open();
        ex.keep_alive = false;
    });
    RunningProxy p(config(o.address(), "stream_idle: 300ms"));
    RawClient c(p.port());
    c.send("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789");
    auto r = c.read_response();
    EXPECT_EQ(r.status, 408u);
    EXPECT_NE(r.body.find("the request body stalled: no bytes for 300ms (timeouts.stream_idle, route \"all\")"),
              std::string::npos)
        << r.body;
    EXPECT_TRUE(release.wait());  // the origin saw the request end, incomplete
}

TEST(Timeouts, MaxDurationEndsAStreamThatNeverStops) {
    std::atomic<bool> stop{false};
    TestOrigin o([&](OriginExchange& ex) {
        ex.begin_chunked();
        while (!stop) {
            ex.chunk("tick\n");
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    });
    RunningProxy p(config(o.address(), "max_duration: 300ms, stream_idle: 10s"));
    RawClient c(p.port());
    c.send("GET /forever HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(c.read_head().status, 200u);
    std::string got;
    bool cut = false;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    try {
        // Bounded: a proxy that never cuts fails here instead of hanging.
        while (!c.body_done() && std::chrono::steady_clock::now() < give_up) got += c.read_body_some();
    } catch (const std::exception&) {
        cut = true;
    }
    stop = true;
    EXPECT_TRUE(cut);
    EXPECT_FALSE(c.body_done());
    EXPECT_NE(got.find("tick\n"), std::string::npos);
}

TEST(Timeouts, MaxDurationBeforeAnyResponseIs504) {
    Gate release;
    TestOrigin o([&](OriginExchange& ex) {
        release.wait();
        ex.keep_alive = false;
    });
    RunningProxy p(config(o.address(), "max_duration: 200ms"));
    auto r = http_get(p.port(), "/x");
    release.open();
    EXPECT_EQ(r.status, 504u);
    EXPECT_EQ(r.header("x-sluice-error"), "max_duration");
    EXPECT_EQ(r.body, "the request did not complete within max_duration 200ms (route \"all\")\n");
}

TEST(Timeouts, RouteOverrideBeatsGlobal) {
    Gate release;
    TestOrigin o([&](OriginExchange& ex) {
        if (ex.target() == "/quick/slow") release.wait();
        ex.respond(200, "ok");
    });
    RunningProxy p(config(o.address(), "upstream_response: 30s", "upstream_response: 150ms"));
    EXPECT_EQ(http_get(p.port(), "/quick/slow").status, 504u);
    release.open();
    EXPECT_EQ(http_get(p.port(), "/other").status, 200u);
}

TEST(Timeouts, MaxDurationEndsWithItsRequest) {
    // An exchange that ended in an error must not leave its max_duration armed
    // for the next request on the connection.
    asio::io_context io;
    std::uint16_t dead;
    {
        tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        dead = a.local_endpoint().port();
    }
    RunningProxy p(config("127.0.0.1:" + std::to_string(dead), "max_duration: 200ms, http_idle: 30s"));
    RawClient c(p.port());
    EXPECT_EQ(c.get("/x").status, 502u);
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    EXPECT_EQ(c.get("/y").status, 502u);
}
