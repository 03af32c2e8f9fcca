// What sluice refuses in a message, beyond what Beast's parser refuses: every
// shape that two HTTP implementations could read two ways (request smuggling,
// response splitting, path and Host confusion), and framing that would make
// sluice buffer without bound. docs/security.md lists each rule and why.
//
// Pure functions over a head and its parser: the exchange calls them on its
// worker thread, and the fuzz targets call them directly.
#pragma once
#include "config/spec.h"
#include "proxy/message/http_head.h"
#include "proxy/message/message_parser.h"
#include "proxy/message/proxy_error.h"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::proxy {

// Why a message was refused: for requests the client's answer (400, 501...),
// for responses the text of the 502.
struct Refusal {
    ErrorKind kind = ErrorKind::bad_request;
    std::string message;
};

// Longest chunk-size line (size and extensions) sluice waits for.
inline constexpr std::size_t kMaxChunkLine = 4096;
// More Connection options than this are refused: each names a field to drop.
inline constexpr std::size_t kMaxConnectionOptions = 16;

// Parses the request head in `head.raw` (complete through its blank line)
// with `parser`, then applies sluice's rules: framing (Content-Length and
// Transfer-Encoding), Host, Connection options, the request target, and path
// normalization (`head.path` then views the normal form). On success the head
// is ready for routing and the parser for the body.
std::optional<Refusal> parse_request_head(RequestHead& head, RequestParser& parser, const config::Paths& paths);

// Parses the response head in `head.raw` the same way (an obs-fold becomes
// spaces, as RFC 9112 5.2 allows a proxy to do). `head_request`: the response
// answers a HEAD, so it has no body. The refusal's message says what the
// upstream did wrong.
std::optional<Refusal> parse_response_head(ResponseHead& head, ResponseParser& parser, bool head_request);

// One step of a body: feeds `data` to a parser past its head and lists the
// body bytes found in parser.body(). Beast keeps an unfinished chunk-size line
// or trailer section unconsumed in `data`; these are bounded here:
// `trailer_limit` for the trailers, kMaxChunkLine for a chunk line, and a bare
// LF in either is refused.
struct BodyStep {
    std::size_t used = 0;              // bytes of `data` consumed
    std::optional<Refusal> refusal;    // malformed or over a limit
};
template <bool isRequest>
BodyStep feed_body(MessageParser<isRequest>& parser, std::string_view data, std::size_t trailer_limit);

// Host and absolute-form authority syntax: uri-host [":" port] (RFC 3986).
bool valid_authority(std::string_view authority);

}  // namespace sluice::proxy
