// Config changes on the running server (control thread): validate a whole new
// config, bind new listeners first, write the state file, publish the snapshot,
// then retire removed listeners. Anything that fails before the publish leaves
// everything as it was.
#include "config/duration.h"
#include "config/layers.h"
#include "config/load.h"
#include "config/serialize.h"
#include "config/state_file.h"
#include "proxy/log.h"
#include "proxy/server.h"

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include <malloc.h>

#include <fstream>
#include <sstream>

namespace sluice::proxy {

using admin::ChangeResult;
using json = nlohmann::json;

namespace {

std::string admin_text(const config::AdminSpec& a) { return a.address + ":" + std::to_string(a.port); }

json address_json(const std::string& address, std::uint16_t port) { return {{"address", address}, {"port", port}}; }

// Entries the API overlay adds or replaces.
std::size_t api_entries(const json& overlay) {
    std::size_t n = 0;
    for (const char* list : {"listeners", "clusters", "routes"})
        if (overlay.contains(list)) n += overlay[list].size();
    return n;
}

std::optional<std::string> read_whole_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

ChangeResult Server::change_config(const json& doc, std::optional<std::uint64_t> if_match, std::string_view source,
                                   bool dry_run, bool whole_document) {
    return run_change({&doc, nullptr, if_match, source, dry_run, whole_document});
}

ChangeResult Server::drop_overlay(std::optional<std::uint64_t> if_match) {
    const json file = file_layer_;  // the change replaces file_layer_ with an equal copy
    return run_change({&file, nullptr, if_match, "DELETE /config/overlay", false, true});
}

json Server::config_sources() const { return config::layer_sources(config_json(), overlay_); }

ChangeResult Server::run_change(const Change& c) {
    ChangeResult r = apply_change(c);
    // An applied change leaves the old snapshot and the parse's temporaries
    // free in glibc's arenas; without this a 10,000-route table's resident
    // memory climbs to about three times its size and stays there.
    if (r.outcome == ChangeResult::Outcome::applied) malloc_trim(0);
    return r;
}

ChangeResult Server::apply_change(const Change& c) {
    ChangeResult r;
    auto current = store_.current();
    r.version = current->version;
    const json& file = c.file ? *c.file : file_layer_;
    // The document the change asks for: the API's, or the new file with the overlay on top.
    json next_doc = c.file ? config::compose_layers(*c.file, overlay_) : *c.applied;
    auto reject = [&](ChangeResult::Outcome outcome) {
        r.outcome = outcome;
        if (c.file)  // a reload: say which layer each problem comes from
            for (auto& e : r.errors) e.message += " (this comes from " + config::layer_of(next_doc, overlay_, e.pointer) + ")";
        if (!c.dry_run) count_change("rejected");
        return r;
    };
    if (c.if_match && *c.if_match != current->version && !c.dry_run) {
        r.message = "the config is at version " + std::to_string(current->version) + ", not " +
                    std::to_string(*c.if_match) + " (If-Match): read it again with GET /config and retry";
        return reject(ChangeResult::Outcome::precondition_failed);
    }

    // admin and the probes address are start-up settings: a document that
    // leaves them out keeps them, and --admin wins over any document, as at
    // start-up. probes.ready_clusters is a rule, not a socket: it may change.
    if (next_doc.is_object()) {
        const auto& cur = current->config;
        if (!next_doc.contains("admin") || options_.admin_address || options_.admin_port)
            next_doc["admin"] = config::admin_json(cur.admin);
        if (!next_doc.contains("probes") && cur.probes) {
            next_doc["probes"] = address_json(cur.probes->address, cur.probes->port);
            next_doc["probes"]["metrics"] = cur.probes->metrics;
            next_doc["probes"]["ready_clusters"] = cur.probes->ready_clusters;
        }
    }
    auto loaded = config::load_document(next_doc);
    if (!loaded.config) {
        r.errors = std::move(loaded.errors);
        return reject(ChangeResult::Outcome::invalid);
    }
    // The overlay this change leaves: what the result changes relative to the file.
    json next_json = config::to_json(*loaded.config);
    json overlay = config::overlay_between(file, next_json);
    if (auto misplaced = config::order_problem(file, overlay, next_json)) {
        if (c.whole_document) {
            r.errors.push_back(std::move(*misplaced));
            return reject(ChangeResult::Outcome::invalid);
        }
        // An entry edited through its own endpoint takes its place in the file's order.
        next_json = config::compose_layers(file, overlay);
        loaded = config::load_document(next_json);
        if (!loaded.config) {
            r.errors = std::move(loaded.errors);
            return reject(ChangeResult::Outcome::invalid);
        }
    }
    config::Config& next = *loaded.config;
    if (next.admin != current->config.admin)
        r.errors.push_back({"/admin", "the admin settings are fixed at start-up (now " + admin_text(current->config.admin) +
                                          "); restart sluice to change them"});
    auto server_part = [](std::optional<config::ProbesSpec> p) {
        if (p) p->ready_clusters.clear();
        return p;
    };
    if (server_part(next.probes) != server_part(current->config.probes))
        r.errors.push_back({"/probes", "the probes address is fixed at start-up (now " +
                                           (current->config.probes
                                                ? current->config.probes->address + ":" +
                                                      std::to_string(current->config.probes->port)
                                                : std::string("none")) +
                                           "); restart sluice to change it"});
    if (!r.errors.empty()) return reject(ChangeResult::Outcome::invalid);
    // Certificates, keys and CAs load before anything changes (and on a dry
    // run): a bad one refuses the change.
    auto tls = load_tls(next, &current->tls, r.errors);
    if (!r.errors.empty()) {
        spdlog::warn("config change ({}) refused: {}: {}", c.source, r.errors[0].pointer, r.errors[0].message);
        return reject(ChangeResult::Outcome::invalid);
    }
    if (c.dry_run) {
        r.outcome = ChangeResult::Outcome::applied;
        return r;
    }
    // A renewal that rewrote certificate files under the same paths is a change.
    if (next == current->config && tls.fingerprint == current->tls.fingerprint) {
        // A no-op push from automation touches nothing, not even the version;
        // a file that now says what the overlay said takes those entries over.
        if (file != file_layer_ || overlay != overlay_) {
            std::string error;
            if (options_.state_dir &&
                !config::write_state_file(*options_.state_dir, current->version, next, overlay, file, error))
                spdlog::error("config layers changed ({}) but could not be saved: {}", c.source, error);
            file_layer_ = file;
            overlay_ = std::move(overlay);
        }
        count_change("unchanged");
        r.outcome = ChangeResult::Outcome::unchanged;
        return r;
    }

    std::vector<std::shared_ptr<ListenerInfo>> added;
    std::string error;
    if (!bind_new_listeners(next, added, error)) {
        r.message = error + "; nothing was changed";
        spdlog::warn("config change ({}) refused: {}", c.source, r.message);
        return reject(ChangeResult::Outcome::conflict);
    }
    AccessLog::Target log_target;
    if (!access_log_->prepare(next.access_log, log_target, error)) {
        r.errors.push_back({"/access_log/path", error});
        spdlog::warn("config change ({}) refused: {}", c.source, error);
        return reject(ChangeResult::Outcome::invalid);  // `added` closes its sockets
    }
    const std::uint64_t version = current->version + 1;
    if (options_.state_dir && !config::write_state_file(*options_.state_dir, version, next, overlay, file, error)) {
        r.message = "the new config could not be saved, so it was not applied: " + error;
        spdlog::error("config change ({}) refused: {}", c.source, r.message);
        return reject(ChangeResult::Outcome::failed);  // `added` closes its sockets
    }
    auto snapshot = build_snapshot(next, version, registry_, false, std::move(tls));
    store_.publish(snapshot);
    access_log_->apply(next.access_log, std::move(log_target));
    for (auto& w : workers_) w->refresh();
    registry_.retain(next);
    health_.update(*snapshot);
    swap_listeners(next, std::move(added));
    if (c.file) file_layer_ = file;  // `file` may be file_layer_ itself: copied before overlay_ moves
    overlay_ = std::move(overlay);
    count_change("applied");
    spdlog::info("config version {} applied ({}): {} listener(s), {} cluster(s), {} route(s), {} of these set through "
                 "the API",
                 version, c.source, next.listeners.size(), next.clusters.size(), next.routes.size(),
                 api_entries(overlay_));
    r.outcome = ChangeResult::Outcome::applied;
    r.version = version;
    return r;
}

bool Server::bind_new_listeners(const config::Config& next, std::vector<std::shared_ptr<ListenerInfo>>& added,
                                std::string& error) {
    std::lock_guard lock(listeners_mu_);
    for (const auto& spec : next.listeners) {
        bool kept = false;
        for (const auto& l : listeners_) kept = kept || l->spec.same_socket(spec);  // new certificates keep the socket
        if (kept) continue;
        auto info = bind_listener(spec, workers_.size(), error);
        if (!info) return false;
        added.push_back(std::move(info));
    }
    return true;
}

void Server::swap_listeners(const config::Config& next, std::vector<std::shared_ptr<ListenerInfo>> added) {
    std::vector<std::shared_ptr<ListenerInfo>> removed;
    {
        std::lock_guard lock(listeners_mu_);
        std::vector<std::shared_ptr<ListenerInfo>> list;
        for (const auto& spec : next.listeners) {
            for (const auto& l : listeners_)
                if (l->spec.same_socket(spec)) list.push_back(l);
            for (const auto& l : added)
                if (l->spec.same_socket(spec)) list.push_back(l);
        }
        for (const auto& l : listeners_)
            if (std::find(list.begin(), list.end(), l) == list.end()) removed.push_back(l);
        listeners_ = std::move(list);
    }
    for (auto& l : added) {
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            workers_[i]->adopt_listener(l, l->fds[i]);
            l->fds[i] = -1;
        }
        if (options_.print_addresses) print_line("listening name=" + l->spec.name + " address=" + l->bound_text());
    }
    for (auto& l : removed) {
        spdlog::info("listener \"{}\" on {} removed: no new connections; open ones get up to {} (timeouts.drain)",
                     l->spec.name, l->bound_text(), config::describe_duration(next.timeouts.drain));
        l->closing = true;
        for (auto& w : workers_) w->remove_listener(l, next.timeouts.drain);
    }
}

bool Server::reload_from_file(const char* why) {
    if (!options_.config_path) {
        spdlog::warn("{}: sluice was started without --config, so there is nothing to reload", why);
        return false;
    }
    const std::string& path = *options_.config_path;
    auto loaded = config::load_file(path);
    if (!loaded.config) {
        for (const auto& e : loaded.errors)
            spdlog::error("{}: {}: {}: {}", why, path, e.pointer.empty() ? "/" : e.pointer, e.message);
        spdlog::error("{}: {} has {} error(s); the running config (version {}) stays", why, path, loaded.errors.size(),
                      config_version());
        count_change("rejected");
        return false;
    }
    const json file = config::to_json(*loaded.config);
    const std::string source = std::string(why) + ": " + path;
    auto r = run_change({nullptr, &file, std::nullopt, source, false, false});
    switch (r.outcome) {
    case ChangeResult::Outcome::applied:
    case ChangeResult::Outcome::unchanged: return true;
    case ChangeResult::Outcome::invalid:
        for (const auto& e : r.errors)
            spdlog::error("{}: {}: {}: {}", why, path, e.pointer.empty() ? "/" : e.pointer, e.message);
        spdlog::error("{}: the file with the API overlay on top is invalid, so nothing changed: the running config "
                      "(version {}) stays; fix the file, or change the overlay (GET /config/overlay)",
                      why, r.version);
        return false;
    default:
        spdlog::error("{}: {}; the running config (version {}) stays", why, r.message, r.version);
        return false;
    }
}

void Server::watch_config() {
    watch_timer_.expires_after(options_.watch_interval);
    watch_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec) return;
        // Reading the file follows symlinks, so a Kubernetes ConfigMap update
        // (an atomic swap of the ..data link) shows up as new content.
        auto content = read_whole_file(*options_.config_path);
        if (content && *content != watched_content_) {
            watched_content_ = *content;
            reload_from_file("--watch: the config file changed");
        } else if (auto fp = tls_files_fingerprint(store_.current()->config);
                   fp != store_.current()->tls.fingerprint && fp != watched_tls_) {
            watched_tls_ = fp;  // tried once per new content: a bad renewal is not retried every poll
            reload_from_file("--watch: a certificate file changed");
        }
        watch_config();
    });
}

config::Config Server::running_config() const { return store_.current()->config; }

void Server::count_change(const char* result) {
    {
        std::lock_guard lock(listeners_mu_);
        if (std::string_view(result) == "applied") ++changes_.applied;
        else if (std::string_view(result) == "rejected") ++changes_.rejected;
        else ++changes_.unchanged;
    }
    changes_family_->Add({{"result", result}}).Increment();
}

ChangeCounts Server::change_counts() const {
    std::lock_guard lock(listeners_mu_);
    return changes_;
}

json Server::clusters_json() {
    auto snap = store_.current();
    std::unordered_map<std::string, WorkerContext::EndpointLoad> loads;
    for (auto& w : workers_)
        for (const auto& [key, load] : w->call([&] { return w->context().endpoint_loads(); })) {
            loads[key].active_requests += load.active_requests;
            loads[key].active_tunnels += load.active_tunnels;
        }
    json clusters = json::array();
    const auto now = steady_now_ns();
    for (const auto& c : snap->clusters) {
        json endpoints = json::array();
        for (const auto& e : c.endpoints) {
            auto it = loads.find(e.pool_key);
            endpoints.push_back({{"address", e.key},
                                 {"id", e.id},
                                 {"healthy", e.state->healthy.load(std::memory_order_relaxed)},
                                 {"ejected", e.state->ejected(now)},
                                 {"ejections", e.state->ejections.load(std::memory_order_relaxed)},
                                 {"active_requests", it == loads.end() ? 0 : it->second.active_requests},
                                 {"active_tunnels", it == loads.end() ? 0 : it->second.active_tunnels}});
        }
        clusters.push_back({{"name", c.name}, {"lb_policy", config::lb_policy_name(c.policy)}, {"endpoints", endpoints}});
    }
    return {{"clusters", clusters}};
}

}  // namespace sluice::proxy
