// A worker thread: it owns one WorkerContext (worker_context.h: the io_context
// and everything its connections reach), runs it, accepts on its own
// SO_REUSEPORT socket of each listener, and is the only way the control
// thread acts on it: by posting to its io_context.
#pragma once
#include "proxy/net/listener.h"
#include "proxy/worker/worker_context.h"

#include <boost/asio/post.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <thread>
#include <vector>

namespace sluice::proxy {

class Worker {
public:
    Worker(std::size_t index, SnapshotStore& store, AccessLog& access_log, bool splice = true);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Control thread.
    void start();
    // Takes over listening descriptor `fd` of `listener` (posted to the worker).
    void adopt_listener(std::shared_ptr<ListenerInfo> listener, int fd);
    // Drain, step 1: responses from now on tell clients to close the connection.
    void announce_drain();
    // Drain, step 2: stop accepting, close idle connections, close the rest
    // after their current exchange; those still open are closed at evenly spread
    // instants over `window`.
    void drain(std::chrono::milliseconds window);
    // A config change removed `listener`: stop accepting on it and drain its
    // connections as drain() does, over `window`.
    void remove_listener(std::shared_ptr<ListenerInfo> listener, std::chrono::milliseconds window);
    // After a publish: move this worker's view to the new snapshot now, so an
    // idle worker does not keep an old snapshot alive until its next request.
    void refresh();
    // Closes every connection now and stops the thread.
    void stop();
    std::size_t live_connections() const { return context_.live_connections(); }

    // What runs on the thread. From another thread, only inside call().
    WorkerContext& context() { return context_; }

    // Any thread, blocking: runs `fn` on the worker thread and returns its result.
    template <class Fn>
    auto call(Fn fn) -> decltype(fn());

private:
    struct Acceptor;
    void accept_next(Acceptor* a);
    // Stops accepting on `listener` (all when null).
    void close_acceptors(const ListenerInfo* listener);

    // Before the acceptors: they are destroyed first, while io_context lives.
    WorkerContext context_;
    std::vector<std::unique_ptr<Acceptor>> acceptors_;
    std::atomic<bool> running_{false};
    std::thread thread_;
};

template <class Fn>
auto Worker::call(Fn fn) -> decltype(fn()) {
    if (!running_.load(std::memory_order_acquire)) return fn();  // stopped: nothing runs concurrently
    std::promise<decltype(fn())> p;
    boost::asio::post(context_.io(), [&] { p.set_value(fn()); });
    return p.get_future().get();
}

}  // namespace sluice::proxy
