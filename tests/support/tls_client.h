// Test clients over TLS: HTTPS (the RawClient calls) and wss:// (a Beast
// WebSocket on TLS), trusting a test CA, with real deadlines.
#pragma once
#include "tests/support/client.h"

#include <boost/asio/ssl.hpp>
#include <boost/beast/websocket.hpp>

namespace sluice::test {

namespace ssl = asio::ssl;

// A client TLS context that trusts the test CA `ca_pem` only.
struct TrustingContext {
    explicit TrustingContext(const std::string& ca_pem);
    ssl::context ctx{ssl::context::tls_client};
};

// HTTPS: http_client.h over TLS to 127.0.0.1:port.
class TlsClient : private TrustingContext, public HttpClient<ssl::stream<tcp::socket>> {
public:
    // Connects and handshakes with SNI `server_name`, verifying the name.
    TlsClient(std::uint16_t port, const std::string& ca_pem, const std::string& server_name = "localhost",
              int timeout_ms = 10000);
    std::string peer_common_name();
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
