// Test clients over TLS: HTTPS (the RawClient calls) and wss:// (a Beast
// WebSocket on TLS), trusting a test CA, with real deadlines.
#pragma once
#include "tests/support/client.h"

#include <boost/asio/ssl.hpp>
#include <boost/beast/websocket.hpp>

namespace sluice::test {

namespace ssl = asio::ssl;

class TlsClient {
public:
    // Connects and handshakes with SNI `server_name`, trusting `ca_pem` only.
    TlsClient(std::uint16_t port, const std::string& ca_pem, const std::string& server_name = "localhost",
              int timeout_ms = 10000);
    std::string peer_common_name();
    void send(std::string_view bytes);
    Response read_head();
    std::string read_body_some();
    bool body_done() const { return parser_ && parser_->is_done(); }
    Response read_response();
    Response get(const std::string& target);
    ssl::stream<tcp::socket>& stream() { return stream_; }

    template <class Start>
    std::pair<boost::system::error_code, std::size_t> run(Start start) {
        return run_with_deadline(io_, timeout_, start, [this] {
            boost::system::error_code ignored;
            stream_.next_layer().cancel(ignored);
        });
    }

private:
    std::chrono::milliseconds timeout_;
    asio::io_context io_;
    ssl::context ctx_{ssl::context::tls_client};
    ssl::stream<tcp::socket> stream_;
    beast::flat_buffer buffer_;
    std::optional<http::response_parser<http::buffer_body>> parser_;
};

class WssClient {
public:
    WssClient(std::uint16_t port, const std::string& ca_pem, const std::string& target = "/ws",
              const std::string& server_name = "localhost", int timeout_ms = 10000);
    void send(const std::string& text);
    std::string receive();
    void close();
    std::string peer_common_name();

private:
    template <class Start>
    std::size_t run(Start start);
    std::chrono::milliseconds timeout_;
    asio::io_context io_;
    ssl::context ctx_{ssl::context::tls_client};
    beast::websocket::stream<ssl::stream<tcp::socket>> ws_;
    beast::flat_buffer buffer_;
};

}  // namespace sluice::test
