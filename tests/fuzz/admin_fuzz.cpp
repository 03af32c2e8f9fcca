// Fuzz target: the admin API's request handling (the handler table, path
// parameters, bodies, If-Match) over a stand-in backend that validates and
// applies changes as the server does. Input: "METHOD TARGET\n" then the body.
// Never an exception (the server would answer 500); every JSON answer is
// JSON; a refused change changes nothing.
#include "admin/handlers.h"
#include "config/layers.h"
#include "config/load.h"
#include "config/serialize.h"
#include "fuzz_check.h"

#include <string>

namespace {

using namespace sluice;
using json = nlohmann::json;

class StandInBackend : public admin::Backend {
public:
    std::uint64_t config_version() const override { return version_; }
    config::Config running_config() const override { return config_; }
    json config_json() const override { return config::to_json(config_); }
    admin::ChangeResult change_config(const json& doc, std::optional<std::uint64_t> if_match, std::string_view,
                                      bool dry_run, bool whole_document) override {
        admin::ChangeResult r;
        r.version = version_;
        if (if_match && *if_match != version_) {
            r.outcome = admin::ChangeResult::Outcome::precondition_failed;
            r.message = "moved on";
            return r;
        }
        auto loaded = config::load_document(doc);
        if (!loaded.config) {
            r.outcome = admin::ChangeResult::Outcome::invalid;
            r.errors = std::move(loaded.errors);
            return r;
        }
        // The layers as the server keeps them: the overlay is the difference from the file.
        json applied = config::to_json(*loaded.config);
        json overlay = config::overlay_between(file_, applied);
        if (auto misplaced = config::order_problem(file_, overlay, applied)) {
            if (whole_document) {
                r.outcome = admin::ChangeResult::Outcome::invalid;
                r.errors.push_back(*misplaced);
                return r;
            }
            applied = config::compose_layers(file_, overlay);
            loaded = config::load_document(applied);
            CHECK(loaded.config.has_value());  // reordering a valid config keeps it valid
        }
        CHECK(config::compose_layers(file_, overlay) == applied);
        if (dry_run) {
            r.outcome = admin::ChangeResult::Outcome::applied;
            return r;
        }
        if (*loaded.config == config_) {
            r.outcome = admin::ChangeResult::Outcome::unchanged;
            return r;
        }
        config_ = std::move(*loaded.config);
        overlay_ = std::move(overlay);
        r.version = ++version_;
        r.outcome = admin::ChangeResult::Outcome::applied;
        return r;
    }
    json overlay_json() const override { return overlay_; }
    json config_sources() const override { return config::layer_sources(config_json(), overlay_); }
    admin::ChangeResult drop_overlay(std::optional<std::uint64_t> if_match) override {
        return change_config(file_, if_match, "", false, true);
    }
    json listeners_json() const override { return json::array(); }
    json clusters_json() override { return {{"clusters", json::array()}}; }
    std::string metrics_text() override { return ""; }
    json connections_json(const admin::ConnectionsQuery&) override { return json::object(); }
    std::string not_ready() const override { return {}; }
    std::string config_hash() const override { return config::config_hash(config_); }
    void drain() override {}

private:
    config::Config config_ = config::default_config();
    json file_ = config::to_json(config_);
    json overlay_ = json::object();
    std::uint64_t version_ = 1;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    auto nl = text.find('\n');
    std::string line = text.substr(0, nl);
    admin::AdminRequest req;
    auto space = line.find(' ');
    req.method = line.substr(0, space);
    req.target = space == std::string::npos ? "/" : line.substr(space + 1);
    req.body = nl == std::string::npos ? "" : text.substr(nl + 1);
    if (auto im = req.target.find(" if-match="); im != std::string::npos) {
        req.if_match = req.target.substr(im + 10);
        req.target.resize(im);
    }
    StandInBackend backend;
    const auto before = backend.running_config();
    admin::Handlers handlers(backend, admin::Handlers::Mode::admin);
    admin::AdminReply reply = handlers.handle(req);
    CHECK(reply.status >= 200 && reply.status < 600);
    if (reply.content_type == "application/json") CHECK_MSG(json::accept(reply.body), reply.body);
    if (reply.status >= 400) CHECK(backend.running_config() == before);
    return 0;
}
