// The one read a client connection has pending while nothing else reads it:
// between requests it waits for the next request's first bytes; during an
// exchange (queued, connecting, waiting for the response head, streaming the
// response) it is the same read started early, so a client that closes or
// resets is seen at once and its upstream is closed (the LLM server stops
// generating for nobody). Bytes that arrive meanwhile are a pipelined request:
// they are kept for it, up to a bound, and never taken for a close.
//
// It costs nothing per request when nobody leaves: the read for the next
// request has to be posted anyway; it is posted when the request has been
// read instead of when the response has been written.
#pragma once
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstddef>

namespace sluice::proxy {

class HttpConnection;

class ClientWatch {
public:
    enum class State {
        idle,     // no read pending
        reading,
        data,     // stopped with bytes in the connection's buffer
        left,     // the client closed (FIN) or reset its connection
        stopped,  // cancelled: by stop(), a deadline or the connection's abort
    };

    explicit ClientWatch(HttpConnection& conn);

    // During an exchange: reads on past a pipelined request's bytes (up to a
    // bound) so a close behind them is still seen; a close calls
    // HttpConnection::client_left().
    void start_during_exchange();
    // Between requests: stops at the first bytes of the next one.
    void start_between();
    // The exchange is over: a read still pending now waits for the next request.
    void exchange_over() { during_exchange_ = false; }
    // Waits until a pending read ends on its own.
    boost::asio::awaitable<void> join();
    // Ends a pending read (its bytes stay in the buffer) and waits for it.
    boost::asio::awaitable<void> stop();
    State state() const { return state_; }
    bool reading() const { return state_ == State::reading; }

private:
    void start();
    void read();
    void on_read(const boost::system::error_code& ec, std::size_t n);
    void finish(State s);

    // Bytes a pipelining client may send ahead while its previous request is
    // answered; past this the watch stops and the kernel holds the rest.
    static constexpr std::size_t kMaxAhead = 16 * 1024;
    // Plain connections read into this, so an idle one holds no pooled buffer.
    static constexpr std::size_t kReadSize = 512;

    HttpConnection& conn_;
    State state_ = State::idle;
    bool during_exchange_ = false;
    bool stop_ = false;
    boost::asio::steady_timer done_;
    char read_[kReadSize];
};

}  // namespace sluice::proxy
