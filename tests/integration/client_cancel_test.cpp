// The client leaving cancels the upstream: in every phase (while the request
// body is sent, while sluice connects or waits for the response head, while a
// stream pauses between tokens), by FIN or by reset, over plain TCP and TLS,
// the origin sees its connection closed (an LLM server stops generating for
// nobody), the cancel is counted by phase and logged; bytes of a pipelined
// request that arrive early are never taken for a close.
#include "tests/support/certs.h"
#include "tests/support/client.h"
#include "tests/support/deadline.h"
#include "tests/support/origin.h"
#include "tests/support/prometheus_text.h"
#include "tests/support/proxy_fixture.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tls_client.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <fstream>

using namespace sluice::test;

namespace {

const char* kCancelConfig = R"(
listeners:
  - {name: public, address: 127.0.0.1, port: 0}
  - {name: secure, address: 127.0.0.1, port: 0, tls: {cert: "{dir}/local.crt", key: "{dir}/local.key"}}
clusters:
  - {name: app, endpoints: ["{o}"]}
  - {name: hole, endpoints: ["{hole}"]}
routes:
  - {name: hole, match: {path_prefix: /hole}, cluster: hole}
  - {name: all, match: {path_prefix: /}, cluster: app}
access_log: {path: "{dir}/access.log"}
)";

class ClientCancel : public ::testing::Test {
protected:
    void SetUp() override {
        dir.file("local.crt", [&] {
            pem = ca.issue({"localhost", "127.0.0.1"});
            return pem.cert;
        }());
        dir.file("local.key", pem.key);
        origin = std::make_unique<TestOrigin>([this](OriginExchange& ex) { handle(ex); });
        // A listener with a full backlog: the kernel drops further SYNs, so a connect hangs.
        hole.open(tcp::v4());
        hole.bind(tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        hole.listen(0);
        filler.connect(hole.local_endpoint());
        proxy = std::make_unique<RunningProxy>(
            fill(kCancelConfig, {{"o", origin->address()},
                                 {"dir", dir.path},
                                 {"hole", "127.0.0.1:" + std::to_string(hole.local_endpoint().port())}}));
    }
    void TearDown() override {
        release.open();
        proxy.reset();
    }

    void handle(OriginExchange& ex) {
        const std::string t = ex.target();
        if (t == "/think") {  // a model thinking: no byte until the client is gone
            seen.open();
            return wait_for_close(ex);
        }
        if (t == "/stream") {  // one token, then a pause
            ex.begin_chunked(200, "text/event-stream");
            ex.chunk("data: 1\n\n");
            seen.open();
            return wait_for_close(ex);
        }
        if (t == "/upload") {
            seen.open();
            try {
                ex.read_body();
            } catch (...) {
            }
            closed.open();
            ex.keep_alive = false;
            return;
        }
        if (t == "/stuck-upload") {  // takes no body byte until the test lets it
            seen.open();
            release.wait(30000);
            try {
                ex.read_body();
                upload_complete = true;
            } catch (...) {
            }
            closed.open();
            ex.keep_alive = false;
            return;
        }
        if (t.starts_with("/slow")) {
            seen.open();
            release.wait();
        }
        ex.respond(200, "ok " + t);
    }
    // Blocks until sluice closes the upstream connection.
    void wait_for_close(OriginExchange& ex) {
        char c;
        boost::system::error_code ec;
        std::size_t n = ex.socket.read_some(asio::buffer(&c, 1), ec);
        if (n == 0 && ec) closed.open();  // a byte instead would be a bug: the gate stays shut
        ex.keep_alive = false;
    }
    double cancels(const std::string& route, const std::string& phase) {
        auto r = http_request(proxy->admin_port(), "GET", "/metrics");
        return parse_exposition(r.body).value_or_zero("sluice_client_cancels_total",
                                                      {{"route", route}, {"phase", phase}});
    }
    bool cancel_counted(const std::string& route, const std::string& phase) {
        return eventually([&] { return cancels(route, phase) == 1; });
    }
    static void reset_and_close(tcp::socket& s) {
        s.set_option(asio::socket_base::linger(true, 0));
        s.close();
    }

    TestCa ca;
    Pem pem;
    TempDir dir{"sluice-cancel"};
    Gate seen, closed, release;
    std::atomic<bool> upload_complete{false};
    asio::io_context io;
    tcp::acceptor hole{io};
    tcp::socket filler{io};
    std::unique_ptr<TestOrigin> origin;
    std::unique_ptr<RunningProxy> proxy;
};

}  // namespace

TEST_F(ClientCancel, LeavingWhileTheResponseHeadIsAwaitedClosesTheUpstream) {
    {
        RawClient c(proxy->port());
        c.send("POST /think HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nprompt");
        ASSERT_TRUE(seen.wait());
    }  // FIN while the model thinks
    EXPECT_TRUE(closed.wait(5000)) << "the upstream connection stayed open after the client left";
    EXPECT_TRUE(cancel_counted("all", "waiting"));
    EXPECT_EQ(cancels("all", "streaming"), 0);
}

TEST_F(ClientCancel, ResetDuringAPauseInAStreamClosesTheUpstream) {
    RawClient c(proxy->port());
    c.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    auto head = c.read_head();
    EXPECT_EQ(head.status, 200u);
    EXPECT_EQ(c.read_body_some(), "data: 1\n\n");
    reset_and_close(c.socket());  // no byte is flowing either way
    EXPECT_TRUE(closed.wait(5000)) << "the upstream connection stayed open after the client reset";
    EXPECT_TRUE(cancel_counted("all", "streaming"));
}

TEST_F(ClientCancel, LeavingMidUploadIsCountedInTheRequestPhase) {
    {
        RawClient c(proxy->port());
        c.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" + std::string(1000, 'x'));
        ASSERT_TRUE(seen.wait());
    }
    EXPECT_TRUE(closed.wait(5000));
    EXPECT_TRUE(cancel_counted("all", "request"));
}

TEST_F(ClientCancel, ResetWhileTheUpstreamTakesNoMoreOfTheUploadIsSeenAtOnce) {
    {
        // A short deadline: the send stops once every buffer on the way is full.
        RawClient c(proxy->port(), 1000);
        c.send("POST /stuck-upload HTTP/1.1\r\nHost: t\r\nContent-Length: 268435456\r\n\r\n");
        ASSERT_TRUE(seen.wait());
        try {
            c.send(std::string(64 << 20, 'x'));
        } catch (...) {
        }
        // sluice's pump now waits for the origin to take more, reading nothing from the client.
        reset_and_close(c.socket());
    }
    // Seen while the origin still reads nothing (it waits up to 30 s): only the watch could see it.
    EXPECT_TRUE(eventually([&] { return cancels("all", "request") == 1; }, 5000));
    release.open();
    EXPECT_TRUE(closed.wait(5000));
    EXPECT_FALSE(upload_complete);
}

TEST_F(ClientCancel, LeavingDuringAConnectEndsItAndBlamesNoEndpoint) {
    {
        RawClient c(proxy->port());
        c.send("GET /hole HTTP/1.1\r\nHost: t\r\n\r\n");
        // The connect hangs on the full backlog; the cancel is what ends it.
        ASSERT_TRUE(eventually([&] {
            auto r = http_request(proxy->admin_port(), "GET", "/metrics");
            return parse_exposition(r.body).value_or_zero("sluice_endpoint_requests_active", {{"cluster", "hole"}}) == 1;
        }));
    }
    EXPECT_TRUE(cancel_counted("hole", "waiting"));
    auto r = http_request(proxy->admin_port(), "GET", "/metrics");
    EXPECT_EQ(parse_exposition(r.body).value_or_zero("sluice_upstream_connect_failures_total", {{"cluster", "hole"}}), 0);
}

TEST_F(ClientCancel, TlsClientLeavingWhileWaitingClosesTheUpstream) {
    {
        TlsClient c(proxy->port("secure"), ca.cert_pem());
        c.send("GET /think HTTP/1.1\r\nHost: localhost\r\n\r\n");
        ASSERT_TRUE(seen.wait());
    }
    EXPECT_TRUE(closed.wait(5000)) << "the upstream connection stayed open after the TLS client left";
    EXPECT_TRUE(cancel_counted("all", "waiting"));
}

TEST_F(ClientCancel, PipelinedBytesArrivingEarlyAreNotAClose) {
    RawClient c(proxy->port());
    c.send("GET /slow/1 HTTP/1.1\r\nHost: t\r\n\r\n");
    ASSERT_TRUE(seen.wait());
    // The next request arrives while the first waits for its answer.
    c.send("GET /after HTTP/1.1\r\nHost: t\r\n\r\n");
    release.open();
    auto first = c.read_response();
    EXPECT_EQ(first.status, 200u);
    EXPECT_EQ(first.body, "ok /slow/1");
    auto second = c.read_response();
    EXPECT_EQ(second.status, 200u);
    EXPECT_EQ(second.body, "ok /after");
    EXPECT_EQ(cancels("all", "waiting"), 0);
    EXPECT_EQ(c.get("/third").body, "ok /third");  // the connection goes on
}

TEST_F(ClientCancel, TheAccessLogSaysInWhichPhaseTheClientLeft) {
    {
        RawClient c(proxy->port());
        c.send("GET /think HTTP/1.1\r\nHost: t\r\n\r\n");
        ASSERT_TRUE(seen.wait());
    }
    ASSERT_TRUE(closed.wait(5000));
    EXPECT_EQ(http_get(proxy->port(), "/quick").status, 200u);
    std::vector<nlohmann::json> lines;
    ASSERT_TRUE(eventually([&] {
        lines.clear();
        std::ifstream in(dir / "access.log");
        for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
        return lines.size() == 2;
    }));
    auto left = lines[0]["path"] == "/think" ? lines[0] : lines[1];
    auto quick = lines[0]["path"] == "/think" ? lines[1] : lines[0];
    EXPECT_EQ(left["client_cancel"], "waiting");
    EXPECT_EQ(left["status"], 0);
    EXPECT_FALSE(quick.contains("client_cancel"));
}
