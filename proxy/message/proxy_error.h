// Errors that sluice itself answers: one place maps a kind to its status code,
// its x-sluice-error code and the response bytes.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::proxy {

enum class ErrorKind {
    bad_request,               // 400: malformed or smuggling-prone request
    uri_too_long,              // 414: request line over limits.request_line
    headers_too_large,         // 431: head over limits.request_headers
    request_timeout,           // 408: head or body not received in time
    no_route,                  // 404
    websocket_disabled,        // 403: route has websocket: false
    upstream_connect_failed,   // 502: refused, unreachable, DNS
    upstream_connect_timeout,  // 504
    upstream_reset,            // 502: closed or reset before a complete response head
    upstream_bad_response,     // 502: malformed response
    upstream_timeout,          // 504: no response head within upstream_response
    max_duration,              // 504: the exchange hit max_duration before a response
    no_healthy_endpoint,       // 503: every endpoint of the cluster is unhealthy or ejected
    upstream_tls_failed,       // 502: the TLS handshake with the upstream failed (e.g. not verified)
    queue_full,                // 503: every endpoint at max_requests_per_endpoint and the queue full
    queue_timeout,             // 503: waited queue.timeout for a free endpoint
    not_implemented,           // 501: a transfer coding sluice does not implement (keep last)
};
inline constexpr std::size_t kErrorKindCount = static_cast<std::size_t>(ErrorKind::not_implemented) + 1;

int status_of(ErrorKind k);
std::string_view code_of(ErrorKind k);  // the x-sluice-error value
std::string_view reason_of(int status);

// A complete HTTP/1.1 response: status line, x-sluice-error, a one-line text
// body (`message` plus "\n"), and "Connection: close" when `close` is set.
// Overload answers (queue_full, queue_timeout) carry "Retry-After: 1".
std::string render_error(ErrorKind kind, std::string_view message, bool close, bool head_request = false);
// The same answer's fields for HTTP/2 (lower-case names, no status line);
// its body is `message` plus "\n".
std::vector<std::pair<std::string, std::string>> error_fields(ErrorKind kind, std::string_view message);

}  // namespace sluice::proxy
