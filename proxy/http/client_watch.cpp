#include "proxy/http/client_watch.h"

#include "proxy/http/http_connection.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstring>

namespace sluice::proxy {

namespace asio = boost::asio;

ClientWatch::ClientWatch(HttpConnection& conn) : conn_(conn), done_(conn.client().socket().get_executor()) {}

void ClientWatch::start_during_exchange() {
    during_exchange_ = true;
    if (state_ != State::reading && conn_.in().size() < kMaxAhead) start();
}

void ClientWatch::start_between() {
    during_exchange_ = false;
    if (state_ != State::reading) start();
}

void ClientWatch::start() {
    stop_ = false;
    state_ = State::reading;
    done_.expires_at(asio::steady_timer::time_point::max());
    read();
}

void ClientWatch::read() {
    // TLS may hold bytes it already took from the socket: read through it into the buffer.
    asio::mutable_buffer into = conn_.client().tls() ? conn_.in().prepare() : asio::buffer(read_);
    conn_.client().async_read_some(into, [keep = conn_.self(), this](const boost::system::error_code& ec,
                                                                     std::size_t n) { on_read(ec, n); });
}

void ClientWatch::on_read(const boost::system::error_code& ec, std::size_t n) {
    if (n > 0) {
        IoBuffer& in = conn_.in();
        if (!conn_.client().tls()) std::memcpy(in.prepare(n).data(), read_, n);
        in.commit(n);
    }
    if (!ec && n > 0) {
        const bool go_on = during_exchange_ && !stop_ && !conn_.aborted() && !conn_.deadline_passed() &&
                           conn_.in().size() < kMaxAhead;
        if (go_on) return read();
        return finish(State::data);
    }
    if (ec == asio::error::operation_aborted || stop_ || conn_.aborted() || conn_.deadline_passed() || !ec)
        return finish(State::stopped);
    // End of stream or a reset: the client is gone.
    const bool during = during_exchange_;
    finish(State::left);
    if (during) conn_.client_left();
}

void ClientWatch::finish(State s) {
    state_ = s;
    during_exchange_ = false;
    done_.cancel();
}

asio::awaitable<void> ClientWatch::join() {
    while (state_ == State::reading) co_await done_.async_wait(asio::as_tuple(asio::use_awaitable));
}

asio::awaitable<void> ClientWatch::stop() {
    if (state_ != State::reading) co_return;
    stop_ = true;
    boost::system::error_code ec;
    conn_.client().socket().cancel(ec);
    co_await join();
}

}  // namespace sluice::proxy
