// String formats shared by the C++ parser and schemas/config.schema.json.
// The schema uses the very same regular expressions (a unit test compares them),
// so `sluice validate` and a JSON Schema validator agree on every format.
#pragma once
#include <string_view>

namespace sluice::config {

enum class Pattern {
    name, duration, size, ip_address, endpoint, host, method, header_name, path, positive_duration, cookie_name, file_path
};

// The ECMAScript regular expression for a pattern, as written in the schema.
const char* pattern_text(Pattern p);
// True when the whole of `s` matches.
bool matches(Pattern p, std::string_view s);

}  // namespace sluice::config
