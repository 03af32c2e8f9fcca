// WebSocket tunnels through sluice: the upgrade dance, the opaque tunnel,
// half-close, early bytes, timeouts, both copy paths, and counters.
#include "tests/support/client.h"
#include "tests/support/deadline.h"
#include "tests/support/origin.h"
#include "tests/support/proxy_fixture.h"
#include "tests/support/websocket.h"

#include <gtest/gtest.h>

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <random>

using namespace sluice::test;

namespace {

std::string config(const std::string& origin, const std::string& extra = "", const std::string& route_extra = "") {
    return fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: app, endpoints: ["{o}"]}]
routes:
  - {name: ws, match: {path_prefix: /}, cluster: app {re}}
{extra}
)",
                {{"o", origin}, {"extra", extra}, {"re", route_extra}});
}

std::string random_bytes(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
}

const char* kUpgrade =
    "GET /chat HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";

// Reads from a raw socket until `want` bytes arrived.
std::string read_exactly(tcp::socket& s, std::size_t want) {
    std::string out(want, '\0');
    asio::read(s, asio::buffer(out));
    return out;
}

// An origin that does the upgrade by hand, so a test controls every byte.
struct RawUpgradeOrigin {
    std::function<void(tcp::socket&, std::string leftover)> after_101;
    std::map<std::string, std::string> seen;
    std::string response_extra = "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: permessage-deflate\r\n";
    OriginExchange* current = nullptr;  // the exchange after_101 runs in
    OriginHandler handler() {
        return [this](OriginExchange& ex) {
            current = &ex;
            for (const auto& f : ex.head()) seen[std::string(f.name_string())] = std::string(f.value());
            std::string leftover(static_cast<const char*>(ex.buffer.data().data()), ex.buffer.size());
            ex.buffer.consume(ex.buffer.size());
            ex.write_raw(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" +
                response_extra + "\r\n");
            after_101(ex.socket, leftover);
            ex.keep_alive = false;
        };
    }
};

}  // namespace

TEST(WebSocket, EchoesTextAndBinaryOfEverySize) {
    TestOrigin origin(websocket_echo_handler());
    RunningProxy proxy(config(origin.address()));
    WsClient ws(proxy.port());
    for (std::size_t size : {1u, 125u, 126u, 65535u, 65536u, 1u << 20}) {
        std::string text(size, 'x');
        ws.send(text);
        bool binary = true;
        EXPECT_EQ(ws.receive(&binary), text) << size;
        EXPECT_FALSE(binary);
        std::string bin = random_bytes(size, static_cast<unsigned>(size));
        ws.send(bin, true);
        EXPECT_EQ(ws.receive(&binary), bin) << size;
        EXPECT_TRUE(binary);
    }
    std::string big = random_bytes(300000, 7);
    ws.send_fragmented(big, 5, true);
    EXPECT_EQ(ws.receive(), big);
    ws.close();
}

TEST(WebSocket, PermessageDeflatePassesThroughUntouched) {
    TestOrigin origin(websocket_echo_handler(true));
    RunningProxy proxy(config(origin.address()));
    WsClient ws(proxy.port(), "/ws", true);
    std::string text(100000, 'a');
    ws.send(text);
    EXPECT_EQ(ws.receive(), text);
    // Compressed both ways, so the extension was negotiated end to end: had the
    // offer or the answer been dropped, 100,000 bytes would have crossed each way.
    auto stats = proxy.server->tunnel_stats()["ws"];
    EXPECT_LT(stats.bytes_upstream, 2000u);
    EXPECT_LT(stats.bytes_downstream, 2000u);
    EXPECT_GT(stats.bytes_upstream, 0u);
}

TEST(WebSocket, UpgradeHeadersReachTheOriginAndComeBack) {
    RawUpgradeOrigin raw;
    raw.after_101 = [](tcp::socket& s, std::string) {
        char c;
        boost::system::error_code ec;
        s.read_some(asio::buffer(&c, 1), ec);  // until the client leaves
    };
    TestOrigin origin(raw.handler());
    RunningProxy proxy(config(origin.address()));
    RawClient c(proxy.port());
    c.send(kUpgrade);
    auto head = c.read_head();
    EXPECT_EQ(head.status, 101u);
    EXPECT_EQ(head.header("Upgrade"), "websocket");
    EXPECT_EQ(head.header("Connection"), "Upgrade");
    EXPECT_EQ(head.header("Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    EXPECT_EQ(head.header("Sec-WebSocket-Protocol"), "chat");
    EXPECT_EQ(head.header("Sec-WebSocket-Extensions"), "permessage-deflate");
    EXPECT_EQ(raw.seen["Upgrade"], "websocket");
    EXPECT_EQ(raw.seen["Connection"], "Upgrade");
    EXPECT_EQ(raw.seen["Sec-WebSocket-Key"], "dGhlIHNhbXBsZSBub25jZQ==");
    EXPECT_EQ(raw.seen["Sec-WebSocket-Version"], "13");
    EXPECT_EQ(raw.seen["Sec-WebSocket-Protocol"], "chat, superchat");
    EXPECT_EQ(raw.seen["Sec-WebSocket-Extensions"], "permessage-deflate; client_max_window_bits");
    EXPECT_EQ(raw.seen["X-Forwarded-For"], "127.0.0.1");
}

TEST(WebSocket, AnyCaseAnyTokenOrder) {
    TestOrigin origin(websocket_echo_handler());
    RunningProxy proxy(config(origin.address()));
    for (const char* conn : {"Upgrade", "upgrade", "keep-alive, Upgrade", "UPGRADE,keep-alive"}) {
        RawClient c(proxy.port());
        c.send(std::string("GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: WebSocket\r\nConnection: ") + conn +
               "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
        EXPECT_EQ(c.read_head().status, 101u) << conn;
    }
}

TEST(WebSocket, BytesReadPastTheHandshakeAreDeliveredFirst) {
    RawUpgradeOrigin raw;
    std::string origin_got;
    Gate origin_done;
    raw.after_101 = [&](tcp::socket& s, std::string leftover) {
        // The 101 and the server's first bytes leave in one write, as many servers do.
        asio::write(s, asio::buffer(std::string("server-first")));
        origin_got = leftover;
        while (origin_got.size() < 12) origin_got += read_exactly(s, 1);
        origin_done.open();
    };
    raw.response_extra = "";
    TestOrigin origin(raw.handler());
    RunningProxy proxy(config(origin.address()));
    RawClient c(proxy.port());
    // The client's first bytes ride in the same write as its upgrade request.
    c.send(std::string(kUpgrade) + "client-early");
    EXPECT_EQ(c.read_head().status, 101u);
    EXPECT_EQ(c.read_until_close().substr(0, 12), "server-first");
    EXPECT_TRUE(origin_done.wait());
    EXPECT_EQ(origin_got.substr(0, 12), "client-early");
}

TEST(WebSocket, HalfCloseIsPassedOnBothWays) {
    RawUpgradeOrigin raw;
    raw.after_101 = [](tcp::socket& s, std::string leftover) {
        // Echo until the client's FIN, then answer and close.
        std::string got = leftover;
        char buf[1024];
        boost::system::error_code ec;
        for (;;) {
            std::size_t n = s.read_some(asio::buffer(buf), ec);
            if (ec) break;
            got.append(buf, n);
        }
        EXPECT_EQ(ec, asio::error::eof);  // a FIN, not a reset
        asio::write(s, asio::buffer("after-fin:" + got));
        s.shutdown(tcp::socket::shutdown_send);
    };
    raw.response_extra = "";
    TestOrigin origin(raw.handler());
    RunningProxy proxy(config(origin.address()));
    RawClient c(proxy.port());
    c.send(kUpgrade);
    EXPECT_EQ(c.read_head().status, 101u);
    c.send("hello");
    c.socket().shutdown(tcp::socket::shutdown_send);  // half-close: still reading
    EXPECT_EQ(c.read_until_close(), "after-fin:hello");
}

TEST(WebSocket, UpstreamHalfCloseLetsTheClientStillSend) {
    RawUpgradeOrigin raw;
    std::string late;
    Gate got_late;
    raw.after_101 = [&](tcp::socket& s, std::string) {
        asio::write(s, asio::buffer(std::string("bye")));
        s.shutdown(tcp::socket::shutdown_send);
        late = read_exactly(s, 4);
        got_late.open();
    };
    raw.response_extra = "";
    TestOrigin origin(raw.handler());
    RunningProxy proxy(config(origin.address()));
    RawClient c(proxy.port());
    c.send(kUpgrade);
    EXPECT_EQ(c.read_head().status, 101u);
    EXPECT_EQ(c.read_until_close(), "bye");  // the upstream's FIN reached the client
    c.send("late");
    EXPECT_TRUE(got_late.wait());
    EXPECT_EQ(late, "late");
}

TEST(WebSocket, AResetOnOneSideClosesTheOther) {
    RawUpgradeOrigin raw;
    raw.after_101 = [&raw](tcp::socket&, std::string) { raw.current->reset(); };
    raw.response_extra = "";
    TestOrigin origin(raw.handler());
    RunningProxy proxy(config(origin.address()));
    RawClient c(proxy.port());
    c.send(kUpgrade);
    EXPECT_EQ(c.read_head().status, 101u);
    EXPECT_TRUE(c.closed_by_peer());
    EXPECT_TRUE(eventually([&] { return proxy.server->tunnel_stats()["ws"].active == 0; }));
    auto stats = proxy.server->tunnel_stats()["ws"];
    EXPECT_EQ(stats.active, 0u);
    EXPECT_EQ(stats.closes[static_cast<int>(sluice::proxy::CloseReason::upstream_closed)], 1u);
}

TEST(WebSocket, ANon101AnswerIsAnOrdinaryResponse) {
    TestOrigin origin([](OriginExchange& ex) { ex.respond(426, "use a newer protocol", {{"Upgrade", "websocket"}}); });
    RunningProxy proxy(config(origin.address()));
    RawClient c(proxy.port());
    c.send(kUpgrade);
    auto r = c.read_response();
    EXPECT_EQ(r.status, 426u);
    EXPECT_EQ(r.body, "use a newer protocol");
    EXPECT_EQ(c.get("/plain").status, 426u);  // the connection is still HTTP
}

TEST(WebSocket, IdleTunnelIsClosedAfterWebsocketIdle) {
    TestOrigin origin(websocket_echo_handler());
    RunningProxy proxy(config(origin.address(), "timeouts: {websocket_idle: 250ms, stream_idle: 50ms}"));
    WsClient ws(proxy.port());
    ws.send("ping");
    EXPECT_EQ(ws.receive(), "ping");  // stream_idle (50ms) does not apply to tunnels
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ws.send("still here");
    EXPECT_EQ(ws.receive(), "still here");
    EXPECT_THROW(ws.receive(), std::exception);  // then silence: closed after 250ms
    auto stats = proxy.server->tunnel_stats()["ws"];
    EXPECT_EQ(stats.closes[static_cast<int>(sluice::proxy::CloseReason::idle_timeout)], 1u);
}

TEST(WebSocket, MaxDurationEndsABusyTunnel) {
    TestOrigin origin(websocket_echo_handler());
    RunningProxy proxy(config(origin.address(), "", ", timeouts: {max_duration: 300ms}"));
    WsClient ws(proxy.port());
    bool cut = false;
    for (int i = 0; i < 200 && !cut; ++i) {
        try {
            ws.send("tick");
            ws.receive();
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        } catch (const std::exception&) {
            cut = true;
        }
    }
    EXPECT_TRUE(cut);
    auto stats = proxy.server->tunnel_stats()["ws"];
    EXPECT_EQ(stats.closes[static_cast<int>(sluice::proxy::CloseReason::max_duration)], 1u);
}

TEST(WebSocket, LargeTransfersSpliceSmallMessagesCopy) {
    TestOrigin origin(websocket_echo_handler());
    RunningProxy proxy(config(origin.address()), 1);
    WsClient ws(proxy.port());
    for (int i = 0; i < 20; ++i) {
        ws.send("small message " + std::to_string(i));
        EXPECT_EQ(ws.receive(), "small message " + std::to_string(i));
    }
    auto small = proxy.server->tunnel_paths();
    EXPECT_GT(small.copied_bytes, 0u);
    EXPECT_EQ(small.spliced_bytes, 0u);
    std::string big = random_bytes(8 << 20, 3);
    // One frame (Beast splits messages into 4 KiB frames by default): the
    // tunnel splices within a frame's payload and copies frame headers, so
    // small frames take the copy path, large ones the splice path.
    ws.stream().auto_fragment(false);
    // A client masks into its write buffer and sends it whole: 4 KiB by
    // default, which a slow client (TSan on a busy machine) trickles out so
    // that no read of sluice's fills a buffer. One 8 MiB send fills the
    // socket buffers at once, the way a bulk sender does.
    ws.stream().write_buffer_bytes(big.size());
    ws.send(big, true);
    EXPECT_EQ(ws.receive(), big);
    auto after = proxy.server->tunnel_paths();
    // The echo comes back in Beast's 4 KiB frames, which copy: the large frame
    // must take the splice path for more than a pipe's worth.
    EXPECT_GT(after.spliced_bytes, 64u * 1024);
    // Once the burst is over the tunnel holds no pipe.
    ws.send("small again");
    EXPECT_EQ(ws.receive(), "small again");
    EXPECT_EQ(proxy.server->pipes_in_use(), 0u);
}

TEST(WebSocket, CopyPathAloneIsByteExact) {
    TestOrigin origin(websocket_echo_handler());
    sluice::proxy::ServerOptions o;
    RunningProxy proxy(config(origin.address()), 1, false, /*splice=*/false);
    WsClient ws(proxy.port());
    std::string big = random_bytes(8 << 20, 4);
    ws.send(big, true);
    EXPECT_EQ(ws.receive(), big);
    auto paths = proxy.server->tunnel_paths();
    EXPECT_EQ(paths.spliced_bytes, 0u);
    EXPECT_GT(paths.copied_bytes, 16u << 20);
}

TEST(WebSocket, BytesThatCameWithThe101AreTunnelBytes) {
    RawUpgradeOrigin raw;
    raw.response_extra = "\r\nlast words";  // the head ends before them: they come in the 101's write
    raw.after_101 = [](tcp::socket& s, std::string) {
        s.shutdown(tcp::socket::shutdown_send);
        char sink[64];
        boost::system::error_code ec;
        while (!ec) s.read_some(asio::buffer(sink), ec);
    };
    TestOrigin origin(raw.handler());
    RunningProxy proxy(config(origin.address()));
    RawClient c(proxy.port());
    c.send(kUpgrade);
    ASSERT_EQ(c.read_head().status, 101u);
    EXPECT_EQ(c.read_until_close(), "last words\r\n");
    c.socket().close();  // the tunnel passed the upstream's FIN on; it ends with the client's
    ASSERT_TRUE(eventually([&] { return proxy.server->tunnel_stats()["ws"].active == 0; }));
    EXPECT_EQ(proxy.server->tunnel_stats()["ws"].bytes_downstream, 12u);
}

TEST(WebSocket, CountersPerRoute) {
    TestOrigin origin(websocket_echo_handler());
    RunningProxy proxy(config(origin.address()));
    {
        WsClient a(proxy.port());
        WsClient b(proxy.port());
        // The 101 reaches a client before its tunnel is counted, so each
        // client's first echo, which only a tunnel carries, orders the check.
        a.send("12345");
        EXPECT_EQ(a.receive(), "12345");
        b.send("6");
        EXPECT_EQ(b.receive(), "6");
        auto live = proxy.server->tunnel_stats()["ws"];
        EXPECT_EQ(live.active, 2u);
        EXPECT_EQ(live.opened, 2u);
        a.close();
        b.close();
    }
    EXPECT_TRUE(eventually([&] { return proxy.server->tunnel_stats()["ws"].active == 0; }));
    auto s = proxy.server->tunnel_stats()["ws"];
    EXPECT_EQ(s.active, 0u);
    EXPECT_EQ(s.opened, 2u);
    // Frames: client frames are masked (4 bytes), so each way differs.
    EXPECT_GE(s.bytes_upstream, 5u + 6u + 1u + 6u);
    EXPECT_GE(s.bytes_downstream, 5u + 2u + 1u + 2u);
    EXPECT_EQ(s.duration.count(), 2u);
    EXPECT_EQ(s.closes[static_cast<int>(sluice::proxy::CloseReason::client_closed)] +
                  s.closes[static_cast<int>(sluice::proxy::CloseReason::upstream_closed)],
              2u);
}

TEST(WebSocket, DrainClosesOpenTunnelsWithinTheWindow) {
    TestOrigin origin(websocket_echo_handler());
    RunningProxy proxy(config(origin.address(), "timeouts: {drain_delay: 0s, drain: 400ms}"));
    WsClient ws(proxy.port());
    ws.send("x");
    EXPECT_EQ(ws.receive(), "x");
    proxy.server->drain();
    EXPECT_THROW(ws.receive(), std::exception);
    EXPECT_EQ(proxy.server->wait(), 0);
}

// A client that stops reading stops the origin: each direction of a tunnel
// holds at most a buffer's worth (the kernel's socket buffers aside), and the
// flow resumes, byte-exact, when the client reads again. Both the splice path
// (bulk) and the copy path wait for the destination to become writable.
class TunnelBackpressure : public ::testing::TestWithParam<bool> {};

TEST_P(TunnelBackpressure, AClientThatStopsReadingStopsTheOrigin) {
    // More than every socket buffer on the way can hold (tcp_rmem allows 32 MiB).
    constexpr std::size_t kTotal = 128u << 20, kChunk = 256u << 10;
    std::string pattern(kTotal, '\0');
    for (std::size_t i = 0; i < kTotal; ++i) pattern[i] = static_cast<char>((i * 7 + i / 65521) & 0xff);
    std::atomic<std::size_t> written{0};
    Gate all_written;
    RawUpgradeOrigin raw;
    raw.response_extra = "";
    raw.after_101 = [&](tcp::socket& s, std::string) {
        for (std::size_t off = 0; off < kTotal; off += kChunk) {
            boost::system::error_code ec;
            asio::write(s, asio::buffer(pattern.data() + off, kChunk), ec);
            if (ec) return;
            written += kChunk;
        }
        all_written.open();
    };
    TestOrigin origin(raw.handler());
    RunningProxy proxy(config(origin.address()), 1, false, /*splice=*/GetParam());
    RawClient c(proxy.port(), 60000);
    c.send(kUpgrade);
    EXPECT_EQ(c.read_head().status, 101u);
    // Nothing is read: the buffers on the way fill up and the origin blocks.
    EXPECT_FALSE(all_written.wait(1000));
    EXPECT_LT(written.load(), kTotal);
    // Reading again drains it all, in order, and the origin finishes.
    std::string got = c.read_until_close();
    EXPECT_TRUE(all_written.wait());
    ASSERT_EQ(got.size(), kTotal);
    EXPECT_TRUE(got == pattern) << "the bytes differ from what the origin sent";
}

INSTANTIATE_TEST_SUITE_P(WebSocket, TunnelBackpressure, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "splice" : "copy"; });
