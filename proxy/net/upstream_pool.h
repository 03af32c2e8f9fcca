// Keep-alive connections to one upstream endpoint, owned by one worker.
//
// Pools are keyed by endpoint and live in the worker, not in a config snapshot,
// so a config change that keeps an endpoint keeps its warm connections. Each
// connection joins the worker's edge-triggered readiness set once, for
// hang-ups only: if the upstream closes or resets it while idle it leaves the
// pool at once instead of failing a request later, and a request costs no
// system call for it (a read left pending on an idle connection cost a
// speculative recv, EAGAIN, per request).
#pragma once
#include "proxy/net/io_buffer.h"
#include "proxy/net/readiness.h"
#include "proxy/net/transport.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sluice::proxy {

class EndpointPool;

class UpstreamConn {
public:
    UpstreamConn(const boost::asio::any_io_executor& ex, BufferPool& buffers)
        : transport(boost::asio::ip::tcp::socket(ex)), in(buffers) {}

    boost::asio::ip::tcp::socket& socket() { return transport.socket(); }

    Transport transport;           // TCP, or TLS over it for a cluster with tls
    IoBuffer in;                   // bytes read from the upstream, not yet parsed
    std::chrono::steady_clock::time_point idle_since{};
    // The hang-up watch (Readiness, for EPOLLRDHUP): added when it first goes
    // idle, kept while it lives.
    Readiness::Registration hangup;
    bool hung_up = false;          // the upstream closed or reset it (seen at any time)
    EndpointPool* idle_in = nullptr;  // the pool it is idle in, if it is
};

// A connection that carries many exchanges at once (HTTP/2): shared by them,
// never taken from the pool; it leaves the pool itself when it closes.
class MultiplexedConn {
public:
    virtual ~MultiplexedConn() = default;
    // Another exchange may start on it now.
    virtual bool can_open() const = 0;
    // New: it may take more exchanges once its peer says how many (HTTP/2
    // SETTINGS), or once it is connected.
    virtual bool starting() const = 0;
    // Waits (at most `limit`) until it is no longer starting.
    virtual boost::asio::awaitable<void> wait_ready(std::chrono::steady_clock::duration limit) = 0;
    // No exchange on it since `since` (false: it has some now).
    virtual bool idle(std::chrono::steady_clock::time_point& since) const = 0;
    virtual void close() = 0;
};

class EndpointPool {
public:
    // `readiness`: the worker's set, for idle connections' hang-ups.
    EndpointPool(std::string key, std::size_t max_idle, Readiness& readiness)
        : key_(std::move(key)), max_idle_(max_idle), readiness_(readiness) {}
    ~EndpointPool();
    EndpointPool(const EndpointPool&) = delete;
    EndpointPool& operator=(const EndpointPool&) = delete;

    const std::string& key() const { return key_; }
    // The most recently used idle connection, or null.
    std::shared_ptr<UpstreamConn> take();
    // Returns a connection whose last exchange ended cleanly.
    void give(std::shared_ptr<UpstreamConn> conn);
    // Closes connections idle for longer than `max_idle`.
    void sweep(std::chrono::steady_clock::time_point now, std::chrono::steady_clock::duration max_idle);

    std::size_t idle_count() const { return idle_.size(); }

    // Multiplexed connections to this endpoint: one with room, or null.
    std::shared_ptr<MultiplexedConn> shared_with_room() const;
    // One that may have room soon (starting()), or null.
    std::shared_ptr<MultiplexedConn> shared_starting() const;
    void add_shared(std::shared_ptr<MultiplexedConn> conn) { shared_.push_back(std::move(conn)); }
    void remove_shared(const MultiplexedConn* conn);
    // Connections opened to this endpoint by this worker, for tests and metrics.
    std::uint64_t connects = 0;
    // Exchanges and tunnels on this endpoint now (this worker's share).
    std::int64_t active_requests = 0;
    std::int64_t active_tunnels = 0;

    // An idle connection's upstream hung up: it leaves the pool, closed.
    void remove(const std::shared_ptr<UpstreamConn>& conn);

private:
    std::string key_;
    std::size_t max_idle_;
    Readiness& readiness_;
    std::vector<std::shared_ptr<UpstreamConn>> idle_;  // most recently used last
    std::vector<std::shared_ptr<MultiplexedConn>> shared_;
};

}  // namespace sluice::proxy
