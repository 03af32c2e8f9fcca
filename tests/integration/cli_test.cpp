// The sluice binary as users run it: validate, start-up lines, exit codes,
// SIGTERM, and bounded memory while 100 MiB pass through in each direction.
#include "tests/support/client.h"
#include "tests/support/deadline.h"
#include "tests/support/origin.h"
#include "tests/support/process.h"
#include "tests/support/prometheus_text.h"
#include "tests/support/proxy_fixture.h"
#include "tests/support/temp_dir.h"
#include "tests/support/websocket.h"

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <regex>

using namespace sluice::test;

namespace {

// One file, alone in its own directory.
struct TempFile {
    TempFile(const std::string& ext, const std::string& text) : path(dir.file("config" + ext, text)) {}
    const TempDir dir{"sluice-cli-"};
    const std::string path;
};


}  // namespace

TEST(Cli, VersionPrintsTheVersion) {
    auto r = run_sluice({"version"});
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.out.rfind("sluice ", 0), 0u) << r.out;
}

TEST(Cli, ValidateAcceptsTheQuickstart) {
    auto r = run_sluice({"validate", SLUICE_SOURCE_DIR "/config/examples/quickstart.yaml"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "config OK\n");
}

TEST(Cli, ValidateListsEveryErrorWithPathAndPointer) {
    TempFile f(".json", R"({"listeners": [{"name": "a", "port": "80"}],
        "routes": [{"name": "r", "match": {"path_prefix": "/"}, "cluster": "missing"}]})");
    auto r = run_sluice({"validate", f.path});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find(f.path + ": /listeners/0/port: must be an integer from 0 to 65535, got the string \"80\"\n"),
              std::string::npos)
        << r.err;
    // Cross-field errors come once the structure is sound; structure errors come first.
    TempFile g(".yaml", "clusters: [{name: c, endpoints: [\"127.0.0.1:1\"]}]\nroutes: [{name: r, match: {path: /}, cluster: d}]\n");
    auto r2 = run_sluice({"validate", g.path});
    EXPECT_EQ(r2.status, 1);
    EXPECT_EQ(r2.err, g.path + ": /routes/0/cluster: cluster \"d\" is not defined; defined clusters: c\n");
}

// Both crashed with SIGSEGV (stack overflow): std::regex on a 50,000-byte
// path_prefix, and a recursive copy of a document nested 300,000 deep.
TEST(Cli, ValidateAndRunRefuseHostileConfigsWithoutCrashing) {
    TempFile long_path(".yaml", "listeners: [{name: p, port: 0}]\nclusters: [{name: c, endpoints: [\"127.0.0.1:1\"]}]\n"
                                "routes: [{name: r, cluster: c, match: {path_prefix: /" + std::string(50000, 'a') + "}}]\n");
    auto r = run_sluice({"validate", long_path.path});
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_NE(r.err.find(long_path.path + ": /routes/0/match/path_prefix: this string is 50001 bytes long"), std::string::npos)
        << r.err;
    auto run = run_sluice({"run", "--config", long_path.path, "--admin", "127.0.0.1:0"});
    EXPECT_EQ(run.status, 1) << run.err;
    TempFile deep(".json", "{\"listeners\": " + std::string(300000, '['));
    auto d = run_sluice({"validate", deep.path});
    EXPECT_EQ(d.status, 1) << d.err;
    EXPECT_NE(d.err.find("nested deeper than 64 levels"), std::string::npos) << d.err;
}

TEST(Cli, RunWithABadConfigStartsNothingAndListsErrors) {
    TempFile f(".yaml", "listeners: [{name: a}, {name: b, port: -1}]\ntimeouts: {connect: fast}\n");
    auto r = run_sluice({"run", "--config", f.path, "--admin", "127.0.0.1:0"});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find(f.path + ": /listeners/0/port: missing"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(f.path + ": /listeners/1/port: must be an integer"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(f.path + ": /timeouts/connect:"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("not started: fix the 3 error(s) above"), std::string::npos) << r.err;
}

TEST(Cli, PortZeroStartUpLinesThenServeThenSigtermExitsZero) {
    TestOrigin origin(echo_handler("o"));
    TempFile f(".yaml", fill(R"(
listeners:
  - {name: public, address: 127.0.0.1, port: 0}
  - {name: second, address: 127.0.0.1, port: 0}
clusters: [{name: o, endpoints: ["{o}"]}]
routes: [{name: all, match: {path_prefix: /}, cluster: o}]
timeouts: {drain_delay: 0s, drain: 1s}
)",
                             {{"o", origin.address()}}));
    Process p({sluice_binary(), "run", "--config", f.path, "--admin", "127.0.0.1:0", "--workers", "2"});
    auto l1 = p.read_line();
    auto l2 = p.read_line();
    auto l3 = p.read_line();
    ASSERT_TRUE(l1 && l2 && l3) << p.stderr_text();
    EXPECT_EQ(l1->rfind("listening name=public address=127.0.0.1:", 0), 0u) << *l1;
    EXPECT_EQ(l2->rfind("listening name=second address=127.0.0.1:", 0), 0u) << *l2;
    EXPECT_EQ(l3->rfind("admin listening address=127.0.0.1:", 0), 0u) << *l3;
    EXPECT_EQ(http_get(port_of(*l1), "/a").body, "o GET /a");
    EXPECT_EQ(http_get(port_of(*l2), "/b").body, "o GET /b");
    EXPECT_EQ(http_get(port_of(*l3), "/healthz").status, 200u);
    auto listeners = http_get(port_of(*l3), "/listeners");
    EXPECT_NE(listeners.body.find("\"address\": \"127.0.0.1:" + std::to_string(port_of(*l1)) + "\""),
              std::string::npos)
        << listeners.body;
    p.signal(SIGTERM);
    EXPECT_EQ(p.wait(), 0) << p.stderr_text();
}

TEST(Cli, ListenerPortInUseFailsToStartWithTheReason) {
    asio::io_context io;
    tcp::acceptor taken(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    auto port = taken.local_endpoint().port();
    TempFile f(".yaml", "listeners: [{name: web, address: 127.0.0.1, port: " + std::to_string(port) + "}]\n");
    auto r = run_sluice({"run", "--config", f.path, "--admin", "127.0.0.1:0"});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("listener \"web\" cannot listen on 127.0.0.1:" + std::to_string(port) +
                         ": address already in use"),
              std::string::npos)
        << r.err;
}

TEST(Cli, BadAdminFlagIsRefused) {
    auto r = run_sluice({"run", "--admin", "nope"});
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("--admin \"nope\" is not HOST:PORT"), std::string::npos) << r.err;
}

TEST(Cli, DefaultConfigListensOn8080WhenFree) {
    asio::io_context io;
    boost::system::error_code ec;
    {
        tcp::acceptor probe(io);
        probe.open(tcp::v4());
        probe.bind(tcp::endpoint(asio::ip::make_address("127.0.0.1"), 8080), ec);
    }
    if (ec) GTEST_SKIP() << "127.0.0.1:8080 is busy on this machine";
    Process p({sluice_binary(), "run", "--admin", "127.0.0.1:0"});
    auto l1 = p.read_line();
    ASSERT_TRUE(l1) << p.stderr_text();
    EXPECT_EQ(*l1, "listening name=default address=127.0.0.1:8080");
    auto r = http_get(8080, "/x");
    EXPECT_EQ(r.status, 404u);
    EXPECT_NE(r.body.find("built-in default config"), std::string::npos);
    p.signal(SIGINT);
    EXPECT_TRUE(eventually([&] { return p.stderr_text().find("draining") != std::string::npos; }, 5000));
    p.signal(SIGINT);  // a second signal stops at once, without the 5s drain_delay
    EXPECT_EQ(p.wait(3000), 0);
}

// --no-splice: a bulk frame that a tunnel would splice is copied instead;
// without the flag the same traffic is spliced.
TEST(Cli, NoSpliceMakesTunnelsCopy) {
    TestOrigin origin(websocket_echo_handler());
    TempFile f(".yaml", one_route(origin.address()));
    std::string big(8 << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131) >> 3);
    for (bool no_splice : {true, false}) {
        std::vector<std::string> args{sluice_binary(), "run", "--config", f.path, "--admin", "127.0.0.1:0",
                                      "--workers", "1"};
        if (no_splice) args.push_back("--no-splice");
        Process p(args);
        auto listening = p.read_line();
        auto admin = p.read_line();
        ASSERT_TRUE(listening && admin) << p.stderr_text();
        {
            WsClient ws(port_of(*listening));
            // One 8 MiB frame, sent at once: the traffic LargeTransfersSpliceSmallMessagesCopy splices.
            ws.stream().auto_fragment(false);
            ws.stream().write_buffer_bytes(big.size());
            ws.send(big, true);
            EXPECT_EQ(ws.receive(), big);
        }
        auto m = parse_exposition(http_get(port_of(*admin), "/metrics").body);
        const double spliced = m.value_or_zero("sluice_tunnel_bytes_total", {{"path", "splice"}});
        if (no_splice) {
            EXPECT_EQ(spliced, 0) << "--no-splice";
            EXPECT_GT(m.value_or_zero("sluice_tunnel_bytes_total", {{"path", "copy"}}), 16.0 * (1 << 20));
        } else {
            EXPECT_GT(spliced, 64 * 1024) << "without --no-splice";
        }
        p.signal(SIGKILL);
    }
}

// 100 MiB up and 100 MiB down through the real binary: both arrive intact, a
// paused reader holds the origin back, and the proxy's peak memory barely moves.
TEST(Cli, HundredMebibytesEachWayWithBoundedMemory) {
    constexpr std::uint64_t kTotal = 100ull * 1024 * 1024;
    constexpr std::size_t kPiece = 64 * 1024;
    std::string pattern(kPiece, '\0');
    for (std::size_t i = 0; i < kPiece; ++i) pattern[i] = static_cast<char>('a' + (i * 7 + i / 13) % 26);
    auto checksum_of = [&](std::uint64_t total) {
        std::uint64_t sum = 0;
        for (std::uint64_t done = 0; done < total; done += kPiece)
            for (char c : pattern) sum = sum * 31 + static_cast<unsigned char>(c);
        return sum;
    };
    std::atomic<std::uint64_t> origin_written{0};
    TestOrigin origin([&](OriginExchange& ex) {
        if (ex.target() == "/upload") {
            std::uint64_t sum = 0;
            std::uint64_t n = ex.drain_body(&sum);
            ex.respond(200, std::to_string(n) + " " + std::to_string(sum));
        } else {
            ex.write_raw("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(kTotal) + "\r\n\r\n");
            for (std::uint64_t done = 0; done < kTotal; done += kPiece) {
                ex.write_raw(pattern);
                origin_written += kPiece;
            }
        }
    });
    TempFile f(".yaml", fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: o, endpoints: ["{o}"]}]
routes: [{name: all, match: {path_prefix: /}, cluster: o}]
)",
                             {{"o", origin.address()}}));
    Process p({sluice_binary(), "run", "--config", f.path, "--admin", "127.0.0.1:0", "--workers", "1"});
    auto line = p.read_line();
    ASSERT_TRUE(line) << p.stderr_text();
    auto port = port_of(*line);
    EXPECT_EQ(http_get(port, "/upload").status, 200u);  // warm up
    auto before = p.status_kib("VmHWM");

    {
        RawClient c(port, 30000);
        c.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(kTotal) + "\r\n\r\n");
        for (std::uint64_t done = 0; done < kTotal; done += kPiece) c.send(pattern);
        auto r = c.read_response();
        EXPECT_EQ(r.body, std::to_string(kTotal) + " " + std::to_string(checksum_of(kTotal)));
    }
    {
        RawClient c(port, 30000);
        c.send("GET /download HTTP/1.1\r\nHost: t\r\n\r\n");
        ASSERT_EQ(c.read_head().status, 200u);
        std::uint64_t got = 0, sum = 0;
        while (got < 1024 * 1024) {
            auto piece = c.read_body_some();
            for (char ch : piece) sum = sum * 31 + static_cast<unsigned char>(ch);
            got += piece.size();
        }
        // The client stops reading: backpressure must reach the origin.
        std::uint64_t last = 0;
        for (int i = 0; i < 100; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            std::uint64_t now = origin_written.load();
            if (now == last) break;
            last = now;
        }
        EXPECT_LT(origin_written.load(), kTotal / 2) << "the origin was not held back by a paused client";
        while (!c.body_done()) {
            auto piece = c.read_body_some();
            for (char ch : piece) sum = sum * 31 + static_cast<unsigned char>(ch);
            got += piece.size();
        }
        EXPECT_EQ(got, kTotal);
        EXPECT_EQ(sum, checksum_of(kTotal));
    }
    auto after = p.status_kib("VmHWM");
    EXPECT_LT(after - before, 16u * 1024) << "peak RSS grew from " << before << " KiB to " << after << " KiB";
    RecordProperty("proxy_peak_rss_growth_kib", static_cast<int>(after - before));
    p.signal(SIGKILL);
}
