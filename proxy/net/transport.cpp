#include "proxy/net/transport.h"

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <openssl/err.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>

namespace sluice::proxy {
namespace asio = boost::asio;
namespace {

// OpenSSL's own socket BIO writes with write(2), which raises SIGPIPE on a
// socket the peer reset; this one sends with MSG_NOSIGNAL, and reads the
// staged bytes before the socket. Its data is the Transport's Tls; the socket
// stays Asio's to close.
Transport::Tls& tls_of(BIO* b) { return *static_cast<Transport::Tls*>(BIO_get_data(b)); }

bool retryable(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

int bio_write(BIO* b, const char* data, int len) {
    BIO_clear_retry_flags(b);
    const ssize_t n = ::send(tls_of(b).fd, data, static_cast<std::size_t>(len), MSG_NOSIGNAL);
    if (n < 0 && retryable(errno)) BIO_set_retry_write(b);
    return static_cast<int>(n);
}

int bio_read(BIO* b, char* out, int len) {
    BIO_clear_retry_flags(b);
    Transport::Tls& t = tls_of(b);
    if (t.stage_at < t.stage_end) {
        const std::size_t n = std::min(t.stage_end - t.stage_at, static_cast<std::size_t>(len));
        std::memcpy(out, t.stage.data() + t.stage_at, n);
        t.stage_at += n;
        return static_cast<int>(n);
    }
    if (t.stage_eof) return 0;
    const ssize_t n = ::recv(t.fd, out, static_cast<std::size_t>(len), 0);
    if (n < 0 && retryable(errno)) BIO_set_retry_read(b);
    t.drained = n < len;
    return static_cast<int>(n);
}

long bio_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

int bio_create(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
}

const BIO_METHOD* socket_method() {
    static const BIO_METHOD* method = [] {
        BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sluice socket");
        BIO_meth_set_write(m, bio_write);
        BIO_meth_set_read(m, bio_read);
        BIO_meth_set_ctrl(m, bio_ctrl);
        BIO_meth_set_create(m, bio_create);
        return m;
    }();
    return method;
}

}  // namespace

void Transport::use_tls(asio::ssl::context& ctx) {
    tls_ = std::make_unique<Tls>();
    tls_->ssl.reset(SSL_new(ctx.native_handle()));
    if (!tls_->ssl) throw std::bad_alloc();
    // Partial writes report progress record by record; a write repeated after
    // it would block may pass the same bytes from elsewhere; idle connections
    // hand their buffers back; a read takes what the socket has, not a record.
    SSL_set_mode(tls_->ssl.get(),
                 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    SSL_set_read_ahead(tls_->ssl.get(), 1);
}

bool Transport::attach() {
    if (tls_->attached) return true;
    boost::system::error_code ec;
    socket_.non_blocking(true, ec);
    if (ec || !socket_.is_open()) return false;
    BIO* bio = BIO_new(socket_method());
    if (!bio) return false;
    tls_->fd = socket_.native_handle();
    BIO_set_data(bio, tls_.get());
    SSL_set_bio(tls_->ssl.get(), bio, bio);
    tls_->attached = true;
    return true;
}

Transport::Need Transport::classify(int ret, int saved_errno, boost::system::error_code& ec) {
    switch (SSL_get_error(tls_->ssl.get(), ret)) {
    case SSL_ERROR_WANT_READ:
        return Need::read;
    case SSL_ERROR_WANT_WRITE:
        return Need::write;
    case SSL_ERROR_ZERO_RETURN:  // the peer's close_notify
        ec = asio::error::eof;
        return Need::nothing;
    case SSL_ERROR_SYSCALL: {
        const unsigned long err = ERR_get_error();
        if (err) ec = {static_cast<int>(err), asio::error::get_ssl_category()};
        else if (saved_errno != 0 && !retryable(saved_errno)) ec = {saved_errno, boost::system::system_category()};
        else ec = asio::ssl::error::stream_truncated;  // TCP ended without close_notify
        return Need::nothing;
    }
    case SSL_ERROR_SSL: {
        const unsigned long err = ERR_get_error();
        if (ERR_GET_LIB(err) == ERR_LIB_SSL && ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
            ec = asio::ssl::error::stream_truncated;
        else ec = {static_cast<int>(err), asio::error::get_ssl_category()};
        return Need::nothing;
    }
    default:
        ec = asio::ssl::error::unexpected_result;
        return Need::nothing;
    }
}

asio::awaitable<boost::system::error_code> Transport::wait(Need need) {
    if (need == Need::write || !tls_) {
        auto [ec] = co_await socket_.async_wait(need == Need::write ? tcp::socket::wait_write : tcp::socket::wait_read,
                                                nothrow);
        co_return ec;
    }
    // TLS wants bytes: a read into the stage. OpenSSL only asks once it has
    // taken every staged byte, so the stage is empty here.
    auto [ec, n] = co_await socket_.async_read_some(asio::buffer(tls_->stage), nothrow);
    tls_->stage_at = 0;
    tls_->stage_end = n;
    tls_->drained = n < tls_->stage.size();
    if (ec == asio::error::eof) {  // OpenSSL sees the end itself: close_notify first, or a truncation
        tls_->stage_eof = true;
        co_return boost::system::error_code{};
    }
    co_return ec;
}

bool Transport::buffered() const {
    return tls_ && (SSL_has_pending(tls_->ssl.get()) == 1 || tls_->stage_at < tls_->stage_end || tls_->stage_eof);
}

bool Transport::drained() const { return tls_ && tls_->drained && !buffered(); }

void Transport::close() {
    boost::system::error_code ignored;
    socket_.close(ignored);
    if (released_fd_ >= 0) ::close(released_fd_);
    released_fd_ = -1;
}

int Transport::release_socket() {
    boost::system::error_code ec;
    socket_.non_blocking(true, ec);
    if (ec) return -1;
    const int fd = socket_.release(ec);
    if (ec) return -1;
    released_fd_ = fd;
    return fd;
}

asio::awaitable<boost::system::error_code> Transport::handshake(asio::ssl::stream_base::handshake_type type) {
    if (!tls_) co_return boost::system::error_code{};
    if (!attach()) co_return asio::error::bad_descriptor;
    SSL* ssl = tls_->ssl.get();
    for (;;) {
        ERR_clear_error();
        const int ret = type == asio::ssl::stream_base::client ? SSL_connect(ssl) : SSL_accept(ssl);
        if (ret == 1) co_return boost::system::error_code{};
        const int saved = errno;
        boost::system::error_code ec;
        const Need need = classify(ret, saved, ec);
        if (need == Need::nothing) co_return ec ? ec : asio::ssl::error::unexpected_result;
        if (auto wec = co_await wait(need)) co_return wec;
    }
}

std::size_t Transport::read_now(asio::mutable_buffer b, boost::system::error_code& ec, bool& want_write) {
    ec = {};
    want_write = false;
    if (!tls_) {
        const ssize_t n = ::recv(fd(), b.data(), b.size(), MSG_DONTWAIT);
        if (n > 0) return static_cast<std::size_t>(n);
        if (n == 0) ec = asio::error::eof;
        else if (retryable(errno)) ec = asio::error::would_block;
        else ec = {errno, boost::system::system_category()};
        return 0;
    }
    ERR_clear_error();
    std::size_t n = 0;
    const int ret = SSL_read_ex(tls_->ssl.get(), b.data(), b.size(), &n);
    return done_now(ret, n, ec, want_write);
}

std::size_t Transport::write_now(asio::const_buffer b, boost::system::error_code& ec, bool& want_write) {
    ec = {};
    want_write = true;
    if (!tls_) {
        const ssize_t n = ::send(fd(), b.data(), b.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) return static_cast<std::size_t>(n);
        if (retryable(errno)) ec = asio::error::would_block;
        else ec = {errno, boost::system::system_category()};
        return 0;
    }
    ERR_clear_error();
    std::size_t n = 0;
    const int ret = SSL_write_ex(tls_->ssl.get(), b.data(), b.size(), &n);
    return done_now(ret, n, ec, want_write);
}

std::size_t Transport::send_now(const iovec* pieces, std::size_t count, boost::system::error_code& ec) {
    msghdr m{};
    m.msg_iov = const_cast<iovec*>(pieces);
    m.msg_iovlen = count;
    const ssize_t n = ::sendmsg(fd(), &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (retryable(errno)) ec = asio::error::would_block;
    else ec = {errno, boost::system::system_category()};
    return 0;
}

std::size_t Transport::done_now(int ret, std::size_t n, boost::system::error_code& ec, bool& want_write) {
    if (ret == 1) return n;
    const int saved = errno;  // before anything else can change it
    const Need need = classify(ret, saved, ec);
    if (need != Need::nothing) {
        ec = asio::error::would_block;
        want_write = need == Need::write;
    }
    return 0;
}

asio::awaitable<Transport::Result> Transport::read_some(asio::mutable_buffer b) {
    if (!tls_) {
        // The answer to the last write has most likely come (write yielded):
        // take it without an Asio operation. Not while a write is still in
        // its yield (HTTP/1 bodies are written by their own coroutine): the
        // answer must not overtake the end of that write. Else Asio waits.
        const bool try_now = std::exchange(wrote_now_, false) && !writing_;
        if (try_now && b.size() > 0) {
            const ssize_t n = ::recv(fd(), b.data(), b.size(), MSG_DONTWAIT);
            if (n > 0) co_return Result{boost::system::error_code{}, static_cast<std::size_t>(n)};
            if (n == 0) co_return Result{asio::error::eof, 0};
            if (!retryable(errno)) co_return Result{boost::system::error_code(errno, boost::system::system_category()), 0};
        }
        reading_ = true;
        auto result = co_await socket_.async_read_some(b, nothrow);
        reading_ = false;
        co_return result;
    }
    if (b.size() == 0) co_return Result{};
    Tls& t = *tls_;
    if (t.drained && t.stage_at == t.stage_end && !t.stage_eof && SSL_has_pending(t.ssl.get()) != 1)
        if (auto wec = co_await wait(Need::read)) co_return Result{wec, 0};  // nothing to try before it
    for (;;) {
        boost::system::error_code ec;
        bool want_write = false;
        const std::size_t n = read_now(b, ec, want_write);
        if (ec != asio::error::would_block) co_return Result{ec, n};
        if (auto wec = co_await wait(want_write ? Need::write : Need::read)) co_return Result{wec, 0};
    }
}

asio::awaitable<Transport::Result> Transport::write_tls(asio::const_buffer b) {
    std::size_t done = 0;
    while (done < b.size()) {
        boost::system::error_code ec;
        bool want_write = true;
        done += write_now(b + done, ec, want_write);
        if (ec == asio::error::would_block) {
            // The rest goes again from the same place once the socket allows.
            if (auto wec = co_await wait(want_write ? Need::write : Need::read)) co_return Result{wec, done};
        } else if (ec) {
            co_return Result{ec, done};
        }
    }
    co_return Result{boost::system::error_code{}, done};
}

bool Transport::close_notify_now(bool& want_write) {
    want_write = false;
    if (!tls_ || !tls_->attached || SSL_in_init(tls_->ssl.get())) return true;
    SSL* ssl = tls_->ssl.get();
    // As if the peer's close_notify had arrived: SSL_shutdown sends ours and
    // completes, instead of waiting for an answer that may never come.
    SSL_set_shutdown(ssl, SSL_get_shutdown(ssl) | SSL_RECEIVED_SHUTDOWN);
    ERR_clear_error();
    const int ret = SSL_shutdown(ssl);
    if (ret >= 0) return true;
    const int saved = errno;
    boost::system::error_code ec;
    const Need need = classify(ret, saved, ec);
    if (need == Need::nothing) return true;  // failed: nothing more to send
    want_write = need == Need::write;
    return false;
}

asio::awaitable<void> Transport::close_notify() {
    for (;;) {
        bool want_write = false;
        if (close_notify_now(want_write)) co_return;
        const auto waited = co_await wait(want_write ? Need::write : Need::read);
        if (waited) co_return;
    }
}

}  // namespace sluice::proxy
