// Runs one asynchronous operation to its end or a deadline. Asio's blocking
// calls ignore SO_RCVTIMEO (they poll again after EAGAIN), so test clients
// drive async operations with run_for to get real deadlines.
#pragma once
#include <boost/asio/io_context.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

namespace sluice::test {

// `start(handler)` begins the operation; `cancel()` stops it when the deadline
// passes, and the call then throws. Returns the operation's error and size.
template <class Start, class Cancel>
std::pair<boost::system::error_code, std::size_t> run_with_deadline(boost::asio::io_context& io,
                                                                    std::chrono::milliseconds timeout, Start start,
                                                                    Cancel cancel) {
    boost::system::error_code ec;
    std::size_t n = 0;
    bool done = false;
    start([&](boost::system::error_code e, std::size_t m) {
        ec = e;
        n = m;
        done = true;
    });
    io.restart();
    io.run_for(timeout);
    if (!done) {
        cancel();
        io.restart();
        io.run();  // let the cancelled operation finish before its buffers go away
        throw std::runtime_error("timed out after " + std::to_string(timeout.count()) + "ms");
    }
    return {ec, n};
}

// Polls `pred` every 10ms until it holds; false if it still does not after
// `ms`. For state that settles asynchronously (config reloads, health checks,
// counters a worker updates a moment after the client got its last byte).
template <class Pred>
bool eventually(Pred pred, int ms = 10000) {
    for (int i = 0; i < ms / 10; ++i) {
        if (pred()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return pred();
}

}  // namespace sluice::test
