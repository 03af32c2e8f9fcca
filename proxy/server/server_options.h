// How the binary (main.cpp) or a test starts a Server.
#pragma once
#include "config/spec.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

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

}  // namespace sluice::proxy
