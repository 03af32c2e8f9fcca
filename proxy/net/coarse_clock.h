// The kernel's coarse monotonic clock: a plain memory read in the vDSO, where
// steady_clock::now() also reads and scales the CPU's time stamp counter. It
// lags the precise clock by up to two scheduler ticks (measured 2.6 to 6.7 ms
// at 250 Hz), so it serves what is counted in seconds and may be a few
// milliseconds off: activity stamps for idle timeouts, passive ejections, the
// idle time of pooled connections. Deadlines, latency histograms and the
// access log keep the precise clock.
//
// Both clocks count from the same point (CLOCK_MONOTONIC), so coarse times
// compare with steady_clock times.
#pragma once
#include <chrono>
#include <ctime>

namespace sluice::proxy {

inline std::chrono::steady_clock::time_point coarse_now() {
    timespec t{};
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
    const auto since_boot = std::chrono::seconds(t.tv_sec) + std::chrono::nanoseconds(t.tv_nsec);
    return std::chrono::steady_clock::time_point(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(since_boot));
}

}  // namespace sluice::proxy
