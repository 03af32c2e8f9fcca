#include "tests/support/client.h"

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>


namespace sluice::test {

RawClient::RawClient(std::uint16_t port, int timeout_ms) : timeout_(timeout_ms), socket_(io_) {
    auto [ec, n] = run([&](auto handler) {
        socket_.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                              [handler](boost::system::error_code e) mutable { handler(e, 0); });
    });
    if (ec) throw boost::system::system_error(ec);
    socket_.set_option(tcp::no_delay(true));
}

void RawClient::send(std::string_view bytes) {
    auto [ec, n] = run([&](auto handler) { asio::async_write(socket_, asio::buffer(bytes), handler); });
    if (ec) throw boost::system::system_error(ec);
}

Response RawClient::read_head() {
    parser_.emplace();
    parser_->body_limit(boost::none);
    auto [ec, n] = run([&](auto handler) { http::async_read_header(socket_, buffer_, *parser_, handler); });
    if (ec) throw boost::system::system_error(ec);
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
        auto [ec, n] = run([&](auto handler) { http::async_read_some(socket_, buffer_, *parser_, handler); });
        if (ec && ec != http::error::need_buffer) throw boost::system::system_error(ec);
        std::size_t got = sizeof buf - parser_->get().body().size;
        if (got) return std::string(buf, got);
    }
    return {};
}

Response RawClient::read_response(bool head_request) {
    parser_.emplace();
    parser_->body_limit(boost::none);
    if (head_request) parser_->skip(true);
    auto [ec, n] = run([&](auto handler) { http::async_read_header(socket_, buffer_, *parser_, handler); });
    if (ec) throw boost::system::system_error(ec);
    Response r;
    r.status = parser_->get().result_int();
    r.headers = parser_->get().base();
    r.keep_alive = parser_->get().keep_alive();
    for (std::string piece; !(piece = read_body_some()).empty();) r.body += piece;
    return r;
}

Response RawClient::get(const std::string& target, const std::string& extra_headers) {
    send("GET " + target + " HTTP/1.1\r\nHost: test.local\r\n" + extra_headers + "\r\n");
    return read_response();
}

bool RawClient::closed_by_peer(int timeout_ms) {
    // Data still buffered means the peer sent more than expected: not closed.
    if (buffer_.size() > 0) return false;
    auto saved = timeout_;
    timeout_ = std::chrono::milliseconds(timeout_ms);
    char c;
    std::pair<boost::system::error_code, std::size_t> r;
    try {
        r = run([&](auto handler) { socket_.async_read_some(asio::buffer(&c, 1), handler); });
    } catch (const std::runtime_error&) {
        timeout_ = saved;
        return false;  // still open when the deadline passed
    }
    timeout_ = saved;
    return r.first == asio::error::eof || r.first == asio::error::connection_reset;
}

std::string RawClient::read_until_close() {
    std::string out(static_cast<const char*>(buffer_.data().data()), buffer_.size());
    buffer_.consume(buffer_.size());
    char buf[16 * 1024];
    for (;;) {
        auto [ec, n] = run([&](auto handler) { socket_.async_read_some(asio::buffer(buf), handler); });
        out.append(buf, n);
        if (ec) break;
    }
    return out;
}

Response http_request(std::uint16_t port, const std::string& method, const std::string& target, const std::string& body,
                      const std::string& extra_headers) {
    RawClient c(port);
    // Admin API changes are JSON (a body with another type is refused with 415).
    std::string lower = extra_headers;
    for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    std::string type = body.empty() || lower.find("content-type:") != std::string::npos
                           ? ""
                           : "Content-Type: application/json\r\n";
    c.send(method + " " + target + " HTTP/1.1\r\nHost: admin.local\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n" + type + extra_headers + "\r\n" + body);
    return c.read_response(method == "HEAD");
}

Response http_get(std::uint16_t port, const std::string& target, const std::string& extra_headers) {
    RawClient c(port);
    return c.get(target, extra_headers);
}

}  // namespace sluice::test
