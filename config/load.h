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

// Decodes YAML into the JSON data model (YAML 1.2 core scalars: true/false,
// null/~, decimal numbers; quoted scalars always stay strings).
nlohmann::json yaml_to_json(std::string_view text);

// Parses and validates a decoded document: every error, or a Config.
LoadResult load_document(const nlohmann::json& doc);
LoadResult load_text(std::string_view text, Format format);
// Picks the format by extension (.json, .yaml, .yml).
LoadResult load_file(const std::string& path);

}  // namespace sluice::config
