// Admission for one cluster (max_requests_per_endpoint and its queue): how
// many requests each endpoint has in flight, counted across all workers, and
// the requests waiting, first in, first out, for one to free up. Shared by
// every worker and kept across config changes (EndpointRegistry), so a change
// of the cap applies to the next admission while queued requests keep waiting.
//
// A cluster without a cap never comes here. With one, taking and giving back
// a slot takes this cluster's lock: a handful of instructions per request to a
// server that takes seconds per generation, and the one place workers meet.
#pragma once
#include "proxy/snapshot/endpoint_state.h"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

namespace sluice::proxy {

class Admission {
public:
    // A request in the queue.
    struct Waiter {
        // Set under the lock by whoever admits it.
        bool queued = false;
        bool admitted = false;
        EndpointState* slot = nullptr;  // null when admitted because the cap was lifted
        // The waiter's worker only: its wake-up timer while it waits, else null.
        boost::asio::any_io_executor executor;
        boost::asio::steady_timer* timer = nullptr;
    };

    // Control thread, for a config being applied: the cap, the queue's size and
    // the cluster's endpoints. Waiters that now fit are admitted.
    void configure(std::uint32_t cap, std::size_t queue_size, std::vector<std::shared_ptr<EndpointState>> endpoints);
    std::uint32_t cap() const { return cap_.load(std::memory_order_relaxed); }

    enum class Outcome { admitted, queued, full };
    // A slot on `preferred` if it has room and nobody waits, else on the least
    // busy available endpoint with room, else a place in the queue (not when
    // `may_queue` is false: a retry never waits). `slot` is set when admitted.
    Outcome acquire(EndpointState* preferred, std::int64_t now_ns, const std::shared_ptr<Waiter>& w, bool may_queue,
                    EndpointState*& slot);
    // The request's response has ended: its slot goes to the first waiter.
    void release(EndpointState* slot);
    // The same without waking anyone: for an exchange destroyed with its worker
    // at shutdown, when another worker's io_context may already be gone.
    void forget(EndpointState* slot);
    // The waiter gives up (timed out, or its client left). False: it was admitted
    // meanwhile, and holds w->slot, which it must use or release.
    bool withdraw(const std::shared_ptr<Waiter>& w);

    std::size_t depth() const { return depth_.load(std::memory_order_relaxed); }

private:
    EndpointState* room_locked(EndpointState* preferred, std::int64_t now_ns) const;
    // Admits waiters while an endpoint has room; returns them to wake after unlocking.
    void admit_waiting_locked(std::vector<std::shared_ptr<Waiter>>& woken);
    static void wake(const std::shared_ptr<Waiter>& w);

    mutable std::mutex mu_;
    std::atomic<std::uint32_t> cap_{0};
    std::size_t queue_size_ = 0;
    std::vector<std::shared_ptr<EndpointState>> endpoints_;
    std::deque<std::shared_ptr<Waiter>> queue_;
    std::atomic<std::size_t> depth_{0};
};

}  // namespace sluice::proxy
