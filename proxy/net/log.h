// Logging: spdlog to standard error; start-up address lines to standard output.
#pragma once
#include <exception>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::proxy {

enum class LogFormat { text, json };
// "text" or "json" (--log-format); nullopt for anything else.
std::optional<LogFormat> parse_log_format(std::string_view text);

// Sets up the standard-error logger. `level` is trace, debug, info, warn, error
// or off; returns false for an unknown level. json: one object per line with
// time (UTC, RFC 3339), level and msg.
bool init_logging(const std::string& level, LogFormat format = LogFormat::text);

// One plain line on standard output, flushed (tests read the chosen ports here).
void print_line(std::string_view line);

// An error sluice answered itself: 5xx at warn (at most a few per second, so a
// dead upstream does not flood the log), the rest at debug.
void log_proxy_error(std::string_view listener, int status, std::string_view code, std::string_view message);

// The completion of a coroutine spawned for `what` ("connection", "HTTP/2
// stream"...): an exception that ended it is logged as an internal error.
void log_if_thrown(const char* what, std::exception_ptr e);
inline auto log_if_thrown(const char* what) {
    return [what](std::exception_ptr e) { log_if_thrown(what, e); };
}

}  // namespace sluice::proxy
