#include "proxy/net/readiness.h"

#include <boost/asio/post.hpp>

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace sluice::proxy {
namespace {

int make_epoll() {
    int fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1 for tunnels and hang-ups");
    return fd;
}

// Events taken from the nested set per wake-up; more wait for the next turn.
constexpr int kBatch = 64;

}  // namespace

Readiness::Readiness(boost::asio::io_context& io) : io_(io), epoll_(io, make_epoll()) {}

std::uint64_t Readiness::add(std::shared_ptr<Handler> handler, int fd0, int fd1) {
    const std::uint64_t key = next_key_++;
    auto watch = [&](int fd, std::uint64_t side) {
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.u64 = key << 1 | side;
        return ::epoll_ctl(epoll_.native_handle(), EPOLL_CTL_ADD, fd, &ev) == 0;
    };
    if (!watch(fd0, 0)) return 0;
    if (!watch(fd1, 1)) {
        int err = errno;
        ::epoll_ctl(epoll_.native_handle(), EPOLL_CTL_DEL, fd0, nullptr);
        errno = err;
        return 0;
    }
    handlers_.emplace(key, std::move(handler));
    arm();
    return key;
}

std::uint64_t Readiness::add_one(std::shared_ptr<Handler> handler, int fd, std::uint32_t events) {
    const std::uint64_t key = next_key_++;
    epoll_event ev{};
    ev.events = events | EPOLLET;
    ev.data.u64 = key << 1;
    if (::epoll_ctl(epoll_.native_handle(), EPOLL_CTL_ADD, fd, &ev) != 0) return 0;
    handlers_.emplace(key, std::move(handler));
    arm();
    return key;
}

std::uint64_t Readiness::add_hangup(std::shared_ptr<Handler> handler, int fd) {
    return add_one(std::move(handler), fd, EPOLLRDHUP);
}

Readiness::Registration Readiness::watch(std::shared_ptr<Handler> handler, int fd, std::uint32_t events) {
    const std::uint64_t key = add_one(std::move(handler), fd, events);
    if (key == 0) return {};
    return {alive_, key};
}

void Readiness::Registration::end(int fd) {
    if (key_ == 0) return;
    if (auto set = set_.lock()) (*set)->remove(key_, fd);
    key_ = 0;
}

void Readiness::Registration::reset() {
    if (key_ == 0) return;
    if (auto set = set_.lock()) (*set)->drop(key_);
    key_ = 0;
}

void Readiness::remove(std::uint64_t key, int fd) {
    ::epoll_ctl(epoll_.native_handle(), EPOLL_CTL_DEL, fd, nullptr);
    drop(key);
}

void Readiness::drop(std::uint64_t key) {
    auto it = handlers_.find(key);
    if (it == handlers_.end()) return;
    // Let go later: the handler may be the caller.
    boost::asio::post(io_, [h = std::move(it->second)] {});
    handlers_.erase(it);
}

void Readiness::arm() {
    if (armed_ || handlers_.empty()) return;
    armed_ = true;
    epoll_.async_wait(boost::asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& ec) {
        if (ec == boost::asio::error::operation_aborted) return;  // shutting down: `this` may be gone
        armed_ = false;
        dispatch();
    });
}

void Readiness::dispatch() {
    epoll_event events[kBatch];
    int n = ::epoll_wait(epoll_.native_handle(), events, kBatch, 0);
    for (int i = 0; i < n; ++i) {
        auto it = handlers_.find(events[i].data.u64 >> 1);
        if (it == handlers_.end()) continue;  // dropped earlier in this batch
        // A raw pointer is enough: a dropped handler is released on a later turn.
        it->second->on_ready(static_cast<int>(events[i].data.u64 & 1), events[i].events);
    }
    if (n == kBatch) {
        // Probably more: let the worker's other work run first.
        armed_ = true;
        boost::asio::post(io_, [this] {
            armed_ = false;
            dispatch();
        });
        return;
    }
    arm();
}

}  // namespace sluice::proxy
