// sluice's HTTP/1.1 parser on its own: what it accepts, what it refuses and
// with which error, and how each framing ends a body. The differential fuzz
// target (tests/fuzz/parser_diff_fuzz.cpp) holds it against Beast's; the
// cases here include the ones that target found, and the framing rules by name.
#include "proxy/message/http_head.h"
#include "proxy/message/message_parser.h"

#include <boost/beast/http/error.hpp>
#include <gtest/gtest.h>

#include <memory>
#include <string>

using namespace sluice::proxy;
namespace http = boost::beast::http;

namespace {

template <bool isRequest>
struct ParsedMessage {
    typename MessageParser<isRequest>::Head head;
    std::unique_ptr<MessageParser<isRequest>> parser;
    boost::system::error_code ec;
    std::string body;  // what put() handed out
};

template <bool isRequest>
std::unique_ptr<ParsedMessage<isRequest>> parse_message(const std::string& raw, bool head_request = false) {
    auto p = std::make_unique<ParsedMessage<isRequest>>();
    p->head.raw = raw;
    p->parser = std::make_unique<MessageParser<isRequest>>(p->head);
    if (head_request) p->parser->skip_body();
    p->parser->parse_head(p->ec);
    return p;
}

auto http1_request(const std::string& raw) { return parse_message<true>(raw); }
auto http1_response(const std::string& raw, bool head_request = false) { return parse_message<false>(raw, head_request); }

// Feeds `bytes` `step` at a time, unconsumed bytes staying in front as in a
// connection buffer; returns the error, if any.
template <bool isRequest>
boost::system::error_code feed_pieces(ParsedMessage<isRequest>& p, const std::string& bytes, std::size_t step) {
    std::string buffer;
    for (std::size_t i = 0; i < bytes.size() && !p.parser->is_done(); i += step) {
        buffer += bytes.substr(i, step);
        boost::system::error_code ec;
        const std::size_t used = p.parser->put(boost::asio::buffer(buffer), ec);
        for (auto b : p.parser->body()) p.body.append(static_cast<const char*>(b.data()), b.size());
        p.parser->body().clear();
        if (ec) return ec;
        buffer.erase(0, used);
    }
    return {};
}

const std::string kChunkedRequestHead = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

}  // namespace

TEST(MessageParser, EachPartOfAHeadHasItsOwnError) {
    EXPECT_EQ(http1_request(" / HTTP/1.1\r\n\r\n")->ec, http::error::bad_method);
    EXPECT_EQ(http1_request("GET  HTTP/1.1\r\n\r\n")->ec, http::error::bad_target);
    EXPECT_EQ(http1_request("GET / HTTP/1.2\r\n\r\n")->ec, http::error::bad_version);
    EXPECT_EQ(http1_request("GET / HTTP/2.0\r\n\r\n")->ec, http::error::bad_version);
    EXPECT_EQ(http1_request("GET / HTTP/1.1 \r\n\r\n")->ec, http::error::bad_version);
    EXPECT_EQ(http1_response("HTTP/1.1 20 OK\r\n\r\n")->ec, http::error::bad_status);
    EXPECT_EQ(http1_response("HTTP/1.1 200 O\x01K\r\n\r\n")->ec, http::error::bad_reason);
    EXPECT_EQ(http1_request("GET / HTTP/1.1\r\nHost : a\r\n\r\n")->ec, http::error::bad_field);
    EXPECT_EQ(http1_request("GET / HTTP/1.1\r\n: a\r\n\r\n")->ec, http::error::bad_field);
    EXPECT_EQ(http1_request("GET / HTTP/1.1\r\n Host: a\r\n\r\n")->ec, http::error::bad_field);
    const char with_nul[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
    EXPECT_EQ(http1_request(std::string(with_nul, sizeof with_nul - 1))->ec, http::error::bad_value);
    EXPECT_EQ(http1_request("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n")->ec, http::error::bad_value);
    EXPECT_EQ(http1_request("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n")->ec, http::error::bad_line_ending);
    EXPECT_EQ(http1_request("GET / HTTP/1.1\r\nX: a\r\n y\r\n\r\n")->ec, http::error::bad_obs_fold);
    EXPECT_EQ(http1_request("GET / HTTP/1.1\r\nHost: a\r\n")->ec, http::error::need_more);
    EXPECT_EQ(http1_request("GET / HTTP/1.1\r\nHost: a\r\n\r\nx")->ec, http::error::unexpected_body);
}

TEST(MessageParser, AHeadIsReadIntoViewsOfItsOwnBytes) {
    auto p = http1_request("GET http://b.test:81/x?y HTTP/1.0\r\nHost: a\r\nX-Long: " + std::string(40, 'v') +
                     " \t\r\nX-Obs: caf\xc3\xa9\r\n\r\n");
    ASSERT_FALSE(p->ec) << p->ec.message();
    EXPECT_EQ(p->head.verb, http::verb::get);
    EXPECT_EQ(p->head.target, "http://b.test:81/x?y");
    EXPECT_EQ(p->head.host, "b.test:81");
    EXPECT_EQ(p->head.path, "/x");
    EXPECT_EQ(p->head.query, "?y");
    EXPECT_EQ(p->head.version, 10);
    ASSERT_EQ(p->head.fields.size(), 3u);
    EXPECT_EQ(p->head.fields[1].value, std::string(40, 'v'));  // trailing blanks are not the value's
    EXPECT_EQ(p->head.fields[2].id, http::field::unknown);
    EXPECT_EQ(p->head.fields[2].value, "caf\xc3\xa9");
    for (const auto& f : p->head.fields) {
        EXPECT_GE(f.value.data(), p->head.raw.data());
        EXPECT_LE(f.value.data() + f.value.size(), p->head.raw.data() + p->head.raw.size());
    }
}

// A first version kept the fold's blanks in front of a value that was empty
// before its fold (found reading the parser against Beast's reading).
TEST(MessageParser, AResponseFoldBecomesSpacesAndAValueStartsAtItsFirstByte) {
    auto p = http1_response("HTTP/1.1 200 OK\r\nX-A:\r\n  folded\r\nX-B: one\r\n\ttwo \r\nContent-Length: 0\r\n\r\n");
    ASSERT_FALSE(p->ec) << p->ec.message();
    ASSERT_EQ(p->head.fields.size(), 3u);
    EXPECT_EQ(p->head.fields[0].value, "folded");
    EXPECT_EQ(p->head.fields[1].value, "one   two");
    EXPECT_EQ(p->head.raw.find("\r\n "), std::string::npos);
}

// Found by the differential fuzz target: Beast reads the codings as tokens
// up to the first byte that is neither a token nor a comma, and a second
// Transfer-Encoding after a chunked one is an error. sluice's rules refuse
// anything but one "chunked", but only after this reading frames the body.
TEST(MessageParser, TransferEncodingIsChunkedWhenItsFirstChunkedIsItsLastCoding) {
    auto chunked = [](const std::string& te) {
        return http1_request("POST / HTTP/1.1\r\nTransfer-Encoding: " + te + "\r\n\r\n")->parser->chunked();
    };
    EXPECT_TRUE(chunked("chunked"));
    EXPECT_TRUE(chunked("CHUNKED"));
    EXPECT_TRUE(chunked("gzip, chunked"));
    EXPECT_TRUE(chunked("gzip, chunked\xc6\xc6"));
    EXPECT_TRUE(chunked("chunked;q=1"));
    EXPECT_FALSE(chunked("chunked, gzip"));
    EXPECT_FALSE(chunked("chunked, chunked"));
    EXPECT_FALSE(chunked("gzip chunked"));
    EXPECT_EQ(http1_request("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\xc6\r\nTransfer-Encoding: chunked\r\n\r\n")->ec,
              http::error::bad_transfer_encoding);
    EXPECT_EQ(http1_request("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")->ec,
              http::error::bad_transfer_encoding);
    EXPECT_EQ(http1_request("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n")->ec,
              http::error::bad_content_length);
}

TEST(MessageParser, ContentLengthIsOneNumberOrTheSameNumberRepeated) {
    auto length = [](const std::string& cl) { return http1_request("POST / HTTP/1.1\r\nContent-Length: " + cl + "\r\n\r\n"); };
    EXPECT_EQ(length("5")->parser->content_length(), 5u);
    EXPECT_EQ(length("5, 5")->parser->content_length(), 5u);
    EXPECT_EQ(length("18446744073709551615")->parser->content_length(), 18446744073709551615u);
    EXPECT_EQ(length("18446744073709551616")->ec, http::error::bad_content_length);
    EXPECT_EQ(length("5, 6")->ec, http::error::multiple_content_length);
    EXPECT_EQ(length("5,,5")->ec, http::error::bad_content_length);
    EXPECT_EQ(length("+5")->ec, http::error::bad_content_length);
    EXPECT_EQ(length("")->ec, http::error::bad_content_length);
    // One number per line is read on a shorter path: the same rules hold.
    EXPECT_EQ(length("9999999999999999999")->parser->content_length(), 9999999999999999999u);
    EXPECT_EQ(length("5\r\nContent-Length: 5")->parser->content_length(), 5u);
    EXPECT_EQ(length("5\r\nContent-Length: 6")->ec, http::error::multiple_content_length);
    EXPECT_EQ(length("5\r\nContent-Length: 5, 6")->ec, http::error::multiple_content_length);
}

TEST(MessageParser, WhetherAConnectionStaysOpenFollowsVersionAndConnectionTokens) {
    EXPECT_TRUE(http1_request("GET / HTTP/1.1\r\n\r\n")->parser->keep_alive());
    EXPECT_FALSE(http1_request("GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n")->parser->keep_alive());
    EXPECT_FALSE(http1_request("GET / HTTP/1.0\r\n\r\n")->parser->keep_alive());
    EXPECT_TRUE(http1_request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")->parser->keep_alive());
    EXPECT_EQ(http1_request("GET / HTTP/1.1\r\nConnection: keep alive\r\n\r\n")->ec, http::error::bad_value);
    EXPECT_FALSE(http1_request("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n")->parser->keep_alive());
    EXPECT_TRUE(http1_request("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")->parser->keep_alive());
    EXPECT_FALSE(http1_request("GET / HTTP/1.0\r\nConnection: keep-alives\r\n\r\n")->parser->keep_alive());
    EXPECT_FALSE(http1_request("GET / HTTP/1.1\r\nProxy-Connection: close\r\n\r\n")->parser->keep_alive());
    auto eof = http1_response("HTTP/1.1 200 OK\r\n\r\n");
    EXPECT_TRUE(eof->parser->need_eof());
    EXPECT_FALSE(eof->parser->keep_alive());
}

TEST(MessageParser, ResponsesWithoutABodyEndWithTheirHead) {
    for (const char* status : {"100 Continue", "204 No Content", "304 Not Modified"})
        EXPECT_TRUE(http1_response(std::string("HTTP/1.1 ") + status + "\r\nContent-Length: 5\r\n\r\n")->parser->is_done()) << status;
    EXPECT_TRUE(http1_response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true)->parser->is_done());
    EXPECT_FALSE(http1_response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")->parser->is_done());
    EXPECT_TRUE(http1_request("GET / HTTP/1.1\r\n\r\n")->parser->is_done());
}

TEST(MessageParser, ASizedBodyEndsAtItsLengthAndLeavesWhatFollows) {
    auto p = http1_request("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
    std::string bytes = "hel";
    boost::system::error_code ec;
    EXPECT_EQ(p->parser->put(boost::asio::buffer(bytes), ec), 3u);
    bytes = "loGET / HTTP/1.1";
    EXPECT_EQ(p->parser->put(boost::asio::buffer(bytes), ec), 2u);
    EXPECT_TRUE(p->parser->is_done());
    EXPECT_EQ(p->parser->body_bytes(), 5u);
    p->parser->put(boost::asio::buffer(bytes), ec);
    EXPECT_EQ(ec, http::error::stale_parser);

    auto cut = http1_response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
    EXPECT_FALSE(feed_pieces(*cut, "hel", 1));
    cut->parser->put_eof(ec);
    EXPECT_EQ(ec, http::error::partial_message);

    auto to_eof = http1_response("HTTP/1.1 200 OK\r\n\r\n");
    EXPECT_FALSE(feed_pieces(*to_eof, "all of it", 4));
    to_eof->parser->put_eof(ec);
    EXPECT_FALSE(ec);
    EXPECT_TRUE(to_eof->parser->is_done());
    EXPECT_EQ(to_eof->body, "all of it");
}

TEST(MessageParser, AChunkedBodyReadsTheSameInPiecesOfAnySize) {
    const std::string body = "5;a=b\r\nhello\r\n6 ; q=\"x;\\\"y\"\r\n world\r\n0\r\nX-T: t\r\nContent-MD5: m\r\n\r\n";
    for (std::size_t step = 1; step <= body.size(); ++step) {
        auto p = http1_request(kChunkedRequestHead);
        ASSERT_FALSE(feed_pieces(*p, body, step)) << step;
        ASSERT_TRUE(p->parser->is_done()) << step;
        EXPECT_EQ(p->body, "hello world") << step;
        ASSERT_EQ(p->parser->trailers().size(), 2u) << step;
        EXPECT_EQ(p->parser->trailers()[0], (std::pair<std::string, std::string>{"x-t", "t"}));
        EXPECT_EQ(p->parser->trailers()[1], (std::pair<std::string, std::string>{"content-md5", "m"}));
    }
}

TEST(MessageParser, TrailersThatFrameOrConnectAreDroppedOrRefused) {
    auto p = http1_request(kChunkedRequestHead);
    EXPECT_FALSE(feed_pieces(*p, "0\r\nTrailer: x\r\nHost: b\r\nConnection: close\r\nX: y\r\n\r\n", 64));
    ASSERT_EQ(p->parser->trailers().size(), 1u);
    EXPECT_FALSE(p->parser->keep_alive());  // Connection counts, as Beast reads it
    EXPECT_EQ(feed_pieces(*http1_request(kChunkedRequestHead), "0\r\nContent-Length: 1\r\n\r\n", 64), http::error::bad_content_length);
    EXPECT_EQ(feed_pieces(*http1_request(kChunkedRequestHead), "0\r\nX: a\r\n b\r\n\r\n", 64), http::error::bad_obs_fold);
}

// Found by the differential fuzz target: blanks after an extension's name
// were taken as its end, where only ';' or '=' may follow them.
TEST(MessageParser, AChunkExtensionNameEndsInBlanksOnlyBeforeASemicolonOrAnEquals) {
    EXPECT_EQ(feed_pieces(*http1_request(kChunkedRequestHead), "0 ; a \r\n\r\n", 64), http::error::bad_chunk_extension);
    EXPECT_EQ(feed_pieces(*http1_request(kChunkedRequestHead), "1;a=b \r\nx\r\n0\r\n\r\n", 64), http::error::bad_chunk_extension);
    EXPECT_EQ(feed_pieces(*http1_request(kChunkedRequestHead), "1;a=\"b\r\nx\r\n0\r\n\r\n", 64), http::error::bad_chunk_extension);
    EXPECT_EQ(feed_pieces(*http1_request(kChunkedRequestHead), "1x\r\nx\r\n0\r\n\r\n", 64), http::error::bad_chunk_extension);
    EXPECT_FALSE(feed_pieces(*http1_request(kChunkedRequestHead), "1 ; a ; b = c\r\nx\r\n0\r\n\r\n", 64));
}

TEST(MessageParser, ChunkFramingErrors) {
    EXPECT_EQ(feed_pieces(*http1_request(kChunkedRequestHead), "g\r\n", 64), http::error::bad_chunk);
    EXPECT_EQ(feed_pieces(*http1_request(kChunkedRequestHead), "10000000000000000\r\n", 64), http::error::bad_chunk);
    EXPECT_EQ(feed_pieces(*http1_request(kChunkedRequestHead), "1\r\nxy\r\n", 64), http::error::bad_chunk);
    EXPECT_EQ(feed_pieces(*http1_request(kChunkedRequestHead), "1\rx", 64), http::error::bad_line_ending);
    auto waiting = http1_request(kChunkedRequestHead);
    EXPECT_FALSE(feed_pieces(*waiting, "ffffffffffffffff\r\nabc", 64));  // the largest size there is, and its first bytes
    EXPECT_EQ(waiting->body, "abc");
}
