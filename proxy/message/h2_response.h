// The response head (and trailers) an HTTP/2 upstream sends on one stream,
// gathered field by field as nghttp2 decodes its HEADERS blocks, and turned
// into an HTTP/1.1 head (status line, fields, and the framing the stream's end
// implies) so the same response parser and rules read it as any other head.
// Interim (1xx) heads are dropped; a block after the final head is trailers.
// Field names and values have passed nghttp2's checks (no CR, LF or NUL, no
// upper case in names); the size of all blocks together is bounded here.
#pragma once
#include "proxy/message/h2_session.h"

#include <cstddef>
#include <string>
#include <string_view>

namespace sluice::proxy {

class H2ResponseBuilder {
public:
    explicit H2ResponseBuilder(std::size_t max_bytes) : max_bytes_(max_bytes) {}

    void begin_block();
    // False: the blocks are over the limit (refusal() says so).
    bool add(std::string_view name, std::string_view value);
    // `end`: the block ended the stream. Returns true when it was the final head.
    bool end_block(bool end);

    bool head_ready() const { return head_ready_; }
    const std::string& head() const { return head_; }  // "HTTP/1.1 200 OK\r\n...\r\n\r\n"
    bool ended() const { return ended_; }               // a block ended the stream
    const H2Fields& trailers() const { return trailers_; }
    const std::string& refusal() const { return refusal_; }

private:
    std::size_t max_bytes_;
    std::size_t bytes_ = 0;
    int status_ = 0;
    bool in_trailers_ = false;
    bool has_length_ = false;
    std::string fields_;
    std::string head_;
    bool head_ready_ = false;
    bool ended_ = false;
    H2Fields trailers_;
    std::string refusal_;
};

}  // namespace sluice::proxy
