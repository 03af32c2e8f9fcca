// One HTTP/2 connection to an upstream endpoint (h2c, or h2 by ALPN over
// TLS), shared by the exchanges of one worker: a reader feeds the upstream's
// bytes to the session, a writer sends what the session has to say, and each
// exchange has its own stream (H2UpstreamStream). It opens streams up to the
// peer's MAX_CONCURRENT_STREAMS; the pool then opens another connection.
// After a GOAWAY, or when the upstream goes, it takes no new stream and
// leaves the pool; idle, it closes after the pool's idle time.
//
// Every method runs on the worker thread that made it.
#pragma once
#include "proxy/http/ready_waiters.h"
#include "proxy/message/h2_client_session.h"
#include "proxy/net/upstream_pool.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

namespace sluice::proxy {

class H2UpstreamStream;

class H2UpstreamConn final : public MultiplexedConn,
                             public H2ClientSession::Handler,
                             public std::enable_shared_from_this<H2UpstreamConn> {
public:
    // `conn`: connected (and through its TLS handshake, h2 agreed by ALPN).
    H2UpstreamConn(std::shared_ptr<UpstreamConn> conn, std::weak_ptr<EndpointPool> pool);
    ~H2UpstreamConn() override;

    void start();

    // Opens a stream for `s` with a request head. False: this connection
    // takes no more streams (the exchange opens another connection).
    bool open(const std::shared_ptr<H2UpstreamStream>& s, const H2Fields& fields, bool has_body);
    // The exchange is done with its stream: reset if it is still open.
    void release(H2UpstreamStream& s);
    // More request body bytes wait for the stream.
    void resume(std::int32_t id);
    // `n` response body bytes of the stream reached the client: its window opens again.
    void consumed(std::int32_t id, std::size_t n);
    // The upstream went away or broke the protocol: the reason, for the client's error.
    const std::string& failure() const { return failure_; }
    // Streams above this id were never processed by the upstream (GOAWAY).
    std::int32_t last_processed() const { return last_processed_; }

    // MultiplexedConn
    bool can_open() const override { return !closed_ && session_.can_open(); }
    bool starting() const override { return !closed_ && in_pool_ && !session_.settings_received(); }
    // Until the peer's SETTINGS arrived or the connection closed.
    boost::asio::awaitable<void> wait_ready(std::chrono::steady_clock::duration limit) override;
    bool idle(std::chrono::steady_clock::time_point& since) const override;
    void close() override;

private:
    // H2ClientSession::Handler
    void on_headers_begin(std::int32_t stream) override;
    bool on_field(std::int32_t stream, std::string_view name, std::string_view value) override;
    void on_headers_end(std::int32_t stream, bool end) override;
    void on_data(std::int32_t stream, std::string_view bytes) override;
    void on_data_end(std::int32_t stream) override;
    void on_stream_close(std::int32_t stream, std::uint32_t code) override;
    H2Session::Pull pull_body(std::int32_t stream, std::uint8_t* out, std::size_t max) override;
    void on_goaway(std::int32_t last_stream, std::uint32_t code) override;

    boost::asio::awaitable<void> read_loop();
    boost::asio::awaitable<void> write_loop();
    void flush() { write_wake_.cancel(); }
    H2UpstreamStream* find(std::int32_t id);
    // No new stream goes here: the pool forgets it.
    void leave_pool();

    std::shared_ptr<UpstreamConn> conn_;
    std::weak_ptr<EndpointPool> pool_;
    H2ClientSession session_;
    std::string out_;
    std::unordered_map<std::int32_t, std::shared_ptr<H2UpstreamStream>> streams_;
    boost::asio::steady_timer write_wake_;
    ReadyWaiters ready_waiters_;  // exchanges waiting for the peer's SETTINGS
    std::chrono::steady_clock::time_point idle_since_;
    std::string failure_;
    std::int32_t last_processed_ = INT32_MAX;
    bool closed_ = false;
    bool in_pool_ = true;
};

}  // namespace sluice::proxy
