// Reads a decoded config document (JSON, or YAML turned into JSON) into the model.
#pragma once
#include "config/spec.h"

#include <nlohmann/json_fwd.hpp>

namespace sluice::config {

// Structural rules: types, known fields, required fields, formats. Every problem
// is appended to `errors` with its JSON pointer; the returned Config means
// something only when no error was added. Cross-field rules live in validate.h.
Config parse_document(const nlohmann::json& doc, ConfigErrors& errors);

// A short description of a JSON value for error messages: `the string "x"`.
std::string describe_json(const nlohmann::json& value);

}  // namespace sluice::config
