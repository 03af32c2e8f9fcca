// The whole proxy, and the composition root: it owns the workers, the
// listeners, the config-change pipeline, the admin views, the admin and probes
// servers, signals and the drain, and the control thread, where the admin API,
// config changes, signal handling and drain steps run; workers are only ever
// posted to. As the admin API's Backend it hands each request to the part that
// answers it.
#pragma once
#include "admin/admin_server.h"
#include "config/spec.h"
#include "proxy/server/admin_views.h"
#include "proxy/server/config_changes.h"
#include "proxy/server/health_checker.h"
#include "proxy/server/listener_set.h"
#include "proxy/server/server_options.h"
#include "proxy/server/worker.h"
#include "proxy/snapshot/snapshot_store.h"
#include "proxy/worker/access_log.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
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
    // Idle keep-alive connections to an endpoint in the pools, all workers.
    std::size_t upstream_idle(const std::string& endpoint);
    std::size_t live_connections() const;
    // Every worker's counters, summed (any thread, blocking).
    StatsTotals collect_stats() { return views_->collect_stats(); }
    // Tunnel counters by route, summed over workers (any thread, blocking).
    std::map<std::string, TunnelCounters> tunnel_stats();
    TunnelPaths tunnel_paths();
    std::size_t pipes_in_use();

    // Any thread.
    ChangeCounts change_counts() const { return changes_->counts(); }

    // admin::Backend (control thread).
    std::uint64_t config_version() const override;
    config::Config running_config() const override;
    nlohmann::json config_json() const override;
    admin::ChangeResult change_config(const nlohmann::json& doc, std::optional<std::uint64_t> if_match,
                                      std::string_view source, bool dry_run = false,
                                      bool whole_document = false) override {
        return changes_->change(doc, if_match, source, dry_run, whole_document);
    }
    nlohmann::json overlay_json() const override { return changes_->overlay(); }
    nlohmann::json config_sources() const override { return changes_->sources(); }
    admin::ChangeResult drop_overlay(std::optional<std::uint64_t> if_match) override {
        return changes_->drop_overlay(if_match);
    }
    nlohmann::json listeners_json() const override { return listeners_.to_json(); }
    nlohmann::json clusters_json() override { return views_->clusters_json(); }
    std::string metrics_text() override { return views_->metrics_text(admin_.get(), probes_.get()); }
    nlohmann::json connections_json(const admin::ConnectionsQuery& q) override { return views_->connections_json(q); }
    std::string not_ready() const override;  // draining, or a probes.ready_clusters cluster cannot serve
    std::string config_hash() const override { return store_.current()->hash; }

private:
    explicit Server(ServerOptions options);
    bool bind_admin(std::string& error);  // the admin and probes servers
    void on_hup();
    void begin_drain();
    void poll_drained(std::chrono::steady_clock::time_point give_up);
    void finish();

    ServerOptions options_;
    std::unique_ptr<AccessLog> access_log_;  // before workers_, which write to it
    EndpointRegistry registry_;  // control thread; before store_, which is built from it
    SnapshotStore store_;
    boost::asio::io_context control_{1};
    HealthChecker health_{control_};
    std::vector<std::unique_ptr<Worker>> workers_;
    ListenerSet listeners_{workers_, options_.print_addresses};
    // Control-plane metrics (control thread); data-plane counters live in
    // each worker (AdminViews adds them up).
    std::shared_ptr<prometheus::Registry> metrics_ = std::make_shared<prometheus::Registry>();
    std::unique_ptr<ConfigChanges> changes_;  // made in start(), after access_log_
    std::unique_ptr<AdminViews> views_;
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
