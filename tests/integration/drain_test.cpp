// Graceful drain: /ready turns 503 at once, listeners accept for drain_delay,
// then close; open streams get up to timeouts.drain; then the server stops.
#include "tests/support/client.h"
#include "tests/support/origin.h"
#include "tests/support/proxy_fixture.h"

#include <gtest/gtest.h>

using namespace sluice::test;

TEST(Drain, ReadyFlipsListenersCloseStreamsFinishThenStop) {
    Gate stream_release;
    TestOrigin o([&](OriginExchange& ex) {
        if (ex.target() == "/stream") {
            ex.begin_chunked();
            ex.chunk("a");
            stream_release.wait();
            ex.chunk("b");
            ex.end_chunked();
        } else {
            ex.respond(200, "ok");
        }
    });
    RunningProxy p(one_route(o.address(), "timeouts: {drain_delay: 400ms, drain: 20s}"));
    auto port = p.port();
    RawClient idle(port);
    EXPECT_EQ(idle.get("/warm").status, 200u);
    RawClient streaming(port);
    streaming.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(streaming.read_head().status, 200u);
    EXPECT_EQ(streaming.read_body_some(), "a");

    p.server->drain();
    // /ready answers 503 at once; new connections are still accepted during drain_delay.
    for (int i = 0; i < 100 && http_get(p.admin_port(), "/ready").status != 503; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(http_get(p.admin_port(), "/ready").status, 503u);
    auto during = http_get(port, "/during");
    EXPECT_EQ(during.status, 200u);
    EXPECT_FALSE(during.keep_alive);  // drained clients are told to go

    // After drain_delay: the idle keep-alive connection is closed, new ones are refused.
    EXPECT_TRUE(idle.closed_by_peer(5000));
    bool refused = false;
    for (int i = 0; i < 200 && !refused; ++i) {
        try {
            RawClient late(port, 200);
            late.get("/late");
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        } catch (const std::exception&) {
            refused = true;
        }
    }
    EXPECT_TRUE(refused);

    // The open stream still finishes normally.
    stream_release.open();
    std::string rest;
    while (!streaming.body_done()) rest += streaming.read_body_some();
    EXPECT_EQ(rest, "b");
    EXPECT_EQ(p.server->wait(), 0);
}

TEST(Drain, StreamsStillOpenAtTheEndOfTheWindowAreClosed) {
    Gate never;
    TestOrigin o([&](OriginExchange& ex) {
        ex.begin_chunked();
        ex.chunk("a");
        never.wait(20000);
    });
    RunningProxy p(one_route(o.address(), "timeouts: {drain_delay: 0s, drain: 300ms}"));
    RawClient streaming(p.port());
    streaming.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(streaming.read_head().status, 200u);
    EXPECT_EQ(streaming.read_body_some(), "a");
    p.server->drain();
    EXPECT_EQ(p.server->wait(), 0);
    EXPECT_THROW(streaming.read_body_some(), std::exception);
    never.open();
}
