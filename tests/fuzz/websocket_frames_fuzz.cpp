// Fuzz target: WebSocketFrames, which follows the frames of bytes a tunnel
// relays. Input: one byte that says where to cut, then the stream. Checks:
// fed in pieces or at once, the tracker ends in the same state; a feed that
// stops at a boundary stops exactly where a byte-by-byte walk first reaches
// one; skip() within payload_left() agrees with feeding those bytes.
#include "fuzz_check.h"
#include "proxy/message/websocket_frames.h"

#include <cstdint>
#include <string>

namespace {

using sluice::proxy::WebSocketFrames;

struct State {
    bool lost, frame, message;
    std::uint64_t left;
    bool operator==(const State&) const = default;
};
State state(const WebSocketFrames& f) {
    return {f.lost(), f.at_frame_boundary(), f.at_message_boundary(), f.lost() ? 0 : f.payload_left()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::size_t step = 1 + data[0] % 32;
    const bool want_message = data[0] & 0x80;
    const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);

    WebSocketFrames whole, pieces, walked, skipping;
    for (auto* f : {&whole, &pieces, &walked, &skipping}) f->want_message_boundary(want_message);
    CHECK(whole.feed(bytes.data(), bytes.size()) == bytes.size());
    for (std::size_t at = 0; at < bytes.size(); at += step)
        CHECK(pieces.feed(bytes.data() + at, std::min(step, bytes.size() - at)) == std::min(step, bytes.size() - at));
    CHECK(state(whole) == state(pieces));

    // A feed that stops at a boundary stops where a byte-by-byte walk first
    // reaches one (after the first byte: a header takes at least two).
    if (bytes.size() >= 2) {
        WebSocketFrames stopping;
        stopping.want_message_boundary(want_message);
        walked.feed(bytes.data(), 1);
        stopping.feed(bytes.data(), 1);
        std::size_t first = 0;  // none
        for (std::size_t i = 1; i < bytes.size() && !walked.lost(); ++i) {
            walked.feed(bytes.data() + i, 1);
            if (!walked.lost() && walked.at_chosen_boundary()) {
                first = i + 1;
                break;
            }
        }
        const std::size_t n = stopping.feed(bytes.data() + 1, bytes.size() - 1, true);
        if (first != 0) CHECK(1 + n == first);
        else CHECK(n == bytes.size() - 1);
    }

    // Splicing a payload: skip() as far as payload_left() allows, feed the rest.
    std::size_t at = 0;
    while (at < bytes.size() && !skipping.lost()) {
        std::uint64_t left = skipping.payload_left();
        if (left > 0) {
            auto k = static_cast<std::size_t>(std::min<std::uint64_t>(left, std::min(step, bytes.size() - at)));
            skipping.skip(k);
            at += k;
        } else {
            skipping.feed(bytes.data() + at, 1);
            at += 1;
        }
    }
    if (!skipping.lost() && !whole.lost()) CHECK(state(skipping) == state(whole));
    return 0;
}
