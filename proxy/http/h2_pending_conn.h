// The place of an HTTP/2 upstream connection being made (DNS, TCP, TLS): in the
// pool while the exchange that makes it waits for it, so the exchanges that
// arrive meanwhile wait for that connection instead of each making its own.
#pragma once
#include "proxy/net/upstream_pool.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sluice::proxy {

class H2PendingConn final : public MultiplexedConn {
public:
    explicit H2PendingConn(const boost::asio::any_io_executor& ex) : ready_(ex) {
        ready_.expires_at(boost::asio::steady_timer::time_point::max());
    }

    bool can_open() const override { return false; }
    bool starting() const override { return !done_; }
    bool idle(std::chrono::steady_clock::time_point&) const override { return false; }
    // Connected or failed: the waiters look at the pool again.
    void close() override {
        done_ = true;
        ready_.cancel();
    }
    boost::asio::awaitable<void> wait_ready(std::chrono::steady_clock::duration limit) override {
        if (done_) co_return;
        // One timer for all waiters, which only the news cancels; each waits at most `limit`.
        boost::asio::steady_timer bound(ready_.get_executor());
        bound.expires_after(limit);
        bound.async_wait([this](const boost::system::error_code& ec) {
            if (!ec) ready_.cancel();
        });
        co_await ready_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
        bound.cancel();
    }

private:
    boost::asio::steady_timer ready_;
    bool done_ = false;
};

}  // namespace sluice::proxy
