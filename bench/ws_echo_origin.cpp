// The WebSocket and streaming origin for benchmarks: one thread, asynchronous,
// so it can hold thousands of connections cheaply. A WebSocket upgrade on any
// path echoes every message; any other request gets an NDJSON stream, its
// first line written at once and four more 5 ms apart (what an LLM token
// stream looks like), chunked. Prints "origin listening port=N".
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <cstdlib>
#include <iostream>
#include <memory>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

// One NDJSON stream over a keep-alive connection, then the next request.
class Stream : public std::enable_shared_from_this<Stream> {
public:
    Stream(tcp::socket s, beast::flat_buffer b) : socket_(std::move(s)), buffer_(std::move(b)), timer_(socket_.get_executor()) {}
    void start(bool keep_alive) {
        keep_alive_ = keep_alive;
        auto head = std::make_shared<std::string>(
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n");
        *head += chunk(0);
        asio::async_write(socket_, asio::buffer(*head), [self = shared_from_this(), head](beast::error_code ec, std::size_t) {
            if (!ec) self->next(1);
        });
    }

private:
    static std::string chunk(int i) {
        std::string line = "{\"token\":" + std::to_string(i) + "}\n";
        char size[16];
        std::snprintf(size, sizeof size, "%zx\r\n", line.size());
        return size + line + "\r\n";
    }
    void next(int i) {
        timer_.expires_after(std::chrono::milliseconds(5));
        timer_.async_wait([self = shared_from_this(), i](beast::error_code) {
            auto out = std::make_shared<std::string>(i < 5 ? chunk(i) : std::string("0\r\n\r\n"));
            asio::async_write(self->socket_, asio::buffer(*out), [self, out, i](beast::error_code ec, std::size_t) {
                if (ec) return;
                if (i < 5) return self->next(i + 1);
                if (self->keep_alive_) self->read_next();
            });
        });
    }
    void read_next();

    tcp::socket socket_;
    beast::flat_buffer buffer_;
    asio::steady_timer timer_;
    bool keep_alive_ = true;
};

class Session : public std::enable_shared_from_this<Session> {
public:
    explicit Session(tcp::socket s) : ws_(std::move(s)) {}
    // Reads a request head: an upgrade becomes an echo session, anything else a stream.
    static void serve(tcp::socket s, beast::flat_buffer b = {}) {
        auto req = std::make_shared<http::request<http::empty_body>>();
        auto sock = std::make_shared<tcp::socket>(std::move(s));
        auto buf = std::make_shared<beast::flat_buffer>(std::move(b));
        http::async_read(*sock, *buf, *req, [sock, buf, req](beast::error_code ec, std::size_t) {
            if (ec) return;
            if (websocket::is_upgrade(*req)) {
                auto self = std::make_shared<Session>(std::move(*sock));
                self->ws_.read_message_max(64 * 1024 * 1024);
                self->ws_.async_accept(*req, [self](beast::error_code aec) {
                    if (!aec) self->read();
                });
                return;
            }
            std::make_shared<Stream>(std::move(*sock), std::move(*buf))->start(req->keep_alive());
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

void Stream::read_next() { Session::serve(std::move(socket_), std::move(buffer_)); }

void accept(tcp::acceptor& a) {
    a.async_accept([&a](beast::error_code ec, tcp::socket s) {
        if (!ec) {
            s.set_option(tcp::no_delay(true));
            Session::serve(std::move(s));
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
