#include "proxy/net/log.h"

#include <nlohmann/json.hpp>
#include <spdlog/async.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>

namespace sluice::proxy {

namespace {

// %* in a pattern: the message as the inside of a JSON string. nlohmann's
// writer escapes it and replaces invalid UTF-8 (messages can quote bytes a
// client or an upstream sent), so every line stays valid JSON.
class JsonEscapedMessage final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
        const std::string quoted = nlohmann::json(std::string(msg.payload.data(), msg.payload.size()))
                                       .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        dest.append(quoted.data() + 1, quoted.data() + quoted.size() - 1);  // without the quotes
    }
    std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonEscapedMessage>(); }
};

}  // namespace

std::optional<LogFormat> parse_log_format(std::string_view text) {
    if (text == "text") return LogFormat::text;
    if (text == "json") return LogFormat::json;
    return std::nullopt;
}

bool init_logging(const std::string& level, LogFormat format) {
    auto lvl = spdlog::level::from_str(level);
    if (lvl == spdlog::level::off && level != "off") return false;
    // Asynchronous, and dropping the oldest lines when standard error cannot keep
    // up: a slow log reader must never stall a worker or the admin API.
    spdlog::init_thread_pool(8192, 1);
    auto logger = spdlog::create_async_nb<spdlog::sinks::stderr_color_sink_mt>("sluice");
    if (format == LogFormat::json) {
        // One object per line for log collectors; time in UTC, RFC 3339.
        auto f = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
        f->add_flag<JsonEscapedMessage>('*').set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","msg":"%*"})");
        logger->set_formatter(std::move(f));
    } else {
        logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    }
    logger->set_level(lvl);
    spdlog::set_default_logger(logger);
    return true;
}

void print_line(std::string_view line) {
    static std::mutex mu;
    std::lock_guard lock(mu);
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
}

void log_proxy_error(std::string_view listener, int status, std::string_view code, std::string_view message) {
    if (status < 500) {
        spdlog::debug("listener={} status={} error={}: {}", listener, status, code, message);
        return;
    }
    // A token bucket of one per 200ms, shared by workers: a lost race only skips a line.
    static std::atomic<std::int64_t> next_ns{0};
    auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    auto next = next_ns.load(std::memory_order_relaxed);
    if (now < next || !next_ns.compare_exchange_strong(next, now + 200'000'000, std::memory_order_relaxed)) return;
    spdlog::warn("listener={} status={} error={}: {}", listener, status, code, message);
}

void log_if_thrown(const char* what, std::exception_ptr e) {
    if (!e) return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        spdlog::error("{} ended by an internal error: {}", what, x.what());
    }
}

}  // namespace sluice::proxy
