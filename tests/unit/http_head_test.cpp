#include "proxy/message/forward_headers.h"
#include "proxy/message/http_head.h"
#include "proxy/message/message_parser.h"
#include "proxy/message/message_rules.h"

#include <gtest/gtest.h>

#include <string>

using namespace sluice::proxy;

namespace {

struct ParsedRequest {
    RequestHead head;
    std::optional<RequestParser> parser;
    std::optional<Refusal> refusal;
    bool ok() const { return !refusal; }
    std::string why() const { return refusal ? refusal->message : ""; }
};

std::unique_ptr<ParsedRequest> parse(const std::string& raw, sluice::config::Paths paths = {}) {
    auto p = std::make_unique<ParsedRequest>();
    auto end = find_head_end(raw);
    p->head.raw = raw.substr(0, end ? end : raw.size());
    p->parser.emplace(p->head);
    p->refusal = parse_request_head(p->head, *p->parser, paths);
    return p;
}

struct ParsedResponse {
    ResponseHead head;
    std::optional<ResponseParser> parser;
    std::optional<Refusal> refusal;
};

std::unique_ptr<ParsedResponse> parse_response(const std::string& raw, bool expect_ok = true) {
    auto p = std::make_unique<ParsedResponse>();
    p->head.raw = raw;
    p->parser.emplace(p->head);
    p->refusal = parse_response_head(p->head, *p->parser, false);
    if (expect_ok) {
        EXPECT_FALSE(p->refusal) << p->refusal->message;
    }
    return p;
}

}  // namespace

TEST(HttpHead, FindsTheEndOfAHead) {
    EXPECT_EQ(find_head_end("GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"), 27u);
    EXPECT_EQ(find_head_end("GET / HTTP/1.1\r\nHost: a\r\n"), 0u);
    EXPECT_EQ(find_head_end(""), 0u);
    EXPECT_EQ(find_head_end("\r\n\r"), 0u);
    EXPECT_EQ(find_head_end("\r\n\r\n"), 4u);
    EXPECT_EQ(find_head_end("\n\r\n"), 0u);  // a bare LF is no CRLF
    EXPECT_EQ(find_head_end("a\n\r\n\r\n"), 6u);
    EXPECT_EQ(find_head_end("a\r\n\n\r\n"), 0u);
}

TEST(HttpHead, TheEndOfAHeadIsTheFirstBlankLineWhateverTheBytes) {
    // Every string of up to 7 bytes over the four that matter, against the
    // plain definition: just past the first "\r\n\r\n", else 0.
    const char alphabet[] = {'\r', '\n', 'a', '\0'};
    for (std::size_t len = 0; len <= 7; ++len) {
        std::size_t combos = 1;
        for (std::size_t i = 0; i < len; ++i) combos *= 4;
        for (std::size_t c = 0; c < combos; ++c) {
            std::string s;
            for (std::size_t i = 0, v = c; i < len; ++i, v /= 4) s.push_back(alphabet[v % 4]);
            const auto at = s.find("\r\n\r\n");
            const std::size_t expected = at == std::string::npos ? 0 : at + 4;
            ASSERT_EQ(find_head_end(s), expected) << "bytes " << testing::PrintToString(s);
        }
    }
}

TEST(HttpHead, SmugglingShapesAreRefused) {
    auto both = parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n");
    EXPECT_FALSE(both->ok());
    auto cl_first = parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
    EXPECT_FALSE(cl_first->ok());
    auto gzip = parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n");
    EXPECT_FALSE(gzip->ok());
    auto two_cl = parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
    EXPECT_FALSE(two_cl->ok());
    auto fine = parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    EXPECT_TRUE(fine->ok()) << fine->why();
}

// Beast reads "chunked, chunked" as no body at all: the body would then be
// read as a second request. Exactly one "chunked" is the only reading.
TEST(HttpHead, TransferCodingListsOtherThanOneChunkedAreRefused) {
    for (const char* te : {"chunked, chunked", "chunked,chunked", "chunked, ", ", chunked", "chunked;x=1", "CHUNKED, chunked"}) {
        auto p = parse(std::string("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ") + te + "\r\n\r\n");
        ASSERT_FALSE(p->ok()) << te;
        EXPECT_EQ(p->refusal->kind, ErrorKind::bad_request) << te;
    }
    for (const char* te : {"gzip, chunked", "chunked, gzip", "identity", "gzip"}) {
        auto p = parse(std::string("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ") + te + "\r\n\r\n");
        ASSERT_FALSE(p->ok()) << te;
        EXPECT_EQ(p->refusal->kind, ErrorKind::not_implemented) << te;
    }
    EXPECT_TRUE(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\n\r\n")->ok());
}

TEST(HttpHead, ContentLengthIsOneNumberOnOneLine) {
    EXPECT_FALSE(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n")->ok());
    EXPECT_FALSE(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n")->ok());
    EXPECT_FALSE(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n")->ok());
    EXPECT_TRUE(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")->ok());
}

TEST(HttpHead, ObsFoldInARequestIsRefused) {
    auto p = parse("GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n");
    ASSERT_FALSE(p->ok());
    EXPECT_NE(p->why().find("obsolete line folding"), std::string::npos) << p->why();
    EXPECT_FALSE(parse("GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n\ttwo\r\n\r\n")->ok());
}

// Beast unfolds an obs-fold into a buffer it reuses for the next folded
// field, so views into it would dangle (ASan: heap-use-after-free when the
// buffer grows) or read another field's bytes. sluice unfolds responses in
// its own copy first: every view stays inside the head's bytes.
TEST(HttpHead, ObsFoldInAResponseBecomesSpacesAndViewsStayInTheHead) {
    auto r = parse_response("HTTP/1.1 200 OK\r\nX-A: short\r\n fold\r\nX-B: " + std::string(300, 'b') +
                            "\r\n\t" + std::string(300, 'c') + "\r\nContent-Length: 0\r\n\r\n");
    ASSERT_EQ(r->head.fields.size(), 3u);
    EXPECT_EQ(r->head.fields[0].value, "short   fold");
    EXPECT_EQ(r->head.fields[1].value, std::string(300, 'b') + "   " + std::string(300, 'c'));
    const char* begin = r->head.raw.data();
    for (const auto& f : r->head.fields) {
        EXPECT_GE(f.value.data(), begin);
        EXPECT_LE(f.value.data() + f.value.size(), begin + r->head.raw.size());
    }
}

TEST(HttpHead, HostMustBeOneValidAuthority) {
    EXPECT_FALSE(parse("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")->ok());
    EXPECT_FALSE(parse("GET / HTTP/1.1\r\nHost: a b\r\n\r\n")->ok());
    EXPECT_FALSE(parse("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n")->ok());
    EXPECT_FALSE(parse("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n")->ok());
    EXPECT_FALSE(parse("GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n")->ok());
    EXPECT_FALSE(parse("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n")->ok());
    EXPECT_TRUE(parse("GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n")->ok());
    EXPECT_TRUE(parse("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n")->ok());
    EXPECT_TRUE(parse("GET / HTTP/1.0\r\n\r\n")->ok());
}

TEST(HttpHead, AbsoluteFormAuthorityReplacesHost) {
    auto p = parse("GET http://inner.test:81/x?y HTTP/1.1\r\nHost: outer.test\r\n\r\n");
    ASSERT_TRUE(p->ok()) << p->why();
    EXPECT_EQ(p->head.host, "inner.test:81");
    EXPECT_EQ(p->head.path, "/x");
    std::string out;
    build_upstream_request(p->head, UpstreamRequest{"/x", "1.2.3.4", "http", "backend:1"}, out);
    EXPECT_EQ(out.find("outer.test"), std::string::npos) << out;
    EXPECT_EQ(out.rfind("GET /x?y HTTP/1.1\r\nHost: inner.test:81\r\n", 0), 0u) << out;
    EXPECT_FALSE(parse("GET http://user@inner.test/ HTTP/1.1\r\nHost: a\r\n\r\n")->ok());
}

TEST(HttpHead, TargetsThatAreNotPathsAreRefused) {
    EXPECT_FALSE(parse("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n")->ok());
    EXPECT_FALSE(parse("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n")->ok());
    EXPECT_FALSE(parse("GET /a\\..\\b HTTP/1.1\r\nHost: a\r\n\r\n")->ok());
    EXPECT_TRUE(parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")->ok());
}

TEST(HttpHead, PathsAreNormalizedBeforeRouting) {
    auto p = parse("GET /rw/../secret HTTP/1.1\r\nHost: a\r\n\r\n");
    ASSERT_TRUE(p->ok());
    EXPECT_EQ(p->head.path, "/secret");
    EXPECT_EQ(parse("GET /rw/%2e%2E/secret?q HTTP/1.1\r\nHost: a\r\n\r\n")->head.path, "/secret");
    EXPECT_EQ(parse("GET /a/./b/ HTTP/1.1\r\nHost: a\r\n\r\n")->head.path, "/a/b/");
    EXPECT_FALSE(parse("GET /../x HTTP/1.1\r\nHost: a\r\n\r\n")->ok());
    EXPECT_FALSE(parse("GET /a/%2e%2e/%2e%2e/x HTTP/1.1\r\nHost: a\r\n\r\n")->ok());
}

TEST(HttpHead, ConnectionOptionsAreBounded) {
    std::string many = "GET / HTTP/1.1\r\nHost: a\r\nConnection: ";
    for (int i = 0; i < 17; ++i) many += "x" + std::to_string(i) + ", ";
    many += "close\r\n\r\n";
    EXPECT_FALSE(parse(many)->ok());
    EXPECT_TRUE(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: a, b, c\r\n\r\n")->ok());
}

TEST(HttpHead, ResponsesThatCouldBeReadTwoWaysAreRefused) {
    EXPECT_TRUE(parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", false)->refusal);
    EXPECT_TRUE(parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false)->refusal);
    EXPECT_TRUE(parse_response("HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n", false)->refusal);
    EXPECT_TRUE(parse_response("HTTP/1.1 600 High\r\nContent-Length: 0\r\n\r\n", false)->refusal);
    EXPECT_TRUE(parse_response("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", false)->refusal);
    EXPECT_FALSE(parse_response("HTTP/1.1 599 Odd\r\nContent-Length: 0\r\n\r\n", false)->refusal);
}

namespace {

// Feeds `body` in pieces of `step` bytes the way a connection buffer would:
// unconsumed bytes stay and new ones are appended.
std::optional<Refusal> feed_all(const std::string& head, const std::string& body, std::size_t step,
                                std::size_t trailer_limit = 65536, std::string* got = nullptr) {
    auto p = parse(head);
    EXPECT_TRUE(p->ok()) << p->why();
    std::string buffer;
    for (std::size_t i = 0; i < body.size(); i += step) {
        buffer += body.substr(i, step);
        auto s = feed_body(*p->parser, buffer, trailer_limit);
        for (auto b : p->parser->body())
            if (got) got->append(static_cast<const char*>(b.data()), b.size());
        p->parser->body().clear();
        if (s.refusal) return s.refusal;
        buffer.erase(0, s.used);
    }
    return std::nullopt;
}

const char* kChunkedHead = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

}  // namespace

// A chunk-size line that never ends was buffered without limit (1 GiB sent,
// 1.9 GiB resident): Beast sets no limit on chunk lines.
TEST(HttpHead, AChunkLineThatNeverEndsIsRefusedOnceOverItsCap) {
    auto r = feed_all(kChunkedHead, "5;ext=" + std::string(1 << 20, 'x'), 1000);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->kind, ErrorKind::bad_request);
    EXPECT_NE(r->message.find("chunk-size line"), std::string::npos) << r->message;
    auto t = feed_all(kChunkedHead, "0\r\nX-T: " + std::string(1 << 20, 't'), 1000, 8192);
    ASSERT_TRUE(t);
    EXPECT_EQ(t->kind, ErrorKind::headers_too_large);
    EXPECT_NE(t->message.find("trailers"), std::string::npos) << t->message;
}

TEST(HttpHead, BareLineFeedsInChunkedFramingAreRefused) {
    EXPECT_TRUE(feed_all(kChunkedHead, "5\nhello\r\n0\r\n\r\n", 3));
    EXPECT_TRUE(feed_all(kChunkedHead, "5\r\nhello\r\n0\r\nX: y\n\n", 64));
    EXPECT_TRUE(feed_all(kChunkedHead, "5\r\nhello\r\n0\n\r\n", 1));
    std::string got;
    EXPECT_FALSE(feed_all(kChunkedHead, "5\r\nhello\r\n6;a=b\r\n world\r\n0\r\nX: y\r\n\r\n", 1, 65536, &got));
    EXPECT_EQ(got, "hello world");
}

TEST(HttpHead, ChunkedBodyComesOutAsViews) {
    auto p = parse("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    ASSERT_TRUE(p->ok()) << p->why();
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

// Found by the fuzzer: Beast 1.81 asserts (abort() in debug and sanitizer
// builds) when a body's last chunk line arrived and the next read adds fewer
// than two bytes. A client could crash those builds with "0\r\n" and a byte.
TEST(HttpHead, TheLastChunkArrivingByteByByteIsNoCrash) {
    std::string got;
    EXPECT_FALSE(feed_all(kChunkedHead, "0\r\n\r\n", 1, 65536, &got));
    EXPECT_FALSE(feed_all(kChunkedHead, "3\r\nabc\r\n0\r\nX: y\r\n\r\n", 1, 65536, &got));
    EXPECT_EQ(got, "abc");
}

// Found by the fuzzer: "?p" was forwarded as "/?p".
TEST(HttpHead, AnOriginFormTargetWithoutAPathIsRefused) {
    EXPECT_FALSE(parse("GET ?p HTTP/1.1\r\nHost: a\r\n\r\n")->ok());
    auto abs = parse("GET http://b.test?q HTTP/1.1\r\nHost: a\r\n\r\n");
    ASSERT_TRUE(abs->ok()) << abs->why();
    EXPECT_EQ(abs->head.path, "/");
    EXPECT_EQ(abs->head.query, "?q");
}
