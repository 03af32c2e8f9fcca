// The config-change pipeline (control thread): a change from the admin API, a
// reload of --config (SIGHUP, --watch) or dropping the API overlay is checked
// whole, then applied in one order: new listeners bound, state file written,
// snapshot published, workers and health checks told, removed listeners
// drained. Anything that fails before the publish leaves everything as it was.
// It also keeps the config's two layers: the file's document and the API
// overlay on top of it.
#pragma once
#include "admin/backend.h"
#include "proxy/server/health_checker.h"
#include "proxy/server/listener_set.h"
#include "proxy/server/server_options.h"
#include "proxy/snapshot/snapshot_store.h"
#include "proxy/worker/access_log.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::proxy {

// Counts of config changes by result (sluice_config_changes_total).
struct ChangeCounts {
    std::uint64_t applied = 0, rejected = 0, unchanged = 0;
};

class ConfigChanges {
public:
    // What a change touches, all owned by the Server and outliving this.
    struct Parts {
        const ServerOptions& options;
        SnapshotStore& store;
        EndpointRegistry& registry;
        HealthChecker& health;
        AccessLog& access_log;
        ListenerSet::Workers& workers;
        ListenerSet& listeners;
        boost::asio::io_context& control;
        prometheus::Registry& metrics;  // where sluice_config_changes_total lives
    };
    explicit ConfigChanges(Parts parts);

    // Start-up: the running config goes to --state-dir, so --resume always has one.
    bool save_initial_state(std::string& error);
    // --watch: polls --config (and its certificate files) on the control thread.
    void start_watch();
    void stop();

    // Control thread.
    admin::ChangeResult change(const nlohmann::json& doc, std::optional<std::uint64_t> if_match,
                               std::string_view source, bool dry_run, bool whole_document);
    admin::ChangeResult drop_overlay(std::optional<std::uint64_t> if_match);
    bool reload_from_file(const char* why);  // SIGHUP and --watch
    const nlohmann::json& overlay() const { return overlay_; }
    nlohmann::json sources() const;  // which layer each entry comes from

    ChangeCounts counts() const;  // any thread

private:
    // What a change is: a new applied config from the API (the overlay
    // becomes its difference from the file), or a new file layer read by a
    // reload (the overlay stays on top).
    struct Change {
        const nlohmann::json* applied = nullptr;
        const nlohmann::json* file = nullptr;
        std::optional<std::uint64_t> if_match;
        std::string_view source;
        bool dry_run = false;
        bool whole_document = false;
    };
    // Applies `c`, then trims the memory the old snapshot leaves behind.
    admin::ChangeResult run(const Change& c);
    admin::ChangeResult apply(const Change& c);
    void watch();
    void count(const char* result);

    Parts p_;
    nlohmann::json file_layer_;
    nlohmann::json overlay_ = nlohmann::json::object();
    boost::asio::steady_timer watch_timer_;
    std::string watched_content_;  // last content of --config seen by the watcher
    std::uint64_t watched_tls_ = 0;  // last certificate files' fingerprint the watcher acted on
    prometheus::Family<prometheus::Counter>* family_;
    mutable std::mutex counts_mu_;  // counted on the control thread; tests read from theirs
    ChangeCounts counts_;
};

}  // namespace sluice::proxy
