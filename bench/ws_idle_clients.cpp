// Opens N WebSocket connections to 127.0.0.1:PORT/PATH, completes every
// handshake, prints "open N", then holds them idle until its standard input
// closes. Used to measure a proxy's memory per idle tunnel.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <iostream>
#include <memory>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

int main(int argc, char** argv) {
    if (argc < 3) {
        std::cerr << "usage: ws_idle_clients PORT COUNT [PATH]\n";
        return 2;
    }
    auto port = static_cast<unsigned short>(std::atoi(argv[1]));
    int count = std::atoi(argv[2]);
    std::string path = argc > 3 ? argv[3] : "/ws";
    asio::io_context io(1);
    std::vector<std::unique_ptr<websocket::stream<tcp::socket>>> conns;
    int open = 0, failed = 0, next = 0;
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
    // At most 200 handshakes in flight, so neither side's accept queue overflows.
    std::function<void()> launch = [&] {
        if (next >= count) return;
        int i = next++;
        conns.push_back(std::make_unique<websocket::stream<tcp::socket>>(io));
        auto* ws = conns.back().get();
        ws->next_layer().async_connect(ep, [&, ws, i](beast::error_code ec) {
            if (ec) {
                ++failed;
                launch();
                return;
            }
            ws->async_handshake("bench.local", path, [&, i](beast::error_code hec) {
                (void)i;
                if (hec) ++failed;
                else ++open;
                if (open + failed == count) {
                    std::cout << "open " << open << " failed " << failed << std::endl;
                    io.stop();
                }
                launch();
            });
        });
    };
    for (int i = 0; i < 200; ++i) launch();
    io.run();
    std::string line;
    std::getline(std::cin, line);  // hold until the caller closes our stdin
    return failed ? 1 : 0;
}
