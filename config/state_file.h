// The durable copy of the applied config: DIR/config.json holding
// {"version": N, "config": {...}}. Written atomically: a temp file in the same
// directory, fsync, rename over the old one, fsync of the directory. A crash at
// any instant leaves the old file or the new one, never a torn one.
#pragma once
#include "config/spec.h"

#include <cstdint>
#include <optional>
#include <string>

namespace sluice::config {

struct StateFile {
    std::uint64_t version = 0;
    Config config;
};

// Writes `cfg` as version `version`; false with `error` set on failure.
bool write_state_file(const std::string& dir, std::uint64_t version, const Config& cfg, std::string& error);

// Reads DIR/config.json. nullopt with `error` empty when there is no file;
// nullopt with `error` set when it exists but cannot be used.
std::optional<StateFile> read_state_file(const std::string& dir, std::string& error);

std::string state_file_path(const std::string& dir);

}  // namespace sluice::config
