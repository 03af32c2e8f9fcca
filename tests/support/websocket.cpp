#include "tests/support/websocket.h"


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

template <class Start>
std::size_t WsClient::run(Start start) {
    auto [ec, n] = run_with_deadline(io_, timeout_, start, [this] {
        boost::system::error_code ignored;
        ws_.next_layer().cancel(ignored);
    });
    if (ec) throw boost::system::system_error(ec);
    return n;
}

WsClient::WsClient(std::uint16_t port, const std::string& target, bool deflate, int timeout_ms)
    : ws_(io_), timeout_(timeout_ms) {
    run([&](auto h) {
        ws_.next_layer().async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                       [h](boost::system::error_code e) mutable { h(e, 0); });
    });
    ws_.next_layer().set_option(tcp::no_delay(true));
    if (deflate) {
        websocket::permessage_deflate pmd;
        pmd.client_enable = true;
        ws_.set_option(pmd);
    }
    ws_.read_message_max(64 * 1024 * 1024);
    run([&](auto h) { ws_.async_handshake("test.local", target, [h](boost::system::error_code e) mutable { h(e, 0); }); });
}

WsClient::~WsClient() {
    beast::error_code ec;
    ws_.next_layer().close(ec);
}

void WsClient::send(const std::string& data, bool binary) {
    ws_.binary(binary);
    run([&](auto h) { ws_.async_write(asio::buffer(data), h); });
}

void WsClient::send_fragmented(const std::string& data, int pieces, bool binary) {
    ws_.binary(binary);
    std::size_t step = data.size() / static_cast<std::size_t>(pieces) + 1;
    for (std::size_t off = 0; off < data.size(); off += step) {
        std::size_t n = std::min(step, data.size() - off);
        run([&](auto h) { ws_.async_write_some(off + n >= data.size(), asio::buffer(data.data() + off, n), h); });
    }
}

std::string WsClient::receive(bool* was_binary) {
    beast::flat_buffer buffer;
    run([&](auto h) { ws_.async_read(buffer, h); });
    if (was_binary) *was_binary = ws_.got_binary();
    return beast::buffers_to_string(buffer.data());
}

void WsClient::close() {
    run([&](auto h) { ws_.async_close(websocket::close_code::normal, [h](boost::system::error_code e) mutable { h(e, 0); }); });
}

}  // namespace sluice::test
