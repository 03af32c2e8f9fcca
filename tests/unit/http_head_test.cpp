#include "proxy/forward_headers.h"
#include "proxy/http_head.h"

#include <gtest/gtest.h>

using namespace sluice::proxy;

namespace {

struct ParsedRequest {
    RequestHead head;
    std::optional<RequestParser> parser;
    boost::beast::error_code ec;
};

std::unique_ptr<ParsedRequest> parse(const std::string& raw) {
    auto p = std::make_unique<ParsedRequest>();
    auto end = find_head_end(raw);
    p->head.raw = raw.substr(0, end ? end : raw.size());
    p->parser.emplace(p->head);
    p->parser->put(boost::asio::buffer(p->head.raw), p->ec);
    return p;
}

struct ParsedResponse {
    ResponseHead head;
    std::optional<ResponseParser> parser;
};

std::unique_ptr<ParsedResponse> parse_response(const std::string& raw) {
    auto p = std::make_unique<ParsedResponse>();
    p->head.raw = raw;
    p->parser.emplace(p->head);
    boost::beast::error_code ec;
    p->parser->put(boost::asio::buffer(p->head.raw), ec);
    EXPECT_FALSE(ec) << ec.message();
    return p;
}

}  // namespace

TEST(HttpHead, FindsTheEndOfAHead) {
    EXPECT_EQ(find_head_end("GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"), 27u);
    EXPECT_EQ(find_head_end("GET / HTTP/1.1\r\nHost: a\r\n"), 0u);
}

TEST(HttpHead, SmugglingShapesAreRefused) {
    auto both = parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n");
    EXPECT_TRUE(both->ec || !request_framing_problem(both->head).empty());
    auto cl_first = parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
    EXPECT_TRUE(cl_first->ec || !request_framing_problem(cl_first->head).empty());
    auto gzip = parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n");
    EXPECT_TRUE(gzip->ec || !request_framing_problem(gzip->head).empty());
    auto te_only_gzip = parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n");
    EXPECT_NE(request_framing_problem(te_only_gzip->head), "");
    auto two_cl = parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
    EXPECT_TRUE(two_cl->ec);
    auto fine = parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    EXPECT_FALSE(fine->ec);
    EXPECT_EQ(request_framing_problem(fine->head), "");
}

TEST(HttpHead, ChunkedBodyComesOutAsViews) {
    auto p = parse("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    ASSERT_FALSE(p->ec);
    p->parser->eager(true);
    std::string body = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    boost::beast::error_code ec;
    auto used = p->parser->put(boost::asio::buffer(body), ec);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(used, body.size());
    EXPECT_TRUE(p->parser->is_done());
    std::string got;
    for (auto b : p->parser->body()) got.append(static_cast<const char*>(b.data()), b.size());
    EXPECT_EQ(got, "hello world");
}

TEST(HttpHead, ConnectionTokensAnyCaseAnyOrder) {
    auto p = parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n");
    EXPECT_TRUE(p->head.connection_has("upgrade"));
    EXPECT_TRUE(p->head.connection_has("Keep-Alive"));
    EXPECT_FALSE(p->head.connection_has("close"));
}

TEST(HttpHead, PathQueryAndHost) {
    auto p = parse("GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: Example.com:8080\r\n\r\n");
    EXPECT_EQ(p->head.path, "/a/b");
    EXPECT_EQ(p->head.query, "?x=1&y=2");
    EXPECT_EQ(p->head.host_name(), "Example.com");
    auto v6 = parse("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
    EXPECT_EQ(v6->head.host_name(), "[::1]");
}

TEST(ForwardHeaders, UpstreamRequestDropsHopByHopAndAddsForwarded) {
    auto p = parse(
        "GET /old/x?q=1 HTTP/1.1\r\nHost: front.test:8080\r\nConnection: keep-alive, X-Secret\r\n"
        "Keep-Alive: timeout=5\r\nX-Secret: s\r\nTE: trailers\r\nX-Forwarded-For: 10.0.0.1\r\n"
        "X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nAccept: */*\r\n\r\n");
    std::string out;
    build_upstream_request(p->head, UpstreamRequest{"/new/x", "127.0.0.9", "http", "backend:1"}, out);
    EXPECT_EQ(out,
              "GET /new/x?q=1 HTTP/1.1\r\nHost: front.test:8080\r\nAccept: */*\r\n"
              "X-Forwarded-For: 10.0.0.1, 127.0.0.9\r\nX-Forwarded-Proto: http\r\n"
              "X-Forwarded-Host: front.test:8080\r\n\r\n");
}

TEST(ForwardHeaders, Http10WithoutHostGetsTheEndpoint) {
    auto p = parse("GET / HTTP/1.0\r\n\r\n");
    std::string out;
    UpstreamRequest up{"/", "1.2.3.4", "http", "backend:1", Framing::length, 3};
    build_upstream_request(p->head, up, out);
    EXPECT_NE(out.find("Host: backend:1\r\n"), std::string::npos) << out;
    EXPECT_NE(out.find("Content-Length: 3\r\n"), std::string::npos) << out;
    EXPECT_EQ(out.find("X-Forwarded-Host"), std::string::npos) << out;
}

TEST(ForwardHeaders, ClientResponseReframes) {
    auto r = parse_response(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nX-Keep: 2\r\n\r\n");
    std::string out;
    build_client_response(r->head, ClientResponse{Framing::chunked, 0, false, false}, out);
    EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nX-Keep: 2\r\nTransfer-Encoding: chunked\r\n\r\n");
    out.clear();
    build_client_response(r->head, ClientResponse{Framing::until_close, 0, true, true}, out);
    EXPECT_EQ(out, "HTTP/1.0 200 OK\r\nX-Keep: 2\r\nConnection: close\r\n\r\n");
}

TEST(ForwardHeaders, BodylessResponseKeepsContentLength) {
    auto r = parse_response("HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nETag: \"x\"\r\n\r\n");
    std::string out;
    build_client_response(r->head, ClientResponse{Framing::none, 0, false, false}, out);
    EXPECT_EQ(out, "HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nETag: \"x\"\r\n\r\n");
}
