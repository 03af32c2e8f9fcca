// One downstream HTTP/2 connection (h2 by ALPN on TLS, h2c by prior knowledge
// on plain TCP): a reader that feeds the client's bytes to the session, a
// writer that sends what the session has to say, and one H2Stream per stream.
// Streams are independent exchanges: each snaps the config at its HEADERS, has
// its own deadlines, and ends on its own; the connection outlives config
// changes and ends when the client goes, on an idle timeout, or after a drain's
// GOAWAY once its streams are done.
//
// Every method runs on the worker thread that accepted the connection.
#pragma once
#include "proxy/message/h2_session.h"
#include "proxy/net/downstream.h"
#include "proxy/net/io_buffer.h"
#include "proxy/net/listener.h"
#include "proxy/net/transport.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

namespace sluice::proxy {

class WorkerContext;
class H2Stream;

class H2Connection final : public Downstream, public H2Session::Handler {
public:
    // `received`: bytes already read from the client (the connection preface).
    H2Connection(WorkerContext& worker, std::shared_ptr<ListenerInfo> listener, Transport client,
                 std::string_view received, std::string peer_ip, std::uint16_t peer_port);
    ~H2Connection();

    void start();

    // Downstream
    void close_if_idle() override;
    void abort(CloseReason reason) override;
    const ListenerInfo* listener() const override { return listener_.get(); }
    void describe(std::vector<ConnectionInfo>& out) const override;

    // For the streams.
    WorkerContext& worker() const { return worker_; }
    const std::shared_ptr<ListenerInfo>& listener_info() const { return listener_; }
    const std::string& peer_ip() const { return peer_ip_; }
    std::string client_address() const;
    bool draining() const;
    boost::asio::any_io_executor executor() { return client_.socket().get_executor(); }
    H2Session& session() { return session_; }
    // The session has frames to send: the writer sends them.
    void flush() { write_wake_.cancel(); }
    // A stream's exchange has ended.
    void stream_done(std::int32_t id);

private:
    // H2Session::Handler
    H2RequestBuilder* on_stream_open(std::int32_t stream) override;
    void on_request(std::int32_t stream, bool end) override;
    void on_body(std::int32_t stream, std::string_view bytes) override;
    bool on_trailer(std::int32_t stream, std::string_view name, std::string_view value) override;
    void on_request_end(std::int32_t stream) override;
    void on_stream_close(std::int32_t stream, std::uint32_t code) override;
    H2Session::Pull pull_body(std::int32_t stream, std::uint8_t* out, std::size_t max) override;

    boost::asio::awaitable<void> read_loop();
    boost::asio::awaitable<void> write_loop();
    // No stream open: the idle timeout (http_idle) runs; a drain ends the connection.
    void became_idle();
    // Nothing more is taken from the client (it left, broke the protocol, or
    // the connection is ending): its streams end, the writer says goodbye.
    void stop_reading();
    void close();
    H2Stream* find(std::int32_t id);

    WorkerContext& worker_;
    std::shared_ptr<ListenerInfo> listener_;
    Transport client_;
    std::string peer_ip_;
    std::uint16_t peer_port_ = 0;
    H2Session session_;
    IoBuffer in_;
    std::string out_;
    std::unordered_map<std::int32_t, std::shared_ptr<H2Stream>> streams_;
    boost::asio::steady_timer write_wake_;
    boost::asio::steady_timer idle_timer_;
    bool reading_ = true;    // the client's frames are taken
    bool write_done_ = false;  // the last frame went out; the connection lingers
    bool read_done_ = false;   // the client closed its side
    bool closed_ = false;
    bool goaway_sent_ = false;
};

}  // namespace sluice::proxy
