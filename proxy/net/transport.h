// The bytes of one side of a proxied connection: a plain TCP socket, or TLS
// over it. A client connection and every upstream connection read and write through here,
// so the code above is the same for both; the TCP socket underneath stays
// reachable for options, readiness waits, cancellation and closing.
#pragma once
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <optional>
#include <span>
#include <tuple>
#include <vector>

namespace sluice::proxy {

class Transport {
public:
    using tcp = boost::asio::ip::tcp;
    using Result = std::tuple<boost::system::error_code, std::size_t>;

    explicit Transport(tcp::socket socket) : plain_(std::move(socket)) {}

    // The TCP socket, whether or not TLS runs over it.
    tcp::socket& socket() { return tls_ ? tls_->next_layer() : plain_; }
    const tcp::socket& socket() const { return tls_ ? tls_->next_layer() : plain_; }
    bool tls() const { return tls_.has_value(); }
    SSL* ssl() { return tls_ ? tls_->native_handle() : nullptr; }

    // Before any byte moves: TLS over the socket, starting with `ctx`.
    void use_tls(boost::asio::ssl::context& ctx) { tls_.emplace(std::move(plain_), ctx); }
    // The TLS handshake as server (a client connection) or client (an upstream); plain: nothing.
    boost::asio::awaitable<boost::system::error_code> handshake(boost::asio::ssl::stream_base::handshake_type type);

    boost::asio::awaitable<Result> read_some(boost::asio::mutable_buffer b);
    // `b` by value: a buffer or a view of buffers, kept in the coroutine frame.
    template <class Buffers>
    boost::asio::awaitable<Result> write(Buffers b);
    // A gather list the caller keeps alive: written as a view, so the write
    // operation does not copy the vector (an allocation per write).
    boost::asio::awaitable<Result> write(const std::vector<boost::asio::const_buffer>& b) {
        return write(std::span<const boost::asio::const_buffer>(b));
    }

    // TLS: sends close_notify without waiting for the peer's (many peers never
    // send one). Plain: nothing. The caller shuts the socket down after.
    boost::asio::awaitable<void> close_notify();

    void close() {
        boost::system::error_code ignored;
        socket().close(ignored);
    }

private:
    static constexpr auto nothrow = boost::asio::as_tuple(boost::asio::use_awaitable);
    tcp::socket plain_;
    std::optional<boost::asio::ssl::stream<tcp::socket>> tls_;
};

template <class Buffers>
boost::asio::awaitable<Transport::Result> Transport::write(Buffers b) {
    if (!tls_) co_return co_await boost::asio::async_write(plain_, b, nothrow);
    // Asio's TLS stream writes one buffer of a sequence at a time: a head, a
    // chunk-size line and a body would go out as three records and three
    // sendmsg calls. Copied into one buffer they make full records instead.
    std::size_t pieces = 0;
    for (auto it = boost::asio::buffer_sequence_begin(b); it != boost::asio::buffer_sequence_end(b); ++it)
        pieces += boost::asio::const_buffer(*it).size() > 0;
    if (pieces <= 1) co_return co_await boost::asio::async_write(*tls_, b, nothrow);
    std::vector<char> joined(boost::asio::buffer_size(b));
    boost::asio::buffer_copy(boost::asio::buffer(joined), b);
    co_return co_await boost::asio::async_write(*tls_, boost::asio::buffer(joined), nothrow);
}

}  // namespace sluice::proxy
