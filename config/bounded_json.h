// Reading JSON and YAML documents that may be hostile (admin API bodies,
// config files): nesting depth, string length and, for YAML aliases, the
// number of values are bounded before anything walks the document.
//
// Everything past these checks may recurse over a document (nlohmann::json's
// copy and dump do): a depth of 64 keeps that far from any stack limit.
#pragma once
#include "config/spec.h"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <optional>
#include <string_view>

namespace sluice::config {

inline constexpr std::size_t kMaxDocumentDepth = 64;     // arrays and objects inside each other
inline constexpr std::size_t kMaxStringBytes = 4096;     // any string value or object key
inline constexpr std::size_t kMaxYamlValues = 4000000;   // values after YAML aliases are expanded

// Whether `s` is well-formed UTF-8 (JSON text must be; YAML-cpp does not check).
bool valid_utf8(std::string_view s);

// Parses JSON text. On failure returns nullopt and sets `error`: the pointer
// of the offending value ("" for a syntax error) and a sentence.
std::optional<nlohmann::json> parse_json_bounded(std::string_view text, ConfigError& error);

// Decodes YAML into the JSON data model (YAML 1.2 core scalars: true/false,
// null/~, decimal numbers; quoted scalars always stay strings), with the same
// bounds. Throws YAML::Exception for YAML syntax errors.
std::optional<nlohmann::json> parse_yaml_bounded(std::string_view text, ConfigError& error);

}  // namespace sluice::config
