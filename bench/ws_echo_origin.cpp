// A WebSocket echo origin for benchmarks: one thread, asynchronous, so it can
// hold thousands of connections cheaply. Prints "origin listening port=N".
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <cstdlib>
#include <iostream>
#include <memory>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

class Session : public std::enable_shared_from_this<Session> {
public:
    explicit Session(tcp::socket s) : ws_(std::move(s)) {}
    void start() {
        ws_.read_message_max(64 * 1024 * 1024);
        ws_.async_accept([self = shared_from_this()](beast::error_code ec) {
            if (!ec) self->read();
        });
    }

private:
    void read() {
        ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return;
            self->ws_.binary(self->ws_.got_binary());
            self->ws_.async_write(self->buffer_.data(), [self](beast::error_code wec, std::size_t) {
                if (wec) return;
                self->buffer_.consume(self->buffer_.size());
                self->read();
            });
        });
    }
    websocket::stream<tcp::socket> ws_;
    beast::flat_buffer buffer_;
};

void accept(tcp::acceptor& a) {
    a.async_accept([&a](beast::error_code ec, tcp::socket s) {
        if (!ec) {
            s.set_option(tcp::no_delay(true));
            std::make_shared<Session>(std::move(s))->start();
        }
        accept(a);
    });
}

}  // namespace

int main(int argc, char** argv) {
    unsigned short port = argc > 1 ? static_cast<unsigned short>(std::atoi(argv[1])) : 0;
    asio::io_context io(1);
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    a.listen(4096);
    std::cout << "origin listening port=" << a.local_endpoint().port() << std::endl;
    accept(a);
    io.run();
}
