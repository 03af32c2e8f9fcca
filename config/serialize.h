// The config model back to a JSON document: every field written, defaults
// included, durations and sizes in their shortest exact spelling. Reading the
// result back gives an equal Config.
#pragma once
#include "config/spec.h"

#include <nlohmann/json.hpp>

namespace sluice::config {

nlohmann::json to_json(const Config& cfg);
// The admin section alone: {address, port[, token_file]}.
nlohmann::json admin_json(const AdminSpec& a);

}  // namespace sluice::config
