// WebSocketFrames: frame and message boundaries in a relayed byte stream, fed
// whole, byte by byte, or skipped over as a splice does; what breaks the
// framing; and the Close frames a drain sends.
#include "proxy/message/websocket_frames.h"

#include <gtest/gtest.h>

#include <string>

using sluice::proxy::WebSocketFrames;

namespace {

std::string frame(unsigned char first, std::string payload, bool masked = false) {
    std::string out(1, static_cast<char>(first));
    const unsigned char mask_bit = masked ? 0x80 : 0;
    if (payload.size() < 126) {
        out.push_back(static_cast<char>(mask_bit | payload.size()));
    } else if (payload.size() < 65536) {
        out.push_back(static_cast<char>(mask_bit | 126));
        out.push_back(static_cast<char>(payload.size() >> 8));
        out.push_back(static_cast<char>(payload.size() & 0xff));
    } else {
        out.push_back(static_cast<char>(mask_bit | 127));
        for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((payload.size() >> (8 * i)) & 0xff));
    }
    if (masked) out += std::string("\x01\x02\x03\x04", 4);  // payload left unmasked: not looked at
    return out + payload;
}

}  // namespace

TEST(WebSocketFrames, WholeMessagesAreBoundariesFedAtOnceOrByteByByte) {
    const std::string stream = frame(0x81, "hello") + frame(0x82, std::string(300, 'x')) +
                               frame(0x82, std::string(70000, 'y'), true);
    WebSocketFrames at_once, by_byte;
    EXPECT_TRUE(at_once.at_message_boundary());
    EXPECT_EQ(at_once.feed(stream.data(), stream.size()), stream.size());
    EXPECT_TRUE(at_once.at_message_boundary());
    int boundaries = 0;
    for (char c : stream) {
        by_byte.feed(&c, 1);
        boundaries += by_byte.at_message_boundary();
    }
    EXPECT_EQ(boundaries, 3);
    EXPECT_FALSE(by_byte.lost());
}

TEST(WebSocketFrames, AFragmentedMessageEndsAtItsLastFrameControlFramesMayComeBetween) {
    const std::string first = frame(0x01, "part ");  // text, no FIN
    const std::string ping = frame(0x89, "");
    const std::string last = frame(0x80, "two");     // continuation, FIN
    WebSocketFrames f;
    f.feed(first.data(), first.size());
    EXPECT_TRUE(f.at_frame_boundary());
    EXPECT_FALSE(f.at_message_boundary());
    f.feed(ping.data(), ping.size());
    EXPECT_FALSE(f.at_message_boundary());
    f.feed(last.data(), last.size());
    EXPECT_TRUE(f.at_message_boundary());
}

TEST(WebSocketFrames, AStoppingFeedStopsRightAfterTheMessageOrTheFrame) {
    const std::string stream = frame(0x01, "ab") + frame(0x80, "cd") + frame(0x81, "next");
    WebSocketFrames message, any_frame;
    message.want_message_boundary(true);
    any_frame.want_message_boundary(false);
    EXPECT_EQ(message.feed(stream.data(), stream.size(), true), 0u);  // already between messages
    message.feed(stream.data(), 1);
    EXPECT_EQ(message.feed(stream.data() + 1, stream.size() - 1, true), 7u);  // to the end of "cd"
    any_frame.feed(stream.data(), 1);
    EXPECT_EQ(any_frame.feed(stream.data() + 1, stream.size() - 1, true), 3u);  // to the end of "ab"
}

TEST(WebSocketFrames, SkippingAPayloadAsASpliceDoesKeepsTrack) {
    const std::string big = frame(0x82, std::string(100000, 'z'));
    WebSocketFrames f;
    f.feed(big.data(), 10);  // the 10-byte header
    EXPECT_EQ(f.payload_left(), 100000u);
    f.skip(65536);
    EXPECT_EQ(f.payload_left(), 100000u - 65536);
    f.skip(f.payload_left());
    EXPECT_TRUE(f.at_message_boundary());
}

TEST(WebSocketFrames, BrokenFramingStopsTheTrackingForGood) {
    for (const std::string& bad : {frame(0x83, "x"),              // reserved data opcode
                                   frame(0x80, "x"),              // a continuation of nothing
                                   frame(0x09, ""),               // a fragmented ping
                                   frame(0x88, std::string(126, 'c')),  // a control frame over 125 bytes
                                   frame(0x01, "a") + frame(0x81, "b")}) {  // a new message inside another
        WebSocketFrames f;
        EXPECT_EQ(f.feed(bad.data(), bad.size(), true), 0u);  // at a boundary before any byte
        f.feed(bad.data(), bad.size());
        EXPECT_TRUE(f.lost());
        EXPECT_FALSE(f.at_message_boundary());
        const std::string more = frame(0x81, "fine");
        f.feed(more.data(), more.size());
        EXPECT_TRUE(f.lost());
    }
    std::string huge("\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00", 10);  // a 64-bit length with its top bit set
    WebSocketFrames f;
    f.feed(huge.data(), huge.size());
    EXPECT_TRUE(f.lost());
}

TEST(WebSocketFrames, CloseFramesSayGoingAwayMaskedTowardTheUpstream) {
    EXPECT_EQ(WebSocketFrames::close_frame(1001, false), std::string("\x88\x02\x03\xe9", 4));
    const std::string masked = WebSocketFrames::close_frame(1001, true, 0x11223344);
    ASSERT_EQ(masked.size(), 8u);
    EXPECT_EQ(masked.substr(0, 6), std::string("\x88\x82\x11\x22\x33\x44", 6));
    EXPECT_EQ(static_cast<unsigned char>(masked[6]), 0x03 ^ 0x11);
    EXPECT_EQ(static_cast<unsigned char>(masked[7]), 0xe9 ^ 0x22);
    WebSocketFrames f;  // both are frames it follows
    f.feed(masked.data(), masked.size());
    EXPECT_TRUE(f.at_message_boundary());
}
