#include "tests/support/client.h"

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <sys/socket.h>

namespace sluice::test {

RawClient::RawClient(std::uint16_t port, int timeout_ms) : socket_(io_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    socket_.set_option(tcp::no_delay(true));
    set_timeout(timeout_ms);
}

void RawClient::set_timeout(int ms) {
    timeval tv{ms / 1000, (ms % 1000) * 1000};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

void RawClient::send(std::string_view bytes) { asio::write(socket_, asio::buffer(bytes)); }

Response RawClient::read_head() {
    parser_.emplace();
    parser_->body_limit(boost::none);
    http::read_header(socket_, buffer_, *parser_);
    Response r;
    r.status = parser_->get().result_int();
    r.headers = parser_->get().base();
    r.keep_alive = parser_->get().keep_alive();
    return r;
}

std::string RawClient::read_body_some() {
    char buf[64 * 1024];
    // A read may end on a chunk header with no body bytes yet: keep going.
    while (!parser_->is_done()) {
        parser_->get().body().data = buf;
        parser_->get().body().size = sizeof buf;
        beast::error_code ec;
        http::read_some(socket_, buffer_, *parser_, ec);
        if (ec == http::error::need_buffer) ec = {};
        if (ec) throw beast::system_error(ec);
        std::size_t got = sizeof buf - parser_->get().body().size;
        if (got) return std::string(buf, got);
    }
    return {};
}

Response RawClient::read_response(bool head_request) {
    parser_.emplace();
    parser_->body_limit(boost::none);
    if (head_request) parser_->skip(true);
    http::read_header(socket_, buffer_, *parser_);
    Response r;
    r.status = parser_->get().result_int();
    r.headers = parser_->get().base();
    r.keep_alive = parser_->get().keep_alive();
    while (!parser_->is_done()) {
        char buf[64 * 1024];
        parser_->get().body().data = buf;
        parser_->get().body().size = sizeof buf;
        beast::error_code ec;
        http::read(socket_, buffer_, *parser_, ec);
        if (ec == http::error::need_buffer) ec = {};
        if (ec) throw beast::system_error(ec);
        r.body.append(buf, sizeof buf - parser_->get().body().size);
    }
    return r;
}

Response RawClient::get(const std::string& target, const std::string& extra_headers) {
    send("GET " + target + " HTTP/1.1\r\nHost: test.local\r\n" + extra_headers + "\r\n");
    return read_response();
}

bool RawClient::closed_by_peer(int timeout_ms) {
    set_timeout(timeout_ms);
    char c;
    beast::error_code ec;
    // Data still buffered means the peer sent more than expected: not closed.
    if (buffer_.size() > 0) return false;
    socket_.read_some(asio::buffer(&c, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
}

std::string RawClient::read_until_close() {
    std::string out(static_cast<const char*>(buffer_.data().data()), buffer_.size());
    buffer_.consume(buffer_.size());
    char buf[16 * 1024];
    for (;;) {
        beast::error_code ec;
        std::size_t n = socket_.read_some(asio::buffer(buf), ec);
        out.append(buf, n);
        if (ec) break;
    }
    return out;
}

Response http_request(std::uint16_t port, const std::string& method, const std::string& target, const std::string& body,
                      const std::string& extra_headers) {
    RawClient c(port);
    c.send(method + " " + target + " HTTP/1.1\r\nHost: admin.local\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n" + extra_headers + "\r\n" + body);
    return c.read_response(method == "HEAD");
}

Response http_get(std::uint16_t port, const std::string& target, const std::string& extra_headers) {
    RawClient c(port);
    return c.get(target, extra_headers);
}

}  // namespace sluice::test
