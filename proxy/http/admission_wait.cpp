// Admission (max_requests_per_endpoint): an exchange to a capped cluster takes
// a slot on an endpoint before its first attempt, or waits in the cluster's
// queue for one, first in, first out; a full queue or a wait past
// queue.timeout is answered 503 with Retry-After, a client that leaves while
// queued is dropped from the queue at once. The slot is held until the
// response has ended (finish()), so a token stream counts to its last byte.
#include "config/duration.h"
#include "proxy/http/balancer.h"
#include "proxy/http/exchange.h"
#include "proxy/worker/worker_context.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sluice::proxy {

namespace asio = boost::asio;

namespace {

std::string endpoints_phrase(std::size_t n) { return n == 1 ? "its endpoint" : "each of its " + std::to_string(n) + " endpoints"; }

}  // namespace

bool Exchange::take_slot(EndpointState* slot, std::size_t preferred) {
    const ClusterRuntime& cr = view_->snapshot->clusters[cluster_];
    std::size_t chosen = preferred;
    if (slot) {
        chosen = Pick::npos;
        for (std::size_t i = 0; i < cr.endpoints.size(); ++i)
            if (cr.endpoints[i].state.get() == slot) chosen = i;
        if (chosen == Pick::npos) {
            // An endpoint a newer config added, which this exchange's config does not know.
            admission_->release(slot);
            return false;
        }
    }
    slot_ = slot;
    // Admitted elsewhere than the policy picked: a sticky client moves with it.
    if (chosen != endpoint_ && cr.policy == config::LbPolicy::sticky) set_affinity_ = true;
    endpoint_ = chosen;
    return true;
}

asio::awaitable<std::optional<ExchangeEnd>> Exchange::admit() {
    const ClusterRuntime& cr = view_->snapshot->clusters[cluster_];
    admission_ = cr.admission;
    if (!waiter_) waiter_ = std::make_shared<Admission::Waiter>();
    waiter_->executor = client_.executor();
    auto& stats = *view_->cluster_stats[cluster_];
    const auto began = Watchdog::Clock::now();
    const std::size_t preferred = endpoint_;
    for (;;) {
        EndpointState* slot = nullptr;
        auto outcome = admission_->acquire(cr.endpoints[preferred].state.get(), coarse_now_ns(), waiter_, true, slot);
        if (outcome == Admission::Outcome::admitted) {
            if (!take_slot(slot, preferred)) continue;
            stats.queue_wait.observe(0);
            co_return std::nullopt;
        }
        if (outcome == Admission::Outcome::full) {
            const std::uint32_t cap = admission_->cap();
            admission_.reset();
            const std::size_t size = view_->snapshot->config.clusters[cluster_].queue.size;
            // Built before the co_await: GCC 12 mishandles temporaries of a ?: inside one.
            std::string message = "cluster \"" + cr.name + "\" has max_requests_per_endpoint " + std::to_string(cap) +
                                  " in flight on " + endpoints_phrase(cr.endpoints.size());
            if (size == 0) message += " and no queue (queue.size 0)";
            else message += " and its queue is full (" + std::to_string(size) + " waiting)";
            message += "; retry later, or raise max_requests_per_endpoint or queue.size";
            co_return co_await send_error(ErrorKind::queue_full, message);
        }
        // Queued: a client that leaves wakes us through client_left().
        queued_ = true;
        client_.set_phase(Phase::queued, Watchdog::time_point::max());
        const auto timeout = cr.queue_timeout;
        if (timeout.count() == 0) queue_timer_.expires_at(asio::steady_timer::time_point::max());
        else queue_timer_.expires_after(timeout);
        waiter_->timer = &queue_timer_;
        if (!client_.aborted() && !client_.deadline_passed())
            co_await queue_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
        waiter_->timer = nullptr;
        queued_ = false;
        const bool gone = client_.aborted() || rec_.cancel.has_value();
        if (!admission_->withdraw(waiter_)) {
            // Admitted while waiting (perhaps just as the timer fired).
            if (gone || client_.deadline_passed()) {
                admission_->release(waiter_->slot);
            } else if (take_slot(waiter_->slot, preferred)) {
                stats.queue_wait.observe(std::chrono::duration<double>(Watchdog::Clock::now() - began).count());
                co_return std::nullopt;
            } else {
                continue;  // to the back of the queue: rare enough not to matter
            }
        }
        const std::uint32_t cap = admission_->cap();
        admission_.reset();
        if (gone) co_return ExchangeEnd::close;
        if (client_.deadline_passed())
            co_return co_await fail(io_failure(place(), client_.timed_out(), false, {}, "while queued",
                                               UpstreamFailure::Retry::no));
        const std::string message = "waited " + config::describe_duration(timeout) +
                                    " (queue.timeout) in the queue of cluster \"" + cr.name +
                                    "\" for one of its endpoints to have fewer than max_requests_per_endpoint " +
                                    std::to_string(cap) +
                                    " in flight; retry later, or raise max_requests_per_endpoint or queue.timeout";
        co_return co_await send_error(ErrorKind::queue_timeout, message);
    }
}

bool Exchange::readmit() {
    if (slot_) admission_->release(slot_);
    slot_ = nullptr;
    EndpointState* slot = nullptr;
    const ClusterRuntime& cr = view_->snapshot->clusters[cluster_];
    if (admission_->acquire(cr.endpoints[endpoint_].state.get(), coarse_now_ns(), waiter_, false, slot) ==
            Admission::Outcome::admitted &&
        take_slot(slot, endpoint_))
        return true;
    admission_.reset();
    return false;
}

Exchange::~Exchange() {
    // Only when the worker is torn down with the exchange still running: give
    // the count back without waking waiters on workers that may be gone.
    if (waiter_) waiter_->timer = nullptr;
    release_slot(false);
}

void Exchange::release_slot(bool wake_waiters) {
    if (!admission_) return;
    auto give_back = [&](EndpointState* s) { wake_waiters ? admission_->release(s) : admission_->forget(s); };
    if (queued_ && waiter_ && !admission_->withdraw(waiter_)) give_back(waiter_->slot);
    give_back(slot_);
    slot_ = nullptr;
    admission_.reset();
}

}  // namespace sluice::proxy
