// A real origin server for tests: listens on 127.0.0.1:0, one thread per
// connection, and hands each request to a handler that can answer normally,
// stream, stall, or write raw bytes. Stopped and joined in the destructor.
#pragma once
#include "tests/support/asio_names.h"
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sluice::test {

// One request as the origin sees it; the body is read only on demand.
class OriginExchange {
public:
    OriginExchange(tcp::socket& s, beast::flat_buffer& b, http::request_parser<http::buffer_body>& p)
        : socket(s), buffer(b), parser(p) {}

    const http::request_header<>& head() const { return parser.get().base(); }
    std::string target() const { return std::string(head().target()); }
    std::string header(std::string_view name) const;

    std::string read_body();
    // Reads and discards the body; returns its length and a simple checksum.
    std::uint64_t drain_body(std::uint64_t* checksum = nullptr);

    void respond(unsigned status, const std::string& body,
                 const std::vector<std::pair<std::string, std::string>>& headers = {});
    void write_raw(std::string_view bytes);
    void begin_chunked(unsigned status = 200, const std::string& content_type = "text/plain");
    void chunk(std::string_view data);
    void end_chunked();
    // Closes the connection with a TCP reset (SO_LINGER 0).
    void reset();

    tcp::socket& socket;
    beast::flat_buffer& buffer;
    http::request_parser<http::buffer_body>& parser;
    bool keep_alive = true;  // false: close after this exchange
    std::function<void()> on_reset;  // set by TestOrigin
};

using OriginHandler = std::function<void(OriginExchange&)>;

class TestOrigin {
public:
    // `port` 0 picks a free one; a fixed port lets a test restart an origin where it was.
    explicit TestOrigin(OriginHandler handler, std::uint16_t port = 0);
    ~TestOrigin();

    std::uint16_t port() const { return port_; }
    std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
    int connections() const { return connections_.load(); }
    int requests() const { return requests_.load(); }

private:
    void accept_loop();
    void serve(std::shared_ptr<tcp::socket> socket);

    OriginHandler handler_;
    asio::io_context io_;
    tcp::acceptor acceptor_;
    std::uint16_t port_ = 0;
    std::atomic<int> connections_{0}, requests_{0};
    std::atomic<bool> stopping_{false};
    std::mutex mu_;
    // A duplicate descriptor per live connection: teardown shuts connections
    // down through these, never touching a socket object a handler may be closing.
    std::map<tcp::socket*, int> dups_;
    std::vector<std::thread> threads_;
    std::thread acceptor_thread_;
};

// A one-shot latch: the test releases an origin that waits on it.
class Gate {
public:
    void open();
    // False if `ms` passed first.
    bool wait(int ms = 10000);

private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool open_ = false;
};

// An origin that answers every request with 200 and a body naming itself and
// the path it saw: "<name> <method> <target>".
OriginHandler echo_handler(std::string name);
// The same, with GET /healthz answering 200 while `healthy` holds and 503 otherwise.
OriginHandler checked_echo_handler(std::string name, std::shared_ptr<std::atomic<bool>> healthy);

}  // namespace sluice::test
