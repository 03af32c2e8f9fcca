#include "tests/support/tls_origin.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace sluice::test {
namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
namespace {
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

std::string common_name(X509* cert) {
    if (!cert) return "";
    char cn[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    return cn;
}
}  // namespace

// One relayed connection: TLS from the client, plaintext to the backend.
struct TlsOrigin::Conn : std::enable_shared_from_this<TlsOrigin::Conn> {
    Conn(tcp::socket s, ssl::context& ctx) : tls(std::move(s), ctx), backend(tls.get_executor()),
                                             reader_done(tls.get_executor()) {
        reader_done.expires_at(asio::steady_timer::time_point::max());
    }
    ssl::stream<tcp::socket> tls;
    tcp::socket backend;
    asio::steady_timer reader_done;
    bool reading = false, closed = false;
    char up[16384], down[16384];

    void close() {
        closed = true;
        boost::system::error_code ignored;
        tls.next_layer().close(ignored);
        backend.close(ignored);
    }

    // Client -> backend; the client's close_notify becomes a FIN.
    asio::awaitable<void> upward() {
        for (;;) {
            reading = true;
            auto [ec, n] = co_await tls.async_read_some(asio::buffer(up), nothrow);
            reading = false;
            reader_done.cancel();
            if (closed) co_return;
            if (ec) {
                boost::system::error_code ignored;
                backend.shutdown(tcp::socket::shutdown_send, ignored);
                co_return;
            }
            auto [wec, m] = co_await asio::async_write(backend, asio::buffer(up, n), nothrow);
            if (wec) co_return close();
        }
    }

    // Backend -> client; the backend's FIN becomes close_notify, then the end.
    asio::awaitable<void> downward() {
        for (;;) {
            auto [ec, n] = co_await backend.async_read_some(asio::buffer(down), nothrow);
            if (closed) co_return;
            if (ec) break;
            auto [wec, m] = co_await asio::async_write(tls, asio::buffer(down, n), nothrow);
            if (wec) co_return close();
        }
        boost::system::error_code ignored;
        if (reading) {  // close_notify cannot go out beside a pending read
            tls.next_layer().cancel(ignored);
            while (reading) co_await reader_done.async_wait(nothrow);
        }
        if (closed) co_return;
        SSL_set_shutdown(tls.native_handle(), SSL_RECEIVED_SHUTDOWN);
        co_await tls.async_shutdown(nothrow);
        close();
    }
};

TlsOrigin::TlsOrigin(std::uint16_t backend_port, const Pem& server, const std::string& client_ca_pem)
    : ctx_(ssl::context::tls_server), acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
      backend_port_(backend_port) {
    ctx_.use_certificate_chain(asio::buffer(server.cert));
    ctx_.use_private_key(asio::buffer(server.key), ssl::context::pem);
    if (!client_ca_pem.empty()) {
        ctx_.add_certificate_authority(asio::buffer(client_ca_pem));
        ctx_.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    }
    port_ = acceptor_.local_endpoint().port();
    accept();
    thread_ = std::thread([this] { io_.run(); });
}

TlsOrigin::~TlsOrigin() {
    io_.stop();
    thread_.join();
}

std::vector<TlsOrigin::Handshake> TlsOrigin::handshakes() const {
    std::lock_guard lock(mu_);
    return handshakes_;
}

void TlsOrigin::accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
        if (ec) return;
        auto c = std::make_shared<Conn>(std::move(s), ctx_);
        asio::co_spawn(io_, [this, c]() -> asio::awaitable<void> {
            auto [hec] = co_await c->tls.async_handshake(ssl::stream_base::server, nothrow);
            boost::system::error_code ignored;
            c->tls.next_layer().set_option(tcp::no_delay(true), ignored);
            if (hec) {
                ++failed_;
                co_return c->close();
            }
            Handshake h;
            if (const char* sni = SSL_get_servername(c->tls.native_handle(), TLSEXT_NAMETYPE_host_name)) h.server_name = sni;
            X509* peer = SSL_get1_peer_certificate(c->tls.native_handle());
            h.client_name = common_name(peer);
            X509_free(peer);
            {
                std::lock_guard lock(mu_);
                handshakes_.push_back(h);
            }
            auto [cec] = co_await c->backend.async_connect(
                tcp::endpoint(asio::ip::make_address("127.0.0.1"), backend_port_), nothrow);
            if (cec) co_return c->close();
            c->backend.set_option(tcp::no_delay(true), ignored);
            asio::co_spawn(io_, [c] { return c->upward(); }, asio::detached);
            co_await c->downward();
        }, asio::detached);
        accept();
    });
}

}  // namespace sluice::test
