#include "proxy/http/upstream_failure.h"

#include "config/duration.h"
#include "proxy/snapshot/snapshot.h"

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>

#include <cctype>
#include <iterator>

namespace sluice::proxy {
namespace {

namespace asio = boost::asio;

std::string lower_first(std::string s) {
    if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
    return s;
}

const config::Timeouts& timeouts(const AttemptPlace& at) { return at.snapshot.routes[at.route].timeouts; }

UpstreamFailure max_duration(const AttemptPlace& at) {
    return {ErrorKind::max_duration,
            "the request did not complete within max_duration " +
                config::describe_duration(timeouts(at).max_duration) + " (" + at.route_label() + ")",
            UpstreamFailure::Retry::no, false};
}

}  // namespace

std::string AttemptPlace::upstream_label() const {
    const auto& c = snapshot.clusters[cluster];
    return "cluster \"" + c.name + "\" endpoint " + c.endpoints[endpoint].key;
}

std::string AttemptPlace::route_label() const { return "route \"" + snapshot.routes[route].spec->name + "\""; }

UpstreamFailure connect_failure(const AttemptPlace& at, Deadline passed, const boost::system::error_code& ec,
                                bool resolve_failed, std::string_view tls_failure) {
    using Retry = UpstreamFailure::Retry;
    const bool tls = at.snapshot.clusters[at.cluster].tls != nullptr;
    // Nothing reached the upstream: any method may go to another endpoint.
    if (passed == Deadline::connect)
        return {ErrorKind::upstream_connect_timeout,
                "upstream connect timed out after " + config::describe_duration(timeouts(at).connect) + ": " +
                    at.upstream_label() + " (timeouts.connect" + (tls ? ", which includes the TLS handshake)" : ")"),
                Retry::unsent, true};
    if (passed == Deadline::max_duration) return max_duration(at);
    if (!tls_failure.empty())
        return {ErrorKind::upstream_tls_failed,
                "upstream TLS handshake failed: " + at.upstream_label() + ": " + std::string(tls_failure), Retry::unsent,
                true};
    std::string cause = lower_first(ec.message());
    if (resolve_failed)
        cause = "cannot resolve \"" + at.snapshot.clusters[at.cluster].endpoints[at.endpoint].host + "\": " + cause;
    return {ErrorKind::upstream_connect_failed, "upstream connect failed: " + at.upstream_label() + ": " + cause,
            Retry::unsent, true};
}

UpstreamFailure io_failure(const AttemptPlace& at, Deadline passed, bool client_stalled,
                           const boost::system::error_code& ec, std::string_view step, UpstreamFailure::Retry retry) {
    using Retry = UpstreamFailure::Retry;
    const auto& t = timeouts(at);
    switch (passed) {
    case Deadline::max_duration: return max_duration(at);
    case Deadline::upstream_response:
        return {ErrorKind::upstream_timeout,
                "upstream sent no response headers within " + config::describe_duration(t.upstream_response) + " (" +
                    at.route_label() + ")",
                Retry::no, false};
    case Deadline::stream_idle:
        if (client_stalled)
            return {ErrorKind::request_timeout,
                    "the request body stalled: no bytes for " + config::describe_duration(t.stream_idle) +
                        " (timeouts.stream_idle, " + at.route_label() + ")",
                    Retry::no, false};
        return {ErrorKind::upstream_timeout,
                "upstream took no request body bytes for " + config::describe_duration(t.stream_idle) +
                    " (timeouts.stream_idle, " + at.route_label() + ")",
                Retry::no, false};
    case Deadline::none: break;
    default: retry = Retry::no; break;  // some other deadline of this connection
    }
    const auto& tls = at.snapshot.clusters[at.cluster].tls;
    if (tls && ec.category() == asio::error::get_ssl_category())
        return {ErrorKind::upstream_tls_failed,
                "upstream TLS failed " + std::string(step) + ": " + at.upstream_label() + ": " + tls->describe_tls_error(ec),
                retry == Retry::unsent ? Retry::unsent : Retry::no, false};
    std::string what;
    // A TLS upstream that closed without close_notify closed all the same.
    const bool closed = ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
    if (closed) what = "upstream closed the connection " + std::string(step);
    else if (ec == asio::error::connection_reset) what = "upstream reset the connection " + std::string(step);
    else {
        what = "upstream failed " + std::string(step) + " (" + lower_first(ec.message()) + ")";
        // Only a close or a reset says the request may not have been taken; other errors are ours.
        if (retry == Retry::if_idempotent) retry = Retry::no;
    }
    return {ErrorKind::upstream_reset, what + ": " + at.upstream_label(), retry, false};
}

UpstreamFailure stream_failure(const AttemptPlace& at, std::uint32_t code, std::string_view connection_failure,
                               std::string_view step, UpstreamFailure::Retry retry) {
    using Retry = UpstreamFailure::Retry;
    static constexpr const char* kNames[] = {"NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
                                             "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR",
                                             "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR",
                                             "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"};
    constexpr std::uint32_t kRefusedStream = 7;
    // REFUSED_STREAM, or above a GOAWAY's last stream: never processed, so any method may go again.
    if (code == kRefusedStream)
        return {ErrorKind::upstream_reset,
                "upstream refused the HTTP/2 stream (REFUSED_STREAM) " + std::string(step) + ": " + at.upstream_label(),
                Retry::unsent, false};
    std::string what = !connection_failure.empty()
                           ? std::string(connection_failure)
                           : "upstream reset the HTTP/2 stream (" +
                                 std::string(code < std::size(kNames) ? kNames[code] : "error " + std::to_string(code)) +
                                 ")";
    return {ErrorKind::upstream_reset, what + " " + std::string(step) + ": " + at.upstream_label(), retry, false};
}

UpstreamFailure bad_response(const AttemptPlace& at, std::string_view what) {
    return {ErrorKind::upstream_bad_response, std::string(what) + ": " + at.upstream_label(), UpstreamFailure::Retry::no,
            false};
}

UpstreamFailure no_healthy_endpoint(const AttemptPlace& at, std::size_t healthy) {
    const auto& c = at.snapshot.clusters[at.cluster];
    return {ErrorKind::no_healthy_endpoint,
            "no healthy endpoint in cluster \"" + c.name + "\" (" + std::to_string(healthy) + " of " +
                std::to_string(c.endpoints.size()) + " healthy)",
            UpstreamFailure::Retry::no, false};
}

}  // namespace sluice::proxy
