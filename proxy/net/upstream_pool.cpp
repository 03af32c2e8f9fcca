#include "proxy/net/upstream_pool.h"

#include "proxy/net/coarse_clock.h"

#include <sys/epoll.h>

#include <algorithm>

namespace sluice::proxy {
namespace {

// What the readiness set holds: a weak reference, so a watch never keeps a
// connection alive.
struct Hangup final : Readiness::Handler {
    explicit Hangup(std::weak_ptr<UpstreamConn> c) : conn(std::move(c)) {}
    void on_ready(int, std::uint32_t) override {
        auto c = conn.lock();
        if (!c) return;
        c->hung_up = true;  // in use: its exchange reads the end itself, and give() drops it
        if (c->idle_in) c->idle_in->remove(c);
    }
    std::weak_ptr<UpstreamConn> conn;
};

}  // namespace

EndpointPool::~EndpointPool() {
    for (auto& c : idle_) {
        c->idle_in = nullptr;
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
    conn->idle_in = nullptr;
    return conn;
}

void EndpointPool::give(std::shared_ptr<UpstreamConn> conn) {
    if (idle_.size() >= max_idle_ || !conn->in.empty() || conn->hung_up) {
        conn->transport.close();
        return;
    }
    if (!conn->hangup) {
        // Once per connection. A hang-up that came before is reported at once.
        conn->hangup = readiness_.watch(std::make_shared<Hangup>(conn), conn->socket().native_handle(), EPOLLRDHUP);
        // Epoll refused (out of watches): unwatched, it would fail a request later.
        if (!conn->hangup || conn->hung_up) {
            conn->transport.close();
            return;
        }
    }
    conn->in.release_if_empty();
    conn->idle_since = coarse_now();  // swept after seconds: the coarse clock is enough
    conn->idle_in = this;
    idle_.push_back(std::move(conn));
}

void EndpointPool::remove(const std::shared_ptr<UpstreamConn>& conn) {
    auto it = std::find(idle_.begin(), idle_.end(), conn);
    if (it != idle_.end()) {
        idle_.erase(it);
    }
    conn->idle_in = nullptr;
    conn->transport.close();
}

void EndpointPool::sweep(std::chrono::steady_clock::time_point now, std::chrono::steady_clock::duration max_idle) {
    auto old = std::remove_if(idle_.begin(), idle_.end(), [&](const std::shared_ptr<UpstreamConn>& c) {
        if (now - c->idle_since < max_idle) return false;
        c->idle_in = nullptr;
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
