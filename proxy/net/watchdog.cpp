#include "proxy/net/watchdog.h"

#include <algorithm>

namespace sluice::proxy {

Watchdog::time_point Watchdog::next_deadline() const {
    time_point next = std::min(phase_, hard_);
    if (idle_ > Clock::duration::zero()) next = std::min(next, last_activity_ + idle_);
    return next;
}

Watchdog::Which Watchdog::expired(time_point now) const {
    if (now >= hard_) return Which::hard;
    if (now >= phase_) return Which::phase;
    if (idle_ > Clock::duration::zero() && now >= last_activity_ + idle_) return Which::idle;
    return Which::none;
}

}  // namespace sluice::proxy
