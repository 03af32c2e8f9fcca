// Hostile input on real sockets: paths that climb out of a rewrite, upstream
// responses that could be read two ways, framing that would grow memory
// without bound, and a request that must never reach an origin twice.
#include "tests/support/client.h"
#include "tests/support/origin.h"
#include "tests/support/proxy_fixture.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

using namespace sluice::test;

namespace {

// An origin that answers each request with the target it saw.
OriginHandler target_echo() {
    return [](OriginExchange& ex) { ex.respond(200, ex.target()); };
}

const char* kRewrite = R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: o, endpoints: ["{o}"]}]
routes:
  - {name: rw, match: {path_prefix: /rw/}, rewrite: {path_prefix: /base/}, cluster: o}
  - {name: tight, match: {path_prefix: /t}, rewrite: {path_prefix: /inside/}, cluster: o}
)";

}  // namespace

// "/rw/../secret" reached the origin as "/base/../secret": outside the rewrite.
TEST(Paths, DotSegmentsAreResolvedBeforeRoutingAndNeverLeaveARewrite) {
    TestOrigin o(target_echo());
    RunningProxy p(fill(kRewrite, {{"o", o.address()}}));
    // Resolved first: "/secret" matches no route.
    EXPECT_EQ(http_get(p.port(), "/rw/../secret").status, 404u);
    EXPECT_EQ(http_get(p.port(), "/rw/%2e%2e/secret").status, 404u);
    EXPECT_EQ(http_get(p.port(), "/rw/%2E%2e/secret").status, 404u);
    EXPECT_EQ(o.requests(), 0);
    // Resolved inside the prefix: the normal form is what the origin gets.
    EXPECT_EQ(http_get(p.port(), "/rw/a/./b/../c?q=1").body, "/base/a/c?q=1");
    EXPECT_EQ(http_get(p.port(), "/x/../rw/y").body, "/base/y");
    // "/t.." is a normal path whose remainder ".." would climb out of "/inside/".
    auto out = http_get(p.port(), "/t..");
    EXPECT_EQ(out.status, 400u);
    EXPECT_NE(out.body.find("would leave its prefix /inside/"), std::string::npos) << out.body;
    EXPECT_EQ(http_get(p.port(), "/t../x").status, 400u);
    EXPECT_EQ(http_get(p.port(), "/tx").body, "/inside/x");
    auto above = http_get(p.port(), "/rw/../../etc/passwd");
    EXPECT_EQ(above.status, 400u);
    EXPECT_NE(above.body.find("climbs above"), std::string::npos) << above.body;
}

TEST(Paths, EncodedSlashesAreKeptRefusedOrDecodedAsConfigured) {
    TestOrigin o(target_echo());
    RunningProxy keep(fill(kRewrite, {{"o", o.address()}}));
    EXPECT_EQ(http_get(keep.port(), "/rw/a%2Fb%5cc").body, "/base/a%2Fb%5cc");
    RunningProxy reject(fill(kRewrite, {{"o", o.address()}}) + "paths: {encoded_slash: reject}\n");
    auto r = http_get(reject.port(), "/rw/a%2Fb");
    EXPECT_EQ(r.status, 400u);
    EXPECT_NE(r.body.find("encoded slash (%2F)"), std::string::npos) << r.body;
    RunningProxy decode(fill(kRewrite, {{"o", o.address()}}) + "paths: {encoded_slash: decode}\n");
    EXPECT_EQ(http_get(decode.port(), "/rw/a%2Fb%5Cc").body, "/base/a/b/c");
    // Decoded, an encoded ".." is a dot segment like any other.
    EXPECT_EQ(http_get(decode.port(), "/rw/a%2F..%2F..%2Fsecret").status, 404u);
}

TEST(Paths, RepeatedSlashesAreMergedWhenAsked) {
    TestOrigin o(target_echo());
    RunningProxy as_is(fill(kRewrite, {{"o", o.address()}}));
    EXPECT_EQ(http_get(as_is.port(), "/rw//a///b").body, "/base//a///b");
    RunningProxy merged(fill(kRewrite, {{"o", o.address()}}) + "paths: {merge_slashes: true}\n");
    EXPECT_EQ(http_get(merged.port(), "//rw//a///b").body, "/base/a/b");
}

// A body-less POST on a pooled connection that the origin closed without an
// answer was sent again on a new connection: the origin received it twice.
TEST(Retries, ARequestThatReachedTheOriginIsRepeatedOnlyWhenIdempotent) {
    std::atomic<int> posts{0}, gets{0};
    TestOrigin o([&](OriginExchange& ex) {
        std::string method(ex.head().method_string());
        if (ex.target() == "/warm") return ex.respond(200, "warm");
        // The first request of each kind: read, then close without a word.
        auto& count = method == "POST" ? posts : gets;
        if (++count == 1) {
            ex.keep_alive = false;
            return;
        }
        ex.respond(200, method + " answered");
    });
    RunningProxy p(one_route(o.address()), 1);
    RawClient c(p.port());
    EXPECT_EQ(c.get("/warm").status, 200u);  // leaves a pooled connection
    c.send("POST /once HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    auto post = c.read_response();
    EXPECT_EQ(post.status, 502u);
    EXPECT_EQ(post.header("x-sluice-error"), "upstream_reset");
    EXPECT_EQ(posts.load(), 1) << "a POST must never reach the origin twice";

    RawClient g(p.port());
    EXPECT_EQ(g.get("/warm").status, 200u);
    auto get = g.get("/again");
    EXPECT_EQ(get.status, 200u) << get.body;  // a GET is safe to repeat
    EXPECT_EQ(gets.load(), 2);
}

namespace {

// Upstream responses, raw, by target.
OriginHandler raw_responses() {
    return [](OriginExchange& ex) {
        const std::string t = ex.target();
        if (t == "/te-twice")
            ex.write_raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        else if (t == "/te-gzip")
            ex.write_raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz");
        else if (t == "/status-600")
            ex.write_raw("HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nhi");
        else if (t == "/status-099")
            ex.write_raw("HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nhi");
        else if (t == "/cl-and-te")
            ex.write_raw("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n");
        else if (t == "/many-options") {
            std::string opts;
            for (int i = 0; i < 17; ++i) opts += (i ? ", x" : "x") + std::to_string(i);
            ex.write_raw("HTTP/1.1 200 OK\r\nConnection: " + opts + ", x-hidden\r\nX-Hidden: 1\r\nContent-Length: 2\r\n\r\nhi");
        } else if (t == "/long-chunk-line")
            ex.write_raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + std::string(100000, 'x'));
        else if (t == "/fold")
            ex.write_raw("HTTP/1.1 200 OK\r\nX-Folded: one\r\n two\r\nContent-Length: 2\r\n\r\nhi");
        else
            ex.respond(200, "fine");
    };
}

}  // namespace

TEST(UpstreamResponses, ThoseThatCouldBeReadTwoWaysAre502) {
    TestOrigin o(raw_responses());
    RunningProxy p(one_route(o.address()));
    for (const char* t : {"/te-twice", "/te-gzip", "/status-600", "/status-099", "/cl-and-te", "/many-options",
                          "/long-chunk-line"}) {
        SCOPED_TRACE(t);
        auto r = http_get(p.port(), t);
        EXPECT_EQ(r.status, 502u) << r.body;
        EXPECT_EQ(r.header("x-sluice-error"), "upstream_bad_response") << r.body;
        EXPECT_EQ(r.body.find("fine"), std::string::npos);
    }
    EXPECT_EQ(http_get(p.port(), "/ok").body, "fine");
}

TEST(UpstreamResponses, AFoldedFieldReachesTheClientOnOneLine) {
    TestOrigin o(raw_responses());
    RunningProxy p(one_route(o.address()));
    RawClient c(p.port());
    c.send("GET /fold HTTP/1.1\r\nHost: a\r\n\r\n");
    std::string raw;
    c.set_timeout(3000);
    auto r = c.read_response();
    EXPECT_EQ(r.status, 200u);
    EXPECT_EQ(r.header("X-Folded"), "one   two");
}

// 1 GiB of chunk extension made the process 1.9 GiB, with no answer and no
// timeout while bytes flowed. Now a line past 4KiB is a 400 and a close.
TEST(BodyFraming, AChunkLineThatNeverEndsIsA400AndAClose) {
    TestOrigin o(echo_handler("o"));
    RunningProxy p(one_route(o.address()));
    RawClient c(p.port(), 5000);
    c.send("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;ext=");
    const std::string piece(16 * 1024, 'x');
    std::size_t sent = 0;
    try {
        for (; sent < (64u << 20); sent += piece.size()) c.send(piece);
    } catch (const std::exception&) {
        // the proxy closed the connection: the writes fail
    }
    EXPECT_LT(sent, 64u << 20) << "the proxy kept reading a chunk line that never ends";
    auto all = c.read_until_close();
    EXPECT_EQ(all.rfind("HTTP/1.1 400 ", 0), 0u) << all.substr(0, 200);
    EXPECT_NE(all.find("chunk-size line in the request body is longer than 4KiB"), std::string::npos) << all.substr(0, 400);
}

TEST(BodyFraming, TrailersCountAgainstTheHeaderLimit) {
    TestOrigin o(echo_handler("o"));
    RunningProxy p(one_route(o.address(), "limits: {request_headers: 2KiB}"));
    RawClient c(p.port(), 5000);
    c.send("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: " +
           std::string(4000, 't'));
    auto all = c.read_until_close();
    EXPECT_EQ(all.rfind("HTTP/1.1 431 ", 0), 0u) << all.substr(0, 200);
    EXPECT_NE(all.find("trailers of the request body are larger than 2KiB"), std::string::npos) << all.substr(0, 400);
}

// After a 100,000-route config was reverted, /metrics stayed 67 MB and took
// 4.3 s per scrape: the counters of removed routes were never freed. Now they
// go once nothing live uses them: a request or stream holds the config
// version it started under (and its counters) until it ends.
TEST(Metrics, RemovedRoutesLeaveMetricsOnceNothingLiveUsesThem) {
    Gate release;
    TestOrigin o([&](OriginExchange& ex) {
        if (ex.target() != "/r498/stream") return ex.respond(200, "ok");
        ex.begin_chunked();
        ex.chunk("first\n");
        release.wait(60000);
        ex.end_chunked();
    });
    RunningProxy p(one_route(o.address()));
    const auto small = nlohmann::json::parse(http_get(p.admin_port(), "/config").body)["config"];
    auto big = small;
    for (int i = 0; i < 500; ++i)
        big["routes"].push_back({{"name", "r" + std::to_string(i)},
                                 {"match", {{"path_prefix", "/r" + std::to_string(i) + "/"}}},
                                 {"cluster", "o"}});
    auto scrape = [&] { return http_get(p.admin_port(), "/metrics").body; };
    auto put = [&](const nlohmann::json& cfg) { return http_request(p.admin_port(), "PUT", "/config", cfg.dump()).status; };

    ASSERT_EQ(put(big), 200u);
    EXPECT_EQ(http_get(p.port(), "/r499/x").status, 200u);
    const auto big_size = scrape().size();
    EXPECT_NE(scrape().find("route=\"r499\""), std::string::npos);
    ASSERT_EQ(put(small), 200u);
    EXPECT_TRUE(eventually([&] { return scrape().find("route=\"r4") == std::string::npos; }))
        << "removed routes that nothing uses still show in /metrics";
    EXPECT_LT(scrape().size(), big_size / 10);

    // A stream that started under the big config keeps its counters until it ends.
    ASSERT_EQ(put(big), 200u);
    RawClient stream(p.port());
    stream.send("GET /r498/stream HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_EQ(stream.read_head().status, 200u);
    EXPECT_EQ(stream.read_body_some(), "first\n");
    ASSERT_EQ(put(small), 200u);
    EXPECT_NE(scrape().find("sluice_streams_active{route=\"r498\"} 1"), std::string::npos)
        << "a removed route with a live stream lost its counters";
    release.open();
    EXPECT_TRUE(eventually([&] { return scrape().find("route=\"r4") == std::string::npos; }))
        << "the stream ended: the removed routes should leave /metrics";
}
