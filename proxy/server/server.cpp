#include "proxy/server/server.h"

#include "config/duration.h"
#include "config/serialize.h"
#include "proxy/net/log.h"
#include "proxy/server/cpu_budget.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include <csignal>

namespace sluice::proxy {

namespace asio = boost::asio;

Server::Server(ServerOptions options)
    : options_(std::move(options)),
      store_(build_snapshot(options_.config, options_.initial_version, registry_, options_.builtin_default)) {}

std::unique_ptr<Server> Server::start(ServerOptions options, std::string& error) {
    if (options.admin_address) options.config.admin.address = *options.admin_address;
    if (options.admin_port) options.config.admin.port = *options.admin_port;
    std::size_t n = options.workers;
    if (n == 0) {
        auto budget = usable_cpus();
        n = budget.cpus;
        spdlog::info("workers: {}, from {}", n, budget.reason);
    } else {
        spdlog::info("workers: {}, as asked (--workers)", n);
    }
    // Tunnels splice into sockets, and splice(2) has no MSG_NOSIGNAL: a peer that
    // left must give EPIPE, not kill the process.
    std::signal(SIGPIPE, SIG_IGN);
    // spdlog builds its registry on first use: do it here, before any worker
    // thread can race another to it.
    spdlog::default_logger_raw();
    std::unique_ptr<Server> s(new Server(std::move(options)));
    {
        // Certificates are checked before anything binds.
        config::ConfigErrors tls_errors;
        auto tls = load_tls(s->options_.config, nullptr, tls_errors);
        if (!tls_errors.empty()) {
            error = tls_errors[0].pointer + ": " + tls_errors[0].message;
            return nullptr;
        }
        s->store_.publish(build_snapshot(s->options_.config, s->options_.initial_version, s->registry_,
                                         s->options_.builtin_default, std::move(tls)));
    }
    s->access_log_ = std::make_unique<AccessLog>(n);
    if (!s->access_log_->configure(s->options_.config.access_log, error)) return nullptr;
    for (std::size_t i = 0; i < n; ++i)
        s->workers_.push_back(std::make_unique<Worker>(i, s->store_, *s->access_log_, s->options_.splice));
    s->changes_ = std::make_unique<ConfigChanges>(ConfigChanges::Parts{
        s->options_, s->store_, s->registry_, s->health_, *s->access_log_, s->workers_, s->listeners_, s->control_,
        *s->metrics_});
    s->views_ = std::make_unique<AdminViews>(s->workers_, s->store_, s->listeners_, *s->access_log_, *s->metrics_);
    // Nothing runs yet: on failure every descriptor closes with s.
    if (!s->listeners_.bind_all(s->store_.current()->config, error) || !s->bind_admin(error) ||
        !s->changes_->save_initial_state(error))
        return nullptr;

    for (auto& w : s->workers_) w->start();
    s->listeners_.hand_to_workers();
    if (s->options_.handle_signals) {
        s->signals_.emplace(s->control_, SIGINT, SIGTERM);
        s->signals_->async_wait([srv = s.get()](const boost::system::error_code& ec, int sig) {
            if (ec) return;
            spdlog::info("received {}: draining (send it again to stop at once)", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            srv->begin_drain();
            srv->signals_->async_wait([srv](const boost::system::error_code& ec2, int) {
                if (ec2) return;
                spdlog::warn("second signal: stopping now");
                srv->finish();
            });
        });
    }
    if (s->options_.handle_signals) {
        s->hup_.emplace(s->control_, SIGHUP);
        s->on_hup();
    }
    s->changes_->start_watch();
    s->listeners_.print_all();
    if (s->options_.print_addresses) {
        print_line("admin listening address=" + endpoint_text(s->admin_->local_endpoint()));
        if (s->probes_) print_line("probes listening address=" + endpoint_text(s->probes_->local_endpoint()));
    }
    asio::post(s->control_, [srv = s.get()] { srv->health_.update(*srv->store_.current()); });
    s->control_thread_ = std::thread([srv = s.get()] {
        auto guard = asio::make_work_guard(srv->control_);
        srv->control_.run();
    });
    return s;
}

bool Server::bind_admin(std::string& error) {
    const auto& cfg = store_.current()->config;
    admin_ = std::make_unique<admin::AdminServer>(control_, *this, admin::AdminServer::Mode::admin);
    if (!admin_->listen(cfg.admin.address, cfg.admin.port, error)) return false;
    if (cfg.probes) {
        probes_ = std::make_unique<admin::AdminServer>(control_, *this, admin::AdminServer::Mode::probes,
                                                       cfg.probes->metrics);
        if (!probes_->listen(cfg.probes->address, cfg.probes->port, error)) return false;
    }
    return true;
}

Server::~Server() {
    stop();
    if (control_thread_.joinable()) control_thread_.join();
    for (auto& w : workers_) w->stop();
}

int Server::wait() {
    std::unique_lock lock(done_mu_);
    done_cv_.wait(lock, [this] { return done_; });
    return 0;
}

void Server::drain() {
    asio::post(control_, [this] { begin_drain(); });
}

void Server::stop() {
    asio::post(control_, [this] { finish(); });
}

void Server::on_hup() {
    hup_->async_wait([this](const boost::system::error_code& ec, int) {
        if (ec) return;
        changes_->reload_from_file("SIGHUP");
        on_hup();
    });
}

void Server::begin_drain() {
    if (draining_.exchange(true)) return;
    const auto t = store_.current()->config.timeouts;
    // drain_delay 0s means "no delay" here, not "no limit" as 0s does for the other timeouts.
    if (t.drain_delay.count() == 0) spdlog::info("drain: /ready answers 503 now; listeners close now (timeouts.drain_delay 0s)");
    else
        spdlog::info("drain: /ready answers 503 now; listeners keep accepting for {} (timeouts.drain_delay)",
                     config::describe_duration(t.drain_delay));
    for (auto& w : workers_) w->announce_drain();
    drain_timer_.expires_after(t.drain_delay);
    drain_timer_.async_wait([this, t](const boost::system::error_code& ec) {
        if (ec) return;
        spdlog::info("drain: listeners closed; open exchanges get up to {} (timeouts.drain)",
                     config::describe_duration(t.drain));
        for (auto& w : workers_) w->drain(t.drain);
        // A little past the window, in case a close is still on its way.
        poll_drained(std::chrono::steady_clock::now() + t.drain + std::chrono::seconds(2));  // + the tunnels' goodbye
    });
}

void Server::poll_drained(std::chrono::steady_clock::time_point give_up) {
    if (live_connections() == 0 || std::chrono::steady_clock::now() >= give_up) {
        spdlog::info("drain: done, {} connection(s) left", live_connections());
        finish();
        return;
    }
    drain_timer_.expires_after(std::chrono::milliseconds(20));
    drain_timer_.async_wait([this, give_up](const boost::system::error_code& ec) {
        if (!ec) poll_drained(give_up);
    });
}

void Server::finish() {
    {
        std::lock_guard lock(done_mu_);
        if (done_) return;
    }
    for (auto& w : workers_) w->stop();
    health_.stop();
    if (admin_) admin_->stop();
    if (probes_) probes_->stop();
    if (signals_) signals_->cancel();
    if (hup_) hup_->cancel();
    if (changes_) changes_->stop();
    drain_timer_.cancel();
    control_.stop();
    std::lock_guard lock(done_mu_);
    done_ = true;
    done_cv_.notify_all();
}

std::uint16_t Server::listener_port(const std::string& name) const { return listeners_.port(name); }

asio::ip::tcp::endpoint Server::admin_endpoint() const { return admin_->local_endpoint(); }

std::optional<asio::ip::tcp::endpoint> Server::probes_endpoint() const {
    if (!probes_) return std::nullopt;
    return probes_->local_endpoint();
}

std::uint64_t Server::upstream_connects(const std::string& endpoint) {
    std::uint64_t total = 0;
    for (auto& w : workers_) total += w->call([&] { return w->context().upstream_connects(endpoint); });
    return total;
}

std::size_t Server::upstream_idle(const std::string& endpoint) {
    std::size_t total = 0;
    for (auto& w : workers_) total += w->call([&] { return w->context().upstream_idle(endpoint); });
    return total;
}

std::map<std::string, TunnelCounters> Server::tunnel_stats() {
    std::map<std::string, TunnelCounters> out;
    for (const auto& [route, r] : collect_stats().routes)
        if (!route.empty()) out.emplace(route, r.tunnels);
    return out;
}

TunnelPaths Server::tunnel_paths() { return collect_stats().paths; }

std::size_t Server::pipes_in_use() {
    std::size_t n = 0;
    for (auto& w : workers_) n += w->call([&] { return w->context().pipes().in_use(); });
    return n;
}

std::size_t Server::live_connections() const {
    std::size_t n = 0;
    for (const auto& w : workers_) n += w->live_connections();
    return n;
}

std::string Server::not_ready() const {
    if (draining_.load()) return "draining: sluice is shutting down (SIGTERM or POST /drain) and takes no new clients";
    // Listeners are bound and the config applied before the admin and probes
    // servers answer at all (start() runs the control thread last).
    auto snap = store_.current();
    if (!snap->config.probes) return {};
    const auto now = coarse_now_ns();
    for (const auto& name : snap->config.probes->ready_clusters) {
        for (std::size_t i = 0; i < snap->clusters.size(); ++i) {
            const auto& c = snap->clusters[i];
            if (c.name != name) continue;
            const auto& check = snap->config.clusters[i].health_check;
            std::size_t usable = 0;
            for (const auto& e : c.endpoints)
                if (e.state->available(now) && (!check || e.state->passed_check.load(std::memory_order_relaxed))) ++usable;
            if (usable > 0) break;
            if (check)
                return "cluster \"" + name + "\" (probes.ready_clusters) has no healthy endpoint yet: none of its " +
                       std::to_string(c.endpoints.size()) + " endpoint(s) passes GET " + check->path + " now";
            return "cluster \"" + name + "\" (probes.ready_clusters) has no endpoint to send to: all " +
                   std::to_string(c.endpoints.size()) + " are ejected after failures";
        }
    }
    return {};
}

std::uint64_t Server::config_version() const { return store_.current()->version; }

nlohmann::json Server::config_json() const { return config::to_json(store_.current()->config); }

config::Config Server::running_config() const { return store_.current()->config; }

}  // namespace sluice::proxy
