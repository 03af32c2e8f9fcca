// WebSocket peers for tests, built on Beast: an echo handler for TestOrigin and
// a blocking client with read deadlines.
#pragma once
#include "tests/support/deadline.h"
#include "tests/support/origin.h"

#include <boost/beast/websocket.hpp>

#include <string>

namespace sluice::test {

namespace websocket = beast::websocket;

// Accepts the upgrade and echoes every message (text stays text, binary
// binary) until the client closes. With `deflate`, offers permessage-deflate.
OriginHandler websocket_echo_handler(bool deflate = false);

class WsClient {
public:
    // Connects to 127.0.0.1:port and performs the handshake for `target`.
    WsClient(std::uint16_t port, const std::string& target = "/ws", bool deflate = false, int timeout_ms = 20000);
    ~WsClient();

    void send(const std::string& data, bool binary = false);
    // Sends one message as `pieces` frames (a fragmented message).
    void send_fragmented(const std::string& data, int pieces, bool binary = false);
    std::string receive(bool* was_binary = nullptr);
    void close();

    websocket::stream<tcp::socket>& stream() { return ws_; }

private:
    // Runs one asynchronous operation to its end or the deadline; throws on
    // error or timeout (Asio's blocking calls ignore SO_RCVTIMEO).
    template <class Start>
    std::size_t run(Start start);

    asio::io_context io_;
    websocket::stream<tcp::socket> ws_;
    std::chrono::milliseconds timeout_;
};

}  // namespace sluice::test
