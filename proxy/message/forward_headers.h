// The heads sluice sends on: hop-by-hop fields removed (RFC 9110 7.6.1),
// X-Forwarded-* added to requests, framing fields rewritten for the hop.
#pragma once
#include "proxy/message/h2_session.h"
#include "proxy/message/http_head.h"
#include "proxy/message/message_parser.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::proxy {

// How a body travels on one hop.
enum class Framing {
    none,     // no body
    length,   // Content-Length
    chunked,  // Transfer-Encoding: chunked
    until_close,  // response body ends when the connection closes (HTTP/1.0 style)
};

struct UpstreamRequest {
    std::string_view path;   // after rewrite
    std::string_view peer_ip;
    std::string_view scheme;  // listener scheme: "http" or "https"
    std::string_view fallback_host;  // Host to send when the client sent none (HTTP/1.0)
    Framing framing = Framing::none;
    std::uint64_t content_length = 0;
    std::string_view upgrade;  // "websocket": keep the Upgrade dance for this hop
    std::string_view websocket_key;  // for a WebSocket from HTTP/2: the Sec-WebSocket-Key sluice made
};

// The request body's framing on the upstream hop: chunked stays chunked, a
// Content-Length stays one, anything else has no body.
void set_request_framing(UpstreamRequest& up, const RequestParser& parser, const RequestHead& req);

// Appends the request head to send upstream (always HTTP/1.1, keep-alive).
void build_upstream_request(const RequestHead& req, const UpstreamRequest& up, std::string& out);

// The same request head for an HTTP/2 upstream: `h1_head` (made by
// build_upstream_request) as pseudo-fields and lower-case fields, Host as
// :authority, without the HTTP/1.1 framing fields; `te: trailers` when the
// client asked for trailers (gRPC servers want it).
void h2_request_fields(std::string_view h1_head, std::string_view scheme, bool te_trailers, H2Fields& out);

// Whether the request's TE field lists "trailers".
bool wants_trailers(const RequestHead& req);

// Appends body views to `out`, framed for the hop: with chunked framing, one
// chunk for all of `spans` (and the last chunk when `last_chunk`); `line`
// (24 bytes, owned by the caller until the write ends) holds its size line.
void append_body(std::vector<boost::asio::const_buffer>& out, const std::vector<boost::asio::const_buffer>& spans,
                 Framing framing, char* line, bool last_chunk);

// Appends the last chunk of a chunked body carrying `trailers` (RFC 9112
// 7.1.2), written into `storage`, which the caller keeps until the write ends.
void append_last_chunk(std::vector<boost::asio::const_buffer>& out, const H2Fields& trailers, std::string& storage);

struct ClientResponse {
    Framing framing = Framing::none;
    std::uint64_t content_length = 0;
    bool close = false;           // sluice closes the client connection after this response
    bool client_http10 = false;   // answer an HTTP/1.0 client in its terms
    std::string extra_fields;     // complete header lines sluice adds (Set-Cookie for sticky)
};

// The response body's framing on the client hop (set client_http10 first).
void set_response_framing(ClientResponse& down, const ResponseParser& parser, const ResponseHead& resp);

// Appends the response head to send to the client.
void build_client_response(const ResponseHead& resp, const ClientResponse& down, std::string& out);

// Appends a 101 Switching Protocols head: the upstream's fields (Sec-WebSocket-*
// untouched) with the Upgrade dance kept for this hop.
void build_switching_response(const ResponseHead& resp, std::string& out, std::string_view extra_fields = {});

// Appends an interim (1xx) response head unchanged but for hop-by-hop fields.
void build_interim_response(const ResponseHead& resp, std::string& out);

}  // namespace sluice::proxy
