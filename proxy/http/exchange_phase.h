// Where an HTTP/1.1 connection is in its current exchange, and which of its
// deadlines passed. The phase decides what a passed phase deadline means: the
// same timer is the idle timeout between requests, the head timeout while a
// request head arrives, the connect timeout while an upstream connects.
#pragma once
#include <cstddef>

namespace sluice::proxy {

enum class Phase { idle, head, queued, connect, request, response, closing };

// The deadline that passed (none: all I/O may go on).
enum class Deadline { none, http_idle, request_headers, connect, upstream_response, stream_idle, max_duration };

// Which deadline passed, from the watchdog's answer and the phase it came in:
// the same timer is the idle timeout between requests, the head timeout while
// a request head arrives, the connect timeout while an upstream connects.
inline Deadline deadline_passed_in(Phase phase, bool hard, bool idle) {
    if (hard) return Deadline::max_duration;
    if (idle) return Deadline::stream_idle;
    switch (phase) {
    case Phase::idle: return Deadline::http_idle;
    case Phase::head: return Deadline::request_headers;
    case Phase::queued: return Deadline::max_duration;  // no deadline of its own: queue.timeout is the exchange's
    case Phase::connect: return Deadline::connect;
    case Phase::request: return Deadline::upstream_response;
    case Phase::response: return Deadline::stream_idle;
    case Phase::closing: return Deadline::http_idle;
    }
    return Deadline::stream_idle;
}

// Where an exchange was when its client left (sluice_client_cancels_total's phase).
enum class CancelPhase { request, waiting, streaming, queued };
inline constexpr std::size_t kCancelPhaseCount = 4;
inline constexpr const char* kCancelPhaseNames[kCancelPhaseCount] = {"request", "waiting", "streaming", "queued"};

}  // namespace sluice::proxy
