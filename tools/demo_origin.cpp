// The demo origin behind the quickstart: a plain /hello, /healthz, an NDJSON
// token stream on /stream, Server-Sent Events on /sse, a WebSocket echo on /ws
// and /echo, which shows the request as the origin saw it (X-Forwarded-*).
// One thread per connection: simple, and plenty for a demo.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

const char* kTokens[] = {"Streaming", " through", " sluice", ":", " each", " token", " reaches", " you", " the",
                         " moment", " the", " origin", " writes", " it", ",", " no", " buffering", ".", "\n"};

std::string query_param(std::string_view target, std::string_view name) {
    auto q = target.find('?');
    if (q == std::string_view::npos) return {};
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
        auto amp = rest.find('&');
        std::string_view kv = rest.substr(0, amp);
        auto eq = kv.find('=');
        if (kv.substr(0, eq) == name && eq != std::string_view::npos) return std::string(kv.substr(eq + 1));
        if (amp == std::string_view::npos) break;
        rest.remove_prefix(amp + 1);
    }
    return {};
}

int int_param(std::string_view target, std::string_view name, int fallback) {
    std::string v = query_param(target, name);
    return v.empty() ? fallback : std::atoi(v.c_str());
}

void send_simple(tcp::socket& s, const http::request<http::string_body>& req, http::status status, std::string body,
                 const char* type = "text/plain; charset=utf-8") {
    http::response<http::string_body> res{status, req.version()};
    res.set(http::field::content_type, type);
    res.body() = std::move(body);
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    http::write(s, res);
}

// Writes a chunked response, one chunk per piece, `delay` apart.
template <class Next>
void send_stream(tcp::socket& s, const http::request<http::string_body>& req, const char* type,
                 std::chrono::milliseconds delay, Next next) {
    http::response<http::empty_body> res{http::status::ok, req.version()};
    res.set(http::field::content_type, type);
    res.set(http::field::cache_control, "no-cache");
    res.chunked(true);
    res.keep_alive(req.keep_alive());
    http::response_serializer<http::empty_body> sr{res};
    http::write_header(s, sr);
    std::string piece;
    for (int i = 0; next(i, piece); ++i) {
        if (i > 0) std::this_thread::sleep_for(delay);
        asio::write(s, http::make_chunk(asio::buffer(piece)));
    }
    asio::write(s, http::make_chunk_last());
}

void websocket_echo(tcp::socket socket, http::request<http::string_body> req) {
    websocket::stream<tcp::socket> ws(std::move(socket));
    ws.accept(req);
    beast::flat_buffer buffer;
    for (;;) {
        beast::error_code ec;
        ws.read(buffer, ec);
        if (ec) return;
        ws.text(ws.got_text());
        ws.write(buffer.data(), ec);
        if (ec) return;
        buffer.consume(buffer.size());
    }
}

void serve(tcp::socket socket) {
    beast::error_code ec;
    beast::flat_buffer buffer;
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(256 * 1024 * 1024);
        http::read(socket, buffer, parser, ec);
        if (ec) return;
        http::request<http::string_body> req = parser.release();
        std::string_view target = req.target();
        std::string path(target.substr(0, target.find('?')));
        try {
            if (path == "/ws" && websocket::is_upgrade(req)) {
                websocket_echo(std::move(socket), std::move(req));
                return;
            }
            if (path == "/hello") {
                send_simple(socket, req, http::status::ok, "hello from the demo origin\n");
            } else if (path == "/healthz") {
                send_simple(socket, req, http::status::ok, "ok\n");
            } else if (path == "/stream") {
                auto delay = std::chrono::milliseconds(int_param(target, "delay_ms", 150));
                send_stream(socket, req, "application/x-ndjson", delay, [](int i, std::string& out) {
                    if (i >= static_cast<int>(std::size(kTokens))) return false;
                    out = nlohmann::json{{"index", i}, {"token", kTokens[i]}}.dump() + "\n";
                    return true;
                });
            } else if (path == "/sse") {
                int count = int_param(target, "count", 10);
                auto delay = std::chrono::milliseconds(int_param(target, "delay_ms", 500));
                send_stream(socket, req, "text/event-stream", delay, [count](int i, std::string& out) {
                    if (i >= count) return false;
                    out = "id: " + std::to_string(i) + "\nevent: tick\ndata: {\"n\": " + std::to_string(i) + "}\n\n";
                    return true;
                });
            } else if (path == "/echo") {
                nlohmann::json headers = nlohmann::json::object();
                for (const auto& f : req) headers[std::string(f.name_string())] = std::string(f.value());
                nlohmann::json body = {{"method", std::string(req.method_string())},
                                       {"target", std::string(target)},
                                       {"headers", headers},
                                       {"body_bytes", req.body().size()}};
                send_simple(socket, req, http::status::ok, body.dump(2) + "\n", "application/json");
            } else if (path == "/") {
                send_simple(socket, req, http::status::ok,
                            "demo origin: GET /hello, /healthz, /stream (NDJSON), /sse (events), /echo, "
                            "and a WebSocket echo on /ws\n");
            } else {
                send_simple(socket, req, http::status::not_found, "the demo origin has no " + path + "\n");
            }
        } catch (const std::exception&) {
            return;  // the client left mid-stream
        }
        if (!req.keep_alive()) return;
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::string address = "127.0.0.1";
    unsigned short port = 3000;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string flag = argv[i];
        if (flag == "--port") port = static_cast<unsigned short>(std::atoi(argv[i + 1]));
        else if (flag == "--address") address = argv[i + 1];
        else {
            std::cerr << "usage: sluice-demo-origin [--address 127.0.0.1] [--port 3000]\n";
            return 2;
        }
    }
    asio::io_context io;
    tcp::acceptor acceptor(io);
    try {
        tcp::endpoint ep(asio::ip::make_address(address), port);
        acceptor.open(ep.protocol());
        acceptor.set_option(tcp::acceptor::reuse_address(true));
        acceptor.bind(ep);
        acceptor.listen();
    } catch (const std::exception& e) {
        std::cerr << "demo origin: cannot listen on " << address << ":" << port << ": " << e.what() << "\n";
        return 1;
    }
    std::cout << "demo origin listening address=" << address << ":" << acceptor.local_endpoint().port() << std::endl;
    for (;;) {
        tcp::socket socket(io);
        acceptor.accept(socket);
        socket.set_option(tcp::no_delay(true));
        std::thread(serve, std::move(socket)).detach();
    }
}
