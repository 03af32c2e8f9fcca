#include "tests/support/tls_client.h"

#include <boost/asio/write.hpp>
#include <boost/beast/websocket/ssl.hpp>

namespace sluice::test {
namespace {

void trust(ssl::context& ctx, const std::string& ca_pem) {
    ctx.add_certificate_authority(asio::buffer(ca_pem));
    ctx.set_verify_mode(ssl::verify_peer);
}

std::string common_name(SSL* ssl) {
    X509* peer = SSL_get1_peer_certificate(ssl);
    if (!peer) return {};
    char cn[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof cn);
    X509_free(peer);
    return cn;
}

}  // namespace

TlsClient::TlsClient(std::uint16_t port, const std::string& ca_pem, const std::string& server_name, int timeout_ms)
    : timeout_(timeout_ms), stream_(io_, (trust(ctx_, ca_pem), ctx_)) {
    SSL_set_tlsext_host_name(stream_.native_handle(), server_name.c_str());
    stream_.set_verify_callback(ssl::host_name_verification(server_name));
    auto [ec, n] = run([&](auto handler) {
        stream_.next_layer().async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                           [handler](boost::system::error_code e) mutable { handler(e, 0); });
    });
    if (ec) throw boost::system::system_error(ec);
    std::tie(ec, n) = run([&](auto handler) {
        stream_.async_handshake(ssl::stream_base::client, [handler](boost::system::error_code e) mutable { handler(e, 0); });
    });
    if (ec) throw boost::system::system_error(ec);
}

std::string TlsClient::peer_common_name() { return common_name(stream_.native_handle()); }

void TlsClient::send(std::string_view bytes) {
    auto [ec, n] = run([&](auto handler) { asio::async_write(stream_, asio::buffer(bytes), handler); });
    if (ec) throw boost::system::system_error(ec);
}

Response TlsClient::read_head() {
    parser_.emplace();
    parser_->body_limit(boost::none);
    auto [ec, n] = run([&](auto handler) { http::async_read_header(stream_, buffer_, *parser_, handler); });
    if (ec) throw boost::system::system_error(ec);
    Response r;
    r.status = parser_->get().result_int();
    r.headers = parser_->get().base();
    r.keep_alive = parser_->get().keep_alive();
    return r;
}

std::string TlsClient::read_body_some() {
    char buf[64 * 1024];
    while (!parser_->is_done()) {
        parser_->get().body().data = buf;
        parser_->get().body().size = sizeof buf;
        auto [ec, n] = run([&](auto handler) { http::async_read_some(stream_, buffer_, *parser_, handler); });
        if (ec && ec != http::error::need_buffer) throw boost::system::system_error(ec);
        std::size_t got = sizeof buf - parser_->get().body().size;
        if (got) return std::string(buf, got);
    }
    return {};
}

Response TlsClient::read_response() {
    Response r = read_head();
    for (std::string piece; !(piece = read_body_some()).empty();) r.body += piece;
    return r;
}

Response TlsClient::get(const std::string& target) {
    send("GET " + target + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
    return read_response();
}

template <class Start>
std::size_t WssClient::run(Start start) {
    auto [ec, n] = run_with_deadline(io_, timeout_, start, [this] {
        boost::system::error_code ignored;
        beast::get_lowest_layer(ws_).cancel(ignored);
    });
    if (ec) throw boost::system::system_error(ec);
    return n;
}

WssClient::WssClient(std::uint16_t port, const std::string& ca_pem, const std::string& target,
                     const std::string& server_name, int timeout_ms)
    : timeout_(timeout_ms), ws_(io_, (trust(ctx_, ca_pem), ctx_)) {
    SSL_set_tlsext_host_name(ws_.next_layer().native_handle(), server_name.c_str());
    run([&](auto handler) {
        beast::get_lowest_layer(ws_).async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                                   [handler](boost::system::error_code e) mutable { handler(e, 0); });
    });
    run([&](auto handler) {
        ws_.next_layer().async_handshake(ssl::stream_base::client,
                                         [handler](boost::system::error_code e) mutable { handler(e, 0); });
    });
    run([&](auto handler) {
        ws_.async_handshake(server_name, target, [handler](boost::system::error_code e) mutable { handler(e, 0); });
    });
}

void WssClient::send(const std::string& text) {
    ws_.text(true);
    run([&](auto handler) { ws_.async_write(asio::buffer(text), handler); });
}

std::string WssClient::receive() {
    buffer_.clear();
    run([&](auto handler) { ws_.async_read(buffer_, handler); });
    return beast::buffers_to_string(buffer_.data());
}

void WssClient::close() {
    run([&](auto handler) {
        ws_.async_close(beast::websocket::close_code::normal, [handler](boost::system::error_code e) mutable { handler(e, 0); });
    });
}

std::string WssClient::peer_common_name() { return common_name(ws_.next_layer().native_handle()); }

}  // namespace sluice::test
