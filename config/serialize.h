// The config model back to a JSON document: every field written, defaults
// included, durations and sizes in their shortest exact spelling. Reading the
// result back gives an equal Config.
#pragma once
#include "config/spec.h"

#include <nlohmann/json.hpp>

namespace sluice::config {

nlohmann::json to_json(const Config& cfg);
// "sha256:<hex>" of to_json(cfg) written compactly (keys sorted): the same on
// every process that applied an equal config, whatever the layout of its file.
std::string config_hash(const Config& cfg);
// The admin section alone: {address, port[, token_file]}.
nlohmann::json admin_json(const AdminSpec& a);

}  // namespace sluice::config
