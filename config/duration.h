// Durations ("250ms", "5s", "2m", "1h") and sizes ("64KiB") as written in configs.
#pragma once
#include "config/spec.h"
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::config {

// Parses "<digits><unit>" with unit ms, s, m or h (at most 9 digits).
std::optional<Duration> parse_duration(std::string_view text);
// The shortest exact spelling: 90000ms -> "90s", 3600000ms -> "1h", 0 -> "0s".
std::string format_duration(Duration d);
// A human form for messages: "5m", "250ms", "no limit".
std::string describe_duration(Duration d);

// Parses "<digits><unit>" with unit B, KiB or MiB; zero is refused.
std::optional<std::uint64_t> parse_size(std::string_view text);
std::string format_size(std::uint64_t bytes);

}  // namespace sluice::config
