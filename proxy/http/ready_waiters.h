// Exchanges waiting for an HTTP/2 upstream connection to be ready (connected,
// then its peer's SETTINGS): each waits on a timer of its own, bounded by its
// own limit (what is left of its connect deadline), and the news wakes them
// all. One shared timer could not do both: giving it a waiter's shorter
// limit would cancel the others' waits, and a longer one would hold a waiter
// past its deadline.
//
// Used on the worker thread of the connection only.
#pragma once
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <vector>

namespace sluice::proxy {

class ReadyWaiters {
public:
    // Returns after `limit`, or once wake_all() was called.
    boost::asio::awaitable<void> wait(boost::asio::any_io_executor ex, std::chrono::steady_clock::duration limit) {
        boost::asio::steady_timer timer(std::move(ex), limit);
        waiting_.push_back(&timer);
        // Removed however the wait ends, a destroyed coroutine included.
        struct Leave {
            std::vector<boost::asio::steady_timer*>& list;
            boost::asio::steady_timer* timer;
            ~Leave() { list.erase(std::remove(list.begin(), list.end(), timer), list.end()); }
        } leave{waiting_, &timer};
        co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    }

    void wake_all() {
        for (auto* timer : waiting_) timer->cancel();
    }

private:
    std::vector<boost::asio::steady_timer*> waiting_;
};

}  // namespace sluice::proxy
