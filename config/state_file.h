// The durable copy of the applied config: DIR/config.json holding
// {"version": N, "config": {...}, "overlay": {...}, "file": {...}}: the applied
// config, the API overlay (config/layers.h) and the file layer it was composed
// from (what --resume serves if the overlay no longer fits a changed file). Written atomically: a temp file in the same
// directory, fsync, rename over the old one, fsync of the directory. A crash at
// any instant leaves the old file or the new one, never a torn one.
#pragma once
#include "config/spec.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace sluice::config {

struct StateFile {
    std::uint64_t version = 0;
    Config config;
    std::optional<nlohmann::json> overlay;  // absent in files written before layers existed
    std::optional<nlohmann::json> file;     // the file layer (normalized), when stored
};

// Writes `cfg` as version `version` with its layers; false with `error` set on failure.
bool write_state_file(const std::string& dir, std::uint64_t version, const Config& cfg, const nlohmann::json& overlay,
                      const nlohmann::json& file_layer, std::string& error);

// Reads DIR/config.json. nullopt with `error` empty when there is no file;
// nullopt with `error` set when it exists but cannot be used.
std::optional<StateFile> read_state_file(const std::string& dir, std::string& error);

std::string state_file_path(const std::string& dir);

// --resume: the stored API overlay on top of the file read again.
struct Resumed {
    Config config;  // the config to start with
    nlohmann::json file_layer;
    nlohmann::json overlay;
    std::uint64_t version = 0;  // the stored one, plus one when the result differs from the stored config
    // Why the overlay does not fit the file any more (each message names its
    // layer): then the stored config and layers serve, as a refused reload does.
    ConfigErrors refused;
};
Resumed resume_layers(const StateFile& state, const Config& file);

}  // namespace sluice::config
