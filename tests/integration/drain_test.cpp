// Graceful drain: /ready turns 503 at once, listeners accept for drain_delay,
// then close; open streams get up to timeouts.drain; then the server stops.
// WebSocket tunnels still open are ended with Close 1001 frames, after the
// message in flight; wss:// ones with close_notify after it.
#include "tests/support/certs.h"
#include "tests/support/client.h"
#include "tests/support/deadline.h"
#include "tests/support/origin.h"
#include "tests/support/proxy_fixture.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tls_client.h"
#include "tests/support/websocket.h"

#include <gtest/gtest.h>

#include <filesystem>

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
    EXPECT_TRUE(eventually([&] { return http_get(p.admin_port(), "/ready").status == 503; }, 500));
    auto during = http_get(port, "/during");
    EXPECT_EQ(during.status, 200u);
    EXPECT_FALSE(during.keep_alive);  // drained clients are told to go

    // After drain_delay: the idle keep-alive connection is closed, new ones are refused.
    EXPECT_TRUE(idle.closed_by_peer(5000));
    EXPECT_TRUE(eventually(
        [&] {
            try {
                RawClient late(port, 200);
                late.get("/late");
                return false;
            } catch (const std::exception&) {
                return true;  // refused
            }
        },
        2000));

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

namespace {

// A WebSocket origin that, asked "go", sends one message in two frames with a
// pause between them (until `second_part` opens), then reads until it hears a
// Close, whose code it keeps. Beast refuses unmasked frames from a client, so
// a Close that arrives was masked.
OriginHandler fragmenting_origin(Gate& second_part, std::atomic<int>& close_code) {
    return [&](OriginExchange& ex) {
        http::request<http::empty_body> req;
        req.base() = ex.parser.get().base();
        websocket::stream<tcp::socket&> ws(ex.socket);
        ws.accept(req);
        beast::flat_buffer buffer;
        beast::error_code ec;
        ws.read(buffer, ec);
        if (ec) return;
        ws.text(true);
        ws.write_some(false, asio::buffer(std::string_view("part one, ")), ec);
        second_part.wait();
        ws.write_some(true, asio::buffer(std::string_view("part two")), ec);
        buffer.consume(buffer.size());
        ws.read(buffer, ec);
        if (ec == websocket::error::closed) close_code = ws.reason().code;
        ex.keep_alive = false;
    };
}

}  // namespace

TEST(Drain, AWebSocketGetsCloseGoingAwayAfterTheMessageInFlight) {
    Gate second_part;
    std::atomic<int> upstream_heard{0};
    TestOrigin o(fragmenting_origin(second_part, upstream_heard));
    RunningProxy p(one_route(o.address(), "timeouts: {drain_delay: 0s, drain: 100ms}"));
    WsClient c(p.port());
    c.send("go");
    // The drain reaches the tunnel while the message is half sent; it waits for its end.
    p.server->drain();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    second_part.open();
    EXPECT_EQ(c.receive(), "part one, part two");
    try {
        c.receive();
        ADD_FAILURE() << "a message after the drain";
    } catch (const boost::system::system_error& e) {
        EXPECT_EQ(e.code(), websocket::error::closed) << e.what();
    }
    EXPECT_EQ(c.stream().reason().code, websocket::close_code::going_away);
    EXPECT_TRUE(eventually([&] { return upstream_heard.load() == 1001; })) << upstream_heard.load();
    EXPECT_EQ(p.server->wait(), 0);
    second_part.open();
}

TEST(Drain, AWssTunnelEndsWithCloseGoingAwayThenCloseNotify) {
    TestCa ca;
    const TempDir tmp("sluice-drain-tls-");
    const std::string& dir = tmp.path;
    const auto leaf = ca.issue({"localhost"});
    write_file(dir, "tls.crt", leaf.cert);
    write_file(dir, "tls.key", leaf.key);
    TestOrigin o(websocket_echo_handler());
    RunningProxy p(fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0, tls: {cert: "{d}/tls.crt", key: "{d}/tls.key"}}]
clusters: [{name: o, endpoints: ["{o}"]}]
routes: [{name: all, match: {path_prefix: /}, cluster: o}]
timeouts: {drain_delay: 0s, drain: 100ms}
)",
                        {{"d", dir}, {"o", o.address()}}));
    // A hand-made handshake, so every byte after the 101 can be seen.
    TlsClient c(p.port(), ca.cert_pem());
    c.send("GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    ASSERT_EQ(c.read_head().status, 101u);
    p.server->drain();
    std::string got;
    boost::system::error_code end;
    for (;;) {
        char buf[256];
        auto [ec, n] = c.run([&](auto h) { c.stream().async_read_some(asio::buffer(buf), h); });
        got.append(buf, n);
        if (ec) {
            end = ec;
            break;
        }
    }
    EXPECT_EQ(got, std::string("\x88\x02\x03\xe9", 4));  // Close, 1001, unmasked from a server
    EXPECT_EQ(end, asio::error::eof) << end.message();   // close_notify, not a truncated stream
    EXPECT_EQ(p.server->wait(), 0);
}

// An upgrade still on its way when the drain planned its instants (the
// origin had not answered yet) becomes a tunnel after that: it gets an instant
// of its own and its Close 1001, instead of a bare close when the process
// gives up.
TEST(Drain, ATunnelOpenedAfterTheDrainPlannedStillGetsItsGoodbye) {
    Gate arrived, answer;
    auto echo = websocket_echo_handler();
    TestOrigin o([&](OriginExchange& ex) {
        arrived.open();
        answer.wait();
        echo(ex);
    });
    RunningProxy p(one_route(o.address(), "timeouts: {drain_delay: 0s, drain: 1s}"));
    RawClient c(p.port());
    c.send("GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    ASSERT_TRUE(arrived.wait());  // the exchange is at the origin: not idle
    p.server->drain();
    // The listener closes when the drain plans its instants: wait for that.
    EXPECT_TRUE(eventually([&] {
        try {
            RawClient late(p.port(), 200);
            late.get("/late");
            return false;
        } catch (const std::exception&) {
            return true;
        }
    }));
    answer.open();
    ASSERT_EQ(c.read_head().status, 101u);
    std::string got;
    for (;;) {
        char buf[64];
        auto [ec, n] = c.run([&](auto h) { c.socket().async_read_some(asio::buffer(buf), h); });
        got.append(buf, n);
        if (ec) break;
    }
    EXPECT_EQ(got, std::string("\x88\x02\x03\xe9", 4));
    EXPECT_EQ(p.server->wait(), 0);
}
