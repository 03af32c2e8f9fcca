// The file layer and the API overlay on a running proxy: where each entry
// comes from, the overlay shown and dropped, PUT /config as a difference from
// the file, and GET /config output that goes back with PUT /config unchanged
// (every corpus config) or edited (a certificate, with a wss:// session live).
#include "config/load.h"
#include "tests/support/certs.h"
#include "tests/support/client.h"
#include "tests/support/origin.h"
#include "tests/support/proxy_fixture.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tls_client.h"
#include "tests/support/websocket.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>

using namespace sluice::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

class ConfigSources : public ::testing::Test {
protected:
    void SetUp() override {
        a = std::make_unique<TestOrigin>(echo_handler("a"));
        proxy = std::make_unique<RunningProxy>(fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: a, endpoints: ["{a}"]}]
routes:
  - {name: first, match: {path_prefix: /}, cluster: a}
  - {name: second, match: {path_prefix: /two/}, cluster: a}
timeouts: {connect: 3s}
)",
                                                     {{"a", a->address()}}));
    }
    Response call(const std::string& method, const std::string& path, const std::string& body = "") {
        return http_request(proxy->admin_port(), method, path, body);
    }
    json get(const std::string& path) { return json::parse(call("GET", path).body); }

    std::unique_ptr<TestOrigin> a;
    std::unique_ptr<RunningProxy> proxy;
};

std::vector<std::string> route_names(const json& config) {
    std::vector<std::string> out;
    for (const auto& r : config["routes"]) out.push_back(r["name"]);
    return out;
}

}  // namespace

TEST_F(ConfigSources, GetConfigSaysWhereEachEntryComesFromAndTheOverlayCanBeDropped) {
    auto doc = get("/config");
    EXPECT_EQ(doc["sources"], json({{"listeners/public", "file"}, {"clusters/a", "file"},
                                    {"routes/first", "file"}, {"routes/second", "file"}}));
    EXPECT_EQ(get("/config/overlay")["overlay"], json::object());

    ASSERT_EQ(call("POST", "/routes", R"({"name": "hi", "match": {"path": "/hi"}, "cluster": "a"})").status, 201u);
    ASSERT_EQ(call("DELETE", "/routes/second").status, 200u);
    doc = get("/config");
    EXPECT_EQ(doc["sources"]["routes/hi"], "api");
    EXPECT_EQ(doc["sources"]["routes/first"], "file");
    EXPECT_FALSE(doc["sources"].contains("routes/second"));
    auto overlay = get("/config/overlay");
    EXPECT_EQ(overlay["version"], 3);
    EXPECT_EQ(overlay["overlay"]["routes"][0]["name"], "hi");
    EXPECT_EQ(overlay["overlay"]["deleted"], json({{"routes", {"second"}}}));

    auto dropped = call("DELETE", "/config/overlay");
    ASSERT_EQ(dropped.status, 200u) << dropped.body;
    EXPECT_EQ(json::parse(dropped.body)["version"], 4);
    doc = get("/config");
    EXPECT_EQ(route_names(doc["config"]), (std::vector<std::string>{"first", "second"}));
    EXPECT_EQ(get("/config/overlay")["overlay"], json::object());
    // Nothing left to drop: a no-op.
    EXPECT_EQ(json::parse(call("DELETE", "/config/overlay").body)["unchanged"], true);
}

TEST_F(ConfigSources, PutConfigKeepsOnlyWhatDiffersFromTheFile) {
    auto original = get("/config")["config"];
    auto cfg = original;
    cfg["timeouts"]["stream_idle"] = "10m";
    cfg["routes"].push_back({{"name", "hi"}, {"match", {{"path", "/hi"}}}, {"cluster", "a"}});
    auto r = call("PUT", "/config", cfg.dump());
    ASSERT_EQ(r.status, 200u) << r.body;
    auto overlay = get("/config/overlay")["overlay"];
    EXPECT_EQ(overlay["timeouts"], json({{"stream_idle", "10m"}}));  // connect is the file's and stays out
    ASSERT_EQ(overlay["routes"].size(), 1u);
    EXPECT_EQ(overlay["routes"][0]["name"], "hi");
    EXPECT_EQ(http_get(proxy->port(), "/hi").body, "a GET /hi");

    // The file's config sent back: every overlay entry equals the file's and is dropped.
    r = call("PUT", "/config", original.dump());
    ASSERT_EQ(r.status, 200u) << r.body;
    EXPECT_EQ(json::parse(r.body)["version"], 3);
    EXPECT_EQ(get("/config/overlay")["overlay"], json::object());
}

TEST_F(ConfigSources, PutConfigThatMovesTheFilesRoutesIsRefusedNamingTheRoute) {
    auto cfg = get("/config")["config"];
    std::swap(cfg["routes"][0], cfg["routes"][1]);
    auto r = call("PUT", "/config", cfg.dump());
    EXPECT_EQ(r.status, 400u);
    auto body = json::parse(r.body);
    EXPECT_EQ(body["details"][0]["path"], "/routes/0");
    EXPECT_NE(body["error"].get<std::string>().find("route \"second\" is out of order"), std::string::npos) << r.body;
    EXPECT_EQ(get("/config")["version"], 1);
}

TEST_F(ConfigSources, AFileRouteDeletedThenPostedAgainTakesItsPlaceInTheFile) {
    ASSERT_EQ(call("POST", "/routes", R"({"name": "hi", "match": {"path": "/hi"}, "cluster": "a"})").status, 201u);
    ASSERT_EQ(call("DELETE", "/routes/first").status, 200u);
    auto r = call("POST", "/routes", R"({"name": "first", "match": {"path_prefix": "/one/"}, "cluster": "a"})");
    ASSERT_EQ(r.status, 201u) << r.body;
    auto doc = get("/config");
    EXPECT_EQ(route_names(doc["config"]), (std::vector<std::string>{"first", "second", "hi"}));
    EXPECT_EQ(doc["sources"]["routes/first"], "api");
}

// GET /config, sent back with PUT /config, is the same config: the same
// version, nothing touched. Every corpus and example config, moved onto
// this machine (port 0, test certificates and files) with its shapes kept.
TEST(ConfigRoundTrip, EveryCorpusConfigGoesBackUnchanged) {
    TestCa ca;
    const TempDir tmp("sluice-roundtrip-");
    const std::string& dir = tmp.path;
    const auto leaf = ca.issue({"localhost"});
    const std::string crt = write_file(dir, "tls.crt", leaf.cert), key = write_file(dir, "tls.key", leaf.key);
    const std::string ca_file = write_file(dir, "ca.crt", ca.cert_pem());
    const std::string token = write_file(dir, "token", "a-token-long-enough-for-sluice\n");
    std::vector<fs::path> files;
    for (const char* d : {SLUICE_SOURCE_DIR "/tests/configs/valid", SLUICE_SOURCE_DIR "/config/examples"})
        for (const auto& e : fs::directory_iterator(d)) files.push_back(e.path());
    ASSERT_GT(files.size(), 10u);
    for (const auto& f : files) {
        SCOPED_TRACE(f.string());
        auto loaded = sluice::config::load_file(f.string());
        ASSERT_TRUE(loaded.config);
        auto cfg = *loaded.config;
        cfg.admin.address = "127.0.0.1";
        if (cfg.admin.token_file) cfg.admin.token_file = token;
        if (cfg.probes) {
            cfg.probes->address = "127.0.0.1";
            cfg.probes->port = 0;
        }
        for (auto& l : cfg.listeners) {
            l.address = "127.0.0.1";
            l.port = 0;
            if (l.tls)
                for (auto& c : l.tls->certificates) c.cert = crt, c.key = key;
        }
        for (auto& c : cfg.clusters)
            if (c.tls) {
                if (!c.tls->ca.empty()) c.tls->ca = ca_file;
                if (!c.tls->cert.empty()) c.tls->cert = crt, c.tls->key = key;
            }
        if (cfg.access_log.path.front() == '/' && cfg.access_log.path.rfind("/dev/", 0) != 0)
            cfg.access_log.path = dir + "/access.log";
        RunningProxy proxy(cfg, 1);
        const std::string auth = cfg.admin.token_file ? "Authorization: Bearer a-token-long-enough-for-sluice\r\n" : "";
        auto got = http_request(proxy.admin_port(), "GET", "/config", "", auth);
        ASSERT_EQ(got.status, 200u) << got.body;
        auto doc = json::parse(got.body);
        auto put = http_request(proxy.admin_port(), "PUT", "/config", doc["config"].dump(), auth);
        ASSERT_EQ(put.status, 200u) << put.body;
        EXPECT_EQ(json::parse(put.body), json({{"version", 1}, {"unchanged", true}}));
        EXPECT_EQ(json::parse(http_request(proxy.admin_port(), "GET", "/config", "", auth).body), doc);
    }
}

// The case from docs/admin-api.md: GET /config, change the certificate where
// it stands ({cert, key}), PUT it back. A wss:// session open before lives on.
TEST(ConfigRoundTrip, ACertificateEditedInGetConfigOutputGoesBackWhileWssLives) {
    TestCa ca;
    const TempDir tmp("sluice-roundtrip-tls-");
    const std::string& dir = tmp.path;
    const auto first = ca.issue({"localhost"});
    write_file(dir, "first.crt", first.cert);
    write_file(dir, "first.key", first.key);
    const auto second = ca.issue({"renewed.localhost", "localhost"});
    write_file(dir, "second.crt", second.cert);
    write_file(dir, "second.key", second.key);
    TestOrigin origin(websocket_echo_handler());
    RunningProxy proxy(fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0, tls: {cert: "{d}/first.crt", key: "{d}/first.key"}}]
clusters: [{name: app, endpoints: ["{o}"]}]
routes: [{name: all, match: {path_prefix: /}, cluster: app}]
)",
                            {{"d", dir}, {"o", origin.address()}}));
    WssClient ws(proxy.port(), ca.cert_pem());
    ws.send("before");
    EXPECT_EQ(ws.receive(), "before");

    auto cfg = json::parse(http_get(proxy.admin_port(), "/config").body)["config"];
    ASSERT_EQ(cfg["listeners"][0]["tls"], json({{"cert", dir + "/first.crt"}, {"key", dir + "/first.key"}}));
    cfg["listeners"][0]["tls"]["cert"] = dir + "/second.crt";
    cfg["listeners"][0]["tls"]["key"] = dir + "/second.key";
    auto r = http_request(proxy.admin_port(), "PUT", "/config", cfg.dump());
    ASSERT_EQ(r.status, 200u) << r.body;
    EXPECT_EQ(json::parse(r.body)["version"], 2);
    EXPECT_EQ(TlsClient(proxy.port(), ca.cert_pem()).peer_common_name(), "renewed.localhost");
    EXPECT_EQ(ws.peer_common_name(), "localhost");
    ws.send("after");
    EXPECT_EQ(ws.receive(), "after");
    ws.close();
}
