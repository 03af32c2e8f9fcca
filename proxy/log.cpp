#include "proxy/log.h"

#include <spdlog/async.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>

namespace sluice::proxy {

bool init_logging(const std::string& level) {
    auto lvl = spdlog::level::from_str(level);
    if (lvl == spdlog::level::off && level != "off") return false;
    // Asynchronous, and dropping the oldest lines when standard error cannot keep
    // up: a slow log reader must never stall a worker or the admin API.
    spdlog::init_thread_pool(8192, 1);
    auto logger = spdlog::create_async_nb<spdlog::sinks::stderr_color_sink_mt>("sluice");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
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

}  // namespace sluice::proxy
