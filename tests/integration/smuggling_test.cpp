// The request smuggling corpus: messages that two HTTP implementations could
// read two ways. Each gets an exact answer from sluice, and the origin sees
// nothing or exactly one request: never a second request made of body bytes.
#include "tests/support/client.h"
#include "tests/support/origin.h"
#include "tests/support/proxy_fixture.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

using namespace sluice::test;

namespace {

// What the origin saw of each request: method, target, header lines, body.
struct Seen {
    std::string method, target, headers, body;
};

class Recorder {
public:
    OriginHandler handler() {
        return [this](OriginExchange& ex) {
            Seen s;
            s.method = std::string(ex.head().method_string());
            s.target = ex.target();
            for (const auto& f : ex.head()) s.headers += std::string(f.name_string()) + ": " + std::string(f.value()) + "\n";
            s.body = ex.read_body();
            {
                std::lock_guard lock(mu_);
                seen_.push_back(s);
            }
            ex.respond(200, "ok");
        };
    }
    std::vector<Seen> seen() {
        std::lock_guard lock(mu_);
        return seen_;
    }
    void clear() {
        std::lock_guard lock(mu_);
        seen_.clear();
    }

private:
    std::mutex mu_;
    std::vector<Seen> seen_;
};

constexpr int kHeadMayHaveGoneUp = -1;

struct Case {
    const char* name;
    std::string bytes;
    unsigned status;    // sluice's answer
    // Requests the origin received, or kHeadMayHaveGoneUp: the body was
    // refused after sluice may already have sent the head, so the origin saw
    // one cut request or none.
    int origin_saw;
};

std::string post_with(const std::string& fields, const std::string& body) {
    return "POST /p HTTP/1.1\r\nHost: a.test\r\n" + fields + "\r\n" + body;
}

const std::vector<Case>& corpus() {
    static const std::vector<Case> cases = {
        // CL.TE and TE.CL: both framing fields.
        {"CL.TE", post_with("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\nG"), 400, 0},
        {"TE.CL", post_with("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", "8\r\nSMUGGLED\r\n0\r\n\r\n"), 400, 0},
        // TE.TE: a second reading of Transfer-Encoding.
        {"TE twice", post_with("Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n", "0\r\n\r\n"), 400, 0},
        {"TE chunked, chunked", post_with("Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n"), 400, 0},
        {"TE chunked then coding", post_with("Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n"), 501, 0},
        {"TE xchunked", post_with("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"), 501, 0},
        {"TE gzip, chunked", post_with("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"), 501, 0},
        {"TE with empty element", post_with("Transfer-Encoding: ,chunked\r\n", "0\r\n\r\n"), 400, 0},
        {"TE vertical tab", post_with("Transfer-Encoding:\x0b" "chunked\r\n", "0\r\n\r\n"), 400, 0},
        {"TE space before colon", post_with("Transfer-Encoding : chunked\r\n", "0\r\n\r\n"), 400, 0},
        {"TE in HTTP/1.0", "POST /p HTTP/1.0\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, 0},
        {"TE tab and case", post_with("transfer-encoding:\tCHUNKED\r\n", "3\r\nabc\r\n0\r\n\r\n"), 200, 1},
        // Content-Length: one decimal number, once.
        {"CL twice, same", post_with("Content-Length: 3\r\nContent-Length: 3\r\n", "abc"), 400, 0},
        {"CL twice, different", post_with("Content-Length: 3\r\nContent-Length: 4\r\n", "abcd"), 400, 0},
        {"CL list", post_with("Content-Length: 3, 3\r\n", "abc"), 400, 0},
        {"CL sign", post_with("Content-Length: +3\r\n", "abc"), 400, 0},
        {"CL hex", post_with("Content-Length: 0x3\r\n", "abc"), 400, 0},
        {"CL space before colon", post_with("Content-Length : 3\r\n", "abc"), 400, 0},
        {"CL body holding a request", post_with("Content-Length: 30\r\n", "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"), 200, 1},
        // Line endings and bytes that parsers disagree on.
        {"bare LF in the head", "GET / HTTP/1.1\nHost: a.test\r\n\r\n", 400, 0},
        {"bare CR in the head", "GET / HTTP/1.1\r\nHost: a.test\rX: y\r\n\r\n", 400, 0},
        {"NUL in a value", std::string("GET / HTTP/1.1\r\nHost: a.test\r\nX: a\0b\r\n\r\n", 40), 400, 0},
        {"obs-fold", "GET / HTTP/1.1\r\nHost: a.test\r\nX-A: one\r\n two\r\n\r\n", 400, 0},
        {"obs-fold on Transfer-Encoding", post_with("Transfer-Encoding: identity\r\n chunked\r\n", "0\r\n\r\n"), 400, 0},
        {"space before the first field", "GET / HTTP/1.1\r\n Host: a.test\r\n\r\n", 400, 0},
        {"bare LF ending a chunk line", post_with("Transfer-Encoding: chunked\r\n", "3\nabc\r\n0\r\n\r\n"), 400, 0},
        {"bare LF in the trailers", post_with("Transfer-Encoding: chunked\r\n", "3\r\nabc\r\n0\r\nX: y\n\n"), 400, kHeadMayHaveGoneUp},
        {"chunk size overflow", post_with("Transfer-Encoding: chunked\r\n", "10000000000000000\r\nx\r\n0\r\n\r\n"), 400, 0},
        {"oversize chunk line", post_with("Transfer-Encoding: chunked\r\n", "1;" + std::string(20000, 'x')), 400, kHeadMayHaveGoneUp},
        // Host: one, valid, and the authority of an absolute-form target wins.
        {"two Host headers", "GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", 400, 0},
        {"Host with a space", "GET / HTTP/1.1\r\nHost: a.test b\r\n\r\n", 400, 0},
        {"Host with userinfo", "GET / HTTP/1.1\r\nHost: user@a.test\r\n\r\n", 400, 0},
        {"Host with a path", "GET / HTTP/1.1\r\nHost: a.test/x\r\n\r\n", 400, 0},
        {"absolute-form with userinfo", "GET http://u@b.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n", 400, 0},
        {"absolute-form, other Host", "GET http://b.test/abs HTTP/1.1\r\nHost: a.test\r\n\r\n", 200, 1},
        // Targets that are not a path to one resource.
        {"fragment", "GET /a#/../admin HTTP/1.1\r\nHost: a.test\r\n\r\n", 400, 0},
        {"backslash", "GET /a\\..\\admin HTTP/1.1\r\nHost: a.test\r\n\r\n", 400, 0},
        {"climbing above /", "GET /a/../../etc/passwd HTTP/1.1\r\nHost: a.test\r\n\r\n", 400, 0},
        {"encoded climb", "GET /%2e%2e/etc HTTP/1.1\r\nHost: a.test\r\n\r\n", 400, 0},
        {"CONNECT", "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n", 400, 0},
        // Connection options beyond what sluice tracks would pass as end-to-end.
        {"17 Connection options",
         "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, "
         "a15, a16, x-secret\r\nX-Secret: s\r\n\r\n",
         400, 0},
    };
    return cases;
}

class Smuggling : public ::testing::Test {
protected:
    void SetUp() override {
        origin = std::make_unique<TestOrigin>(recorder.handler());
        proxy = std::make_unique<RunningProxy>(one_route(origin->address()));
    }
    // Sends `bytes`, expects a 200, and returns the one request the origin saw.
    Seen only_request(const std::string& bytes) {
        RawClient c(proxy->port());
        c.send(bytes);
        EXPECT_EQ(c.read_response().status, 200u);
        auto seen = recorder.seen();
        EXPECT_EQ(seen.size(), 1u);
        return seen.empty() ? Seen{} : seen[0];
    }
    Recorder recorder;
    std::unique_ptr<TestOrigin> origin;
    std::unique_ptr<RunningProxy> proxy;
};

}  // namespace

// Each case on a fresh proxy and origin, so a cut request the origin reads
// late is never counted against the next case.
TEST(SmugglingCorpus, EveryCaseGetsItsAnswerAndTheOriginSeesAtMostOneRequest) {
    for (const auto& c : corpus()) {
        SCOPED_TRACE(c.name);
        TestOrigin origin(echo_handler("o"));
        RunningProxy proxy(one_route(origin.address()), 1);
        RawClient client(proxy.port(), 5000);
        client.send(c.bytes);
        Response r;
        ASSERT_NO_THROW(r = client.read_response()) << c.name;
        EXPECT_EQ(r.status, c.status) << c.name << ": " << r.body;
        if (r.status >= 400) {
            EXPECT_FALSE(r.header("x-sluice-error").empty()) << c.name;
            EXPECT_TRUE(client.closed_by_peer()) << c.name << ": a refused request closes its connection";
        }
        if (c.origin_saw == kHeadMayHaveGoneUp) EXPECT_LE(origin.requests(), 1) << c.name;
        else EXPECT_EQ(origin.requests(), c.origin_saw) << c.name;
    }
}

TEST_F(Smuggling, AbsoluteFormAuthorityIsTheHostTheOriginSees) {
    auto seen = only_request("GET http://b.test:81/abs?q HTTP/1.1\r\nHost: a.test\r\n\r\n");
    EXPECT_EQ(seen.target, "/abs?q");
    EXPECT_NE(seen.headers.find("Host: b.test:81\n"), std::string::npos) << seen.headers;
    EXPECT_NE(seen.headers.find("X-Forwarded-Host: b.test:81\n"), std::string::npos) << seen.headers;
    EXPECT_EQ(seen.headers.find("a.test"), std::string::npos) << seen.headers;
}

TEST_F(Smuggling, TheBodyOfAChunkedRequestIsABodyNotARequest) {
    const std::string inner = "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n";
    char size[16];
    std::snprintf(size, sizeof size, "%zx", inner.size());
    auto seen = only_request(
        post_with("Transfer-Encoding: chunked\r\n", size + std::string("\r\n") + inner + "\r\n0\r\n\r\n"));
    EXPECT_EQ(seen.body, inner);
}

// nginx and Envoy drop these: CGI-style origins read X_Forwarded_For and
// X-Forwarded-For as one variable.
TEST_F(Smuggling, UnderscoreSpellingsOfFieldsSluiceSetsAreDropped) {
    auto seen = only_request("GET / HTTP/1.1\r\nHost: a.test\r\nX_Forwarded_For: 6.6.6.6\r\nX_Forwarded_Host: evil\r\n"
                             "Transfer_Encoding: chunked\r\nX_Custom: kept\r\n\r\n");
    EXPECT_EQ(seen.headers.find("6.6.6.6"), std::string::npos) << seen.headers;
    EXPECT_EQ(seen.headers.find("evil"), std::string::npos) << seen.headers;
    EXPECT_EQ(seen.headers.find("Transfer_Encoding"), std::string::npos) << seen.headers;
    EXPECT_NE(seen.headers.find("X_Custom: kept\n"), std::string::npos) << seen.headers;
}

// RFC 9110 7.8: HTTP/1.0 has no Upgrade; sluice forwarded it and tunnelled.
TEST_F(Smuggling, AnHttp10UpgradeIsAPlainRequest) {
    auto seen = only_request("GET /ws HTTP/1.0\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    EXPECT_EQ(seen.headers.find("Upgrade"), std::string::npos) << seen.headers;
}

// The body's bytes would have become tunnel data after the 101.
TEST_F(Smuggling, AWebSocketUpgradeWithABodyIsRefused) {
    RawClient c(proxy->port());
    c.send("GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 10\r\n\r\nabc");
    auto r = c.read_response();
    EXPECT_EQ(r.status, 400u);
    EXPECT_NE(r.body.find("cannot carry a body"), std::string::npos) << r.body;
    EXPECT_TRUE(c.closed_by_peer());
    EXPECT_EQ(origin->requests(), 0);
}
