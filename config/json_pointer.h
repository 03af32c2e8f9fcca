// JSON pointers (RFC 6901) for error locations.
#pragma once
#include <string>
#include <string_view>

namespace sluice::config {

// Appends one reference token, escaping "~" and "/".
std::string pointer_join(std::string_view base, std::string_view token);
std::string pointer_join(std::string_view base, std::size_t index);

}  // namespace sluice::config
