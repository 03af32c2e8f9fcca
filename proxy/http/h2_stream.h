// One stream of an HTTP/2 client connection, as its exchange sees the client:
// its own deadlines (a Watchdog per stream), the request body bytes the
// connection received for it, and the response bytes waiting for nghttp2 to
// pull them as the client's window allows. A reset of the stream, or the
// connection going away, ends the exchange as a client leaving does.
//
// Every method runs on the worker thread of the connection.
#pragma once
#include "proxy/http/client_side.h"
#include "proxy/http/h2_exchange.h"
#include "proxy/message/h2_request.h"
#include "proxy/message/h2_session.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sluice::proxy {

class H2Connection;

class H2Stream final : public ClientSide, public std::enable_shared_from_this<H2Stream> {
public:
    H2Stream(std::shared_ptr<H2Connection> conn, std::int32_t id);

    H2RequestBuilder& builder() { return builder_; }
    // Its head was complete and its exchange runs (then it ends itself with stream_done).
    bool started() const { return started_; }
    // The request head is complete: the exchange runs.
    void start(bool request_ended);

    // From the connection (H2Session::Handler events).
    void on_body(std::string_view bytes);
    void on_request_end();
    // A field of the request's trailers; false past `limit` (with the head's bytes).
    bool on_trailer(std::string_view name, std::string_view value, std::size_t limit);
    const H2Fields& trailers() const { return trailers_in_; }
    // The stream was reset by the client or the connection is gone.
    void on_gone();
    H2Session::Pull pull_body(std::uint8_t* out, std::size_t max);
    bool describe(ConnectionInfo& out) const { return exchange_.describe(out); }
    void abort();

    // For the exchange: the request body.
    bool request_ended() const { return request_ended_; }
    std::string_view body() const { return std::string_view(body_in_).substr(body_off_); }
    // `n` body bytes went upstream: the client may send as many more.
    void consume_body(std::size_t n);
    // Waits for more body bytes, the end of the body, or the stream ending.
    boost::asio::awaitable<void> wait_body();
    void wake_body() { body_wake_.cancel(); }
    // For the exchange: the response.
    void submit_head(const ResponseHead& head, bool end, const std::vector<std::pair<std::string, std::string>>& extra);
    // A 200 that opens a tunnel (extended CONNECT): DATA follows both ways.
    void submit_tunnel_head(const H2Fields& fields);
    void submit_answer(int status, const std::vector<std::pair<std::string, std::string>>& fields, std::string_view body);
    // Queues body bytes (views that stay valid until this returns) and waits
    // until nghttp2 has taken them all; `trailers` (with `last`) follow them.
    // False: the stream is gone or timed out.
    boost::asio::awaitable<bool> send_body(const std::vector<boost::asio::const_buffer>& body, bool last,
                                           const H2Fields* trailers = nullptr);
    // Waits until an answer made by sluice was taken (or the stream ended, or
    // a deadline passed during the wait). False: it was not.
    boost::asio::awaitable<bool> wait_answer_taken();
    bool gone() const { return gone_; }

    // ClientSide
    WorkerContext& worker() const override;
    const std::shared_ptr<ListenerInfo>& listener_info() const override;
    const std::string& peer_ip() const override;
    std::string client_address() const override;
    bool draining() const override;
    boost::asio::any_io_executor executor() override;
    std::shared_ptr<void> keep_alive() override { return shared_from_this(); }
    Watchdog& watchdog() override { return dog_; }
    void set_phase(Phase p, Watchdog::time_point deadline) override;
    void set_streaming(Phase p, Watchdog::Clock::duration idle) override;
    Phase phase() const override { return phase_; }
    Deadline timed_out() const override { return timed_out_; }
    void clear_timeout() override { timed_out_ = Deadline::none; }
    bool aborted() const override { return gone_; }
    // The connection reads all the time, so a client leaving is seen anyway.
    void watch_for_hangup() override {}

    // Watchdog owner interface.
    void on_deadline(Watchdog::Which which);

private:
    boost::asio::awaitable<void> run();

    std::shared_ptr<H2Connection> conn_;
    const std::int32_t id_;
    H2RequestBuilder builder_;
    H2Exchange exchange_;
    Watchdog dog_;
    Phase phase_ = Phase::head;
    Deadline timed_out_ = Deadline::none;
    std::uint64_t deadlines_ = 0;  // deadlines passed so far
    bool gone_ = false;
    bool started_ = false;
    bool running_ = false;  // its exchange has begun and not yet finished

    std::string body_in_;  // request body bytes not yet upstream, from body_off_
    std::size_t body_off_ = 0;
    bool request_ended_ = false;
    H2Fields trailers_in_;  // the request's trailers, sent upstream after its body
    std::size_t trailer_bytes_ = 0;
    boost::asio::steady_timer body_wake_;

    std::vector<boost::asio::const_buffer> out_;  // response bytes nghttp2 has not taken yet
    std::size_t out_index_ = 0;
    bool out_last_ = false;  // the end of the body is queued
    const H2Fields* out_trailers_ = nullptr;  // sent after it
    bool out_done_ = false;  // and was taken
    std::string answer_;     // the body of an answer made by sluice
    boost::asio::steady_timer out_wake_;
};

}  // namespace sluice::proxy
