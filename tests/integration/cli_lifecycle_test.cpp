// What a kubelet and a Pod's other containers see of the binary: the worker
// count taken from the CPUs the process may use (affinity, cgroup quota),
// `sluice drain` and `sluice wait-ready`, /ready that means "can serve", the
// JSON process log, the config hash a fleet compares, certificate expiry.
#include "tests/support/certs.h"
#include "tests/support/client.h"
#include "tests/support/deadline.h"
#include "tests/support/origin.h"
#include "tests/support/process.h"
#include "tests/support/prometheus_text.h"
#include "tests/support/proxy_fixture.h"
#include "tests/support/temp_dir.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <unistd.h>

using namespace sluice::test;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string lifecycle_yaml(const std::string& origin, const std::string& extra = "",
                        const std::string& timeouts = "{drain_delay: 0s, drain: 1s}") {
    return fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: app, endpoints: ["{o}"]}]
routes: [{name: all, match: {path_prefix: /}, cluster: app}]
timeouts: {t}
{extra}
)",
                {{"o", origin}, {"extra", extra}, {"t", timeouts}});
}

// /ready waits for the app cluster's health check (GET /healthz every 100ms).
std::string ready_clusters_yaml(const std::string& origin) {
    return fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
probes: {address: 127.0.0.1, port: 0, ready_clusters: [app]}
clusters:
  - {name: app, endpoints: ["{o}"], health_check: {path: /healthz, interval: 100ms, timeout: 100ms}}
routes: [{name: all, match: {path_prefix: /}, cluster: app}]
timeouts: {drain_delay: 0s, drain: 1s}
)",
                {{"o", origin}});
}

// Polls the child's standard error (the log is asynchronous) for `text`.
bool stderr_shows(Process& p, const std::string& text) {
    return eventually([&] { return p.stderr_text().find(text) != std::string::npos; }, 5000);
}

std::string admin_address(const RunningSluice& s) { return "127.0.0.1:" + std::to_string(s.admin); }

}  // namespace

TEST(CliLifecycle, WorkersFollowTheAffinitySet) {
    TestOrigin o(echo_handler("o"));
    TempDir d("sluice-lifecycle-");
    RunningSluice s({"run", "--config", d.file("c.yaml", lifecycle_yaml(o.address())), "--admin", "127.0.0.1:0"},
                    {"/usr/bin/taskset", "-c", "0"});
    EXPECT_TRUE(stderr_shows(s.p, "workers: 1, from 1 CPU(s) in the affinity set")) << s.p.stderr_text();
    EXPECT_EQ(http_get(s.port, "/x").status, 200u);
    s.p.signal(SIGTERM);
    EXPECT_EQ(s.p.wait(), 0);
}

TEST(CliLifecycle, WorkersFollowACgroupCpuQuota) {
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2) GTEST_SKIP() << "one CPU here: a quota of half a CPU changes nothing to see";
    // A cgroup v1 cpu controller that root may write to (the build machines have one).
    const std::string cg = "/sys/fs/cgroup/cpu/sluice-test-" + std::to_string(::getpid());
    std::error_code ec;
    fs::create_directory(cg, ec);
    if (ec || !fs::exists(cg + "/cpu.cfs_quota_us"))
        GTEST_SKIP() << "no writable cgroup v1 cpu controller at /sys/fs/cgroup/cpu (" << ec.message()
                     << "): the quota is covered by the unit tests of cpu_budget only";
    std::ofstream(cg + "/cpu.cfs_period_us") << "100000";
    std::ofstream(cg + "/cpu.cfs_quota_us") << "50000";  // half a CPU: a "500m" limit
    {
        TestOrigin o(echo_handler("o"));
        TempDir d("sluice-lifecycle-");
        // The shell moves itself into the cgroup, then becomes sluice.
        RunningSluice s({"run", "--config", d.file("c.yaml", lifecycle_yaml(o.address())), "--admin", "127.0.0.1:0"},
                        {"/bin/sh", "-c", "echo $$ > " + cg + "/cgroup.procs && exec \"$0\" \"$@\""});
        EXPECT_TRUE(stderr_shows(s.p, "workers: 1, from CPU quota 0.50 rounded up (cgroup v1")) << s.p.stderr_text();
        EXPECT_EQ(http_get(s.port, "/x").status, 200u);
        s.p.signal(SIGTERM);
        EXPECT_EQ(s.p.wait(), 0);
    }
    fs::remove(cg, ec);
}

TEST(CliLifecycle, WorkersAsAskedOverrideTheBudget) {
    TestOrigin o(echo_handler("o"));
    TempDir d("sluice-lifecycle-");
    RunningSluice s({"run", "--config", d.file("c.yaml", lifecycle_yaml(o.address())), "--admin", "127.0.0.1:0",
                     "--workers", "3"},
                    {"/usr/bin/taskset", "-c", "0"});
    EXPECT_TRUE(stderr_shows(s.p, "workers: 3, as asked (--workers)")) << s.p.stderr_text();
    s.p.signal(SIGKILL);
}

TEST(CliLifecycle, DrainCommandStartsTheDrainAndWaitsForTheExit) {
    TestOrigin o(echo_handler("o"));
    TempDir d("sluice-lifecycle-");
    RunningSluice s({"run", "--config", d.file("c.yaml", lifecycle_yaml(o.address())), "--admin", "127.0.0.1:0"});
    EXPECT_EQ(http_get(s.admin, "/ready").status, 200u);
    auto drained = run_sluice({"drain", "--admin", admin_address(s), "--wait"});
    EXPECT_EQ(drained.status, 0) << drained.err;
    EXPECT_NE(drained.out.find("is draining"), std::string::npos) << drained.out;
    EXPECT_NE(drained.out.find("drain finished"), std::string::npos) << drained.out;
    // --wait returned only once nothing answered any more: sluice is gone, and it exited 0.
    EXPECT_EQ(s.p.wait(2000), 0);
    EXPECT_NE(s.p.stderr_text().find("drain: done"), std::string::npos);
}

TEST(CliLifecycle, SigtermDuringADrainTheApiStartedLetsItFinish) {
    // A native sidecar: its preStop starts the drain, the kubelet's SIGTERM
    // comes later and must not cut the drain short as a second signal would.
    TestOrigin o(echo_handler("o"));
    TempDir d("sluice-lifecycle-");
    RunningSluice s({"run", "--config", d.file("c.yaml", lifecycle_yaml(o.address(), "", "{drain_delay: 1s, drain: 1s}")), "--admin",
                     "127.0.0.1:0"});
    EXPECT_EQ(run_sluice({"drain", "--admin", admin_address(s)}).status, 0);
    s.p.signal(SIGTERM);
    // Listeners still accept during drain_delay: the drain goes on.
    EXPECT_EQ(http_get(s.port, "/x").status, 200u);
    EXPECT_EQ(s.p.wait(), 0);
    auto log = s.p.stderr_text();
    EXPECT_NE(log.find("drain: done"), std::string::npos) << log;
    EXPECT_EQ(log.find("stopping now"), std::string::npos) << log;
}

TEST(CliLifecycle, ReadyTurns503WhileDraining) {
    TestOrigin o(echo_handler("o"));
    TempDir d("sluice-lifecycle-");
    RunningSluice s({"run", "--config", d.file("c.yaml", lifecycle_yaml(o.address(), "", "{drain_delay: 30s, drain: 1s}")), "--admin",
                     "127.0.0.1:0"});
    auto drained = run_sluice({"drain", "--admin", admin_address(s)});
    EXPECT_EQ(drained.status, 0) << drained.err;
    auto ready = http_get(s.admin, "/ready");
    EXPECT_EQ(ready.status, 503u);
    EXPECT_NE(ready.body.find("not ready: draining"), std::string::npos) << ready.body;
    // Listeners still accept during drain_delay.
    EXPECT_EQ(http_get(s.port, "/x").status, 200u);
    s.p.signal(SIGKILL);
}

TEST(CliLifecycle, DrainCommandSaysWhatIsWrong) {
    // Nothing there: a port that was free a moment ago.
    std::uint16_t free_port;
    {
        TestOrigin gone(echo_handler("x"));
        free_port = gone.port();
    }
    auto nobody = run_sluice({"drain", "--admin", "127.0.0.1:" + std::to_string(free_port)});
    EXPECT_EQ(nobody.status, 1);
    EXPECT_NE(nobody.err.find("no answer from the admin API at 127.0.0.1:" + std::to_string(free_port)),
              std::string::npos)
        << nobody.err;
    auto bad = run_sluice({"drain", "--admin", "localhost"});
    EXPECT_EQ(bad.status, 2);
    EXPECT_NE(bad.err.find("is not HOST:PORT"), std::string::npos) << bad.err;

    // An admin API with a token: without it, 401 and what to pass; with it, drained.
    TestOrigin o(echo_handler("o"));
    TempDir d("sluice-lifecycle-");
    std::string token = d.file("token", "0123456789abcdef0123\n");
    RunningSluice s({"run", "--config",
                     d.file("c.yaml", lifecycle_yaml(o.address(), "admin: {address: 127.0.0.1, port: 0, token_file: " +
                                                                   token + "}")),
                     "--admin", "127.0.0.1:0"});
    auto refused = run_sluice({"drain", "--admin", admin_address(s)});
    EXPECT_EQ(refused.status, 1);
    EXPECT_NE(refused.err.find("--token-file"), std::string::npos) << refused.err;
    auto ok = run_sluice({"drain", "--admin", admin_address(s), "--token-file", token, "--wait"});
    EXPECT_EQ(ok.status, 0) << ok.err;
    EXPECT_EQ(s.p.wait(2000), 0);
}

TEST(CliLifecycle, WaitReadyWaitsForTheClustersReadinessNames) {
    auto healthy = std::make_shared<std::atomic<bool>>(false);
    TestOrigin o(checked_echo_handler("o", healthy));
    TempDir d("sluice-lifecycle-");
    RunningSluice s({"run", "--config",
                     d.file("c.yaml", ready_clusters_yaml(o.address())),
                     "--admin", "127.0.0.1:0"});
    auto probes_line = s.p.wait_for_line("probes listening");
    ASSERT_TRUE(probes_line);
    const std::string url = "http://127.0.0.1:" + std::to_string(port_of(*probes_line)) + "/ready";
    // The app's health check has not passed yet: 503, and the body names the cluster.
    auto not_yet = http_get(port_of(*probes_line), "/ready");
    EXPECT_EQ(not_yet.status, 503u);
    EXPECT_NE(not_yet.body.find("cluster \"app\" (probes.ready_clusters) has no healthy endpoint yet"), std::string::npos)
        << not_yet.body;
    auto timed_out = run_sluice({"wait-ready", "--url", url, "--timeout", "400ms"});
    EXPECT_EQ(timed_out.status, 1);
    EXPECT_NE(timed_out.err.find("not ready after 400ms"), std::string::npos) << timed_out.err;
    EXPECT_NE(timed_out.err.find("503 not ready: cluster \"app\""), std::string::npos) << timed_out.err;
    // The app comes up: wait-ready returns as soon as /ready passes.
    healthy->store(true);
    auto ready = run_sluice({"wait-ready", "--url", url, "--timeout", "20s"});
    EXPECT_EQ(ready.status, 0) << ready.err;
    EXPECT_NE(ready.out.find("ready: " + url + " answered 200"), std::string::npos) << ready.out;
    s.p.signal(SIGKILL);
}

TEST(CliLifecycle, WaitReadyGivesUpOnNothingListening) {
    std::uint16_t free_port;
    {
        TestOrigin gone(echo_handler("x"));
        free_port = gone.port();
    }
    auto r = run_sluice({"wait-ready", "--url", "http://127.0.0.1:" + std::to_string(free_port) + "/ready",
                         "--timeout", "300ms"});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("not ready after 300ms"), std::string::npos) << r.err;
    auto bad = run_sluice({"wait-ready", "--url", "https://127.0.0.1:9901/ready"});
    EXPECT_EQ(bad.status, 2);
    EXPECT_NE(bad.err.find("is not an http:// URL"), std::string::npos) << bad.err;
    auto bad_timeout = run_sluice({"wait-ready", "--timeout", "soon"});
    EXPECT_EQ(bad_timeout.status, 2);
    EXPECT_NE(bad_timeout.err.find("\"soon\" is not a duration"), std::string::npos) << bad_timeout.err;
}

TEST(CliLifecycle, JsonLogIsOneObjectPerLine) {
    TestOrigin o(echo_handler("o"));
    TempDir d("sluice-lifecycle-");
    RunningSluice s({"run", "--config", d.file("c.yaml", lifecycle_yaml(o.address())), "--admin", "127.0.0.1:0",
                     "--log-format", "json"});
    EXPECT_EQ(http_get(s.port, "/x").status, 200u);
    s.p.signal(SIGTERM);
    EXPECT_EQ(s.p.wait(), 0);
    std::istringstream lines(s.p.stderr_text());
    std::string line;
    int n = 0;
    bool saw_workers = false;
    while (std::getline(lines, line)) {
        ++n;
        json j;
        ASSERT_NO_THROW(j = json::parse(line)) << line;
        ASSERT_TRUE(j.contains("time") && j.contains("level") && j.contains("msg")) << line;
        auto time = j["time"].get<std::string>();
        EXPECT_EQ(time.back(), 'Z') << line;
        EXPECT_EQ(time[10], 'T') << line;
        if (j["msg"].get<std::string>().starts_with("workers: ")) saw_workers = true;
    }
    EXPECT_GT(n, 3);
    EXPECT_TRUE(saw_workers);
    auto bad = run_sluice({"run", "--log-format", "xml"});
    EXPECT_EQ(bad.status, 2);
    EXPECT_NE(bad.err.find("--log-format \"xml\" is not text or json"), std::string::npos) << bad.err;
}

TEST(CliLifecycle, JsonLogStaysJsonWhenAMessageQuotesInvalidUtf8) {
    // A config error quotes the bytes it choked on; the log line must still parse.
    TestOrigin o(echo_handler("o"));
    TempDir d("sluice-lifecycle-");
    std::string path = d.file("c.json", R"({"listeners": [{"name": "public", "address": "127.0.0.1", "port": 0}]})");
    RunningSluice s({"run", "--config", path, "--admin", "127.0.0.1:0", "--watch", "--log-format", "json"});
    d.file("c.json", "{\"listeners\": \"\xff\xfe\"}");
    EXPECT_TRUE(stderr_shows(s.p, "the running config (version 1) stays")) << s.p.stderr_text();
    s.p.signal(SIGKILL);
    s.p.wait();
    std::istringstream lines(s.p.stderr_text());
    std::string line;
    bool saw_error = false;
    while (std::getline(lines, line)) {
        json j;
        ASSERT_NO_THROW(j = json::parse(line)) << line;
        if (j["msg"].get<std::string>().find("ill-formed UTF-8") != std::string::npos) saw_error = true;
    }
    EXPECT_TRUE(saw_error) << s.p.stderr_text();
}

TEST(CliLifecycle, StateDirIsCreatedWhenMissing) {
    TestOrigin o(echo_handler("o"));
    TempDir d("sluice-lifecycle-");
    const std::string state = d.path + "/not/yet/here";
    RunningSluice s({"run", "--config", d.file("c.yaml", lifecycle_yaml(o.address())), "--admin", "127.0.0.1:0",
                     "--state-dir", state});
    EXPECT_TRUE(fs::exists(state + "/config.json"));
    s.p.signal(SIGKILL);
    s.p.wait();
    d.file("blocker", "a file where the directory should be");
    auto r = run_sluice({"run", "--config", d.path + "/c.yaml", "--admin", "127.0.0.1:0", "--state-dir",
                         d.path + "/blocker"});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("--state-dir " + d.path + "/blocker is not a directory"), std::string::npos) << r.err;
}

TEST(CliLifecycle, ConfigHashIsTheSameForTheSameConfigWhateverItsSpelling) {
    TestOrigin o(echo_handler("o"));
    TempDir d("sluice-lifecycle-");
    RunningSluice a({"run", "--config", d.file("a.yaml", lifecycle_yaml(o.address())), "--admin", "127.0.0.1:0"});
    // The same config as JSON, keys in another order, defaults written out.
    std::string as_json = fill(R"({"timeouts": {"drain": "1s", "drain_delay": "0s", "connect": "5s"},
        "routes": [{"cluster": "app", "match": {"path_prefix": "/"}, "name": "all"}],
        "clusters": [{"endpoints": ["{o}"], "name": "app", "lb_policy": "round_robin"}],
        "listeners": [{"port": 0, "address": "127.0.0.1", "name": "public"}]})",
                               {{"o", o.address()}});
    RunningSluice b({"run", "--config", d.file("b.json", as_json), "--admin", "127.0.0.1:0"});
    auto ca = json::parse(http_get(a.admin, "/config").body);
    auto cb = json::parse(http_get(b.admin, "/config").body);
    const std::string hash = ca["hash"].get<std::string>();
    EXPECT_TRUE(hash.starts_with("sha256:")) << hash;
    EXPECT_EQ(hash.size(), 7u + 64u);
    EXPECT_EQ(cb["hash"], ca["hash"]);
    // /metrics says the same, so a fleet can be checked from Prometheus.
    auto metrics = parse_exposition(http_get(a.admin, "/metrics").body);
    EXPECT_EQ(metrics.value("sluice_config_info", {{"hash", hash}}), std::optional<double>(1.0));
    // A change is a new hash.
    auto put = http_request(a.admin, "PUT", "/routes/extra", R"({"match": {"path": "/e"}, "cluster": "app"})");
    EXPECT_EQ(put.status, 200u) << put.body;
    auto after = json::parse(http_get(a.admin, "/config").body);
    EXPECT_NE(after["hash"], ca["hash"]);
    a.p.signal(SIGKILL);
    b.p.signal(SIGKILL);
}

TEST(CliLifecycle, CertificateExpiryIsAMetric) {
    TestCa ca;
    TempDir d("sluice-lifecycle-");
    auto pem = ca.issue({"localhost"}, 0, 30);
    std::string cert = d.file("tls.crt", pem.cert), key = d.file("tls.key", pem.key);
    TestOrigin o(echo_handler("o"));
    RunningSluice s({"run", "--config",
                     d.file("c.yaml", fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0, tls: {cert: {cert}, key: {key}}}]
clusters: [{name: app, endpoints: ["{o}"]}]
routes: [{name: all, match: {path_prefix: /}, cluster: app}]
)",
                                           {{"o", o.address()}, {"cert", cert}, {"key", key}})),
                     "--admin", "127.0.0.1:0"});
    auto metrics = parse_exposition(http_get(s.admin, "/metrics").body);
    double expiry = metrics.value_or_zero("sluice_tls_certificate_expiry_timestamp_seconds",
                                          {{"listener", "public"}, {"certificate", cert}});
    double now = static_cast<double>(std::time(nullptr));
    // Issued for 30 days from now (give the clock a day either way).
    EXPECT_GT(expiry, now + 29 * 86400.0);
    EXPECT_LT(expiry, now + 31 * 86400.0);
    s.p.signal(SIGKILL);
}

TEST(CliLifecycle, ReadyClustersChangeWithoutARestartAndStayWhenLeftOut) {
    auto healthy = std::make_shared<std::atomic<bool>>(false);
    TestOrigin o(checked_echo_handler("o", healthy));
    TempDir d("sluice-lifecycle-");
    RunningSluice s({"run", "--config",
                     d.file("c.yaml", ready_clusters_yaml(o.address())),
                     "--admin", "127.0.0.1:0"});
    EXPECT_EQ(http_get(s.admin, "/ready").status, 503u);
    // A whole config without probes keeps the rule (and the probes address).
    auto doc = json::parse(http_get(s.admin, "/config").body)["config"];
    doc.erase("probes");
    doc["routes"].push_back({{"name", "extra"}, {"match", {{"path", "/e"}}}, {"cluster", "app"}});
    auto put = http_request(s.admin, "PUT", "/config", doc.dump());
    EXPECT_EQ(put.status, 200u) << put.body;
    EXPECT_EQ(http_get(s.admin, "/ready").status, 503u);
    // Dropping the rule is a change like any other: /ready follows at once.
    doc = json::parse(http_get(s.admin, "/config").body)["config"];
    doc["probes"]["ready_clusters"] = json::array();
    put = http_request(s.admin, "PUT", "/config", doc.dump());
    EXPECT_EQ(put.status, 200u) << put.body;
    EXPECT_EQ(http_get(s.admin, "/ready").status, 200u);
    // A rule naming a cluster that does not exist is refused, naming it.
    doc["probes"]["ready_clusters"] = {"nope"};
    put = http_request(s.admin, "PUT", "/config", doc.dump());
    EXPECT_EQ(put.status, 400u);
    EXPECT_NE(put.body.find("/probes/ready_clusters/0"), std::string::npos) << put.body;
    // The probes address itself still cannot move.
    doc["probes"]["ready_clusters"] = json::array();
    doc["probes"]["port"] = 1;
    put = http_request(s.admin, "PUT", "/config", doc.dump());
    EXPECT_EQ(put.status, 400u);
    EXPECT_NE(put.body.find("fixed at start-up"), std::string::npos) << put.body;
    s.p.signal(SIGKILL);
}
