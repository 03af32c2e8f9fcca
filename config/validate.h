// Cross-field rules that a JSON Schema cannot express: unique names, references
// between sections, address clashes, addresses that do not parse.
#pragma once
#include "config/spec.h"

namespace sluice::config {

// Appends every problem found in an already parsed config.
void validate_config(const Config& cfg, ConfigErrors& errors);

}  // namespace sluice::config
