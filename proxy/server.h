// The whole proxy: workers, listeners, the admin and probes servers, signals
// and the drain. Owns the control thread, where the admin API, signal handling
// and drain steps run; workers are only ever posted to.
#pragma once
#include "admin/admin_server.h"
#include "config/spec.h"
#include "proxy/access_log.h"
#include "proxy/health_checker.h"
#include "proxy/listener.h"
#include "proxy/snapshot_store.h"
#include "proxy/worker.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace sluice::proxy {

struct ServerOptions {
    config::Config config;  // the applied config to start with
    // Its layers (config/layers.h): the file's document (to_json form) and the
    // API overlay. Without them the file layer is `config` and the overlay empty.
    std::optional<nlohmann::json> file_layer;
    std::optional<nlohmann::json> overlay;
    bool builtin_default = false;  // no --config: 404s explain how to add routes
    std::size_t workers = 0;       // 0: the CPUs this process may use (cpu_budget.h)
    std::optional<std::string> admin_address;  // --admin overrides
    std::optional<std::uint16_t> admin_port;
    bool handle_signals = false;  // SIGTERM/SIGINT drain (the binary, not tests)
    bool print_addresses = true;  // "listening name=... address=..." on stdout
    bool splice = true;           // zero-copy tunnels; off only to test the copy path alone
    std::uint64_t initial_version = 1;        // --resume starts from the state file's version
    std::optional<std::string> state_dir;     // --state-dir: every applied config is written there
    std::optional<std::string> config_path;   // --config, reloaded on SIGHUP
    bool watch = false;                       // --watch: reload --config when the file changes
    std::chrono::milliseconds watch_interval{1000};
};

// Counts of config changes by result (sluice_config_changes_total).
struct ChangeCounts {
    std::uint64_t applied = 0, rejected = 0, unchanged = 0;
};

class Server final : public admin::Backend {
public:
    // Binds every socket and starts every thread. On failure returns null with
    // `error` set, and nothing is left running.
    static std::unique_ptr<Server> start(ServerOptions options, std::string& error);
    ~Server() override;

    // Blocks until a drain finished (or stop()); returns the exit status.
    int wait();
    // Any thread: start a graceful drain (SIGTERM, POST /drain).
    void drain() override;
    // Any thread: close everything now.
    void stop();

    // Addresses actually bound (port 0 resolved).
    std::uint16_t listener_port(const std::string& name) const;
    boost::asio::ip::tcp::endpoint admin_endpoint() const;
    std::optional<boost::asio::ip::tcp::endpoint> probes_endpoint() const;
    std::size_t worker_count() const { return workers_.size(); }
    // Upstream connections opened to an endpoint ("127.0.0.1:3000"), all workers.
    std::uint64_t upstream_connects(const std::string& endpoint);
    std::size_t live_connections() const;
    // Every worker's counters, summed (any thread, blocking).
    StatsTotals collect_stats();
    // Tunnel counters by route, summed over workers (any thread, blocking).
    std::map<std::string, TunnelCounters> tunnel_stats();
    TunnelPaths tunnel_paths();
    std::size_t pipes_in_use();

    // Any thread.
    ChangeCounts change_counts() const;

    // admin::Backend (control thread).
    std::uint64_t config_version() const override;
    config::Config running_config() const override;
    nlohmann::json config_json() const override;
    admin::ChangeResult change_config(const nlohmann::json& doc, std::optional<std::uint64_t> if_match,
                                      std::string_view source, bool dry_run = false,
                                      bool whole_document = false) override;
    nlohmann::json overlay_json() const override { return overlay_; }
    nlohmann::json config_sources() const override;
    admin::ChangeResult drop_overlay(std::optional<std::uint64_t> if_match) override;
    nlohmann::json listeners_json() const override;
    nlohmann::json clusters_json() override;
    std::string metrics_text() override;  // metrics.cpp
    nlohmann::json connections_json(const admin::ConnectionsQuery& q) override;
    std::string not_ready() const override;  // draining, or a probes.ready_clusters cluster cannot serve
    std::string config_hash() const override { return store_.current()->hash; }

private:
    explicit Server(ServerOptions options);
    bool bind_all(std::string& error);
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
    admin::ChangeResult run_change(const Change& c);
    admin::ChangeResult apply_change(const Change& c);
    // The listener part of a change: binds what is new (nothing is kept on failure).
    bool bind_new_listeners(const config::Config& next, std::vector<std::shared_ptr<ListenerInfo>>& added,
                            std::string& error);
    void swap_listeners(const config::Config& next, std::vector<std::shared_ptr<ListenerInfo>> added);
    bool reload_from_file(const char* why);
    void watch_config();
    void on_hup();
    void begin_drain();
    void poll_drained(std::chrono::steady_clock::time_point give_up);
    void finish();
    void count_change(const char* result);  // sluice_config_changes_total
    void init_metrics();                     // metrics.cpp

    ServerOptions options_;
    std::unique_ptr<AccessLog> access_log_;  // before workers_, which write to it
    EndpointRegistry registry_;  // control thread; before store_, which is built from it
    SnapshotStore store_;
    boost::asio::io_context control_{1};
    HealthChecker health_{control_};
    std::vector<std::unique_ptr<Worker>> workers_;
    mutable std::mutex listeners_mu_;  // written on the control thread; tests read from theirs
    std::vector<std::shared_ptr<ListenerInfo>> listeners_;
    ChangeCounts changes_;  // guarded by listeners_mu_
    // Control-plane metrics in prometheus-cpp's registry (control thread);
    // data-plane counters live in each worker (metrics.cpp adds them up).
    std::shared_ptr<prometheus::Registry> metrics_ = std::make_shared<prometheus::Registry>();
    prometheus::Family<prometheus::Counter>* changes_family_ = nullptr;
    // The layers of the applied config (control thread): the file's document
    // and the API overlay on top of it.
    nlohmann::json file_layer_;
    nlohmann::json overlay_ = nlohmann::json::object();
    boost::asio::steady_timer watch_timer_{control_};
    std::string watched_content_;  // last content of --config seen by the watcher
    std::uint64_t watched_tls_ = 0;  // last certificate files' fingerprint the watcher acted on
    std::unique_ptr<admin::AdminServer> admin_;
    std::unique_ptr<admin::AdminServer> probes_;
    std::optional<boost::asio::signal_set> signals_;
    std::optional<boost::asio::signal_set> hup_;
    boost::asio::steady_timer drain_timer_{control_};
    std::atomic<bool> draining_{false};

    std::mutex done_mu_;
    std::condition_variable done_cv_;
    bool done_ = false;
    std::thread control_thread_;
};

}  // namespace sluice::proxy
