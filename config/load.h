// From bytes to a validated Config: JSON or YAML decoding, parsing, validation.
#pragma once
#include "config/spec.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace sluice::config {

enum class Format { json, yaml };

struct LoadResult {
    std::optional<Config> config;  // set only when `errors` is empty
    ConfigErrors errors;
};

// Parses and validates a decoded document: every error, or a Config.
LoadResult load_document(const nlohmann::json& doc);
LoadResult load_text(std::string_view text, Format format);
// Picks the format by extension (.json, .yaml, .yml).
LoadResult load_file(const std::string& path);

}  // namespace sluice::config
