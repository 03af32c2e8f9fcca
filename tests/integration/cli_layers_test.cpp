// The file layer and the API overlay on the real binary: a route added through
// the API survives ConfigMap updates picked up by --watch and a restart with
// --resume; a file that no longer fits the overlay is refused as a whole and
// the running config keeps serving, at run time and at a resume.
#include "tests/support/certs.h"
#include "tests/support/client.h"
#include "tests/support/deadline.h"
#include "tests/support/origin.h"
#include "tests/support/process.h"
#include "tests/support/proxy_fixture.h"
#include "tests/support/temp_dir.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>

using namespace sluice::test;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// A directory laid out as a Kubernetes ConfigMap volume: config.yaml ->
// ..data/config.yaml, ..data -> ..vN; an update writes ..vN+1 and renames a new
// ..data link over the old one, as the kubelet does.
class ConfigMapDir {
public:
    void publish(const std::string& yaml) {
        const std::string version = "..v" + std::to_string(++n_);
        fs::create_directories(fs::path(path) / version);
        std::ofstream(fs::path(path) / version / "config.yaml") << yaml;
        fs::create_directory_symlink(version, fs::path(path) / "..data_tmp");
        fs::rename(fs::path(path) / "..data_tmp", fs::path(path) / "..data");
        if (!fs::exists(fs::path(path) / "config.yaml", ec_))
            fs::create_symlink("..data/config.yaml", fs::path(path) / "config.yaml");
    }
    std::string config() const { return path + "/config.yaml"; }
    std::string state() const { return path + "/state"; }
    const TempDir dir{"sluice-layers-"};
    const std::string& path = dir.path;

private:
    int n_ = 0;
    std::error_code ec_;
};

// The ConfigMap's config: cluster "o" always, cluster "p" unless `with_p` is
// false, and `n` file routes f0..fn-1 (so each update really changes it).
std::string file_yaml(const std::string& o, const std::string& p, int n, bool with_p = true) {
    std::string routes = "  - {name: all, match: {path_prefix: /}, cluster: o}\n";
    for (int i = 0; i < n; ++i)
        routes += "  - {name: f" + std::to_string(i) + ", match: {path: /f" + std::to_string(i) + "}, cluster: o}\n";
    return fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: o, endpoints: ["{o}"]}{p}]
routes:
{routes}timeouts: {drain_delay: 0s, drain: 1s}
)",
                {{"o", o}, {"p", with_p ? ", {name: p, endpoints: [\"" + p + "\"]}" : ""}, {"routes", routes}});
}

std::vector<std::string> run_args(const ConfigMapDir& dir) {
    return {"run", "--config", dir.config(), "--admin", "127.0.0.1:0", "--watch", "--state-dir", dir.state(),
            "--resume", "--workers", "1"};
}

std::uint64_t version_of(std::uint16_t admin) {
    return json::parse(http_get(admin, "/config").body)["version"].get<std::uint64_t>();
}

double rejected_changes(std::uint16_t admin) {
    const std::string text = http_get(admin, "/metrics").body;
    const std::string key = "sluice_config_changes_total{result=\"rejected\"} ";
    auto at = text.find(key);
    return at == std::string::npos ? 0 : std::stod(text.substr(at + key.size()));
}

const char* kHi = R"({"name": "hi", "match": {"path": "/hi"}, "cluster": "p"})";

}  // namespace

TEST(CliLayers, AnApiRouteSurvivesTwentyConfigMapUpdatesAndAResume) {
    TestOrigin o(echo_handler("o")), p(echo_handler("p"));
    ConfigMapDir dir;
    dir.publish(file_yaml(o.address(), p.address(), 0));
    {
        RunningSluice s(run_args(dir));
        ASSERT_EQ(http_request(s.admin, "POST", "/routes", kHi).status, 201u);
        EXPECT_EQ(http_get(s.port, "/hi").body, "p GET /hi");
        for (int n = 1; n <= 20; ++n) {
            dir.publish(file_yaml(o.address(), p.address(), n));
            const std::uint64_t want = 2 + static_cast<std::uint64_t>(n);  // each update is one version
            ASSERT_TRUE(eventually([&] { return version_of(s.admin) == want; })) << "update " << n;
            EXPECT_EQ(http_get(s.port, "/f" + std::to_string(n - 1)).body, "o GET /f" + std::to_string(n - 1));
            EXPECT_EQ(http_get(s.port, "/hi").body, "p GET /hi") << "after update " << n;
        }
        auto doc = json::parse(http_get(s.admin, "/config").body);
        EXPECT_EQ(doc["sources"]["routes/hi"], "api");
        EXPECT_EQ(doc["sources"]["routes/f19"], "file");
        EXPECT_EQ(doc["config"]["routes"].back()["name"], "hi");  // API routes follow the file's
        s.p.signal(SIGTERM);
        EXPECT_EQ(s.p.wait(), 0);
    }
    // While sluice is down the ConfigMap changes again; --resume reads it and
    // puts the stored overlay on top (a changed result is one more version).
    dir.publish(file_yaml(o.address(), p.address(), 21));
    RunningSluice s(run_args(dir));
    EXPECT_EQ(http_get(s.port, "/hi").body, "p GET /hi");
    EXPECT_EQ(http_get(s.port, "/f20").body, "o GET /f20");
    EXPECT_EQ(version_of(s.admin), 23u);
    auto overlay = json::parse(http_get(s.admin, "/config/overlay").body)["overlay"];
    ASSERT_EQ(overlay["routes"].size(), 1u);
    EXPECT_EQ(overlay["routes"][0]["name"], "hi");
    s.p.signal(SIGTERM);
    EXPECT_EQ(s.p.wait(), 0);
}

TEST(CliLayers, AFileThatNoLongerFitsTheOverlayIsRefusedAndTheOldConfigServes) {
    TestOrigin o(echo_handler("o")), p(echo_handler("p"));
    ConfigMapDir dir;
    dir.publish(file_yaml(o.address(), p.address(), 0));
    {
        RunningSluice s(run_args(dir));
        ASSERT_EQ(http_request(s.admin, "POST", "/routes", kHi).status, 201u);
        const double rejected = rejected_changes(s.admin);
        // The new file drops cluster p, which the API's route "hi" uses.
        dir.publish(file_yaml(o.address(), p.address(), 1, false));
        ASSERT_TRUE(eventually([&] { return rejected_changes(s.admin) == rejected + 1; }));
        EXPECT_EQ(version_of(s.admin), 2u);
        EXPECT_EQ(http_get(s.port, "/hi").body, "p GET /hi");
        EXPECT_EQ(http_get(s.port, "/f0").body, "o GET /f0");  // served by "all": f0 was not applied
        s.p.signal(SIGKILL);
        s.p.wait();
        const std::string log = s.p.stderr_text();
        EXPECT_NE(log.find("/routes/2/cluster"), std::string::npos) << log;
        EXPECT_NE(log.find("(this comes from the API overlay: route \"hi\")"), std::string::npos) << log;
        EXPECT_NE(log.find("the running config (version 2) stays"), std::string::npos) << log;
    }
    {
        // A restart with the same file: the stored config serves, as a refused reload leaves it.
        RunningSluice s(run_args(dir));
        EXPECT_EQ(version_of(s.admin), 2u);
        EXPECT_EQ(http_get(s.port, "/hi").body, "p GET /hi");
        // The file fixed: it applies with the overlay on top.
        dir.publish(file_yaml(o.address(), p.address(), 1));
        ASSERT_TRUE(eventually([&] { return version_of(s.admin) == 3u; }));
        EXPECT_EQ(http_get(s.port, "/hi").body, "p GET /hi");
        s.p.signal(SIGTERM);
        EXPECT_EQ(s.p.wait(), 0);
        const std::string log = s.p.stderr_text();
        EXPECT_NE(log.find("--resume: the config file with the stored API overlay on top is invalid"), std::string::npos)
            << log;
    }
}
