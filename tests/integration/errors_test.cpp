// Every error a client can meet: what sluice answers and that the connection
// is never left hanging.
#include "tests/support/client.h"
#include "tests/support/origin.h"
#include "tests/support/proxy_fixture.h"

#include <gtest/gtest.h>

#include <sys/socket.h>

using namespace sluice::test;

namespace {

const char* kOneRoute = R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: app, endpoints: ["{o}"]}]
routes:
  - {name: all, match: {path_prefix: /}, cluster: app}
  - {name: nows, match: {path_prefix: /nows}, cluster: app, websocket: false}
limits: {request_headers: 2KiB, request_line: 256B}
)";

// A port with nothing listening on it.
std::uint16_t closed_port() {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port();
}

class Errors : public ::testing::Test {
protected:
    void start(OriginHandler h) {
        origin = std::make_unique<TestOrigin>(std::move(h));
        proxy = std::make_unique<RunningProxy>(fill(kOneRoute, {{"o", origin->address()}}));
    }
    std::uint16_t port() const { return proxy->port(); }
    std::unique_ptr<TestOrigin> origin;
    std::unique_ptr<RunningProxy> proxy;
};

}  // namespace

TEST_F(Errors, MalformedRequestLineIs400AndCloses) {
    start(echo_handler("o"));
    RawClient c(port());
    c.send("GET /a b c HTTP/1.1\r\nHost: t\r\n\r\n");
    auto r = c.read_response();
    EXPECT_EQ(r.status, 400u);
    EXPECT_EQ(r.header("x-sluice-error"), "bad_request");
    EXPECT_NE(r.body.find("malformed request"), std::string::npos) << r.body;
    EXPECT_TRUE(c.closed_by_peer());
    EXPECT_EQ(origin->requests(), 0);
}

TEST_F(Errors, MalformedHeaderIs400) {
    start(echo_handler("o"));
    RawClient c(port());
    c.send("GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n");
    EXPECT_EQ(c.read_response().status, 400u);
    EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(Errors, MissingHostIs400) {
    start(echo_handler("o"));
    RawClient c(port());
    c.send("GET / HTTP/1.1\r\n\r\n");
    auto r = c.read_response();
    EXPECT_EQ(r.status, 400u);
    EXPECT_NE(r.body.find("Host"), std::string::npos);
}

TEST_F(Errors, HeadersOverTheLimitAre431) {
    start(echo_handler("o"));
    RawClient c(port());
    c.send("GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(3000, 'a') + "\r\n\r\n");
    auto r = c.read_response();
    EXPECT_EQ(r.status, 431u);
    EXPECT_EQ(r.header("x-sluice-error"), "headers_too_large");
    EXPECT_NE(r.body.find("2KiB (limits.request_headers)"), std::string::npos) << r.body;
    EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(Errors, LongRequestLineIs414) {
    start(echo_handler("o"));
    RawClient c(port());
    c.send("GET /" + std::string(300, 'a') + " HTTP/1.1\r\nHost: t\r\n\r\n");
    auto r = c.read_response();
    EXPECT_EQ(r.status, 414u);
    EXPECT_EQ(r.header("x-sluice-error"), "uri_too_long");
    EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(Errors, ContentLengthWithTransferEncodingIs400) {
    start(echo_handler("o"));
    RawClient c(port());
    c.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n");
    auto r = c.read_response();
    EXPECT_EQ(r.status, 400u);
    EXPECT_TRUE(c.closed_by_peer());
    EXPECT_EQ(origin->requests(), 0);
}

TEST_F(Errors, ConflictingContentLengthsAre400) {
    start(echo_handler("o"));
    RawClient c(port());
    c.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello");
    EXPECT_EQ(c.read_response().status, 400u);
    EXPECT_TRUE(c.closed_by_peer());
    EXPECT_EQ(origin->requests(), 0);
}

TEST_F(Errors, UnknownRouteIs404SayingWhichListener) {
    TestOrigin o(echo_handler("o"));
    RunningProxy p(fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: app, endpoints: ["{o}"]}]
routes: [{name: only, match: {path: /only}, cluster: app}]
)",
                        {{"o", o.address()}}));
    RawClient c(p.port());
    auto r = c.get("/nope");
    EXPECT_EQ(r.status, 404u);
    EXPECT_EQ(r.header("x-sluice-error"), "no_route");
    EXPECT_EQ(r.body, "no route matches GET /nope on listener \"public\"\n");
    EXPECT_EQ(c.get("/only").status, 200u);  // still keep-alive
}

TEST(ErrorsDefault, BuiltInDefaultConfigExplainsHowToAddARoute) {
    auto cfg = sluice::config::default_config();
    cfg.listeners[0].port = 0;
    RunningProxy p(cfg, 1, true);
    auto r = http_get(p.port("default"), "/x");
    EXPECT_EQ(r.status, 404u);
    EXPECT_NE(r.body.find("no route matches GET /x on listener \"default\"\n"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("--config"), std::string::npos) << r.body;
}

TEST(ErrorsUpstream, RefusedConnectIs502WithSpecWording) {
    auto port = closed_port();
    RunningProxy p(fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: chat, endpoints: ["127.0.0.1:{port}"]}]
routes: [{name: all, match: {path_prefix: /}, cluster: chat}]
)",
                        {{"port", std::to_string(port)}}));
    RawClient c(p.port());
    auto r = c.get("/x");
    EXPECT_EQ(r.status, 502u);
    EXPECT_EQ(r.header("x-sluice-error"), "upstream_connect_failed");
    EXPECT_EQ(r.body, "upstream connect failed: cluster \"chat\" endpoint 127.0.0.1:" + std::to_string(port) +
                          ": connection refused\n");
    EXPECT_TRUE(r.keep_alive);
    EXPECT_EQ(c.get("/y").status, 502u);
}

TEST(ErrorsUpstream, UnresolvableHostIs502SayingSo) {
    RunningProxy p(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: app, endpoints: ["no-such-host.invalid:80"]}]
routes: [{name: all, match: {path_prefix: /}, cluster: app}]
)");
    auto r = http_get(p.port(), "/x");
    EXPECT_EQ(r.status, 502u);
    EXPECT_NE(r.body.find("cannot resolve \"no-such-host.invalid\""), std::string::npos) << r.body;
}

TEST_F(Errors, UpstreamClosingWithoutAnswerIs502) {
    start([](OriginExchange& ex) { ex.keep_alive = false; });
    auto r = http_get(port(), "/x");
    EXPECT_EQ(r.status, 502u);
    EXPECT_EQ(r.header("x-sluice-error"), "upstream_reset");
    EXPECT_NE(r.body.find("upstream closed the connection before sending response headers: cluster \"app\""),
              std::string::npos)
        << r.body;
}

TEST_F(Errors, UpstreamResetIs502) {
    start([](OriginExchange& ex) { ex.reset(); });
    auto r = http_get(port(), "/x");
    EXPECT_EQ(r.status, 502u);
    EXPECT_EQ(r.header("x-sluice-error"), "upstream_reset");
}

TEST_F(Errors, MalformedUpstreamResponseIs502AndTheClientIsNotLeftHanging) {
    start([](OriginExchange& ex) {
        if (ex.target() == "/bad") ex.write_raw("HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nhi");
        else ex.respond(200, "fine");
    });
    RawClient c(port(), 3000);
    auto r = c.get("/bad");
    EXPECT_EQ(r.status, 502u);
    EXPECT_EQ(r.header("x-sluice-error"), "upstream_bad_response");
    EXPECT_NE(r.body.find("malformed response"), std::string::npos) << r.body;
    EXPECT_EQ(c.get("/good").body, "fine");
}

TEST_F(Errors, MalformedUpstreamBodyBeforeTheHeadIsSentIs502) {
    start([](OriginExchange& ex) { ex.write_raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nZZ\r\n"); });
    auto r = http_get(port(), "/x");
    EXPECT_EQ(r.status, 502u);
    EXPECT_NE(r.body.find("malformed response body"), std::string::npos) << r.body;
}

TEST_F(Errors, MalformedUpstreamBodyAfterTheHeadCutsTheResponse) {
    Gate head_seen;
    start([&](OriginExchange& ex) {
        ex.write_raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
        head_seen.wait();
        ex.write_raw("ZZ\r\n");
    });
    RawClient c(port(), 3000);
    c.send("GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
    auto head = c.read_head();
    EXPECT_EQ(head.status, 200u);
    head_seen.open();
    EXPECT_THROW(
        {
            while (!c.body_done()) c.read_body_some();
        },
        std::exception);
}

TEST_F(Errors, WebSocketOnARouteThatRefusesIs403) {
    start(echo_handler("o"));
    auto r = http_get(port(), "/nows/chat",
                      "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n");
    EXPECT_EQ(r.status, 403u);
    EXPECT_EQ(r.header("x-sluice-error"), "websocket_disabled");
    EXPECT_EQ(r.body, "route \"nows\" does not accept WebSocket upgrades (websocket: false)\n");
    EXPECT_EQ(origin->requests(), 0);
}

TEST_F(Errors, MalformedChunkedRequestBodyIs400) {
    start([](OriginExchange& ex) {
        ex.read_body();
        ex.respond(200, "unexpected");
    });
    RawClient c(port());
    c.send("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nnot-hex\r\n");
    auto r = c.read_response();
    EXPECT_EQ(r.status, 400u);
    EXPECT_NE(r.body.find("malformed request body"), std::string::npos) << r.body;
    EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(Errors, ClientLeavingMidUploadDoesNotDeliverAPartialRequest) {
    Gate origin_saw_start, origin_saw_end;
    std::atomic<bool> complete{false};
    start([&](OriginExchange& ex) {
        origin_saw_start.open();
        try {
            ex.read_body();
            complete = true;
        } catch (...) {
        }
        origin_saw_end.open();
        ex.keep_alive = false;
    });
    {
        RawClient c(port());
        c.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" + std::string(1000, 'x'));
        // Leaving before sluice reached the origin would leave it nothing to see (sluice closes the connect).
        ASSERT_TRUE(origin_saw_start.wait());
    }  // closes with 99,000 bytes missing
    EXPECT_TRUE(origin_saw_end.wait());
    EXPECT_FALSE(complete);
}
