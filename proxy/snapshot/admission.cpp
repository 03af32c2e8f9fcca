#include "proxy/snapshot/admission.h"

#include <boost/asio/post.hpp>

#include <algorithm>

namespace sluice::proxy {

void Admission::configure(std::uint32_t cap, std::size_t queue_size,
                          std::vector<std::shared_ptr<EndpointState>> endpoints) {
    std::vector<std::shared_ptr<Waiter>> woken;
    {
        std::lock_guard lock(mu_);
        cap_.store(cap, std::memory_order_relaxed);
        queue_size_ = queue_size;  // a smaller queue keeps those already waiting
        endpoints_ = std::move(endpoints);
        if (cap == 0) {
            // The cap is lifted: everyone waiting goes now, uncounted.
            for (auto& w : queue_) {
                w->queued = false;
                w->admitted = true;
                woken.push_back(w);
            }
            queue_.clear();
            depth_.store(0, std::memory_order_relaxed);
        } else {
            admit_waiting_locked(woken);
        }
    }
    for (auto& w : woken) wake(w);
}

EndpointState* Admission::room_locked(EndpointState* preferred, std::int64_t now_ns) const {
    const std::uint32_t cap = cap_.load(std::memory_order_relaxed);
    auto has_room = [&](const EndpointState* e) { return e->admitted.load(std::memory_order_relaxed) < cap; };
    if (preferred && has_room(preferred)) {
        // Only while it is still one of ours: a request on an older config may prefer a removed endpoint.
        for (const auto& e : endpoints_)
            if (e.get() == preferred) return preferred;
    }
    EndpointState* best = nullptr;
    for (const auto& e : endpoints_)
        if (e->available(now_ns) && has_room(e.get()) &&
            (!best || e->admitted.load(std::memory_order_relaxed) < best->admitted.load(std::memory_order_relaxed)))
            best = e.get();
    return best;
}

Admission::Outcome Admission::acquire(EndpointState* preferred, std::int64_t now_ns, const std::shared_ptr<Waiter>& w,
                                      bool may_queue, EndpointState*& slot) {
    std::lock_guard lock(mu_);
    if (cap_.load(std::memory_order_relaxed) == 0) {
        slot = nullptr;
        return Outcome::admitted;
    }
    // First in, first out: nobody passes those already waiting.
    if (queue_.empty()) {
        if (EndpointState* e = room_locked(preferred, now_ns)) {
            e->admitted.fetch_add(1, std::memory_order_relaxed);
            slot = e;
            return Outcome::admitted;
        }
    }
    if (!may_queue || queue_.size() >= queue_size_) return Outcome::full;
    w->queued = true;
    w->admitted = false;
    w->slot = nullptr;
    queue_.push_back(w);
    depth_.store(queue_.size(), std::memory_order_relaxed);
    return Outcome::queued;
}

void Admission::release(EndpointState* slot) {
    if (!slot) return;
    std::vector<std::shared_ptr<Waiter>> woken;
    {
        std::lock_guard lock(mu_);
        slot->admitted.fetch_sub(1, std::memory_order_relaxed);
        admit_waiting_locked(woken);
    }
    for (auto& w : woken) wake(w);
}

void Admission::forget(EndpointState* slot) {
    if (!slot) return;
    std::lock_guard lock(mu_);
    slot->admitted.fetch_sub(1, std::memory_order_relaxed);
}

bool Admission::withdraw(const std::shared_ptr<Waiter>& w) {
    std::lock_guard lock(mu_);
    if (!w->queued) return false;
    w->queued = false;
    queue_.erase(std::find(queue_.begin(), queue_.end(), w));
    depth_.store(queue_.size(), std::memory_order_relaxed);
    return true;
}

void Admission::admit_waiting_locked(std::vector<std::shared_ptr<Waiter>>& woken) {
    // An endpoint of the cluster is picked by room alone: the one that frees up
    // first serves the one that waited longest.
    const std::int64_t now = coarse_now_ns();
    while (!queue_.empty()) {
        EndpointState* e = room_locked(nullptr, now);
        if (!e) break;
        e->admitted.fetch_add(1, std::memory_order_relaxed);
        auto w = std::move(queue_.front());
        queue_.pop_front();
        w->queued = false;
        w->admitted = true;
        w->slot = e;
        woken.push_back(std::move(w));
    }
    depth_.store(queue_.size(), std::memory_order_relaxed);
}

void Admission::wake(const std::shared_ptr<Waiter>& w) {
    // The timer belongs to the waiter's worker: it is touched there only, and
    // only while the waiter still waits on it.
    boost::asio::post(w->executor, [w] {
        if (w->timer) w->timer->cancel();
    });
}

}  // namespace sluice::proxy
