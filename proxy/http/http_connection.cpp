#include "proxy/http/http_connection.h"

#include "config/duration.h"
#include "proxy/http/h2_connection.h"
#include "proxy/net/log.h"
#include "proxy/worker/worker_context.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstring>

namespace sluice::proxy {

namespace asio = boost::asio;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxLingerBytes = 1024 * 1024;
constexpr auto kLinger = std::chrono::seconds(2);
// What an HTTP/2 client with prior knowledge sends first (RFC 9113 3.4).
constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

}  // namespace

HttpConnection::HttpConnection(WorkerContext& worker, std::shared_ptr<ListenerInfo> listener, tcp::socket socket)
    : worker_(worker),
      listener_(std::move(listener)),
      client_(std::move(socket)),
      in_(worker.buffers(), true),
      dog_(client_.socket().get_executor()),
      watch_(*this),
      exchange_(*this) {
    boost::system::error_code ec;
    auto peer = client_.socket().remote_endpoint(ec);
    if (!ec) {
        peer_ip_ = peer.address().to_string();
        peer_port_ = peer.port();
    }
    client_.socket().set_option(tcp::no_delay(true), ec);
    listener_->connections.fetch_add(1, std::memory_order_relaxed);
    worker_.add_downstream(this);
}

HttpConnection::~HttpConnection() {
    listener_->connections.fetch_sub(1, std::memory_order_relaxed);
    worker_.remove_downstream(this);
}

void HttpConnection::start() {
    // request_headers counts from accept for the first request (the TLS handshake included).
    const auto& snap = *worker_.view()->snapshot;
    const auto& t = snap.config.timeouts;
    if (listener_->scheme == "https") {
        tls_ = snap.tls_for(listener_->spec.name);
        if (!tls_) return;  // the listener lost TLS in a change that raced this accept: drop the connection
        client_.use_tls(tls_->initial());
    }
    set_phase(Phase::idle, deadline_after(t.request_headers));
    asio::co_spawn(client_.socket().get_executor(), [self = self()] { return self->run(); },
                   log_if_thrown("connection"));
}

bool HttpConnection::draining() const {
    return worker_.draining() || listener_->closing.load(std::memory_order_relaxed);
}

void HttpConnection::set_phase(Phase p, Watchdog::time_point deadline) {
    phase_ = p;
    dog_.fixed(deadline);
    dog_.arm(self());
}

void HttpConnection::set_streaming(Phase p, Watchdog::Clock::duration idle) {
    phase_ = p;
    dog_.streaming(idle);
    dog_.arm(self());
}

void HttpConnection::on_deadline(Watchdog::Which which) {
    timed_out_ = deadline_passed_in(phase_, which == Watchdog::Which::hard, which == Watchdog::Which::idle);
    // Pending operations fail with operation_aborted; the coroutines read timed_out_.
    boost::system::error_code ec;
    client_.socket().cancel(ec);
    exchange_.cancel_upstream();
}

void HttpConnection::close_if_idle() {
    if (phase_ != Phase::idle) return;
    aborted_ = true;
    boost::system::error_code ec;
    client_.socket().cancel(ec);
}

void HttpConnection::client_left() {
    exchange_.client_left();
    aborted_ = true;
    boost::system::error_code ec;
    client_.socket().close(ec);  // a write blocked on a client that stopped reading ends too
}

void HttpConnection::abort(CloseReason) {
    aborted_ = true;
    boost::system::error_code ec;
    client_.socket().close(ec);
    exchange_.close_upstream();
}

void HttpConnection::describe(std::vector<ConnectionInfo>& out) const {
    ConnectionInfo info;
    if (exchange_.describe(info)) out.push_back(std::move(info));
}

std::string HttpConnection::client_address() const {
    if (peer_ip_.find(':') != std::string::npos) return "[" + peer_ip_ + "]:" + std::to_string(peer_port_);
    return peer_ip_ + ":" + std::to_string(peer_port_);
}

asio::awaitable<void> HttpConnection::run() {
    if (client_.tls()) {
        auto ec = co_await client_.handshake(asio::ssl::stream_base::server);
        tls_.reset();  // the SNI callback is done with it
        auto& counts = worker_.stats().listener(listener_->spec.name);
        ++(ec || aborted_ ? counts.tls_handshake_failures : counts.tls_handshakes);
        if (ec || aborted_) {
            // Scanners, plain HTTP on the TLS port, untrusted certificates: not worth a warning each.
            spdlog::debug("TLS handshake with {} on listener \"{}\" failed: {}", client_address(), listener_->spec.name,
                          deadline_passed() ? "timed out (timeouts.request_headers)" : ec.message());
            boost::system::error_code ignored;
            client_.socket().close(ignored);
            dog_.stop();
            co_return;
        }
        const unsigned char* alpn = nullptr;
        unsigned int alpn_len = 0;
        SSL_get0_alpn_selected(client_.ssl(), &alpn, &alpn_len);
        if (alpn_len == 2 && alpn[0] == 'h' && alpn[1] == '2') co_return hand_to_h2();
    }
    bool first = true;
    while (!aborted_) {
        // The awaited values go into locals first: GCC 12 miscompiles some
        // co_await in conditions (see Exchange::relay_piece).
        const bool arrived = co_await wait_for_request(first);
        if (!arrived) break;
        if (first && !client_.tls()) {
            const bool h2 = co_await prior_knowledge();
            if (h2) co_return hand_to_h2();
        }
        exchange_.begin();
        const bool head = co_await read_request_head();
        if (!head) {
            exchange_.finish_refused();
            break;
        }
        ExchangeEnd e = co_await exchange_.run();
        exchange_.finish();
        watch_.disarm();
        dog_.set_hard(Watchdog::time_point::max());
        // Draining: whatever the response said, no further request on this connection.
        if (e == ExchangeEnd::close || aborted_ || draining()) break;
        first = false;
    }
    co_await close_gracefully();
    watch_.forget();
    dog_.stop();
}

asio::awaitable<bool> HttpConnection::wait_for_request(bool first) {
    timed_out_ = Deadline::none;
    // A copy: the worker may move to a newer snapshot while this connection idles.
    const config::Timeouts t = worker_.view()->snapshot->config.timeouts;
    if (!in_.empty()) {  // a pipelined request is already here
        set_phase(Phase::head, deadline_after(t.request_headers));
        co_return true;
    }
    if (!first) set_phase(Phase::idle, deadline_after(t.http_idle));
    if (client_.tls()) {
        // TLS may hold bytes already read from the socket, which a readiness
        // wait would not see: read instead (the buffer stays while idle).
        auto [ec, n] = deadline_passed() ? cancelled_io() : co_await client_.read_some(in_.prepare());
        if (ec || aborted_) co_return false;
        in_.commit(n);
    } else {
        in_.release_if_empty();  // an idle connection holds no pooled buffer
        if (deadline_passed()) co_return false;
        // A read, not a readiness wait: Asio re-arms epoll (one epoll_ctl) for
        // every wait, while a read waits on the registration it already has.
        auto [ec, n] = co_await client_.socket().async_read_some(asio::buffer(idle_read_), nothrow);
        if (ec || aborted_) co_return false;
        std::memcpy(in_.prepare(n).data(), idle_read_, n);
        in_.commit(n);
    }
    if (first) phase_ = Phase::head;  // keeps the deadline counted from accept
    else set_phase(Phase::head, deadline_after(t.request_headers));
    co_return true;
}

asio::awaitable<bool> HttpConnection::prior_knowledge() {
    const auto snapshot = worker_.view()->snapshot;
    const config::ListenerSpec* spec = snapshot->listener(listener_->spec.name);
    if (!spec || !spec->http2) co_return false;
    // The preface may come in pieces; as long as it matches so far, read on.
    while (in_.size() < kH2Preface.size() && kH2Preface.substr(0, in_.size()) == in_.data()) {
        auto [ec, n] = deadline_passed() ? cancelled_io() : co_await client_.read_some(in_.prepare());
        if (ec) co_return false;
        in_.commit(n);
    }
    co_return in_.data().substr(0, kH2Preface.size()) == kH2Preface;
}

void HttpConnection::hand_to_h2() {
    dog_.stop();
    auto h2 = std::make_shared<H2Connection>(worker_, listener_, std::move(client_), in_.data(), peer_ip_, peer_port_);
    in_.consume(in_.size());
    in_.release_if_empty();
    aborted_ = true;
    h2->start();
}

asio::awaitable<bool> HttpConnection::read_request_head() {
    const auto snapshot = worker_.view()->snapshot;
    const auto& limits = snapshot->config.limits;
    for (;;) {
        // RFC 9112 2.2: empty lines before a request line are ignored.
        while (in_.size() >= 2 && in_.data().substr(0, 2) == "\r\n") in_.consume(2);
        std::string_view data = in_.data();
        std::size_t eol = data.find("\r\n");
        if ((eol == std::string_view::npos ? data.size() : eol) > limits.request_line) {
            co_await exchange_.send_error(ErrorKind::uri_too_long,
                                          "the request line is longer than " + config::format_size(limits.request_line) +
                                              " (limits.request_line); shorten the URL or raise the limit",
                                          true);
            co_return false;
        }
        std::size_t end = find_head_end(data);
        if (end > limits.request_headers || (end == 0 && data.size() >= limits.request_headers)) {
            co_await exchange_.send_error(ErrorKind::headers_too_large,
                                          "the request headers are larger than " +
                                              config::format_size(limits.request_headers) +
                                              " (limits.request_headers); send fewer or smaller headers or raise the limit",
                                          true);
            co_return false;
        }
        if (end) co_return co_await exchange_.take_head(end, snapshot->config.paths);
        auto [ec, n] = deadline_passed() ? cancelled_io() : co_await client_.read_some(in_.prepare());
        if (ec) {
            if (timed_out_ == Deadline::request_headers && !in_.empty())
                co_await exchange_.send_error(ErrorKind::request_timeout,
                                              "the request headers did not arrive within " +
                                                  config::describe_duration(snapshot->config.timeouts.request_headers) +
                                                  " (timeouts.request_headers)",
                                              true);
            co_return false;  // the client left, or sent nothing in time
        }
        in_.commit(n);
    }
}

asio::awaitable<void> HttpConnection::close_gracefully() {
    boost::system::error_code ec;
    if (aborted_ || !client_.socket().is_open()) {
        client_.socket().close(ec);
        co_return;
    }
    // Unread client bytes would turn our close into a reset that can destroy the
    // response still in flight; send FIN, then read and discard for a moment.
    bool unread = !in_.empty() || !exchange_.request_body_done();
    set_phase(Phase::closing, Watchdog::Clock::now() + kLinger);
    if (client_.tls() && !deadline_passed()) co_await client_.close_notify();  // TLS says "done" before TCP does
    client_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (unread && !ec) {
        std::size_t discarded = 0;
        while (discarded < kMaxLingerBytes) {
            in_.consume(in_.size());
            auto [rec, n] = deadline_passed() ? cancelled_io() : co_await client_.read_some(in_.prepare());
            if (rec) break;
            discarded += n;
        }
    }
    client_.socket().close(ec);
}

}  // namespace sluice::proxy
