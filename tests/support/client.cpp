#include "tests/support/client.h"


namespace sluice::test {

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
