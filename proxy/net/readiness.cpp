#include "proxy/net/readiness.h"

#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <boost/asio/post.hpp>

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace sluice::proxy {
namespace {

namespace asio_detail = boost::asio::detail;

int make_epoll() {
    int fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1 for tunnels and hang-ups");
    return fd;
}

// Events taken from the nested set per wake-up; more wait for the next turn.
constexpr int kBatch = 64;

}  // namespace

// An operation that never completes, as Asio's own signal pipe has: the
// reactor calls perform() whenever it sees the nested set readable
// (edge-triggered), and perform takes the events there and then. Asio's
// public waits would re-arm the set's registration (an epoll_ctl) per batch.
struct Readiness::InReactor {
    struct Op final : asio_detail::reactor_op {
        explicit Op(Readiness* s) : reactor_op(boost::system::error_code(), &Op::perform_now, &Op::end), set(s) {}
        static status perform_now(reactor_op* base) {
            static_cast<Op*>(base)->set->dispatch();
            return not_done;  // stays registered
        }
        // Only when the registration ends, or the io_context shuts down first.
        static void end(void*, asio_detail::scheduler_operation* base, const boost::system::error_code&, std::size_t) {
            delete static_cast<Op*>(base);
        }
        Readiness* set;
    };

    explicit InReactor(asio_detail::reactor& r) : reactor(r) {}
    asio_detail::reactor& reactor;
    asio_detail::reactor::per_descriptor_data data = nullptr;
};

Readiness::Readiness(boost::asio::io_context& io) : io_(io), epoll_fd_(make_epoll()) {
    auto& reactor = boost::asio::use_service<asio_detail::reactor>(static_cast<boost::asio::execution_context&>(io));
    reactor.init_task();
    in_reactor_ = std::make_unique<InReactor>(reactor);
    const int err = reactor.register_internal_descriptor(asio_detail::reactor::read_op, epoll_fd_, in_reactor_->data,
                                                         new InReactor::Op(this));
    if (err != 0) {
        reactor.deregister_internal_descriptor(epoll_fd_, in_reactor_->data);  // frees the operation
        reactor.cleanup_descriptor_data(in_reactor_->data);
        ::close(epoll_fd_);
        throw std::system_error(err, std::generic_category(), "adding the readiness set to the worker's epoll set");
    }
}

Readiness::~Readiness() {
    in_reactor_->reactor.deregister_internal_descriptor(epoll_fd_, in_reactor_->data);
    in_reactor_->reactor.cleanup_descriptor_data(in_reactor_->data);
    ::close(epoll_fd_);
}

std::uint64_t Readiness::add(std::shared_ptr<Handler> handler, int fd0, int fd1) {
    const std::uint64_t key = next_key_++;
    auto watch = [&](int fd, std::uint64_t side) {
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.u64 = key << 1 | side;
        return ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0;
    };
    if (!watch(fd0, 0)) return 0;
    if (!watch(fd1, 1)) {
        int err = errno;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd0, nullptr);
        errno = err;
        return 0;
    }
    handlers_.emplace(key, std::move(handler));
    return key;
}

Readiness::Registration Readiness::watch(std::shared_ptr<Handler> handler, int fd, std::uint32_t events) {
    const std::uint64_t key = next_key_++;
    epoll_event ev{};
    ev.events = events | EPOLLET;
    ev.data.u64 = key << 1;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) return {};
    handlers_.emplace(key, std::move(handler));
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
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    drop(key);
}

void Readiness::drop(std::uint64_t key) {
    auto it = handlers_.find(key);
    if (it == handlers_.end()) return;
    // Let go later: the handler may be the caller.
    boost::asio::post(io_, [h = std::move(it->second)] {});
    handlers_.erase(it);
}

void Readiness::dispatch() {
    epoll_event events[kBatch];
    int n = ::epoll_wait(epoll_fd_, events, kBatch, 0);
    for (int i = 0; i < n; ++i) {
        auto it = handlers_.find(events[i].data.u64 >> 1);
        if (it == handlers_.end()) continue;  // dropped earlier in this batch
        // A raw pointer is enough: a dropped handler is released on a later turn.
        it->second->on_ready(static_cast<int>(events[i].data.u64 & 1), events[i].events);
    }
    // A full batch: probably more, which raise no new edge. Let the worker's
    // other work run first, then take them.
    if (n == kBatch && !more_posted_) {
        more_posted_ = true;
        boost::asio::post(io_, [alive = std::weak_ptr<Readiness*>(alive_)] {
            if (auto set = alive.lock()) {
                (*set)->more_posted_ = false;
                (*set)->dispatch();
            }
        });
    }
}

}  // namespace sluice::proxy
