#include "proxy/route_stats.h"

namespace sluice::proxy {

const char* close_reason_name(CloseReason r) {
    switch (r) {
    case CloseReason::client_closed: return "client_closed";
    case CloseReason::upstream_closed: return "upstream_closed";
    case CloseReason::idle_timeout: return "idle_timeout";
    case CloseReason::max_duration: return "max_duration";
    case CloseReason::drain: return "drain";
    case CloseReason::error: return "error";
    }
    return "error";
}

void Histogram::observe(double seconds) {
    std::size_t i = 0;
    while (i < kBounds.size() && seconds > kBounds[i]) ++i;
    ++counts[i];
    sum += seconds;
    ++count;
}

void Histogram::add(const Histogram& o) {
    for (std::size_t i = 0; i < counts.size(); ++i) counts[i] += o.counts[i];
    sum += o.sum;
    count += o.count;
}

void TunnelCounters::add(const TunnelCounters& o) {
    active += o.active;
    opened += o.opened;
    bytes_upstream += o.bytes_upstream;
    bytes_downstream += o.bytes_downstream;
    for (std::size_t i = 0; i < closes.size(); ++i) closes[i] += o.closes[i];
    duration.add(o.duration);
}

}  // namespace sluice::proxy
