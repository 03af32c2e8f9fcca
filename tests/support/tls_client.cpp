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

TrustingContext::TrustingContext(const std::string& ca_pem) { trust(ctx, ca_pem); }

TlsClient::TlsClient(std::uint16_t port, const std::string& ca_pem, const std::string& server_name, int timeout_ms)
    : TrustingContext(ca_pem), HttpClient("localhost", timeout_ms, ctx) {
    SSL_set_tlsext_host_name(stream().native_handle(), server_name.c_str());
    stream().set_verify_callback(ssl::host_name_verification(server_name));
    connect(port);
    auto [ec, n] = run([&](auto handler) {
        stream().async_handshake(ssl::stream_base::client,
                                 [handler](boost::system::error_code e) mutable { handler(e, 0); });
    });
    if (ec) throw boost::system::system_error(ec);
}

std::string TlsClient::peer_common_name() { return common_name(stream().native_handle()); }

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
