#include "proxy/net/transport.h"

#include <openssl/ssl.h>

namespace sluice::proxy {

boost::asio::awaitable<boost::system::error_code> Transport::handshake(
    boost::asio::ssl::stream_base::handshake_type type) {
    if (!tls_) co_return boost::system::error_code{};
    auto [ec] = co_await tls_->async_handshake(type, nothrow);
    co_return ec;
}

boost::asio::awaitable<Transport::Result> Transport::read_some(boost::asio::mutable_buffer b) {
    if (tls_) co_return co_await tls_->async_read_some(b, nothrow);
    co_return co_await plain_.async_read_some(b, nothrow);
}

boost::asio::awaitable<void> Transport::close_notify() {
    if (!tls_) co_return;
    // As if the peer's close_notify had arrived: SSL_shutdown sends ours and
    // completes, instead of waiting for an answer that may never come.
    SSL_set_shutdown(tls_->native_handle(), SSL_RECEIVED_SHUTDOWN);
    co_await tls_->async_shutdown(nothrow);
}

}  // namespace sluice::proxy
