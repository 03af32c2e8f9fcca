// Config changes on the real binary: the state file survives kill -9 at any
// instant, --resume starts from it, --watch and SIGHUP reload --config (a
// Kubernetes ConfigMap symlink swap included), and memory stays flat over a
// thousand changes.
#include "config/state_file.h"
#include "tests/support/certs.h"
#include "tests/support/client.h"
#include "tests/support/origin.h"
#include "tests/support/process.h"
#include "tests/support/proxy_fixture.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tls_client.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>

using namespace sluice::test;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

void write_text(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

std::string config_yaml(const std::string& origin, const std::string& extra_route = "",
                        const std::string& second_origin = "") {
    std::string second = second_origin.empty() ? "" : ", {name: p2, endpoints: [\"" + second_origin + "\"]}";
    return fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: o, endpoints: ["{o}"]}{second}]
routes:
  - {name: all, match: {path_prefix: /}, cluster: o}
{extra}
timeouts: {drain_delay: 0s, drain: 1s}
)",
                {{"o", origin}, {"extra", extra_route}, {"second", second}});
}

}  // namespace

TEST(CliAdmin, StateFileIsAlwaysWholeWhenKilledMidChange) {
    TestOrigin o(echo_handler("o"));
    TempDir dir("sluice-admin-");
    write_text(dir / "c.yaml", config_yaml(o.address()));
    std::mt19937 rng(42);
    for (int round = 0; round < 12; ++round) {
        RunningSluice s({"run", "--config", dir / "c.yaml", "--admin", "127.0.0.1:0", "--state-dir", dir.path,
                         "--resume", "--workers", "1"});
        std::atomic<bool> stop{false};
        std::atomic<std::uint64_t> acknowledged{0};  // the last version the API answered with
        std::thread writer([&] {
            for (int i = 0; !stop; ++i) {
                try {
                    auto r = http_request(s.admin, "PUT", "/routes/r" + std::to_string(i % 50),
                                          R"({"match": {"path": "/r)" + std::to_string(i) + R"("}, "cluster": "o"})");
                    if (r.status == 200) acknowledged = json::parse(r.body)["version"].get<std::uint64_t>();
                } catch (const std::exception&) {
                    return;  // killed under us
                }
            }
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 80));
        s.p.signal(SIGKILL);
        stop = true;
        writer.join();
        s.p.wait();
        std::string error;
        auto state = sluice::config::read_state_file(dir.path, error);
        ASSERT_TRUE(state) << "round " << round << ": " << error;
        // Every answered change was on disk before its answer.
        EXPECT_GE(state->version, acknowledged.load()) << "round " << round;
    }
    // --resume picks up the last saved version.
    std::string error;
    auto saved = sluice::config::read_state_file(dir.path, error);
    ASSERT_TRUE(saved);
    RunningSluice s({"run", "--config", dir / "c.yaml", "--admin", "127.0.0.1:0", "--state-dir", dir.path,
                     "--resume"});
    auto doc = json::parse(http_get(s.admin, "/config").body);
    EXPECT_EQ(doc["version"].get<std::uint64_t>(), saved->version);
    EXPECT_EQ(doc["config"]["routes"].size(), saved->config.routes.size());
    s.p.signal(SIGKILL);
}

TEST(CliAdmin, AppliedChangeIsOnDiskBeforeTheAnswer) {
    TestOrigin o(echo_handler("o"));
    TempDir dir("sluice-admin-");
    write_text(dir / "c.yaml", config_yaml(o.address()));
    RunningSluice s({"run", "--config", dir / "c.yaml", "--admin", "127.0.0.1:0", "--state-dir", dir.path});
    auto r = http_request(s.admin, "POST", "/routes", R"({"name": "x", "match": {"path": "/x"}, "cluster": "o"})");
    ASSERT_EQ(r.status, 201u);
    std::string error;
    auto state = sluice::config::read_state_file(dir.path, error);
    ASSERT_TRUE(state) << error;
    EXPECT_EQ(state->version, 2u);
    EXPECT_EQ(state->config.routes.back().name, "x");
    s.p.signal(SIGTERM);
    EXPECT_EQ(s.p.wait(), 0);
}

TEST(CliAdmin, WatchReloadsOnChangeAndIgnoresAnInvalidFile) {
    TestOrigin o(echo_handler("o")), p2(echo_handler("p2"));
    TempDir dir("sluice-admin-");
    auto cfg = dir / "c.yaml";
    write_text(cfg, config_yaml(o.address()));
    RunningSluice s({"run", "--config", cfg, "--admin", "127.0.0.1:0", "--watch"});
    EXPECT_EQ(http_get(s.port, "/new").body, "o GET /new");
    // An atomic replace, as editors and config tools do.
    write_text(dir / "c.tmp",
               config_yaml(o.address(), "  - {name: new, match: {path: /new}, cluster: p2}", p2.address()));
    fs::rename(dir / "c.tmp", cfg);
    EXPECT_TRUE(eventually([&] { return http_get(s.port, "/new").body == "p2 GET /new"; }));
    auto version = json::parse(http_get(s.admin, "/config").body)["version"].get<int>();
    EXPECT_EQ(version, 2);
    // A broken file is logged and changes nothing.
    write_text(dir / "c.tmp", "listeners: [{name: public, port: nope}]\n");
    fs::rename(dir / "c.tmp", cfg);
    // The watcher read it when it logs why it refused it.
    EXPECT_TRUE(eventually([&] { return s.p.stderr_text().find("/listeners/0/port") != std::string::npos; }));
    EXPECT_EQ(json::parse(http_get(s.admin, "/config").body)["version"].get<int>(), 2);
    EXPECT_EQ(http_get(s.port, "/new").body, "p2 GET /new");
    s.p.signal(SIGTERM);
    EXPECT_EQ(s.p.wait(), 0);
    EXPECT_NE(s.p.stderr_text().find("/listeners/0/port"), std::string::npos);
}

TEST(CliAdmin, WatchFollowsAConfigMapSymlinkSwap) {
    // A ConfigMap volume: config.yaml -> ..data/config.yaml, ..data -> ..v1;
    // an update writes ..v2 and renames a new ..data link over the old one.
    TestOrigin o(echo_handler("o")), p2(echo_handler("p2"));
    TempDir dir("sluice-admin-");
    fs::create_directories(dir / "..v1");
    write_text(fs::path(dir.path) / "..v1" / "config.yaml", config_yaml(o.address()));
    fs::create_directory_symlink("..v1", dir / "..data");
    fs::create_symlink("..data/config.yaml", dir / "config.yaml");
    RunningSluice s({"run", "--config", dir / "config.yaml", "--admin", "127.0.0.1:0", "--watch"});
    EXPECT_EQ(http_get(s.port, "/x").body, "o GET /x");
    fs::create_directories(dir / "..v2");
    write_text(fs::path(dir.path) / "..v2" / "config.yaml", config_yaml(p2.address()));
    fs::create_directory_symlink("..v2", dir / "..data_tmp");
    fs::rename(dir / "..data_tmp", dir / "..data");
    EXPECT_TRUE(eventually([&] { return http_get(s.port, "/x").body == "p2 GET /x"; }));
    s.p.signal(SIGKILL);
}

TEST(CliAdmin, WatchPicksUpCertificatesRenewedUnderTheSamePaths) {
    TestOrigin o(echo_handler("o"));
    TempDir dir("sluice-admin-");
    TestCa ca;
    auto first = ca.issue({"localhost"});
    write_text(dir / "tls.crt", first.cert);
    write_text(dir / "tls.key", first.key);
    auto cfg = dir / "c.yaml";
    write_text(cfg, fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0, tls: {cert: "{d}/tls.crt", key: "{d}/tls.key"}}]
clusters: [{name: o, endpoints: ["{o}"]}]
routes: [{name: all, match: {path_prefix: /}, cluster: o}]
timeouts: {drain_delay: 0s, drain: 1s}
)",
                         {{"d", dir.path}, {"o", o.address()}}));
    RunningSluice s({"run", "--config", cfg, "--admin", "127.0.0.1:0", "--watch"});
    EXPECT_EQ(TlsClient(s.port, ca.cert_pem()).peer_common_name(), "localhost");
    // What cert-manager and the kubelet do: new files, same paths, config untouched.
    auto renewed = ca.issue({"renewed.localhost", "localhost"});
    write_text(dir / "tls.key.tmp", renewed.key);
    write_text(dir / "tls.crt.tmp", renewed.cert);
    fs::rename(dir / "tls.key.tmp", dir / "tls.key");
    fs::rename(dir / "tls.crt.tmp", dir / "tls.crt");
    EXPECT_TRUE(eventually([&] { return TlsClient(s.port, ca.cert_pem()).peer_common_name() == "renewed.localhost"; }));
    EXPECT_EQ(json::parse(http_get(s.admin, "/config").body)["version"].get<int>(), 2);
    EXPECT_EQ(TlsClient(s.port, ca.cert_pem()).get("/x").body, "o GET /x");
    s.p.signal(SIGTERM);
    EXPECT_EQ(s.p.wait(), 0);
}

TEST(CliAdmin, SighupReloadsWithoutWatch) {
    TestOrigin o(echo_handler("o")), p2(echo_handler("p2"));
    TempDir dir("sluice-admin-");
    auto cfg = dir / "c.yaml";
    write_text(cfg, config_yaml(o.address()));
    RunningSluice s({"run", "--config", cfg, "--admin", "127.0.0.1:0"});
    write_text(cfg, config_yaml(p2.address()));
    // Proving that nothing happens takes time: longer than the watch interval
    // (1 s) a --watch run would have needed to pick the file up.
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    EXPECT_EQ(http_get(s.port, "/x").body, "o GET /x");  // not watched: nothing yet
    s.p.signal(SIGHUP);
    EXPECT_TRUE(eventually([&] { return http_get(s.port, "/x").body == "p2 GET /x"; }));
    s.p.signal(SIGTERM);
    EXPECT_EQ(s.p.wait(), 0);
}

TEST(CliAdmin, MemoryStaysFlatOverAThousandChanges) {
#ifdef __SANITIZE_ADDRESS__
    GTEST_SKIP() << "ASan keeps freed memory in quarantine, so RSS cannot show a leak here; "
                    "LeakSanitizer checks this build for leaks instead";
#endif
    TestOrigin o(echo_handler("o"));
    TempDir dir("sluice-admin-");
    // A config of some size, so a leaked snapshot per change would show.
    std::string routes;
    for (int i = 0; i < 200; ++i)
        routes += "  - {name: r" + std::to_string(i) + ", match: {path_prefix: /p" + std::to_string(i) + "/}, cluster: o}\n";
    write_text(dir / "c.yaml", config_yaml(o.address(), routes));
    RunningSluice s({"run", "--config", dir / "c.yaml", "--admin", "127.0.0.1:0", "--workers", "2"});
    auto doc = json::parse(http_get(s.admin, "/config").body)["config"];
    auto change = [&](int i) {
        doc["routes"][0]["match"]["path_prefix"] = "/v" + std::to_string(i) + "/";
        auto r = http_request(s.admin, "PUT", "/config", doc.dump());
        ASSERT_EQ(r.status, 200u) << r.body;
        EXPECT_EQ(http_get(s.port, "/v" + std::to_string(i) + "/x").status, 200u);
    };
    for (int i = 0; i < 100; ++i) change(i);  // warm up: allocator pools, buffers
    auto baseline = s.p.status_kib("VmRSS");
    for (int i = 100; i < 1100; ++i) change(i);
    auto after = s.p.status_kib("VmRSS");
    RecordProperty("rss_baseline_kib", static_cast<int>(baseline));
    RecordProperty("rss_after_1000_changes_kib", static_cast<int>(after));
    // One leaked snapshot of this config is tens of KiB: a thousand would be tens of MiB.
    EXPECT_LT(after, baseline + 4 * 1024) << "RSS went from " << baseline << " KiB to " << after << " KiB";
    s.p.signal(SIGKILL);
}
