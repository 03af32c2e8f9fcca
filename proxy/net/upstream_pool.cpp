#include "proxy/net/upstream_pool.h"

#include <algorithm>

namespace sluice::proxy {

EndpointPool::~EndpointPool() {
    for (auto& c : idle_) {
        ++c->generation;
        c->transport.close();
    }
    auto shared = std::move(shared_);
    for (auto& c : shared) c->close();
}

std::shared_ptr<MultiplexedConn> EndpointPool::shared_with_room() const {
    // The newest first: older connections drain and go idle.
    for (auto it = shared_.rbegin(); it != shared_.rend(); ++it)
        if ((*it)->can_open()) return *it;
    return nullptr;
}

std::shared_ptr<MultiplexedConn> EndpointPool::shared_starting() const {
    for (const auto& c : shared_)
        if (c->starting()) return c;
    return nullptr;
}

void EndpointPool::remove_shared(const MultiplexedConn* conn) {
    auto it = std::find_if(shared_.begin(), shared_.end(), [&](const auto& c) { return c.get() == conn; });
    if (it != shared_.end()) shared_.erase(it);
}

std::shared_ptr<UpstreamConn> EndpointPool::take() {
    if (idle_.empty()) return nullptr;
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    ++conn->generation;  // its pending readability wait no longer owns it
    boost::system::error_code ec;
    conn->socket().cancel(ec);
    return conn;
}

void EndpointPool::give(std::shared_ptr<UpstreamConn> conn) {
    if (idle_.size() >= max_idle_ || !conn->in.empty()) {
        conn->transport.close();
        return;
    }
    conn->in.release_if_empty();
    conn->idle_since = std::chrono::steady_clock::now();
    std::uint64_t gen = ++conn->generation;
    // Readable while idle means closed by the upstream, or unsolicited bytes: drop it.
    // The handler holds the connection, not the pool: a pool that is gone closed it first.
    auto on_readable = [this, conn, gen](const boost::system::error_code& ec, std::size_t = 0) {
        if (gen != conn->generation || ec == boost::asio::error::operation_aborted) return;
        remove(conn);
        conn->transport.close();
    };
    // Plain: a 1-byte read, because a readiness wait costs an epoll_ctl per
    // request. TLS: a wait, which never takes a byte of a record the next
    // request may still need.
    if (conn->transport.tls()) conn->socket().async_wait(boost::asio::socket_base::wait_read, on_readable);
    else conn->socket().async_read_some(boost::asio::buffer(&conn->idle_probe, 1), on_readable);
    idle_.push_back(std::move(conn));
}

void EndpointPool::remove(const std::shared_ptr<UpstreamConn>& conn) {
    auto it = std::find(idle_.begin(), idle_.end(), conn);
    if (it != idle_.end()) {
        ++conn->generation;
        idle_.erase(it);
    }
}

void EndpointPool::sweep(std::chrono::steady_clock::time_point now, std::chrono::steady_clock::duration max_idle) {
    auto old = std::remove_if(idle_.begin(), idle_.end(), [&](const std::shared_ptr<UpstreamConn>& c) {
        if (now - c->idle_since < max_idle) return false;
        ++c->generation;
        c->transport.close();
        return true;
    });
    idle_.erase(old, idle_.end());
    std::vector<std::shared_ptr<MultiplexedConn>> expired;
    for (const auto& c : shared_) {
        std::chrono::steady_clock::time_point since;
        if (c->idle(since) && now - since >= max_idle) expired.push_back(c);
    }
    for (auto& c : expired) c->close();  // each removes itself
}

}  // namespace sluice::proxy
