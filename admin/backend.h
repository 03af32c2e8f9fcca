// What the admin API reads from and asks of the running proxy. Every call is
// made on the control thread, one at a time, so changes never interleave.
#pragma once
#include "admin/connections_query.h"
#include "config/spec.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::admin {

struct ChangeResult {
    enum class Outcome {
        applied,              // a new version is live
        unchanged,            // identical to the running config: nothing touched
        invalid,              // `errors` says why; nothing changed
        precondition_failed,  // If-Match named an older version
        conflict,             // a new listener cannot bind; nothing changed
        failed,               // the state file could not be written; nothing changed
    };
    Outcome outcome = Outcome::invalid;
    std::uint64_t version = 0;  // the version in force afterwards
    config::ConfigErrors errors;
    std::string message;
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::uint64_t config_version() const = 0;
    virtual config::Config running_config() const = 0;
    virtual nlohmann::json config_json() const = 0;  // the applied config document
    // Validates a whole new applied config and, unless `dry_run`, applies it;
    // the API overlay becomes its difference from the file (config/layers.h).
    // `whole_document` (PUT /config): entries the file's order cannot hold are
    // refused; otherwise (edits of one entry) they take their place in it.
    virtual ChangeResult change_config(const nlohmann::json& doc, std::optional<std::uint64_t> if_match,
                                       std::string_view source, bool dry_run = false, bool whole_document = false) = 0;
    virtual nlohmann::json overlay_json() const = 0;    // GET /config/overlay
    virtual nlohmann::json config_sources() const = 0;  // {"routes/hi": "api", ...}
    // DELETE /config/overlay: the applied config becomes the file's.
    virtual ChangeResult drop_overlay(std::optional<std::uint64_t> if_match) = 0;
    virtual nlohmann::json listeners_json() const = 0;
    virtual nlohmann::json clusters_json() = 0;
    virtual std::string metrics_text() = 0;  // Prometheus text format
    virtual nlohmann::json connections_json(const ConnectionsQuery& q) = 0;
    // Empty when sluice can serve; otherwise what is not met yet (GET /ready's 503 body).
    virtual std::string not_ready() const = 0;
    // "sha256:..." of the config in force (config::config_hash).
    virtual std::string config_hash() const = 0;
    virtual void drain() = 0;
};

}  // namespace sluice::admin
