// The message-layer pieces of HTTP/2 upstreams and WebSocket over HTTP/2: the
// request head as HTTP/2 fields, the response head gathered from HEADERS
// blocks (interim heads, trailers, the framing its end implies, the size
// limit), trailers in a last chunk, and extended CONNECT read as a WebSocket
// upgrade.
#include "proxy/message/forward_headers.h"
#include "proxy/message/h2_request.h"
#include "proxy/message/h2_response.h"
#include "proxy/message/message_rules.h"

#include <gtest/gtest.h>

using namespace sluice::proxy;

namespace {

RequestHead parsed_request(std::string text) {
    RequestHead head;
    head.raw = std::move(text);
    RequestParser parser(head);
    auto refusal = parse_request_head(head, parser, {});
    EXPECT_FALSE(refusal) << refusal->message;
    return head;
}

std::string field_of(const H2Fields& fields, std::string_view name) {
    for (const auto& [n, v] : fields)
        if (n == name) return v;
    return "<none>";
}

}  // namespace

TEST(H2Upstream, RequestHeadBecomesPseudoFieldsAndLowerCaseFields) {
    RequestHead req = parsed_request(
        "POST /svc/Call?x=1 HTTP/1.1\r\nHost: api.test\r\nTE: trailers\r\nContent-Type: application/grpc\r\n"
        "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n");
    UpstreamRequest up{"/svc/Call", "10.0.0.9", "http", "fallback:1", Framing::chunked, 0, {}, {}};
    std::string head;
    build_upstream_request(req, up, head);
    H2Fields fields;
    h2_request_fields(head, "https", wants_trailers(req), fields);
    ASSERT_GE(fields.size(), 4u);
    EXPECT_EQ(fields[0], (std::pair<std::string, std::string>{":method", "POST"}));
    EXPECT_EQ(fields[1], (std::pair<std::string, std::string>{":scheme", "https"}));
    EXPECT_EQ(fields[2], (std::pair<std::string, std::string>{":authority", "api.test"}));
    EXPECT_EQ(fields[3], (std::pair<std::string, std::string>{":path", "/svc/Call?x=1"}));
    EXPECT_EQ(field_of(fields, "content-type"), "application/grpc");
    EXPECT_EQ(field_of(fields, "x-forwarded-for"), "10.0.0.9");
    EXPECT_EQ(field_of(fields, "te"), "trailers");
    // HTTP/1.1 framing and connection fields have no place in HTTP/2.
    EXPECT_EQ(field_of(fields, "transfer-encoding"), "<none>");
    EXPECT_EQ(field_of(fields, "connection"), "<none>");
    EXPECT_EQ(field_of(fields, "host"), "<none>");
    for (const auto& [n, v] : fields)
        for (char c : n) EXPECT_FALSE(c >= 'A' && c <= 'Z') << n;
}

TEST(H2Upstream, TeTrailersIsFoundAmongOtherCodings) {
    EXPECT_TRUE(wants_trailers(parsed_request("GET / HTTP/1.1\r\nHost: a\r\nTE: gzip, trailers;q=1\r\n\r\n")));
    EXPECT_TRUE(wants_trailers(parsed_request("GET / HTTP/1.1\r\nHost: a\r\nTE: Trailers\r\n\r\n")));
    EXPECT_FALSE(wants_trailers(parsed_request("GET / HTTP/1.1\r\nHost: a\r\nTE: gzip\r\n\r\n")));
    EXPECT_FALSE(wants_trailers(parsed_request("GET / HTTP/1.1\r\nHost: a\r\n\r\n")));
}

TEST(H2Upstream, TrailersGoInTheLastChunk) {
    std::vector<boost::asio::const_buffer> out;
    std::string storage;
    append_last_chunk(out, {{"grpc-status", "0"}, {"x-sum", "abc"}}, storage);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(std::string_view(static_cast<const char*>(out[0].data()), out[0].size()),
              "0\r\ngrpc-status: 0\r\nx-sum: abc\r\n\r\n");
}

TEST(H2Upstream, ResponseHeadReadsAsAnHttp11Head) {
    H2ResponseBuilder b(64 * 1024);
    b.begin_block();
    EXPECT_TRUE(b.add(":status", "200"));
    EXPECT_TRUE(b.add("content-type", "application/grpc"));
    EXPECT_TRUE(b.end_block(false));
    ASSERT_TRUE(b.head_ready());
    // No content-length and more to come: the parser reads it as chunked (DATA frames delimit it).
    EXPECT_EQ(b.head(), "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ntransfer-encoding: chunked\r\n\r\n");
    ResponseHead head;
    head.raw = b.head();
    ResponseParser parser(head);
    EXPECT_FALSE(parse_response_head(head, parser, false));
    EXPECT_EQ(head.status, 200);
    // The next block is the trailers, and ends the stream.
    b.begin_block();
    EXPECT_TRUE(b.add("grpc-status", "0"));
    EXPECT_FALSE(b.end_block(true));
    EXPECT_TRUE(b.ended());
    ASSERT_EQ(b.trailers().size(), 1u);
    EXPECT_EQ(b.trailers()[0].first, "grpc-status");
}

TEST(H2Upstream, InterimHeadsAreDroppedAndAHeadThatEndsTheStreamHasNoBody) {
    H2ResponseBuilder b(64 * 1024);
    b.begin_block();
    b.add(":status", "103");
    b.add("link", "</a.css>; rel=preload");
    EXPECT_FALSE(b.end_block(false));
    EXPECT_FALSE(b.head_ready());
    b.begin_block();
    b.add(":status", "200");
    b.add("grpc-status", "7");
    EXPECT_TRUE(b.end_block(true));
    EXPECT_TRUE(b.ended());
    EXPECT_EQ(b.head(), "HTTP/1.1 200 OK\r\ngrpc-status: 7\r\ncontent-length: 0\r\n\r\n");
    EXPECT_TRUE(b.trailers().empty());
}

TEST(H2Upstream, HeadsOverTheLimitAreRefusedWithWords) {
    H2ResponseBuilder b(1024);
    b.begin_block();
    EXPECT_TRUE(b.add(":status", "200"));
    EXPECT_FALSE(b.add("x-big", std::string(2000, 'v')));
    EXPECT_EQ(b.refusal(), "upstream response headers are larger than 1KiB");
}

TEST(H2Upstream, ExtendedConnectReadsAsAWebSocketUpgrade) {
    H2RequestBuilder builder;
    builder.reset(64 * 1024);
    for (auto [n, v] : {std::pair<std::string_view, std::string_view>{":method", "CONNECT"}, {":protocol", "websocket"},
                        {":scheme", "https"}, {":authority", "chat.test"}, {":path", "/ws?room=1"},
                        {"sec-websocket-version", "13"}, {"sec-websocket-key", "client-made"}})
        builder.add(n, v);
    RequestHead head;
    auto refusal = builder.finish(head, {});
    ASSERT_FALSE(refusal) << refusal->message;
    EXPECT_TRUE(head.extended_connect);
    EXPECT_EQ(head.verb, http::verb::get);
    EXPECT_EQ(head.path, "/ws");
    // Upstream: an HTTP/1.1 upgrade with the key sluice made, not one the client sent.
    UpstreamRequest up{"/ws", "10.0.0.9", "https", "", Framing::none, 0, "websocket", "c2x1aWNlLW1hZGUta2V5IQ=="};
    std::string out;
    build_upstream_request(head, up, out);
    EXPECT_EQ(out.rfind("GET /ws?room=1 HTTP/1.1\r\n", 0), 0u) << out;
    EXPECT_NE(out.find("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: c2x1aWNlLW1hZGUta2V5IQ==\r\n"),
              std::string::npos) << out;
    EXPECT_EQ(out.find("client-made"), std::string::npos) << out;
    EXPECT_NE(out.find("sec-websocket-version: 13\r\n"), std::string::npos) << out;
}

TEST(H2Upstream, OnlyTheWebSocketProtocolIsTaken) {
    auto refusal_for = [](std::string_view method, std::string_view protocol) {
        H2RequestBuilder builder;
        builder.reset(64 * 1024);
        builder.add(":method", method);
        builder.add(":protocol", protocol);
        builder.add(":scheme", "https");
        builder.add(":authority", "a.test");
        builder.add(":path", "/x");
        RequestHead head;
        auto r = builder.finish(head, {});
        return r ? r->message : std::string();
    };
    EXPECT_EQ(refusal_for("CONNECT", "webtransport"),
              "the extended CONNECT protocol \"webtransport\" is not supported; only websocket is");
    EXPECT_EQ(refusal_for("GET", "websocket"), "the pseudo-header \":protocol\" belongs to an extended CONNECT only");
}
