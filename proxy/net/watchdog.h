// The deadlines of one connection on one lazily re-armed timer.
//
// Moving a deadline later costs nothing (the timer fires, sees it is early and
// re-arms); only an earlier deadline re-arms at once. Streaming activity is a plain
// timestamp store, so a chunk relayed does not touch the timer queue.
// Activity stamps come from the coarse clock (coarse_clock.h), deadlines from
// the precise one.
#pragma once
#include "proxy/net/coarse_clock.h"

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>

namespace sluice::proxy {

class Watchdog {
public:
    using Clock = std::chrono::steady_clock;
    using time_point = Clock::time_point;
    enum class Which { none, phase, idle, hard };

    explicit Watchdog(const boost::asio::any_io_executor& ex) : timer_(ex) {}

    // A fixed deadline for the current phase (time_point::max() for none).
    void set_phase(time_point deadline) { phase_ = deadline; }
    // No activity for `idle` (0 = off) ends the phase; counts from now, give
    // or take the coarse clock's few milliseconds.
    void set_idle(Clock::duration idle) {
        idle_ = idle;
        if (idle > Clock::duration::zero()) last_activity_ = coarse_now();
    }
    // A phase with a fixed deadline and no idle timeout.
    void fixed(time_point deadline) {
        set_phase(deadline);
        set_idle(Clock::duration::zero());
    }
    // A phase with no fixed deadline that ends after `idle` without activity.
    void streaming(Clock::duration idle) {
        set_phase(time_point::max());
        set_idle(idle);
    }
    void touch() { last_activity_ = coarse_now(); }
    // A deadline for the whole exchange (max_duration).
    void set_hard(time_point deadline) { hard_ = deadline; }
    time_point hard() const { return hard_; }
    void clear() {
        phase_ = hard_ = time_point::max();
        idle_ = Clock::duration::zero();
    }

    // Which deadline has passed at `now`, hard first.
    Which expired(time_point now) const;

    // Makes sure the timer will fire no later than the next deadline; calls
    // owner->on_deadline(Which) when one passes. The wait keeps `owner` alive.
    template <class Owner>
    void arm(const std::shared_ptr<Owner>& owner) {
        time_point next = next_deadline();
        if (next == time_point::max() || (armed_ && next >= armed_for_)) return;
        armed_ = true;
        armed_for_ = next;
        timer_.expires_at(next);
        timer_.async_wait([owner, gen = ++generation_](const boost::system::error_code&) {
            Watchdog& dog = owner->watchdog();
            if (gen != dog.generation_) return;  // superseded by a later arm()
            dog.armed_ = false;
            Which w = dog.expired(Clock::now());
            if (w == Which::none) dog.arm(owner);
            else owner->on_deadline(w);
        });
    }

    // Stops the timer; a pending wait completes and lets go of its owner.
    void stop() {
        clear();
        ++generation_;
        armed_ = false;
        timer_.cancel();
    }

private:
    time_point next_deadline() const;

    boost::asio::steady_timer timer_;
    time_point phase_ = time_point::max();
    time_point hard_ = time_point::max();
    Clock::duration idle_{0};
    time_point last_activity_{};
    bool armed_ = false;
    time_point armed_for_{};
    std::uint64_t generation_ = 0;
};

// A deadline `d` from now, or never when d is zero ("no limit").
inline Watchdog::time_point deadline_after(std::chrono::milliseconds d) {
    return d.count() == 0 ? Watchdog::time_point::max() : Watchdog::Clock::now() + d;
}

}  // namespace sluice::proxy
