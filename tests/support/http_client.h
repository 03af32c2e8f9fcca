// A blocking HTTP/1.1 client over any stream (a TCP socket, or TLS over one),
// for tests that need to control every byte: partial heads, pipelining, slow
// reads, early closes. Every read and write has a deadline (asynchronous
// operations run with run_for: Asio's blocking calls ignore SO_RCVTIMEO), so a
// broken proxy fails a test instead of hanging it. RawClient (client.h) and
// TlsClient (tls_client.h) are this on their stream.
#pragma once
#include "tests/support/asio_names.h"
#include "tests/support/deadline.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace sluice::test {

struct Response {
    unsigned status = 0;
    std::string body;
    http::fields headers;
    bool keep_alive = true;
    std::string header(std::string_view name) const {
        auto it = headers.find(name);
        return it == headers.end() ? std::string() : std::string(it->value());
    }
};

template <class Stream>
class HttpClient {
public:
    void send(std::string_view bytes) {
        auto [ec, n] = run([&](auto handler) { asio::async_write(stream_, asio::buffer(bytes), handler); });
        if (ec) throw boost::system::system_error(ec);
    }
    // Reads the response head only; the body is then read with read_body_some().
    Response read_head(bool head_request = false) {
        parser_.emplace();
        parser_->body_limit(boost::none);
        if (head_request) parser_->skip(true);
        auto [ec, n] = run([&](auto handler) { http::async_read_header(stream_, buffer_, *parser_, handler); });
        if (ec) throw boost::system::system_error(ec);
        Response r;
        r.status = parser_->get().result_int();
        r.headers = parser_->get().base();
        r.keep_alive = parser_->get().keep_alive();
        return r;
    }
    // Body bytes as they arrive after read_head(); empty string at the end.
    std::string read_body_some() {
        char buf[64 * 1024];
        // A read may end on a chunk header with no body bytes yet: keep going.
        while (!parser_->is_done()) {
            parser_->get().body().data = buf;
            parser_->get().body().size = sizeof buf;
            auto [ec, n] = run([&](auto handler) { http::async_read_some(stream_, buffer_, *parser_, handler); });
            if (ec && ec != http::error::need_buffer) throw boost::system::system_error(ec);
            std::size_t got = sizeof buf - parser_->get().body().size;
            if (got) return std::string(buf, got);
        }
        return {};
    }
    bool body_done() const { return parser_ && parser_->is_done(); }
    // Reads one complete response (the request was `head_request` for HEAD).
    Response read_response(bool head_request = false) {
        Response r = read_head(head_request);
        for (std::string piece; !(piece = read_body_some()).empty();) r.body += piece;
        return r;
    }
    // A GET on this connection.
    Response get(const std::string& target, const std::string& extra_headers = "") {
        send("GET " + target + " HTTP/1.1\r\nHost: " + host_ + "\r\n" + extra_headers + "\r\n");
        return read_response();
    }
    // True when the server closed the connection (reads EOF or reset) within the deadline.
    bool closed_by_peer(int timeout_ms = 5000) {
        // Data still buffered means the peer sent more than expected: not closed.
        if (buffer_.size() > 0) return false;
        auto saved = std::exchange(timeout_, std::chrono::milliseconds(timeout_ms));
        char c;
        std::pair<boost::system::error_code, std::size_t> r;
        try {
            r = run([&](auto handler) { stream_.async_read_some(asio::buffer(&c, 1), handler); });
        } catch (const std::runtime_error&) {
            timeout_ = saved;
            return false;  // still open when the deadline passed
        }
        timeout_ = saved;
        return r.first == asio::error::eof || r.first == asio::error::connection_reset;
    }
    // Raw bytes until the server closes; `end`, when given, gets how it closed.
    std::string read_until_close(boost::system::error_code* end = nullptr) {
        std::string out(static_cast<const char*>(buffer_.data().data()), buffer_.size());
        buffer_.consume(buffer_.size());
        char buf[16 * 1024];
        for (;;) {
            auto [ec, n] = run([&](auto handler) { stream_.async_read_some(asio::buffer(buf), handler); });
            out.append(buf, n);
            if (ec) {
                if (end) *end = ec;
                break;
            }
        }
        return out;
    }

    Stream& stream() { return stream_; }
    tcp::socket& socket() { return beast::get_lowest_layer(stream_); }
    void set_timeout(int ms) { timeout_ = std::chrono::milliseconds(ms); }

    // Runs one asynchronous operation to its end or the deadline; throws on timeout.
    template <class Start>
    std::pair<boost::system::error_code, std::size_t> run(Start start) {
        return run_with_deadline(io_, timeout_, start, [this] {
            boost::system::error_code ignored;
            socket().cancel(ignored);
        });
    }

protected:
    // `stream_args` after the io_context: what the stream is made from.
    template <class... Args>
    HttpClient(std::string host, int timeout_ms, Args&&... stream_args)
        : host_(std::move(host)), timeout_(timeout_ms), stream_(io_, std::forward<Args>(stream_args)...) {}

    // Connects the TCP socket underneath to 127.0.0.1:port.
    void connect(std::uint16_t port) {
        auto [ec, n] = run([&](auto handler) {
            socket().async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                   [handler](boost::system::error_code e) mutable { handler(e, 0); });
        });
        if (ec) throw boost::system::system_error(ec);
        socket().set_option(tcp::no_delay(true));
    }

private:
    std::string host_;  // the Host of get()
    std::chrono::milliseconds timeout_;
    asio::io_context io_;
    Stream stream_;
    beast::flat_buffer buffer_;
    std::optional<http::response_parser<http::buffer_body>> parser_;
};

}  // namespace sluice::test
