// Activity stamps come from the kernel's coarse clock, which lags the precise
// one by milliseconds; deadlines must not: none may fall before the time it
// was asked for.
#include "proxy/net/watchdog.h"

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <thread>

using namespace std::chrono_literals;
using sluice::proxy::deadline_after;
using sluice::proxy::Watchdog;

TEST(Watchdog, ADeadlineIsNeverEarlierThanAskedFor) {
    for (int i = 0; i < 200000; ++i) {
        const auto before = std::chrono::steady_clock::now();
        ASSERT_GE(deadline_after(100ms), before + 100ms) << "read " << i;
    }
    EXPECT_EQ(deadline_after(0ms), Watchdog::time_point::max()) << "zero means no limit";
}

TEST(Watchdog, IdleCountsFromTheLastActivity) {
    boost::asio::io_context io;
    Watchdog dog(io.get_executor());
    dog.streaming(1s);
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(dog.expired(start), Watchdog::Which::none);
    EXPECT_EQ(dog.expired(start + 2s), Watchdog::Which::idle);
    std::this_thread::sleep_for(50ms);  // many ticks of the coarse clock
    dog.touch();
    EXPECT_EQ(dog.expired(start + 1s + 20ms), Watchdog::Which::none) << "touch() moves the idle deadline";
    dog.fixed(start + 5s);
    EXPECT_EQ(dog.expired(start + 2s), Watchdog::Which::none) << "a fixed phase has no idle timeout";
    EXPECT_EQ(dog.expired(start + 5s), Watchdog::Which::phase);
}
