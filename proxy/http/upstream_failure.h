// Why an attempt at an upstream ended before any response byte reached the
// client, and whether sending the request again is safe: the failure carries
// its own retryability (Pingora's Error{kind, retry}), so the attempt loop only
// asks it. Every upstream cause the request path meets (connect, DNS, TLS, a
// read or write, a deadline, a bad answer) becomes a failure here, with the
// status kind and the words the client and the log see.
#pragma once
#include "proxy/http/exchange_phase.h"
#include "proxy/message/proxy_error.h"

#include <boost/system/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::proxy {

struct Snapshot;

struct UpstreamFailure {
    enum class Retry {
        no,             // a deadline or a bad answer: another attempt is unsafe or changes nothing
        unsent,         // the upstream never read the request: any method may go again
        if_idempotent,  // it may have acted on it: only a bodiless idempotent request goes again
    };
    ErrorKind kind = ErrorKind::upstream_connect_failed;
    std::string message;
    Retry retry = Retry::no;
    bool endpoint_at_fault = false;  // counts against the endpoint's passive health even when not retried
};

// Where an attempt went, for the messages; the labels are made only on failure.
struct AttemptPlace {
    const Snapshot& snapshot;
    std::size_t route = 0, cluster = 0, endpoint = 0;

    std::string upstream_label() const;  // cluster "chat" endpoint 127.0.0.1:3000
    std::string route_label() const;     // route "chat"
};

// The connection (its DNS lookup, TCP connect, TLS handshake) was not made.
// `resolve_failed`: `ec` is the resolver's; `tls_failure` is empty unless
// the handshake failed.
UpstreamFailure connect_failure(const AttemptPlace& at, Deadline passed, const boost::system::error_code& ec,
                                bool resolve_failed, std::string_view tls_failure);

// A read from or write to the upstream failed while `step` ("before sending
// response headers"). `client_stalled`: the request body pump was waiting for
// the client when the deadline passed. `retry` says what a plain I/O error here
// allows; a deadline never retries.
UpstreamFailure io_failure(const AttemptPlace& at, Deadline passed, bool client_stalled,
                           const boost::system::error_code& ec, std::string_view step, UpstreamFailure::Retry retry);

// An HTTP/2 upstream ended the attempt's stream with RST_STREAM `code` (or
// its connection went: `connection_failure` says how) while `step`.
UpstreamFailure stream_failure(const AttemptPlace& at, std::uint32_t code, std::string_view connection_failure,
                               std::string_view step, UpstreamFailure::Retry retry);

// The upstream's answer broke HTTP: `what` says how.
UpstreamFailure bad_response(const AttemptPlace& at, std::string_view what);

// No endpoint left to try.
UpstreamFailure no_healthy_endpoint(const AttemptPlace& at, std::size_t healthy);

}  // namespace sluice::proxy
