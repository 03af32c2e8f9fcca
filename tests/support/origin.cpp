#include "tests/support/origin.h"

#include <boost/asio/write.hpp>

#include <sys/socket.h>
#include <unistd.h>

namespace sluice::test {

std::string OriginExchange::header(std::string_view name) const {
    auto it = head().find(name);
    return it == head().end() ? std::string() : std::string(it->value());
}

std::string OriginExchange::read_body() {
    std::string out;
    char buf[64 * 1024];
    while (!parser.is_done()) {
        parser.get().body().data = buf;
        parser.get().body().size = sizeof buf;
        beast::error_code ec;
        http::read(socket, buffer, parser, ec);
        if (ec == http::error::need_buffer) ec = {};
        if (ec) throw beast::system_error(ec);
        out.append(buf, sizeof buf - parser.get().body().size);
    }
    return out;
}

std::uint64_t OriginExchange::drain_body(std::uint64_t* checksum) {
    std::uint64_t n = 0, sum = 0;
    thread_local char local[256 * 1024];
    while (!parser.is_done()) {
        parser.get().body().data = local;
        parser.get().body().size = sizeof local;
        beast::error_code ec;
        http::read(socket, buffer, parser, ec);
        if (ec == http::error::need_buffer) ec = {};
        if (ec) throw beast::system_error(ec);
        std::size_t got = sizeof local - parser.get().body().size;
        for (std::size_t i = 0; i < got; ++i) sum = sum * 31 + static_cast<unsigned char>(local[i]);
        n += got;
    }
    if (checksum) *checksum = sum;
    return n;
}

void OriginExchange::respond(unsigned status, const std::string& body,
                             const std::vector<std::pair<std::string, std::string>>& headers) {
    http::response<http::string_body> res{static_cast<http::status>(status), 11};
    for (const auto& [k, v] : headers) res.set(k, v);
    res.body() = body;
    res.prepare_payload();
    if (!keep_alive) res.keep_alive(false);
    http::write(socket, res);
}

void OriginExchange::write_raw(std::string_view bytes) { asio::write(socket, asio::buffer(bytes)); }

void OriginExchange::begin_chunked(unsigned status, const std::string& content_type) {
    std::string head = "HTTP/1.1 " + std::to_string(status) + " OK\r\nContent-Type: " + content_type +
                       "\r\nTransfer-Encoding: chunked\r\n\r\n";
    write_raw(head);
}

void OriginExchange::chunk(std::string_view data) {
    char line[32];
    int n = std::snprintf(line, sizeof line, "%zx\r\n", data.size());
    std::array<asio::const_buffer, 3> bufs{asio::buffer(line, static_cast<std::size_t>(n)), asio::buffer(data),
                                           asio::buffer("\r\n", 2)};
    asio::write(socket, bufs);
}

void OriginExchange::end_chunked() { write_raw("0\r\n\r\n"); }

void OriginExchange::reset() {
    if (on_reset) on_reset();  // drop the duplicate first, or close() sends no reset
    linger l{1, 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    socket.close();
    keep_alive = false;
}

TestOrigin::TestOrigin(OriginHandler handler, std::uint16_t port) : handler_(std::move(handler)), acceptor_(io_) {
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    acceptor_thread_ = std::thread([this] { accept_loop(); });
}

TestOrigin::~TestOrigin() {
    stopping_ = true;
    beast::error_code ec;
    acceptor_.cancel(ec);
    // Unblock accept() by connecting once, then close every live connection.
    {
        tcp::socket poke(io_);
        poke.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
    }
    acceptor_thread_.join();
    {
        std::lock_guard lock(mu_);
        for (auto& [socket, fd] : dups_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : threads_) t.join();
}

void TestOrigin::accept_loop() {
    for (;;) {
        auto socket = std::make_shared<tcp::socket>(io_);
        beast::error_code ec;
        acceptor_.accept(*socket, ec);
        if (stopping_) return;
        if (ec) continue;
        ++connections_;
        std::lock_guard lock(mu_);
        dups_[socket.get()] = ::dup(socket->native_handle());
        threads_.emplace_back([this, socket] { serve(socket); });
    }
}

void TestOrigin::serve(std::shared_ptr<tcp::socket> socket) {
    auto drop_dup = [this, s = socket.get()] {
        std::lock_guard lock(mu_);
        auto it = dups_.find(s);
        if (it == dups_.end()) return;
        ::close(it->second);
        dups_.erase(it);
    };
    beast::flat_buffer buffer;
    try {
        for (;;) {
            http::request_parser<http::buffer_body> parser;
            parser.body_limit(boost::none);
            parser.header_limit(1024 * 1024);
            beast::error_code ec;
            http::read_header(*socket, buffer, parser, ec);
            if (ec) break;
            ++requests_;
            OriginExchange ex(*socket, buffer, parser);
            ex.on_reset = drop_dup;
            handler_(ex);
            if (!ex.keep_alive || !parser.get().keep_alive()) break;
            if (!parser.is_done()) ex.drain_body();
        }
    } catch (const std::exception&) {
        // the proxy went away mid-exchange: fine for a test origin
    }
    drop_dup();
    beast::error_code ec;
    socket->shutdown(tcp::socket::shutdown_send, ec);
}

void Gate::open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
}

bool Gate::wait(int ms) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return open_; });
}

OriginHandler checked_echo_handler(std::string name, std::shared_ptr<std::atomic<bool>> healthy) {
    auto echo = echo_handler(name);
    return [name, healthy, echo](OriginExchange& ex) {
        if (ex.target() == "/healthz") ex.respond(*healthy ? 200 : 503, *healthy ? "ok" : "sick");
        else echo(ex);
    };
}

OriginHandler echo_handler(std::string name) {
    return [name](OriginExchange& ex) {
        std::string body = ex.read_body();
        ex.respond(200, name + " " + std::string(ex.head().method_string()) + " " + ex.target(),
                   {{"x-origin", name}, {"x-body-bytes", std::to_string(body.size())}});
    };
}

}  // namespace sluice::test
