// An upstream that speaks TLS, for tests of sluice's TLS to upstreams: a TLS
// front on 127.0.0.1:0 that relays the plaintext both ways to a TestOrigin
// (so every origin behaviour works over TLS too). It can ask for a client
// certificate (mTLS) and records what each handshake showed: the server name
// the client sent (SNI) and the common name of its certificate.
#pragma once
#include "tests/support/certs.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sluice::test {

class TlsOrigin {
public:
    struct Handshake {
        std::string server_name;  // SNI; empty: none sent
        std::string client_name;  // the client certificate's CN; empty: none
    };

    // Serves `server` (certificate chain and key) in front of 127.0.0.1:`backend_port`.
    // With `client_ca_pem`, a client certificate signed by it is required.
    TlsOrigin(std::uint16_t backend_port, const Pem& server, const std::string& client_ca_pem = "");
    ~TlsOrigin();

    std::uint16_t port() const { return port_; }
    std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
    std::vector<Handshake> handshakes() const;  // completed ones, in order
    int failed_handshakes() const { return failed_.load(); }

private:
    struct Conn;
    void accept();

    boost::asio::io_context io_;
    boost::asio::ssl::context ctx_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::uint16_t backend_port_;
    std::uint16_t port_ = 0;
    mutable std::mutex mu_;
    std::vector<Handshake> handshakes_;
    std::atomic<int> failed_{0};
    std::thread thread_;
};

}  // namespace sluice::test
