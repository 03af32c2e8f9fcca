// A blocking HTTP/1.1 client for the few calls the command line makes to a
// running sluice (`sluice drain`, `sluice wait-ready`). It needs nothing else in
// the image, so a Kubernetes exec hook can run it. One request per connection.
#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::admin {

struct HttpTarget {
    std::string host;  // without brackets for IPv6
    std::uint16_t port = 80;
    std::string path = "/";
};

// "HOST:PORT", "[v6]:PORT" or ":PORT" (loopback): what --admin takes.
bool parse_host_port(const std::string& text, std::string& host, std::uint16_t& port);

// "http://HOST[:PORT][/PATH]"; nullopt with `error` set otherwise (https is not
// spoken here: the admin and probes servers are plain HTTP).
std::optional<HttpTarget> parse_http_url(std::string_view url, std::string& error);

struct HttpReply {
    unsigned status = 0;   // 0: no answer; `error` says why
    std::string body;
    std::string error;
    bool refused = false;  // nothing listens there (the process is gone)
};

// Sends one request and reads the answer, all within `timeout`. `body`, when
// not empty, goes as application/json; `bearer`, when not empty, as the token.
HttpReply http_call(const HttpTarget& target, std::string_view method, std::string_view body,
                    const std::string& bearer, std::chrono::milliseconds timeout);

}  // namespace sluice::admin
