// The plain HTTP/1.1 test client (http_client.h on a TCP socket) and
// one-shot requests.
#pragma once
#include "tests/support/http_client.h"

#include <cstdint>
#include <string>

namespace sluice::test {

// HTTP/1.1 over a plain TCP connection to 127.0.0.1:port.
class RawClient : public HttpClient<tcp::socket> {
public:
    explicit RawClient(std::uint16_t port, int timeout_ms = 10000) : HttpClient("test.local", timeout_ms) {
        connect(port);
    }
};

// One-shot request on a fresh connection.
Response http_get(std::uint16_t port, const std::string& target, const std::string& extra_headers = "");
// One-shot request with a body (admin API calls).
Response http_request(std::uint16_t port, const std::string& method, const std::string& target,
                      const std::string& body = "", const std::string& extra_headers = "");

}  // namespace sluice::test
