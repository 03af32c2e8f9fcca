// The HTTP/1.1 message parser: one head, then its body's framing.
//
// sluice's own, not Beast's basic_parser: parsing the two heads of every
// proxied request through Beast's callbacks was a quarter of a worker's
// user-space instructions. It reads a message as Beast 1.81 does
// (tests/fuzz/parser_diff_fuzz.cpp holds the two side by side), except:
//  - an obs-fold is refused in a request and in trailers (bad_obs_fold),
//    and in a response head becomes spaces in the head's own copy;
//  - a last chunk's line is checked as soon as it is whole, not once its
//    trailers are.
//
// The head is parsed from the Head's own copy of its bytes, so every view in
// it stays valid as long as the Head. Bodies are parsed in place from the
// caller's buffer and handed out as views: body bytes are never copied.
#pragma once
#include "proxy/message/http_head.h"

#include <boost/asio/buffer.hpp>
#include <boost/system/error_code.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace sluice::proxy {

// Construct one for every message; the Head it fills is the caller's, and
// is reused across messages.
template <bool isRequest>
class MessageParser {
public:
    using Head = std::conditional_t<isRequest, RequestHead, ResponseHead>;

    explicit MessageParser(Head& head) : head_(head) {}
    MessageParser(const MessageParser&) = delete;
    MessageParser& operator=(const MessageParser&) = delete;

    // A response to HEAD: its head says how long a body would be, but none follows.
    void skip_body() { skip_body_ = true; }
    // Parses head.raw, which holds one whole head (through its blank line).
    // Errors are Beast's http::error codes (their messages name the part).
    void parse_head(boost::system::error_code& ec);

    // Body bytes: returns how many were used. What is left (an unfinished
    // chunk-size line, or a last chunk whose trailers have not all come)
    // is for the next call, with more bytes after it.
    std::size_t put(boost::asio::const_buffer bytes, boost::system::error_code& ec);
    // The peer closed: ends a body that runs to the end of the stream, or
    // fails with partial_message.
    void put_eof(boost::system::error_code& ec);

    bool is_header_done() const { return state_ != State::head; }
    bool is_done() const { return state_ == State::done; }
    bool chunked() const { return flags_ & kChunked; }
    // The length a Content-Length field gave (not for a chunked body).
    std::optional<std::uint64_t> content_length() const;
    // The body runs until the upstream closes (a response with no framing).
    bool need_eof() const { return flags_ & kNeedEof; }
    // Whether the connection may carry another message after this one.
    bool keep_alive() const;

    // Body bytes seen by the last put() calls, as views into the caller's buffer.
    std::vector<boost::asio::const_buffer>& body() { return head_.body_spans; }
    std::uint64_t body_bytes() const { return body_bytes_; }
    // The trailers of a chunked body (names lower-cased; fields that frame,
    // route or connect the message are left out, RFC 9110 6.5.1), once parsed.
    const std::vector<std::pair<std::string, std::string>>& trailers() const { return trailers_; }

private:
    enum class State : std::uint8_t { head, length, to_eof, chunk_size, chunk_data, chunk_crlf, done };
    enum Flag : unsigned {
        kHttp11 = 1,
        kConnectionClose = 2,
        kConnectionKeepAlive = 4,
        kContentLength = 8,
        kChunked = 16,
        kNeedEof = 32,
    };

    const char* parse_start_line(const char* p, const char* end, boost::system::error_code& ec);
    // The field lines from `p` through the blank line; `trailer` for those
    // after a last chunk. Returns where they end, or null with `ec`.
    const char* parse_fields(const char* p, const char* end, bool trailer, boost::system::error_code& ec);
    // A response's obs-fold at `cr`, in head.raw: replaced by spaces.
    void unfold(const char* cr);
    // What a field means for the framing and the connection (as Beast's do_field).
    void frame_field(http::field id, std::string_view value, boost::system::error_code& ec);
    void record_field(http::field id, std::string_view name, std::string_view value);
    void record_trailer(http::field id, std::string_view name, std::string_view value);
    void start_body();
    // One chunk-size line (and, for the last chunk, its trailers) at `p`.
    // Returns where the next thing starts, or `p` when the line is not all there.
    const char* parse_chunk_line(const char* p, const char* end, boost::system::error_code& ec);
    void take_body(const char* p, std::size_t n);

    Head& head_;
    State state_ = State::head;
    unsigned flags_ = 0;
    bool skip_body_ = false;
    std::uint64_t length_ = 0;     // Content-Length's value
    std::uint64_t remaining_ = 0;  // of the sized body or of the current chunk
    std::uint64_t body_bytes_ = 0;
    std::vector<std::pair<std::string, std::string>> trailers_;
};

// Fields that frame, route or connect a message (RFC 9110 6.5.1): a trailer
// never carries them on.
bool frames_or_connects(http::field f);

using RequestParser = MessageParser<true>;
using ResponseParser = MessageParser<false>;

extern template class MessageParser<true>;
extern template class MessageParser<false>;

}  // namespace sluice::proxy
