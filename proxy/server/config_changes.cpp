#include "proxy/server/config_changes.h"

#include "config/duration.h"
#include "config/layers.h"
#include "config/load.h"
#include "config/serialize.h"
#include "config/state_file.h"
#include "proxy/net/log.h"

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

ConfigChanges::ConfigChanges(Parts parts)
    : p_(parts),
      file_layer_(p_.options.file_layer ? *p_.options.file_layer : config::to_json(p_.options.config)),
      watch_timer_(p_.control),
      family_(&prometheus::BuildCounter()
                   .Name("sluice_config_changes_total")
                   .Help("Config changes by result: applied, rejected (invalid, refused or failed), unchanged")
                   .Register(p_.metrics)) {
    if (p_.options.overlay) overlay_ = *p_.options.overlay;
    for (const char* r : {"applied", "rejected", "unchanged"}) family_->Add({{"result", r}});
}

bool ConfigChanges::save_initial_state(std::string& error) {
    if (!p_.options.state_dir) return true;
    return config::write_state_file(*p_.options.state_dir, p_.options.initial_version, p_.options.config, overlay_,
                                    file_layer_, error);
}

ChangeResult ConfigChanges::change(const json& doc, std::optional<std::uint64_t> if_match, std::string_view source,
                                   bool dry_run, bool whole_document) {
    return run({&doc, nullptr, if_match, source, dry_run, whole_document});
}

ChangeResult ConfigChanges::drop_overlay(std::optional<std::uint64_t> if_match) {
    const json file = file_layer_;  // the change replaces file_layer_ with an equal copy
    return run({&file, nullptr, if_match, "DELETE /config/overlay", false, true});
}

json ConfigChanges::sources() const {
    return config::layer_sources(config::to_json(p_.store.current()->config), overlay_);
}

ChangeResult ConfigChanges::run(const Change& c) {
    ChangeResult r = apply(c);
    // An applied change leaves the old snapshot and the parse's temporaries
    // free in glibc's arenas; without this a 10,000-route table's resident
    // memory climbs to about three times its size and stays there.
    if (r.outcome == ChangeResult::Outcome::applied) malloc_trim(0);
    return r;
}

ChangeResult ConfigChanges::apply(const Change& c) {
    ChangeResult r;
    auto current = p_.store.current();
    r.version = current->version;
    const json& file = c.file ? *c.file : file_layer_;
    // The document the change asks for: the API's, or the new file with the overlay on top.
    json next_doc = c.file ? config::compose_layers(*c.file, overlay_) : *c.applied;
    auto reject = [&](ChangeResult::Outcome outcome) {
        r.outcome = outcome;
        if (c.file)  // a reload: say which layer each problem comes from
            for (auto& e : r.errors) e.message += " (this comes from " + config::layer_of(next_doc, overlay_, e.pointer) + ")";
        if (!c.dry_run) count("rejected");
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
        if (!next_doc.contains("admin") || p_.options.admin_address || p_.options.admin_port)
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
            if (p_.options.state_dir &&
                !config::write_state_file(*p_.options.state_dir, current->version, next, overlay, file, error))
                spdlog::error("config layers changed ({}) but could not be saved: {}", c.source, error);
            file_layer_ = file;
            overlay_ = std::move(overlay);
        }
        count("unchanged");
        r.outcome = ChangeResult::Outcome::unchanged;
        return r;
    }

    ListenerSet::List added;
    std::string error;
    if (!p_.listeners.bind_new(next, added, error)) {
        r.message = error + "; nothing was changed";
        spdlog::warn("config change ({}) refused: {}", c.source, r.message);
        return reject(ChangeResult::Outcome::conflict);
    }
    AccessLog::Target log_target;
    if (!p_.access_log.prepare(next.access_log, log_target, error)) {
        r.errors.push_back({"/access_log/path", error});
        spdlog::warn("config change ({}) refused: {}", c.source, error);
        return reject(ChangeResult::Outcome::invalid);  // `added` closes its sockets
    }
    const std::uint64_t version = current->version + 1;
    if (p_.options.state_dir && !config::write_state_file(*p_.options.state_dir, version, next, overlay, file, error)) {
        r.message = "the new config could not be saved, so it was not applied: " + error;
        spdlog::error("config change ({}) refused: {}", c.source, r.message);
        return reject(ChangeResult::Outcome::failed);  // `added` closes its sockets
    }
    auto snapshot = build_snapshot(next, version, p_.registry, false, std::move(tls));
    p_.store.publish(snapshot);
    p_.access_log.apply(next.access_log, std::move(log_target));
    for (auto& w : p_.workers) w->refresh();
    p_.registry.retain(next);
    p_.health.update(*snapshot);
    p_.listeners.swap(next, std::move(added));
    if (c.file) file_layer_ = file;  // `file` may be file_layer_ itself: copied before overlay_ moves
    overlay_ = std::move(overlay);
    count("applied");
    spdlog::info("config version {} applied ({}): {} listener(s), {} cluster(s), {} route(s), {} of these set through "
                 "the API",
                 version, c.source, next.listeners.size(), next.clusters.size(), next.routes.size(),
                 api_entries(overlay_));
    r.outcome = ChangeResult::Outcome::applied;
    r.version = version;
    return r;
}

bool ConfigChanges::reload_from_file(const char* why) {
    if (!p_.options.config_path) {
        spdlog::warn("{}: sluice was started without --config, so there is nothing to reload", why);
        return false;
    }
    const std::string& path = *p_.options.config_path;
    auto loaded = config::load_file(path);
    if (!loaded.config) {
        for (const auto& e : loaded.errors)
            spdlog::error("{}: {}: {}: {}", why, path, e.pointer.empty() ? "/" : e.pointer, e.message);
        spdlog::error("{}: {} has {} error(s); the running config (version {}) stays", why, path, loaded.errors.size(),
                      p_.store.current()->version);
        count("rejected");
        return false;
    }
    const json file = config::to_json(*loaded.config);
    const std::string source = std::string(why) + ": " + path;
    auto r = run({nullptr, &file, std::nullopt, source, false, false});
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

void ConfigChanges::start_watch() {
    if (!p_.options.watch || !p_.options.config_path) return;
    watched_content_ = read_whole_file(*p_.options.config_path).value_or("");
    watch();
}

void ConfigChanges::stop() { watch_timer_.cancel(); }

void ConfigChanges::watch() {
    watch_timer_.expires_after(p_.options.watch_interval);
    watch_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec) return;
        // Reading the file follows symlinks, so a Kubernetes ConfigMap update
        // (an atomic swap of the ..data link) shows up as new content.
        auto content = read_whole_file(*p_.options.config_path);
        if (content && *content != watched_content_) {
            watched_content_ = *content;
            reload_from_file("--watch: the config file changed");
        } else if (auto fp = tls_files_fingerprint(p_.store.current()->config);
                   fp != p_.store.current()->tls.fingerprint && fp != watched_tls_) {
            watched_tls_ = fp;  // tried once per new content: a bad renewal is not retried every poll
            reload_from_file("--watch: a certificate file changed");
        }
        watch();
    });
}

void ConfigChanges::count(const char* result) {
    {
        std::lock_guard lock(counts_mu_);
        if (std::string_view(result) == "applied") ++counts_.applied;
        else if (std::string_view(result) == "rejected") ++counts_.rejected;
        else ++counts_.unchanged;
    }
    family_->Add({{"result", result}}).Increment();
}

ChangeCounts ConfigChanges::counts() const {
    std::lock_guard lock(counts_mu_);
    return counts_;
}

}  // namespace sluice::proxy
