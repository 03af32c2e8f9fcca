#include "proxy/message/websocket_frames.h"

#include <algorithm>

namespace sluice::proxy {

std::size_t WebSocketFrames::header_size() const {
    if (header_len_ < 2) return 0;
    const unsigned len7 = header_[1] & 0x7f;
    return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((header_[1] & 0x80) ? 4 : 0);
}

void WebSocketFrames::header_done() {
    const bool fin = header_[0] & 0x80;
    const unsigned opcode = header_[0] & 0x0f;
    const unsigned len7 = header_[1] & 0x7f;
    std::uint64_t len = len7;
    if (len7 == 126) len = (std::uint64_t{header_[2]} << 8) | header_[3];
    if (len7 == 127) {
        len = 0;
        for (int i = 2; i < 10; ++i) len = (len << 8) | header_[i];
        if (len >> 63) lost_ = true;  // the most significant bit must be 0
    }
    header_len_ = 0;
    payload_left_ = len;
    if (opcode >= 8) {
        // Close, ping, pong (and reserved control codes): whole frames, small, anywhere.
        if (!fin || len > 125 || opcode > 10) lost_ = true;
        return;
    }
    if (opcode == 0) {
        if (!in_message_) lost_ = true;  // a continuation of nothing
    } else if (opcode <= 2) {
        if (in_message_) lost_ = true;   // a new message inside another
    } else {
        lost_ = true;                    // reserved data opcode
    }
    in_message_ = !fin;
}

std::size_t WebSocketFrames::feed(const char* data, std::size_t n, bool stop_at_boundary) {
    std::size_t i = 0;
    auto at_stop = [&] { return stop_at_boundary && at_chosen_boundary(); };
    if (at_stop()) return 0;
    while (i < n && !lost_) {
        if (payload_left_ > 0) {
            const auto k = static_cast<std::size_t>(std::min<std::uint64_t>(payload_left_, n - i));
            payload_left_ -= k;
            i += k;
        } else {
            header_[header_len_++] = static_cast<unsigned char>(data[i++]);
            if (header_len_ < 2 || header_len_ < header_size()) continue;
            header_done();
        }
        if (at_stop()) return i;
    }
    return n;
}

std::string WebSocketFrames::close_frame(std::uint16_t code, bool masked, std::uint32_t mask_key) {
    std::string out;
    out.push_back(static_cast<char>(0x88));  // FIN, Close
    out.push_back(static_cast<char>((masked ? 0x80 : 0) | 2));
    unsigned char payload[2] = {static_cast<unsigned char>(code >> 8), static_cast<unsigned char>(code & 0xff)};
    if (masked) {
        unsigned char key[4] = {static_cast<unsigned char>(mask_key >> 24), static_cast<unsigned char>(mask_key >> 16),
                                static_cast<unsigned char>(mask_key >> 8), static_cast<unsigned char>(mask_key)};
        out.append(reinterpret_cast<const char*>(key), 4);
        for (int i = 0; i < 2; ++i) payload[i] ^= key[i];
    }
    out.append(reinterpret_cast<const char*>(payload), 2);
    return out;
}

}  // namespace sluice::proxy
