// WebSocket ping-pong load: CONNECTIONS clients each send one binary message
// of SIZE bytes, wait for its echo, and send the next, for SECONDS. One thread,
// asynchronous, so the load costs little CPU per round trip. "tls" speaks
// wss:// (any certificate is accepted: the bench's own). Prints one line:
//   round_trips N per_second R p50_us A p99_us B errors E
//   ws_pingpong PORT CONNECTIONS SIZE SECONDS [PATH] [tls]
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

struct Totals {
    std::vector<std::uint32_t> micros;  // one per round trip, within the measured window
    std::uint64_t errors = 0;
    bool running = true;
};

template <class Stream>
class Client : public std::enable_shared_from_this<Client<Stream>> {
public:
    template <class... Args>
    Client(Totals& t, std::size_t size, Args&&... stream_args)
        : ws_(std::forward<Args>(stream_args)...), totals_(t), message_(size, 'x') {}

    void start(const tcp::endpoint& to, const std::string& path) {
        beast::get_lowest_layer(ws_).async_connect(to, [self = this->shared_from_this(), path](beast::error_code ec) {
            if (ec) return self->fail();
            beast::get_lowest_layer(self->ws_).set_option(tcp::no_delay(true));
            if constexpr (std::is_same_v<Stream, tcp::socket>) {
                self->upgrade(path);
            } else {
                self->ws_.next_layer().async_handshake(asio::ssl::stream_base::client, [self, path](beast::error_code hec) {
                    if (hec) return self->fail();
                    self->upgrade(path);
                });
            }
        });
    }

private:
    void upgrade(const std::string& path) {
        ws_.binary(true);
        ws_.auto_fragment(false);
        ws_.async_handshake("bench.local", path, [self = this->shared_from_this()](beast::error_code ec) {
            if (ec) return self->fail();
            self->send();
        });
    }
    void send() {
        if (!totals_.running) return close();
        sent_ = Clock::now();
        ws_.async_write(asio::buffer(message_), [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return self->fail();
            self->ws_.async_read(self->buffer_, [self](beast::error_code rec, std::size_t n) {
                if (rec || n != self->message_.size()) return self->fail();
                self->buffer_.consume(n);
                if (self->totals_.running)
                    self->totals_.micros.push_back(static_cast<std::uint32_t>(
                        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - self->sent_).count()));
                self->send();
            });
        });
    }
    void fail() {
        if (totals_.running) ++totals_.errors;
    }
    void close() {
        ws_.async_close(websocket::close_code::normal, [self = this->shared_from_this()](beast::error_code) {});
    }

    websocket::stream<Stream> ws_;
    Totals& totals_;
    std::string message_;
    beast::flat_buffer buffer_;
    Clock::time_point sent_;
};

std::uint32_t percentile(std::vector<std::uint32_t>& v, double p) {
    if (v.empty()) return 0;
    auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: ws_pingpong PORT CONNECTIONS SIZE SECONDS [PATH] [tls]\n");
        return 2;
    }
    const auto port = static_cast<unsigned short>(std::atoi(argv[1]));
    const int connections = std::atoi(argv[2]);
    const auto size = static_cast<std::size_t>(std::atol(argv[3]));
    const double seconds = std::atof(argv[4]);
    const std::string path = argc > 5 ? argv[5] : "/ws";
    const bool tls = argc > 6 && std::string(argv[6]) == "tls";

    asio::io_context io(1);
    Totals totals;
    totals.micros.reserve(1 << 20);
    const tcp::endpoint to(asio::ip::make_address("127.0.0.1"), port);
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.set_verify_mode(asio::ssl::verify_none);  // the bench's own throwaway certificate
    for (int i = 0; i < connections; ++i) {
        if (tls) std::make_shared<Client<asio::ssl::stream<tcp::socket>>>(totals, size, io, ctx)->start(to, path);
        else std::make_shared<Client<tcp::socket>>(totals, size, io)->start(to, path);
    }

    // Half a second to connect and warm up, then the measured window.
    asio::steady_timer timer(io);
    Clock::time_point began;
    timer.expires_after(std::chrono::milliseconds(500));
    timer.async_wait([&](beast::error_code) {
        totals.micros.clear();
        totals.errors = 0;
        began = Clock::now();
        timer.expires_after(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds)));
        timer.async_wait([&](beast::error_code) {
            totals.running = false;
            io.stop();  // in-flight round trips are not counted
        });
    });
    io.run();
    const double elapsed = std::chrono::duration<double>(Clock::now() - began).count();
    const auto n = totals.micros.size();
    const auto p50 = percentile(totals.micros, 0.50);
    const auto p99 = percentile(totals.micros, 0.99);
    std::printf("round_trips %zu per_second %.0f p50_us %u p99_us %u errors %llu\n", n,
                static_cast<double>(n) / elapsed, p50, p99, static_cast<unsigned long long>(totals.errors));
    return totals.errors ? 1 : 0;
}
