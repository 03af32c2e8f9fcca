// A blocking HTTP/1.1 client on a raw socket, for tests that need to control
// every byte: partial heads, pipelining, slow reads, early closes. Every read
// and write has a deadline (asynchronous operations run with run_for: Asio's
// blocking calls ignore SO_RCVTIMEO), so a broken proxy fails a test instead
// of hanging it.
#pragma once
#include "tests/support/deadline.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <utility>
#include <string>

namespace sluice::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

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

class RawClient {
public:
    explicit RawClient(std::uint16_t port, int timeout_ms = 10000);

    void send(std::string_view bytes);
    // Reads one complete response (the request was `head_request` for HEAD).
    Response read_response(bool head_request = false);
    // A GET on this connection.
    Response get(const std::string& target, const std::string& extra_headers = "");
    // Reads the response head only; the body is then read with read_body_some().
    Response read_head();
    // Body bytes as they arrive after read_head(); empty string at the end.
    std::string read_body_some();
    bool body_done() const { return parser_ && parser_->is_done(); }
    // True when the server closed the connection (reads EOF or reset) within the deadline.
    bool closed_by_peer(int timeout_ms = 5000);
    // Raw bytes until the server closes.
    std::string read_until_close();

    tcp::socket& socket() { return socket_; }
    void set_timeout(int ms) { timeout_ = std::chrono::milliseconds(ms); }

    // Runs one asynchronous operation to its end or the deadline; throws on timeout.
    template <class Start>
    std::pair<boost::system::error_code, std::size_t> run(Start start);

private:
    std::chrono::milliseconds timeout_;
    asio::io_context io_;
    tcp::socket socket_;
    beast::flat_buffer buffer_;
    std::optional<http::response_parser<http::buffer_body>> parser_;
};

template <class Start>
std::pair<boost::system::error_code, std::size_t> RawClient::run(Start start) {
    return run_with_deadline(io_, timeout_, start, [this] {
        boost::system::error_code ignored;
        socket_.cancel(ignored);
    });
}

// One-shot request on a fresh connection.
Response http_get(std::uint16_t port, const std::string& target, const std::string& extra_headers = "");
// One-shot request with a body (admin API calls).
Response http_request(std::uint16_t port, const std::string& method, const std::string& target,
                      const std::string& body = "", const std::string& extra_headers = "");

}  // namespace sluice::test
