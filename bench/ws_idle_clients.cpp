// Opens N WebSocket connections to 127.0.0.1:PORT/PATH (wss:// with "tls"),
// completes every handshake, prints "open N", then holds them idle until its
// standard input closes. Used to measure a proxy's memory per idle tunnel.
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <functional>
#include <iostream>
#include <memory>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

struct Run {
    asio::io_context io{1};
    tcp::endpoint ep;
    std::string path;
    int count = 0, open = 0, failed = 0, next = 0;

    void done(bool ok) {
        if (ok) ++open;
        else ++failed;
        if (open + failed == count) {
            std::cout << "open " << open << " failed " << failed << std::endl;
            io.stop();
        }
    }
};

// At most 200 handshakes in flight, so neither side's accept queue overflows.
template <class Ws, class MakeWs, class Secure>
void launch(Run& run, std::vector<std::unique_ptr<Ws>>& conns, MakeWs make, Secure secure) {
    if (run.next >= run.count) return;
    ++run.next;
    conns.push_back(make());
    Ws* ws = conns.back().get();
    auto again = [&run, &conns, make, secure] { launch(run, conns, make, secure); };
    beast::get_lowest_layer(*ws).async_connect(run.ep, [&run, ws, secure, again](beast::error_code ec) {
        if (ec) {
            run.done(false);
            return again();
        }
        secure(*ws, [&run, ws, again](beast::error_code sec) {
            if (sec) {
                run.done(false);
                return again();
            }
            ws->async_handshake("bench.local", run.path, [&run, again](beast::error_code hec) {
                run.done(!hec);
                again();
            });
        });
    });
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::cerr << "usage: ws_idle_clients PORT COUNT [PATH] [tls]\n";
        return 2;
    }
    Run run;
    run.ep = tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(std::atoi(argv[1])));
    run.count = std::atoi(argv[2]);
    run.path = argc > 3 ? argv[3] : "/ws";
    const bool tls = argc > 4 && std::string(argv[4]) == "tls";
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.set_verify_mode(asio::ssl::verify_none);  // the bench's own throwaway certificate
    std::vector<std::unique_ptr<websocket::stream<tcp::socket>>> plain;
    std::vector<std::unique_ptr<websocket::stream<asio::ssl::stream<tcp::socket>>>> secure;
    for (int i = 0; i < 200; ++i) {
        if (tls) {
            launch(run, secure, [&] { return std::make_unique<websocket::stream<asio::ssl::stream<tcp::socket>>>(run.io, ctx); },
                   [](auto& ws, auto then) { ws.next_layer().async_handshake(asio::ssl::stream_base::client, then); });
        } else {
            launch(run, plain, [&] { return std::make_unique<websocket::stream<tcp::socket>>(run.io); },
                   [](auto&, auto then) { then(beast::error_code{}); });
        }
    }
    run.io.run();
    std::string line;
    std::getline(std::cin, line);  // hold until the caller closes our stdin
    return run.failed ? 1 : 0;
}
