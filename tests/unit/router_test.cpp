#include "config/load.h"
#include "proxy/message/message_parser.h"
#include "proxy/snapshot/router.h"

#include <gtest/gtest.h>

using namespace sluice;
using sluice::proxy::Router;

namespace {

struct Parsed {
    proxy::RequestHead head;
    std::optional<proxy::RequestParser> parser;
};

std::unique_ptr<Parsed> request(const std::string& method, const std::string& target, const std::string& host = "x.test",
                                const std::string& extra = "") {
    auto p = std::make_unique<Parsed>();
    p->head.raw = method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + extra + "\r\n";
    p->parser.emplace(p->head);
    boost::system::error_code ec;
    p->parser->parse_head(ec);
    EXPECT_FALSE(ec) << ec.message();
    return p;
}

class RouterTest : public ::testing::Test {
protected:
    void load(const std::string& routes_yaml) {
        auto r = config::load_text("clusters: [{name: c, endpoints: [\"127.0.0.1:1\"]}]\nroutes:\n" + routes_yaml,
                                   config::Format::yaml);
        ASSERT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors[0].pointer + ": " + r.errors[0].message);
        cfg_ = *r.config;
        router_ = Router(cfg_.routes);
    }
    std::string match(const std::string& method, const std::string& target, const std::string& host = "x.test",
                      const std::string& extra = "") {
        auto req = request(method, target, host, extra);
        auto i = router_.match(req->head);
        return i == Router::npos ? "none" : cfg_.routes[i].name;
    }
    config::Config cfg_;
    Router router_;
};

}  // namespace

TEST_F(RouterTest, ExactBeatsPrefixAndLongerPrefixBeatsShorter) {
    load(R"(
  - {name: root, match: {path_prefix: /}, cluster: c}
  - {name: api, match: {path_prefix: /api/}, cluster: c}
  - {name: api-v2, match: {path_prefix: /api/v2/}, cluster: c}
  - {name: health, match: {path: /api/health}, cluster: c}
)");
    EXPECT_EQ(match("GET", "/api/health"), "health");
    EXPECT_EQ(match("GET", "/api/health?full=1"), "health");
    EXPECT_EQ(match("GET", "/api/healthz"), "api");
    EXPECT_EQ(match("GET", "/api/v2/x"), "api-v2");
    EXPECT_EQ(match("GET", "/api/v1/x"), "api");
    EXPECT_EQ(match("GET", "/apix"), "root");
    EXPECT_EQ(match("GET", "/"), "root");
}

TEST_F(RouterTest, OnATieTheEarlierRouteWins) {
    load(R"(
  - {name: first, match: {path_prefix: /a}, cluster: c}
  - {name: second, match: {path_prefix: /a}, cluster: c}
)");
    EXPECT_EQ(match("GET", "/a/b"), "first");
}

TEST_F(RouterTest, HostMethodsAndHeadersNarrowAMatch) {
    load(R"(
  - {name: wild, match: {path_prefix: /, host: "*.example.com"}, cluster: c}
  - {name: exact-host, match: {path_prefix: /, host: api.example.com}, cluster: c}
  - {name: post-only, match: {path_prefix: /p, methods: [POST]}, cluster: c}
  - {name: gold, match: {path_prefix: /h, headers: [{name: x-tier, value: gold}]}, cluster: c}
  - {name: no-auth, match: {path_prefix: /h, headers: [{name: authorization, present: false}]}, cluster: c}
  - {name: fallback, match: {path_prefix: /}, cluster: c}
)");
    EXPECT_EQ(match("GET", "/x", "API.Example.com:8080"), "wild");  // earlier route, same prefix
    EXPECT_EQ(match("GET", "/x", "example.com"), "fallback");       // a wildcard needs a subdomain
    EXPECT_EQ(match("GET", "/x", "a.b.example.com"), "wild");
    EXPECT_EQ(match("POST", "/p"), "post-only");
    EXPECT_EQ(match("GET", "/p"), "fallback");
    EXPECT_EQ(match("GET", "/h", "x.test", "X-Tier: gold\r\n"), "gold");
    EXPECT_EQ(match("GET", "/h", "x.test", "X-Tier: silver\r\n"), "no-auth");
    EXPECT_EQ(match("GET", "/h", "x.test", "Authorization: a\r\n"), "fallback");
}

TEST_F(RouterTest, NoRouteMeansNpos) {
    load("  - {name: only, match: {path: /only}, cluster: c}\n");
    EXPECT_EQ(match("GET", "/other"), "none");
}

TEST_F(RouterTest, AbsoluteFormTargetsRouteByTheirPath) {
    load("  - {name: a, match: {path_prefix: /a, host: origin.test}, cluster: c}\n");
    // RFC 9112 3.2.2: with an absolute-form target the authority is the host; Host is ignored.
    EXPECT_EQ(match("GET", "http://origin.test/a/b?q=1", "other.test"), "a");
    EXPECT_EQ(match("GET", "http://other.test/a/b", "origin.test"), "none");
}

TEST(HostMatch, WildcardAndCase) {
    EXPECT_TRUE(proxy::host_matches("*.example.com", "a.example.com"));
    EXPECT_TRUE(proxy::host_matches("*.example.com", "A.EXAMPLE.COM"));
    EXPECT_FALSE(proxy::host_matches("*.example.com", "example.com"));
    EXPECT_FALSE(proxy::host_matches("*.example.com", "aexample.com"));
    EXPECT_TRUE(proxy::host_matches("example.com", "Example.Com"));
}
