// The bytes of one side of a proxied connection: a plain TCP socket, or TLS
// over it. A client connection and every upstream connection read and write through here,
// so the code above is the same for both; the TCP socket underneath stays
// reachable for options, readiness waits, cancellation and closing.
//
// TLS is OpenSSL reading and writing the non-blocking socket itself, as nginx
// does, not Asio's TLS stream: that stream keeps four 17 KiB buffers per
// connection (its own two and a BIO pair's two) and copies every record
// through them, so an idle wss:// tunnel cost over 80 KiB. Here a record goes
// from the socket into OpenSSL's buffer and out into the caller's, and an idle
// connection holds no record buffer (SSL_MODE_RELEASE_BUFFERS). A write that
// cannot go on waits for the socket's readiness through Asio. A read that
// cannot waits with an Asio read of up to 512 bytes into a small stage that
// OpenSSL reads first: Asio re-arms epoll (an epoll_ctl) for every readiness
// wait, but not for a read, and a request's record usually fits the stage.
#pragma once
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <openssl/ssl.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <memory>
#include <span>
#include <tuple>
#include <vector>

namespace sluice::proxy {

class Transport {
public:
    using tcp = boost::asio::ip::tcp;
    using Result = std::tuple<boost::system::error_code, std::size_t>;

    explicit Transport(tcp::socket socket) : socket_(std::move(socket)) {}
    Transport(Transport&&) noexcept = default;
    Transport& operator=(Transport&&) noexcept = default;
    ~Transport();

    // The TCP socket, whether or not TLS runs over it.
    tcp::socket& socket() { return socket_; }
    const tcp::socket& socket() const { return socket_; }
    bool tls() const { return tls_ != nullptr; }
    SSL* ssl();

    // Before any byte moves: TLS over the socket, starting with `ctx`.
    void use_tls(boost::asio::ssl::context& ctx);
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

    // Without waiting, for callers that keep their own readiness (TlsTunnel):
    // how many bytes moved; 0 with `ec` would_block when the socket must become
    // readable (`want_write` false) or writable (true) first, and 0 with
    // `ec` eof at a clean end. A TLS write that would block must be repeated
    // with the same bytes (they may have moved).
    std::size_t read_now(boost::asio::mutable_buffer b, boost::system::error_code& ec, bool& want_write);
    std::size_t write_now(boost::asio::const_buffer b, boost::system::error_code& ec, bool& want_write);
    // TLS: bytes OpenSSL (or the stage) holds that no readiness event will
    // announce: read_now has something to say without the socket.
    bool buffered() const;
    // After read_now returned bytes: the socket had no more (its last read
    // came back short) and nothing is buffered, so the next read would only
    // find EAGAIN. Plain sockets: the caller knows (a short recv).
    bool drained() const;
    // close_notify without waiting: true when it went out (or cannot go);
    // false when the socket must become writable (`want_write`) or readable first.
    bool close_notify_now(bool& want_write);
    // Takes the descriptor out of Asio for a caller that watches it itself
    // (TlsTunnel), non-blocking; OpenSSL, read_now and write_now keep using
    // it. close() closes it; the caller must call it. -1 when the socket is
    // not open.
    int release_socket();
    // Reads and writes run independently (HTTP/2): a read does not wait for
    // the answer to the last write, and a write goes through Asio, whose
    // deferred completion lets the writer gather more frames for the next.
    void set_duplex() { duplex_ = true; }
    // The descriptor read_now and write_now use: the socket's, or the one
    // release_socket gave away.
    int fd() { return released_fd_ >= 0 ? released_fd_ : socket_.native_handle(); }

    // The socket, or the descriptor release_socket gave away. Idempotent.
    void close();

    // Where the BIO finds the socket and the staged bytes; stays put when the Transport moves.
    struct Tls;

private:
    enum class Need { nothing, read, write };

    boost::asio::awaitable<Result> write_tls(boost::asio::const_buffer b);
    // After an OpenSSL call returned `ret`: what it waits for, or `ec`.
    Need classify(int ret, int saved_errno, boost::system::error_code& ec);
    // The end of read_now and write_now over TLS: `n` after SSL_*_ex returned `ret`.
    std::size_t done_now(int ret, std::size_t n, boost::system::error_code& ec, bool& want_write);
    boost::asio::awaitable<boost::system::error_code> wait(Need need);
    // The socket under OpenSSL, once it is connected.
    bool attach();

    static constexpr auto nothrow = boost::asio::as_tuple(boost::asio::use_awaitable);
    // A plain write's first try, without Asio: one sendmsg of at most
    // kGatherMax pieces. How many bytes went (of `total`); 0 with `ec`
    // would_block when none could, or when there are more pieces than that.
    static constexpr std::size_t kGatherMax = 16;
    template <class Buffers>
    std::size_t try_send(const Buffers& b, std::size_t& total, boost::system::error_code& ec);
    std::size_t send_now(const iovec* pieces, std::size_t count, boost::system::error_code& ec);
    // What is left of `b` after its first `done` bytes.
    template <class Buffers>
    static std::vector<boost::asio::const_buffer> rest_of(const Buffers& b, std::size_t done) {
        std::vector<boost::asio::const_buffer> rest;
        for (auto it = boost::asio::buffer_sequence_begin(b); it != boost::asio::buffer_sequence_end(b); ++it) {
            boost::asio::const_buffer piece(*it);
            const std::size_t skip = std::min(done, piece.size());
            done -= skip;
            if (piece.size() > skip) rest.push_back(piece + skip);
        }
        return rest;
    }

    tcp::socket socket_;
    int released_fd_ = -1;
    // The last write went straight out, with no read waiting, and the
    // worker has run other work since: the next read tries the socket
    // itself before Asio's read.
    bool wrote_now_ = false;
    // One reader and one writer at a time, as for any Asio stream.
    bool writing_ = false;  // a straight write is in its yield
    bool reading_ = false;  // an Asio read is waiting
    bool duplex_ = false;
    std::unique_ptr<Tls> tls_;
};

struct Transport::Tls {
    struct SslFree {
        void operator()(SSL* s) const { SSL_free(s); }
    };
    std::unique_ptr<SSL, SslFree> ssl;
    int fd = -1;
    bool attached = false;
    // Bytes read from the socket by an Asio read, for OpenSSL before the socket.
    std::array<char, 512> stage{};
    std::size_t stage_at = 0, stage_end = 0;
    bool stage_eof = false;  // that read found the end of the stream
    // OpenSSL's last read from the socket came back short: the socket is
    // empty, so the next read starts with the wait instead of an EAGAIN.
    bool drained = false;
};

inline Transport::~Transport() = default;
inline SSL* Transport::ssl() { return tls_ ? tls_->ssl.get() : nullptr; }

template <class Buffers>
std::size_t Transport::try_send(const Buffers& b, std::size_t& total, boost::system::error_code& ec) {
    std::array<iovec, kGatherMax> pieces;
    std::size_t count = 0;
    total = 0;
    for (auto it = boost::asio::buffer_sequence_begin(b); it != boost::asio::buffer_sequence_end(b); ++it) {
        boost::asio::const_buffer piece(*it);
        if (piece.size() == 0) continue;
        if (count == pieces.size()) {
            total = boost::asio::buffer_size(b);
            ec = boost::asio::error::would_block;  // too many pieces: Asio writes them all
            return 0;
        }
        pieces[count++] = iovec{const_cast<void*>(piece.data()), piece.size()};
        total += piece.size();
    }
    return total == 0 ? 0 : send_now(pieces.data(), count, ec);
}

template <class Buffers>
boost::asio::awaitable<Transport::Result> Transport::write(Buffers b) {
    if (!tls_) {
        // Duplex: Asio's write lets the writer's next frames gather meanwhile.
        if (duplex_) co_return co_await boost::asio::async_write(socket_, b, nothrow);
        // Most writes fit in the socket buffer: one sendmsg, with no Asio
        // write operation to build, start and complete.
        boost::system::error_code ec;
        std::size_t total = 0;
        const std::size_t done = try_send(b, total, ec);
        if (done == total || (ec && ec != boost::asio::error::would_block)) {
            if (!ec) {
                // Let the worker's other work run first, as Asio's write
                // would: the caller's read of the answer usually finds it
                // then. (A yield here, not in read_some, keeps the caller's
                // checks between a cancel and the read.)
                writing_ = true;
                co_await boost::asio::post(socket_.get_executor(), boost::asio::use_awaitable);
                writing_ = false;
                // A read already waiting gets the answer from Asio.
                wrote_now_ = !reading_;
            }
            co_return Result{ec, done};
        }
        // The socket is full: Asio waits for room and writes the rest.
        auto [wec, n] = co_await boost::asio::async_write(socket_, rest_of(b, done), nothrow);
        co_return Result{wec, done + n};
    }
    // One SSL_write for the whole sequence: a head, a chunk-size line and a
    // body make full records instead of three records and three sends.
    std::size_t pieces = 0;
    boost::asio::const_buffer only;
    for (auto it = boost::asio::buffer_sequence_begin(b); it != boost::asio::buffer_sequence_end(b); ++it) {
        boost::asio::const_buffer piece(*it);
        if (piece.size() == 0) continue;
        ++pieces;
        only = piece;
    }
    if (pieces <= 1) co_return co_await write_tls(only);
    std::vector<char> joined(boost::asio::buffer_size(b));
    boost::asio::buffer_copy(boost::asio::buffer(joined), b);
    co_return co_await write_tls(boost::asio::buffer(joined));
}

}  // namespace sluice::proxy
