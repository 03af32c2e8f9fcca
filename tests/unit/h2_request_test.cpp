// HTTP/2 request heads as sluice builds them from decoded fields: the
// pseudo-headers become method, target and host, the path goes through the
// same rules as an HTTP/1.1 target, and the size limit counts as HTTP/2 does.
#include "proxy/message/forward_headers.h"
#include "proxy/message/h2_request.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <utility>

using namespace sluice::proxy;

namespace {

struct BuiltHead {
    RequestHead head;
    std::optional<Refusal> refusal;
};

BuiltHead build_h2(std::initializer_list<std::pair<std::string_view, std::string_view>> fields,
                   std::size_t limit = 64 * 1024, sluice::config::Paths paths = {}) {
    BuiltHead out;
    H2RequestBuilder b;
    b.reset(limit);
    for (auto [n, v] : fields) b.add(n, v);
    out.refusal = b.finish(out.head, paths);
    return out;
}

bool inside_raw(std::string_view v, const std::string& raw) {
    return v.empty() || (v.data() >= raw.data() && v.data() + v.size() <= raw.data() + raw.size());
}

}  // namespace

TEST(H2Request, PseudoHeadersBecomeTheRequestLineAndHost) {
    auto r = build_h2({{":method", "POST"}, {":scheme", "https"}, {":authority", "api.example.com:8443"},
                       {":path", "/v1/chat?stream=true"}, {"content-type", "application/json"}, {"x-user", "7"}});
    ASSERT_FALSE(r.refusal) << r.refusal->message;
    const RequestHead& h = r.head;
    EXPECT_EQ(h.verb, http::verb::post);
    EXPECT_EQ(h.method, "POST");
    EXPECT_EQ(h.path, "/v1/chat");
    EXPECT_EQ(h.query, "?stream=true");
    EXPECT_EQ(h.host, "api.example.com:8443");
    EXPECT_EQ(h.host_name(), "api.example.com");
    ASSERT_EQ(h.fields.size(), 2u);  // pseudo-headers are not fields
    EXPECT_EQ(h.find(http::field::content_type), "application/json");
    // No view outlives its bytes: every one points into the head's own copy.
    for (const auto& f : h.fields) EXPECT_TRUE(inside_raw(f.name, h.raw) && inside_raw(f.value, h.raw));
    EXPECT_TRUE(inside_raw(h.method, h.raw) && inside_raw(h.host, h.raw) && inside_raw(h.path, h.raw));
}

TEST(H2Request, GoesUpstreamAsAnHttp11RequestWithItsHost) {
    auto r = build_h2({{":method", "GET"}, {":scheme", "http"}, {":authority", "example.test"}, {":path", "/a"},
                       {"te", "trailers"}, {"accept", "*/*"}});
    ASSERT_FALSE(r.refusal);
    UpstreamRequest up{"/a", "10.0.0.1", "http", "fallback:80", Framing::none, 0, {}};
    std::string out;
    build_upstream_request(r.head, up, out);
    EXPECT_EQ(out.rfind("GET /a HTTP/1.1\r\nHost: example.test\r\n", 0), 0u) << out;
    EXPECT_EQ(out.find("te:"), std::string::npos) << "TE is hop-by-hop: " << out;
    EXPECT_NE(out.find("accept: */*\r\n"), std::string::npos) << out;
}

TEST(H2Request, AuthorityWinsOverAHostField) {
    auto r = build_h2({{":method", "GET"}, {":authority", "a.example"}, {":path", "/"}, {"host", "b.example"}});
    ASSERT_FALSE(r.refusal);
    EXPECT_EQ(r.head.host, "a.example");
    auto only_host = build_h2({{":method", "GET"}, {":path", "/"}, {"host", "b.example"}});
    ASSERT_FALSE(only_host.refusal);
    EXPECT_EQ(only_host.head.host, "b.example");
}

TEST(H2Request, PathsFollowTheSameRulesAsHttp11) {
    sluice::config::Paths merge;
    merge.merge_slashes = true;
    auto r = build_h2({{":method", "GET"}, {":authority", "x"}, {":path", "//a/./b/../c"}}, 64 * 1024, merge);
    ASSERT_FALSE(r.refusal) << r.refusal->message;
    EXPECT_EQ(r.head.path, "/a/c");
    for (std::string_view bad : {"/../etc", "relative", "/a\\b", "/a#frag"}) {
        auto b = build_h2({{":method", "GET"}, {":authority", "x"}, {":path", bad}});
        ASSERT_TRUE(b.refusal) << bad;
        EXPECT_EQ(status_of(b.refusal->kind), 400) << bad;
    }
}

TEST(H2Request, RefusesWhatCouldBeReadTwoWays) {
    auto two_hosts = build_h2({{":method", "GET"}, {":path", "/"}, {"host", "a"}, {"host", "b"}});
    ASSERT_TRUE(two_hosts.refusal);
    EXPECT_NE(two_hosts.refusal->message.find("2 Host headers"), std::string::npos);
    auto no_host = build_h2({{":method", "GET"}, {":path", "/"}});
    ASSERT_TRUE(no_host.refusal);
    EXPECT_NE(no_host.refusal->message.find(":authority"), std::string::npos);
    auto bad_host = build_h2({{":method", "GET"}, {":path", "/"}, {":authority", "a b"}});
    EXPECT_TRUE(bad_host.refusal);
    auto two_lengths = build_h2({{":method", "POST"}, {":path", "/"}, {":authority", "a"}, {"content-length", "1"},
                                 {"content-length", "2"}});
    EXPECT_TRUE(two_lengths.refusal);
    auto bad_length = build_h2({{":method", "POST"}, {":path", "/"}, {":authority", "a"}, {"content-length", "1x"}});
    EXPECT_TRUE(bad_length.refusal);
    auto connect = build_h2({{":method", "CONNECT"}, {":authority", "a:443"}});
    ASSERT_TRUE(connect.refusal);
    EXPECT_NE(connect.refusal->message.find("CONNECT"), std::string::npos);
}

TEST(H2Request, TheHeadLimitCountsAsHttp2DoesAndAnswers431) {
    // :method GET (7 + 3), :authority x (10 + 1), :path / (5 + 1), and 32 for each: 123 bytes.
    auto fits = build_h2({{":method", "GET"}, {":authority", "x"}, {":path", "/"}}, 123);
    EXPECT_FALSE(fits.refusal);
    auto one_less = build_h2({{":method", "GET"}, {":authority", "x"}, {":path", "/"}}, 122);
    EXPECT_TRUE(one_less.refusal);
    auto over = build_h2({{":method", "GET"}, {":authority", "x"}, {":path", "/"}, {"x-big", std::string(200, 'v')}}, 200);
    ASSERT_TRUE(over.refusal);
    EXPECT_EQ(over.refusal->kind, ErrorKind::headers_too_large);
    EXPECT_NE(over.refusal->message.find("limits.request_headers"), std::string::npos);
}
