#include "config/duration.h"

#include <charconv>

namespace sluice::config {
namespace {

// Splits "123unit" into its number and unit; at most 9 digits so no overflow.
bool split_number(std::string_view text, std::uint64_t& number, std::string_view& unit) {
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
    if (digits == 0 || digits > 9) return false;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + digits, number);
    if (ec != std::errc{}) return false;
    unit = text.substr(digits);
    return true;
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view text) {
    std::uint64_t n = 0;
    std::string_view unit;
    if (!split_number(text, n, unit)) return std::nullopt;
    auto count = static_cast<std::int64_t>(n);
    if (unit == "ms") return Duration(count);
    if (unit == "s") return std::chrono::seconds(count);
    if (unit == "m") return std::chrono::minutes(count);
    if (unit == "h") return std::chrono::hours(count);
    return std::nullopt;
}

std::string format_duration(Duration d) {
    auto ms = d.count();
    if (ms == 0) return "0s";
    if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
    if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
}

std::string describe_duration(Duration d) {
    return d.count() == 0 ? "no limit" : format_duration(d);
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
    std::uint64_t n = 0;
    std::string_view unit;
    if (!split_number(text, n, unit) || n == 0) return std::nullopt;
    if (unit == "B") return n;
    if (unit == "KiB") return n * 1024;
    if (unit == "MiB") return n * 1024 * 1024;
    return std::nullopt;
}

std::string format_size(std::uint64_t bytes) {
    if (bytes % (1024 * 1024) == 0) return std::to_string(bytes / (1024 * 1024)) + "MiB";
    if (bytes % 1024 == 0) return std::to_string(bytes / 1024) + "KiB";
    return std::to_string(bytes) + "B";
}

}  // namespace sluice::config
