// HTTP/1.1 message heads: the bytes of one head, and views into them for
// its parts (message_parser.h fills them).
#pragma once
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <string_view>
#include <vector>

namespace sluice::proxy {

namespace http = boost::beast::http;

struct HeaderField {
    http::field id;  // field::unknown for names Beast does not know
    std::string_view name;
    std::string_view value;
};

struct MessageHead {
    std::string raw;  // the head's bytes; every view below points into it
    std::vector<HeaderField> fields;
    int version = 11;  // 10 or 11
    bool has_content_length = false;
    int transfer_encodings = 0;  // Transfer-Encoding lines seen
    int content_lengths = 0;     // Content-Length lines seen
    // Where the message's parser lists body bytes: kept here, with the head
    // that is reused across messages, so its capacity is too (no allocation
    // per message).
    std::vector<boost::asio::const_buffer> body_spans;

    void clear();
    // The first value of a field, or an empty view.
    std::string_view find(http::field f) const;
    // Whether any Connection field lists `token` (case-insensitive).
    bool connection_has(std::string_view token) const;
};

struct RequestHead : MessageHead {
    http::verb verb = http::verb::unknown;
    std::string_view method;
    std::string_view target;  // as received
    std::string_view path;    // target without the query; "/" for absolute-form with no path
    std::string_view query;   // "?..." or empty
    std::string_view host;    // Host field (or authority of an absolute-form target), with port
    bool absolute_form = false;  // the target was "http://authority/path": its authority is the host
    int hosts = 0;               // Host lines seen
    std::string normalized_path;  // where `path` points when normalization changed it
    // HTTP/2 extended CONNECT with :protocol websocket (RFC 8441), read as the
    // GET of a WebSocket upgrade; the stream's DATA frames are the tunnel.
    bool extended_connect = false;

    void clear();
    // Host without port, as received (compare case-insensitively).
    std::string_view host_name() const;
};

struct ResponseHead : MessageHead {
    int status = 0;
    std::string_view reason;
    void clear();
};

// Fields that belong to one hop: they say how this connection is kept or
// upgraded and how this message is framed on it (RFC 9110 7.6.1, 6.4.1).
// sluice never forwards them as received: each caller re-frames the message
// for its next hop, and drops more where it must (Host from an upstream
// request, which gets its own, and from a trailer; Sec-WebSocket-Accept from
// an HTTP/2 tunnel's head).
bool is_hop_field(http::field f);

// Length of the head at the start of `data` (through the blank line), or 0 when
// the blank line has not arrived yet.
std::size_t find_head_end(std::string_view data);

}  // namespace sluice::proxy
