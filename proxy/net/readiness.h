// Edge-triggered readiness for the sockets of tunnels (plain and TLS), and hang-ups of
// client connections (http/client_watch.h) and idle pooled upstream connections: one
// epoll set per worker, nested in the worker's io_context.
//
// Asio re-arms epoll (EPOLL_CTL_MOD) on every async_wait, so a tunnel that
// waited through Asio paid a system call per small WebSocket message on top of
// its recv and its send. Here a socket is registered once, edge-triggered, and
// its owner keeps its own readable/writable flags, as nginx does: a message
// costs its recv and its send. The nested set itself sits in Asio's reactor
// once, with an operation of ours that stays registered and takes the
// nested set's events when Asio sees it readable: a batch of events costs
// one epoll_wait, with no re-arm (an Asio wait would cost an epoll_ctl each).
//
// Runs on its worker's thread only.
#pragma once
#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <utility>

namespace sluice::proxy {

class Readiness {
public:
    class Handler {
    public:
        // Socket `side` (0 or 1, as registered) has new readiness: `events` is
        // the epoll mask (EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLHUP, EPOLLERR).
        virtual void on_ready(int side, std::uint32_t events) = 0;

    protected:
        ~Handler() = default;
    };

    // A registration of one socket that ends itself: its holder may outlive
    // the set (a worker destroys its set before what its io_context holds),
    // and then there is nothing to end.
    class Registration {
    public:
        Registration() = default;
        Registration(std::weak_ptr<Readiness*> set, std::uint64_t key) : set_(std::move(set)), key_(key) {}
        Registration(Registration&& o) noexcept : set_(std::move(o.set_)), key_(std::exchange(o.key_, 0)) {}
        Registration& operator=(Registration&& o) noexcept {
            if (this != &o) {
                reset();
                set_ = std::move(o.set_);
                key_ = std::exchange(o.key_, 0);
            }
            return *this;
        }
        ~Registration() { reset(); }
        explicit operator bool() const { return key_ != 0; }
        // Forgets the handler (a closed socket has left the epoll set by itself).
        void reset();
        // Takes open socket `fd` out of the set too, for another owner to add.
        void end(int fd);

    private:
        std::weak_ptr<Readiness*> set_;
        std::uint64_t key_ = 0;
    };

    explicit Readiness(boost::asio::io_context& io);
    ~Readiness();
    Readiness(const Readiness&) = delete;
    Readiness& operator=(const Readiness&) = delete;

    // Watches sockets fd0 (side 0) and fd1 (side 1) for `handler`, which stays
    // alive until drop(). Returns a key for drop(), or 0 with errno set.
    std::uint64_t add(std::shared_ptr<Handler> handler, int fd0, int fd1);
    // Watches one socket for `events` (edge-triggered is added) until the
    // registration ends; empty when epoll refused it.
    Registration watch(std::shared_ptr<Handler> handler, int fd, std::uint32_t events);
    // Takes `fd` out of the set (its socket lives on) and forgets the handler.
    void remove(std::uint64_t key, int fd);
    // Forgets the handler. It is let go of on a later turn of the io_context,
    // so a handler may drop itself from inside on_ready. Closing the sockets
    // takes them out of the epoll set.
    void drop(std::uint64_t key);

private:
    // Takes a batch of events from the nested set and calls their handlers.
    void dispatch();

    // The nested set's registration in Asio's reactor (readiness.cpp).
    struct InReactor;

    boost::asio::io_context& io_;
    int epoll_fd_;
    std::unique_ptr<InReactor> in_reactor_;
    std::unordered_map<std::uint64_t, std::shared_ptr<Handler>> handlers_;
    std::uint64_t next_key_ = 1;
    bool more_posted_ = false;  // a full batch was taken: a dispatch waits in the io_context
    std::shared_ptr<Readiness*> alive_ = std::make_shared<Readiness*>(this);  // for Registration
};

}  // namespace sluice::proxy
