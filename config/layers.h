// The two config layers: the file (--config, or the built-in default) and the
// API overlay on top of it (docs/config.md, "Where the config comes from").
// Both are JSON documents in the form config::to_json writes, so entries
// compare by value and keep the shape they were given in.
//
// The overlay document (GET /config/overlay, the state file):
//   {"listeners": [...], "clusters": [...], "routes": [...],  // added, or replacing the file's entry of that name
//    "deleted": {"listeners": [names], "clusters": [...], "routes": [...]},
//    "timeouts": {field: value}, "limits": {...}, "paths": {...},
//    "access_log": {...}, "probes": {...}}                     // fields that replace the file's
// Parts with nothing in them are left out: no API changes is {}.
#pragma once
#include "config/spec.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace sluice::config {

// The applied document: the file with the overlay on top. Named entries keep
// the file's order (replacements in place), then the overlay's additions in
// the order they were added. The overlay's shape must have been checked.
nlohmann::json compose_layers(const nlohmann::json& file, const nlohmann::json& overlay);

// The overlay that turns `file` into `applied` (both valid, normalized
// documents): entries and fields equal to the file's are left out. An overlay
// cannot move the file's entries: see order_problem.
nlohmann::json overlay_between(const nlohmann::json& file, const nlohmann::json& applied);

// Where `applied` orders its entries otherwise than file + overlay would: the
// first entry out of place, or nullopt.
std::optional<ConfigError> order_problem(const nlohmann::json& file, const nlohmann::json& overlay,
                                         const nlohmann::json& applied);

// {"listeners/public": "file", "routes/hi": "api", ...} for every named entry.
nlohmann::json layer_sources(const nlohmann::json& applied, const nlohmann::json& overlay);

// Which layer a pointer into the applied document comes from, in words for a
// log line: "the API overlay: route \"hi\"" or "the config file".
std::string layer_of(const nlohmann::json& applied, const nlohmann::json& overlay, std::string_view pointer);

// Checks that a stored overlay has the shape above (entries themselves are
// checked when the composed document is loaded).
bool check_overlay_shape(const nlohmann::json& overlay, ConfigErrors& errors);

}  // namespace sluice::config
