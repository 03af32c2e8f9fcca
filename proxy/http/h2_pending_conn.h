// The place of an HTTP/2 upstream connection being made (DNS, TCP, TLS): in the
// pool while the exchange that makes it waits for it, so the exchanges that
// arrive meanwhile wait for that connection instead of each making its own.
#pragma once
#include "proxy/http/ready_waiters.h"
#include "proxy/net/upstream_pool.h"

namespace sluice::proxy {

class H2PendingConn final : public MultiplexedConn {
public:
    explicit H2PendingConn(boost::asio::any_io_executor ex) : ex_(std::move(ex)) {}

    bool can_open() const override { return false; }
    bool starting() const override { return !done_; }
    bool idle(std::chrono::steady_clock::time_point&) const override { return false; }
    // Connected or failed: the waiters look at the pool again.
    void close() override {
        done_ = true;
        waiters_.wake_all();
    }
    boost::asio::awaitable<void> wait_ready(std::chrono::steady_clock::duration limit) override {
        if (done_) co_return;
        co_await waiters_.wait(ex_, limit);
    }

private:
    boost::asio::any_io_executor ex_;
    ReadyWaiters waiters_;
    bool done_ = false;
};

}  // namespace sluice::proxy
