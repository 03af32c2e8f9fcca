// Where WebSocket frames and messages end in a byte stream that a tunnel
// passes on (RFC 6455, section 5.2), so a drain can put a Close frame between
// two messages instead of cutting one. Only frame headers are read: payload
// bytes are counted and skipped, never looked at, so the cost is per frame,
// not per byte. A header that breaks the framing rules stops the tracking for
// good (lost()): the tunnel is then an opaque byte stream again.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sluice::proxy {

class WebSocketFrames {
public:
    // Follows `n` bytes of the stream; with `stop_at_boundary`, stops right
    // after the first point where a drain could speak (see below) and returns
    // how many bytes that took. Returns `n` otherwise.
    std::size_t feed(const char* data, std::size_t n, bool stop_at_boundary = false);
    // Payload bytes of the current frame still to come: a splice of at most
    // this many stays inside the frame, so skip() can follow it.
    std::uint64_t payload_left() const { return payload_left_; }
    void skip(std::uint64_t n) { payload_left_ -= n; }

    // Between frames (a control frame such as Close may go here) ...
    bool at_frame_boundary() const { return !lost_ && header_len_ == 0 && payload_left_ == 0; }
    // ... and not inside a fragmented message (a peer gets whole messages).
    bool at_message_boundary() const { return at_frame_boundary() && !in_message_; }
    bool lost() const { return lost_; }
    // At the boundary feed(..., true) stops at.
    bool at_chosen_boundary() const { return want_message_ ? at_message_boundary() : at_frame_boundary(); }
    // Which boundary feed(..., true) stops at.
    void want_message_boundary(bool yes) { want_message_ = yes; }

    // A Close frame with `code` (1001: going away) and no reason; masked (as a
    // client must send it) with `mask_key` when `masked`.
    static std::string close_frame(std::uint16_t code, bool masked, std::uint32_t mask_key = 0);

private:
    std::size_t header_size() const;  // of the header being read; 0 until its length is known
    void header_done();               // parses header_, or marks the tracking lost

    unsigned char header_[14] = {};
    std::size_t header_len_ = 0;   // bytes of the current header seen so far
    std::uint64_t payload_left_ = 0;
    bool in_message_ = false;      // a data frame without FIN was seen: continuations follow
    bool lost_ = false;
    bool want_message_ = true;
};

}  // namespace sluice::proxy
