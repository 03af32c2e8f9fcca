// The file layer and the API overlay (config/layers.h): composing them,
// finding the overlay between a file and an applied config, route order,
// where each entry comes from, and shapes kept through GET /config.
#include "config/layers.h"
#include "config/load.h"
#include "config/serialize.h"
#include "config/state_file.h"

#include <gtest/gtest.h>

#include <filesystem>

using namespace sluice::config;
using json = nlohmann::json;

namespace {

json normalized(const std::string& yaml) {
    auto loaded = load_text(yaml, Format::yaml);
    if (!loaded.config) throw std::runtime_error(loaded.errors.at(0).pointer + ": " + loaded.errors.at(0).message);
    return to_json(*loaded.config);
}

const char* kFile = R"(
listeners: [{name: public, address: 127.0.0.1, port: 8080}]
clusters: [{name: app, endpoints: ["127.0.0.1:3000"]}, {name: ai, endpoints: ["127.0.0.1:11434"]}]
routes:
  - {name: one, match: {path_prefix: /one/}, cluster: app}
  - {name: two, match: {path_prefix: /two/}, cluster: app}
  - {name: three, match: {path_prefix: /three/}, cluster: ai}
timeouts: {connect: 3s}
)";

std::vector<std::string> route_names(const json& doc) {
    std::vector<std::string> out;
    for (const auto& r : doc["routes"]) out.push_back(r["name"]);
    return out;
}

}  // namespace

TEST(ConfigLayers, NoOverlayIsTheFile) {
    json file = normalized(kFile);
    EXPECT_EQ(compose_layers(file, json::object()), file);
    EXPECT_EQ(overlay_between(file, file), json::object());
}

TEST(ConfigLayers, OverlayAddsReplacesAndDeletesByName) {
    json file = normalized(kFile);
    json applied = file;
    applied["routes"][1]["match"]["path_prefix"] = "/2/";  // replaced in place
    applied["routes"].erase(2);                            // deleted
    applied["routes"].push_back(normalized(R"(
clusters: [{name: app, endpoints: ["127.0.0.1:3000"]}]
routes: [{name: hi, match: {path: /hi}, cluster: app}])")["routes"][0]);
    applied["timeouts"]["stream_idle"] = "10m";
    json overlay = overlay_between(file, applied);
    EXPECT_FALSE(order_problem(file, overlay, applied));
    ASSERT_EQ(overlay["routes"].size(), 2u);
    EXPECT_EQ(overlay["routes"][0]["name"], "two");
    EXPECT_EQ(overlay["routes"][1]["name"], "hi");
    EXPECT_EQ(overlay["deleted"]["routes"], json::array({"three"}));
    EXPECT_EQ(overlay["timeouts"], json({{"stream_idle", "10m"}}));  // field by field: connect stays the file's
    EXPECT_FALSE(overlay.contains("clusters"));
    EXPECT_EQ(compose_layers(file, overlay), applied);

    auto sources = layer_sources(applied, overlay);
    EXPECT_EQ(sources["routes/one"], "file");
    EXPECT_EQ(sources["routes/two"], "api");
    EXPECT_EQ(sources["routes/hi"], "api");
    EXPECT_EQ(sources["clusters/app"], "file");
    EXPECT_EQ(sources["listeners/public"], "file");
    EXPECT_FALSE(sources.contains("routes/three"));
}

TEST(ConfigLayers, ANewFileKeepsTheOverlayOnTopAndFileFieldsUnderIt) {
    json file = normalized(kFile);
    json overlay = {{"routes", json::array({normalized(R"(
clusters: [{name: app, endpoints: ["127.0.0.1:3000"]}]
routes: [{name: hi, match: {path: /hi}, cluster: app}])")["routes"][0]})},
                    {"timeouts", {{"stream_idle", "10m"}}}};
    json next_file = normalized(std::string(kFile) + "limits: {request_line: 16KiB}\n");
    next_file["timeouts"]["connect"] = "1s";
    next_file["routes"].push_back(next_file["routes"][0]);
    next_file["routes"][3]["name"] = "four";
    json applied = compose_layers(next_file, overlay);
    EXPECT_EQ(route_names(applied), (std::vector<std::string>{"one", "two", "three", "four", "hi"}));
    EXPECT_EQ(applied["timeouts"]["connect"], "1s");
    EXPECT_EQ(applied["timeouts"]["stream_idle"], "10m");
    EXPECT_EQ(applied["limits"]["request_line"], "16KiB");
}

TEST(ConfigLayers, AnEntryTheFileNowHasAsTheOverlayDoesLeavesTheOverlay) {
    json file = normalized(kFile);
    json hi = normalized(R"(
clusters: [{name: app, endpoints: ["127.0.0.1:3000"]}]
routes: [{name: hi, match: {path: /hi}, cluster: app}])")["routes"][0];
    json overlay = {{"routes", json::array({hi})}};
    json next_file = file;
    next_file["routes"].insert(next_file["routes"].begin(), hi);  // the file took the API's route over
    json applied = compose_layers(next_file, overlay);
    EXPECT_EQ(route_names(applied), (std::vector<std::string>{"hi", "one", "two", "three"}));
    EXPECT_EQ(overlay_between(next_file, applied), json::object());
}

TEST(ConfigLayers, TheFilesOrderCannotBeChangedByTheOverlay) {
    json file = normalized(kFile);
    json applied = file;
    std::swap(applied["routes"][0], applied["routes"][2]);
    json overlay = overlay_between(file, applied);
    auto problem = order_problem(file, overlay, applied);
    ASSERT_TRUE(problem);
    EXPECT_EQ(problem->pointer, "/routes/0");
    EXPECT_NE(problem->message.find("route \"three\" is out of order"), std::string::npos) << problem->message;
    EXPECT_NE(problem->message.find("\"one\" belongs here"), std::string::npos) << problem->message;
}

TEST(ConfigLayers, LayerOfAPointerNamesTheEntry) {
    json file = normalized(kFile);
    json applied = file;
    applied["routes"][1]["cluster"] = "gone";
    json overlay = overlay_between(file, applied);
    EXPECT_EQ(layer_of(applied, overlay, "/routes/1/cluster"), "the API overlay: route \"two\"");
    EXPECT_EQ(layer_of(applied, overlay, "/routes/0/cluster"), "the config file: route \"one\"");
    EXPECT_EQ(layer_of(applied, overlay, "/routes/99"), "the config file");
    EXPECT_EQ(layer_of(applied, overlay, "/timeouts/connect"), "the config file");
    EXPECT_EQ(layer_of(applied, json{{"timeouts", {{"connect", "1s"}}}}, "/timeouts/connect"), "the API overlay");
}

TEST(ConfigLayers, StoredOverlaysAreCheckedForShape) {
    ConfigErrors errors;
    EXPECT_TRUE(check_overlay_shape(json::object(), errors));
    EXPECT_TRUE(check_overlay_shape(json::parse(R"({"routes": [{"name": "a"}], "deleted": {"clusters": ["x"]},
                                                     "timeouts": {"connect": "1s"}})"),
                                    errors));
    EXPECT_TRUE(errors.empty());
    EXPECT_FALSE(check_overlay_shape(json::parse(R"({"routes": {"a": 1}})"), errors));
    EXPECT_FALSE(check_overlay_shape(json::parse(R"({"routes": [{"match": {}}]})"), errors));
    EXPECT_FALSE(check_overlay_shape(json::parse(R"({"deleted": {"routes": [1]}})"), errors));
    EXPECT_FALSE(check_overlay_shape(json::parse(R"({"deleted": {"admin": ["a"]}})"), errors));
    EXPECT_FALSE(check_overlay_shape(json::parse(R"({"admin": {"port": 1}})"), errors));
    EXPECT_FALSE(check_overlay_shape(json::parse(R"([])"), errors));
    EXPECT_EQ(errors[0].pointer, "/routes");
}

// GET /config writes a config so that reading it back gives the same config
// in the same shape: every corpus and example config, normalized twice.
TEST(ConfigLayers, EveryCorpusConfigRoundTripsInItsShape) {
    namespace fs = std::filesystem;
    std::vector<fs::path> files;
    for (const char* dir : {SLUICE_SOURCE_DIR "/tests/configs/valid", SLUICE_SOURCE_DIR "/config/examples"})
        for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path());
    ASSERT_GT(files.size(), 10u);
    for (const auto& f : files) {
        auto first = load_file(f.string());
        ASSERT_TRUE(first.config) << f;
        json written = to_json(*first.config);
        auto second = load_document(written);
        ASSERT_TRUE(second.config) << f << ": " << second.errors.at(0).pointer << ": " << second.errors.at(0).message;
        EXPECT_EQ(*second.config, *first.config) << f;
        EXPECT_EQ(to_json(*second.config), written) << f;
        EXPECT_EQ(overlay_between(written, to_json(*second.config)), json::object()) << f;
    }
}

TEST(ConfigLayers, ListenerTlsKeepsTheShapeItWasGivenIn) {
    json doc = normalized(R"(
listeners:
  - {name: one, port: 8443, tls: {cert: a.crt, key: a.key}}
  - {name: many, port: 9443, tls: {certificates: [{cert: b.crt, key: b.key}]}}
)");
    EXPECT_EQ(doc["listeners"][0]["tls"], json({{"cert", "a.crt"}, {"key", "a.key"}}));
    EXPECT_EQ(doc["listeners"][1]["tls"]["certificates"][0]["cert"], "b.crt");
    // Edited in that shape and sent back, it is read as it reads.
    doc["listeners"][0]["tls"]["cert"] = "new.crt";
    auto back = load_document(doc);
    ASSERT_TRUE(back.config) << back.errors.at(0).pointer << ": " << back.errors.at(0).message;
    EXPECT_EQ(back.config->listeners[0].tls->certificates[0].cert, "new.crt");
}

// --resume: the stored overlay on top of the file read again.
TEST(ConfigLayers, ResumePutsTheStoredOverlayOnTheFileReadAgain) {
    auto file = load_text(kFile, Format::yaml).config.value();
    json hi = normalized(R"(
clusters: [{name: ai, endpoints: ["127.0.0.1:11434"]}]
routes: [{name: hi, match: {path: /hi}, cluster: ai}])")["routes"][0];
    json overlay = {{"routes", json::array({hi})}};
    auto stored = load_document(compose_layers(to_json(file), overlay)).config.value();
    stored.admin.port = 0;  // as --admin 127.0.0.1:0 ran it: a start-up setting, not a change
    StateFile state{7, stored, overlay, to_json(file)};

    auto same = resume_layers(state, file);
    EXPECT_TRUE(same.refused.empty());
    EXPECT_EQ(same.version, 7u);
    EXPECT_EQ(same.overlay, overlay);
    EXPECT_EQ(same.config.routes.back().name, "hi");

    // The file changed while sluice was down: applied with the overlay on top, one more version.
    auto changed_file = load_text(std::string(kFile) + "limits: {request_line: 16KiB}\n", Format::yaml).config.value();
    auto changed = resume_layers(state, changed_file);
    EXPECT_TRUE(changed.refused.empty());
    EXPECT_EQ(changed.version, 8u);
    EXPECT_EQ(changed.config.limits.request_line, 16u * 1024);
    EXPECT_EQ(changed.config.routes.back().name, "hi");

    // A file without cluster "ai": the overlay's route no longer fits, so the stored config serves.
    auto no_ai = load_text(R"(
listeners: [{name: public, address: 127.0.0.1, port: 8080}]
clusters: [{name: app, endpoints: ["127.0.0.1:3000"]}]
routes: [{name: one, match: {path_prefix: /one/}, cluster: app}]
)",
                           Format::yaml)
                     .config.value();
    auto refused = resume_layers(state, no_ai);
    ASSERT_FALSE(refused.refused.empty());
    EXPECT_EQ(refused.refused[0].pointer, "/routes/1/cluster");
    EXPECT_NE(refused.refused[0].message.find("(this comes from the API overlay: route \"hi\")"), std::string::npos)
        << refused.refused[0].message;
    EXPECT_EQ(refused.version, 7u);
    EXPECT_EQ(refused.config, stored);
    EXPECT_EQ(refused.file_layer, to_json(file));  // the layer the stored config was composed from

    // A state file from before layers: the overlay is what the stored config changed.
    StateFile old{7, stored, std::nullopt, std::nullopt};
    auto upgraded = resume_layers(old, file);
    EXPECT_TRUE(upgraded.refused.empty());
    EXPECT_EQ(upgraded.overlay, overlay);
    EXPECT_EQ(upgraded.version, 7u);
}
