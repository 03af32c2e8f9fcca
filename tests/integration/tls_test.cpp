// Downstream TLS: HTTPS and wss:// with everything the plaintext path does,
// certificates picked by SNI, swapped through the admin API while a wss://
// session stays open, and bad certificates refused with their file named.
#include "tests/support/certs.h"
#include "tests/support/client.h"
#include "tests/support/deadline.h"
#include "tests/support/origin.h"
#include "tests/support/proxy_fixture.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tls_client.h"
#include "tests/support/websocket.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <stdexcept>

using namespace sluice::test;
using json = nlohmann::json;

namespace {

const char* kTlsConfig = R"(
listeners:
  - name: public
    address: 127.0.0.1
    port: 0
    tls:
      certificates:
        - {cert: "{dir}/local.crt", key: "{dir}/local.key"}
        - {cert: "{dir}/a.crt", key: "{dir}/a.key", server_names: [a.example.com]}
        - {cert: "{dir}/w.crt", key: "{dir}/w.key", server_names: ["*.b.example.com"]}
clusters: [{name: app, endpoints: ["{o}"]}]
routes: [{name: all, match: {path_prefix: /}, cluster: app}]
)";

// A TLS client on a blocking socket, with OpenSSL itself: Asio's TLS stream
// cannot send close_notify and go on reading (its shutdown waits for the
// peer's). Reads time out after 10 s instead of hanging a broken test.
class BlockingTlsClient {
public:
    explicit BlockingTlsClient(std::uint16_t port) : ctx_(SSL_CTX_new(TLS_client_method())) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        timeval limit{10, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("connect");
        SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);  // this test is about the end, not the certificate
        ssl_ = SSL_new(ctx_);
        SSL_set_fd(ssl_, fd_);
        SSL_set_tlsext_host_name(ssl_, "localhost");
        if (SSL_connect(ssl_) != 1) throw std::runtime_error("TLS handshake");
    }
    ~BlockingTlsClient() {
        SSL_free(ssl_);
        SSL_CTX_free(ctx_);
        ::close(fd_);
    }
    void write(std::string_view bytes) {
        std::size_t n = 0;
        if (SSL_write_ex(ssl_, bytes.data(), bytes.size(), &n) != 1) throw std::runtime_error("TLS write");
    }
    // Everything until the peer ends; `clean` says whether it ended with close_notify.
    std::string read_to_end(bool& clean) {
        std::string out;
        char buf[4096];
        for (;;) {
            std::size_t n = 0;
            const int ret = SSL_read_ex(ssl_, buf, sizeof buf, &n);
            if (ret != 1) {
                clean = SSL_get_error(ssl_, ret) == SSL_ERROR_ZERO_RETURN;
                return out;
            }
            out.append(buf, n);
        }
    }
    // Up to the end of the response head; what came after it stays in `rest`.
    std::string read_head(std::string& rest) {
        std::string got;
        char buf[4096];
        for (std::size_t end; (end = got.find("\r\n\r\n")) == std::string::npos;) {
            std::size_t n = 0;
            if (SSL_read_ex(ssl_, buf, sizeof buf, &n) != 1) throw std::runtime_error("TLS read of the head");
            got.append(buf, n);
        }
        const std::size_t end = got.find("\r\n\r\n") + 4;
        rest = got.substr(end);
        return got.substr(0, end);
    }
    // close_notify, without waiting for the peer's.
    bool close_notify() { return SSL_shutdown(ssl_) >= 0; }

private:
    SSL_CTX* ctx_;
    SSL* ssl_ = nullptr;
    int fd_ = -1;
};

// What /flood sends: 64 MiB, more than the socket buffers between the origin
// and a client that takes 64 KiB at a time can hold; made once.
constexpr std::size_t kFloodChunk = 256u << 10;
const std::string& flood() {
    static const std::string p = [] {
        std::string bytes(64u << 20, '\0');
        for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>((i * 7 + i / 65521) & 0xff);
        return bytes;
    }();
    return p;
}

class Tls : public ::testing::Test {
protected:
    void SetUp() override {
        write_pair("local", ca.issue({"localhost", "127.0.0.1"}));
        write_pair("a", ca.issue({"a.example.com"}));
        write_pair("w", ca.issue({"wild.b.example.com"}));
        origin = std::make_unique<TestOrigin>([this](OriginExchange& ex) {
            std::string t = ex.target();
            if (t == "/ws") return websocket_echo_handler()(ex);
            if (t == "/flood") {  // more than the sockets on the way hold, in chunks, counted
                ex.write_raw("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
                for (std::size_t off = 0; off < flood().size(); off += kFloodChunk) {
                    boost::system::error_code ec;
                    boost::asio::write(ex.socket, boost::asio::buffer(flood().data() + off, kFloodChunk), ec);
                    if (ec) return;
                    flooded += kFloodChunk;
                }
                flood_done.open();
                ex.keep_alive = false;
                return;
            }
            if (t == "/halfclose") {  // answers only once the client has ended its side
                ex.write_raw("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
                char sink[256];
                boost::system::error_code ec;
                while (!ec) ex.socket.read_some(boost::asio::buffer(sink), ec);
                if (ec == boost::asio::error::eof) ex.write_raw("after your end");
                ex.keep_alive = false;
                return;
            }
            if (t == "/ends") {  // an upstream that says its last words, ends its side, then hears ours
                ex.write_raw("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                             "last words");
                ex.socket.shutdown(tcp::socket::shutdown_send);
                char sink[256];
                boost::system::error_code ec;
                while (!ec) ex.socket.read_some(boost::asio::buffer(sink), ec);
                upstream_heard_end = ec == boost::asio::error::eof;
                ex.keep_alive = false;
                return;
            }
            if (t == "/stream") {
                ex.begin_chunked(200, "text/event-stream");
                ex.chunk("data: one\n\n");
                gate.wait(10000);
                ex.chunk("data: two\n\n");
                return ex.end_chunked();
            }
            ex.respond(200, "hello " + t + " proto=" + ex.header("X-Forwarded-Proto"));
        });
        proxy = std::make_unique<RunningProxy>(fill(kTlsConfig, {{"dir", dir}, {"o", origin->address()}}));
    }
    void TearDown() override {
        gate.open();
        proxy.reset();
    }
    void write_pair(const std::string& name, const Pem& pem) {
        write_file(dir, name + ".crt", pem.cert);
        write_file(dir, name + ".key", pem.key);
    }
    Response admin(const std::string& method, const std::string& path, const std::string& body = "") {
        return http_request(proxy->admin_port(), method, path, body);
    }

    TestCa ca;
    TempDir tmp{"sluice-tls-it-"};
    const std::string dir = tmp.path;
    Gate gate;
    std::atomic<bool> upstream_heard_end{false};
    std::atomic<std::size_t> flooded{0};  // /flood: bytes the origin got rid of
    Gate flood_done;
    std::unique_ptr<TestOrigin> origin;
    std::unique_ptr<RunningProxy> proxy;
};

// One GET /r with `openssl s_client` (extra arguments in `args`): its report.
std::string s_client(std::uint16_t port, const std::string& args) {
    const std::string cmd = "printf 'GET /r HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' | "
                            "timeout 10 openssl s_client -connect 127.0.0.1:" + std::to_string(port) +
                            " -servername localhost -ign_eof " + args + " 2>&1";
    std::string out;
    if (FILE* f = ::popen(cmd.c_str(), "r")) {
        char buf[4096];
        while (std::size_t n = std::fread(buf, 1, sizeof buf, f)) out.append(buf, n);
        ::pclose(f);
    }
    return out;
}

}  // namespace

TEST_F(Tls, HttpsRequestsOnOneKeepAliveConnection) {
    TlsClient c(proxy->port(), ca.cert_pem());
    auto r = c.get("/hello");
    EXPECT_EQ(r.status, 200u);
    EXPECT_EQ(r.body, "hello /hello proto=https");  // the origin learns the client used TLS
    EXPECT_EQ(c.get("/again").body, "hello /again proto=https");
    EXPECT_EQ(origin->connections(), 1);
}

TEST_F(Tls, AStreamArrivesChunkByChunkOverTls) {
    TlsClient c(proxy->port(), ca.cert_pem());
    c.send("GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n");
    EXPECT_EQ(c.read_head().status, 200u);
    EXPECT_EQ(c.read_body_some(), "data: one\n\n");  // before the origin writes the second chunk
    gate.open();
    std::string rest;
    while (!c.body_done()) rest += c.read_body_some();
    EXPECT_EQ(rest, "data: two\n\n");
}

TEST_F(Tls, WssEchoesThroughATlsTunnel) {
    WssClient ws(proxy->port(), ca.cert_pem());
    for (std::size_t size : {1u, 125u, 126u, 65535u, 65536u, 300000u}) {
        std::string text(size, 'x');
        text[0] = 'a';
        ws.send(text);
        EXPECT_EQ(ws.receive(), text) << size;
    }
    auto conns = json::parse(admin("GET", "/connections").body);
    EXPECT_EQ(conns["websockets"], 1);
    ws.close();
    EXPECT_TRUE(eventually([&] { return proxy->server->tunnel_stats()["all"].active == 0; }));
    auto stats = proxy->server->tunnel_stats()["all"];
    EXPECT_EQ(stats.active, 0);
    EXPECT_EQ(stats.opened, 1u);
    EXPECT_GT(stats.bytes_upstream, 300000u);
    EXPECT_GT(stats.bytes_downstream, 300000u);
    EXPECT_EQ(stats.closes[static_cast<std::size_t>(sluice::proxy::CloseReason::error)], 0u);
}

// The upstream ends first: its last bytes, then a TLS close_notify (not a
// bare FIN, which a TLS client takes for a truncation) reach the client; the
// upstream hears a FIN; the tunnel ends once the client has ended too.
TEST_F(Tls, AnUpstreamEndReachesAWssClientAsCloseNotifyAfterItsLastBytes) {
    TlsClient c(proxy->port(), ca.cert_pem());
    c.send("GET /ends HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    ASSERT_EQ(c.read_head().status, 101u);
    boost::system::error_code end;
    const std::string got = c.read_until_close(&end);  // also what came with the 101
    EXPECT_EQ(got, "last words");
    EXPECT_EQ(end, boost::asio::error::eof) << end.message();  // close_notify, not stream_truncated
    EXPECT_TRUE(eventually([&] { return upstream_heard_end.load(); }));
    c.stream().lowest_layer().close();
    ASSERT_TRUE(eventually([&] { return proxy->server->tunnel_stats()["all"].active == 0; }));
    auto stats = proxy->server->tunnel_stats()["all"];
    EXPECT_EQ(stats.closes[static_cast<std::size_t>(sluice::proxy::CloseReason::upstream_closed)], 1u);
    EXPECT_EQ(stats.bytes_downstream, 10u);  // also when they came with the 101
    EXPECT_EQ(stats.closes[static_cast<std::size_t>(sluice::proxy::CloseReason::error)], 0u);
}

// Half-close through TLS: a wss:// client's close_notify reaches a plain
// upstream as a FIN, the upstream still answers, and the client gets that
// answer and then sluice's own close_notify.
TEST_F(Tls, AWssClientsCloseNotifyIsAFinToAPlainUpstreamThatMayStillAnswer) {
    BlockingTlsClient c(proxy->port());
    c.write("GET /halfclose HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    std::string rest;
    EXPECT_EQ(c.read_head(rest).rfind("HTTP/1.1 101 ", 0), 0u);
    ASSERT_TRUE(c.close_notify());
    bool clean = false;
    rest += c.read_to_end(clean);
    EXPECT_EQ(rest, "after your end");
    EXPECT_TRUE(clean) << "the tunnel's end should reach the client as close_notify";
    ASSERT_TRUE(eventually([&] { return proxy->server->tunnel_stats()["all"].active == 0; }));
    auto stats = proxy->server->tunnel_stats()["all"];
    EXPECT_EQ(stats.closes[static_cast<std::size_t>(sluice::proxy::CloseReason::client_closed)], 1u);
    EXPECT_EQ(stats.closes[static_cast<std::size_t>(sluice::proxy::CloseReason::error)], 0u);
}

// Backpressure through TLS: a wss:// client that stops reading stops the
// origin; reading again brings every byte, in order (a TLS write that would
// block is repeated with the same bytes).
TEST_F(Tls, AWssClientThatStopsReadingStopsTheOrigin) {
    TlsClient c(proxy->port(), ca.cert_pem(), "localhost", 60000);
    c.socket().set_option(boost::asio::socket_base::receive_buffer_size(64 << 10));
    c.send("GET /flood HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    ASSERT_EQ(c.read_head().status, 101u);
    EXPECT_FALSE(flood_done.wait(1000));
    EXPECT_LT(flooded.load(), flood().size());
    const std::string got = c.read_until_close();
    EXPECT_TRUE(flood_done.wait());
    ASSERT_EQ(got.size(), flood().size());
    EXPECT_TRUE(got == flood()) << "the bytes differ from what the origin sent";
}

TEST_F(Tls, ServerNamePicksTheCertificateExactThenWildcardThenDefault) {
    EXPECT_EQ(TlsClient(proxy->port(), ca.cert_pem(), "a.example.com").peer_common_name(), "a.example.com");
    EXPECT_EQ(TlsClient(proxy->port(), ca.cert_pem(), "wild.b.example.com").peer_common_name(), "wild.b.example.com");
    EXPECT_EQ(TlsClient(proxy->port(), ca.cert_pem(), "localhost").peer_common_name(), "localhost");
}

TEST_F(Tls, ACertificateSwapKeepsLiveSessionsAndTheSocket) {
    WssClient ws(proxy->port(), ca.cert_pem());
    ws.send("before");
    EXPECT_EQ(ws.receive(), "before");
    const auto port = proxy->port();

    write_pair("renewed", ca.issue({"renewed.localhost", "localhost"}));
    auto cfg = json::parse(admin("GET", "/config").body)["config"];
    cfg["listeners"][0]["tls"]["certificates"][0] = {{"cert", dir + "/renewed.crt"}, {"key", dir + "/renewed.key"}};
    auto r = admin("PUT", "/config", cfg.dump());
    ASSERT_EQ(r.status, 200u) << r.body;

    EXPECT_EQ(proxy->port(), port);  // the listener kept its socket
    EXPECT_EQ(TlsClient(port, ca.cert_pem()).peer_common_name(), "renewed.localhost");  // new handshakes
    EXPECT_EQ(ws.peer_common_name(), "localhost");  // the live session keeps its certificate
    ws.send("after");
    EXPECT_EQ(ws.receive(), "after");
    ws.close();
}

TEST_F(Tls, RenewedFilesUnderTheSamePathsMakeAnIdenticalPutAChange) {
    auto cfg = json::parse(admin("GET", "/config").body)["config"];
    auto same = admin("PUT", "/config", cfg.dump());
    EXPECT_NE(same.body.find("\"unchanged\": true"), std::string::npos) << same.body;
    write_pair("local", ca.issue({"renewed.localhost", "localhost"}));
    auto r = admin("PUT", "/config", cfg.dump());
    EXPECT_EQ(r.status, 200u);
    EXPECT_EQ(json::parse(r.body)["version"], 2) << r.body;
    EXPECT_EQ(TlsClient(proxy->port(), ca.cert_pem()).peer_common_name(), "renewed.localhost");
}

// A client resumes its session with a ticket, over TLS 1.3 and 1.2 (there is
// no server-side session cache), also after renewed certificate files rebuilt
// the listener's contexts: the ticket keys are the process's, not a context's.
TEST_F(Tls, SessionsResumeByTicketAlsoAfterACertificateRenewal) {
    const std::vector<std::string> versions{"-tls1_3", "-tls1_2"};
    for (const auto& v : versions) {
        auto first = s_client(proxy->port(), v + " -sess_out " + dir + "/session" + v);
        EXPECT_NE(first.find("New, TLSv1"), std::string::npos) << first;
        EXPECT_NE(first.find("hello /r"), std::string::npos) << first;
        auto again = s_client(proxy->port(), v + " -sess_in " + dir + "/session" + v);
        EXPECT_NE(again.find("Reused, TLSv1"), std::string::npos) << v << ": " << again;
        EXPECT_NE(again.find("hello /r"), std::string::npos) << again;
    }
    write_pair("local", ca.issue({"renewed.localhost", "localhost"}));
    auto cfg = json::parse(admin("GET", "/config").body)["config"];
    auto r = admin("PUT", "/config", cfg.dump());
    ASSERT_EQ(r.status, 200u) << r.body;
    ASSERT_EQ(json::parse(r.body)["version"], 2) << r.body;
    for (const auto& v : versions) {
        auto resumed = s_client(proxy->port(), v + " -sess_in " + dir + "/session" + v);
        EXPECT_NE(resumed.find("Reused, TLSv1"), std::string::npos) << v << " after the renewal: " << resumed;
    }
    // A new handshake sees the renewed certificate.
    EXPECT_EQ(TlsClient(proxy->port(), ca.cert_pem()).peer_common_name(), "renewed.localhost");
}

TEST_F(Tls, ABadCertificateIsRefusedAndChangesNothing) {
    write_pair("expired", ca.issue({"localhost"}, -30, 1));
    auto cfg = json::parse(admin("GET", "/config").body)["config"];
    cfg["listeners"][0]["tls"]["certificates"][0] = {{"cert", dir + "/expired.crt"}, {"key", dir + "/expired.key"}};
    auto r = admin("PUT", "/config", cfg.dump());
    EXPECT_EQ(r.status, 400u);
    auto details = json::parse(r.body)["details"];
    EXPECT_EQ(details[0]["path"], "/listeners/0/tls/certificates/0/cert");
    EXPECT_NE(details[0]["message"].get<std::string>().find(dir + "/expired.crt expired on"), std::string::npos)
        << r.body;
    EXPECT_EQ(json::parse(admin("GET", "/config").body)["version"], 1);

    cfg["listeners"][0]["tls"]["certificates"][0] = {{"cert", dir + "/local.crt"}, {"key", dir + "/a.key"}};
    r = admin("PUT", "/config", cfg.dump());
    EXPECT_EQ(r.status, 400u);
    EXPECT_NE(r.body.find("does not match the certificate"), std::string::npos) << r.body;

    EXPECT_EQ(TlsClient(proxy->port(), ca.cert_pem()).peer_common_name(), "localhost");
}

TEST_F(Tls, PlainHttpOnATlsPortIsClosedAndCountedAsAFailedHandshake) {
    EXPECT_EQ(TlsClient(proxy->port(), ca.cert_pem()).get("/x").status, 200u);
    RawClient c(proxy->port(), 3000);
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_TRUE(c.closed_by_peer());
    auto stats = proxy->server->collect_stats();
    EXPECT_EQ(stats.listeners["public"].tls_handshakes, 1u);
    EXPECT_EQ(stats.listeners["public"].tls_handshake_failures, 1u);
    auto metrics = http_request(proxy->admin_port(), "GET", "/metrics").body;
    EXPECT_NE(metrics.find("sluice_tls_handshakes_total{listener=\"public\",result=\"failed\"} 1"), std::string::npos);
}

TEST(TlsStartUp, ACertificateThatCannotLoadStopsStartUpNamingTheFile) {
    try {
        RunningProxy p(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0, tls: {cert: /nonexistent/tls.crt, key: /nonexistent/tls.key}}]
)");
        FAIL() << "sluice started without its certificate";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("/listeners/0/tls/certificates/0/cert: cannot read the certificate file "
                                             "/nonexistent/tls.crt: No such file or directory"),
                  std::string::npos)
            << e.what();
    }
}
