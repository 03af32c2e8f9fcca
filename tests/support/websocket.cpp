#include "tests/support/websocket.h"

#include <sys/socket.h>

namespace sluice::test {

OriginHandler websocket_echo_handler(bool deflate) {
    return [deflate](OriginExchange& ex) {
        http::request<http::empty_body> req;
        req.base() = ex.parser.get().base();
        websocket::stream<tcp::socket&> ws(ex.socket);
        if (deflate) {
            websocket::permessage_deflate pmd;
            pmd.server_enable = true;
            ws.set_option(pmd);
        }
        ws.read_message_max(64 * 1024 * 1024);
        ws.accept(req);
        beast::flat_buffer buffer;
        for (;;) {
            beast::error_code ec;
            ws.read(buffer, ec);
            if (ec) break;
            ws.binary(ws.got_binary());
            ws.write(buffer.data(), ec);
            if (ec) break;
            buffer.consume(buffer.size());
        }
        ex.keep_alive = false;
    };
}

WsClient::WsClient(std::uint16_t port, const std::string& target, bool deflate, int timeout_ms) : ws_(io_) {
    ws_.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(ws_.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (deflate) {
        websocket::permessage_deflate pmd;
        pmd.client_enable = true;
        ws_.set_option(pmd);
    }
    ws_.read_message_max(64 * 1024 * 1024);
    ws_.handshake("test.local", target);
}

WsClient::~WsClient() {
    beast::error_code ec;
    ws_.next_layer().close(ec);
}

void WsClient::send(const std::string& data, bool binary) {
    ws_.binary(binary);
    ws_.write(asio::buffer(data));
}

void WsClient::send_fragmented(const std::string& data, int pieces, bool binary) {
    ws_.binary(binary);
    std::size_t step = data.size() / static_cast<std::size_t>(pieces) + 1;
    for (std::size_t off = 0; off < data.size(); off += step) {
        std::size_t n = std::min(step, data.size() - off);
        ws_.write_some(off + n >= data.size(), asio::buffer(data.data() + off, n));
    }
}

std::string WsClient::receive(bool* was_binary) {
    beast::flat_buffer buffer;
    ws_.read(buffer);
    if (was_binary) *was_binary = ws_.got_binary();
    return beast::buffers_to_string(buffer.data());
}

void WsClient::close() { ws_.close(websocket::close_code::normal); }

}  // namespace sluice::test
