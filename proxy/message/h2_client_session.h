// The client side of one HTTP/2 connection to an upstream, without I/O: the
// upstream's bytes go in through receive(), frames for it come out of
// take_output(), and what happens on each stream is told to a Handler. Like
// H2Session (the server side) it wraps an nghttp2 session and is the only
// code that sees frames of an upstream connection.
//
// Flow control follows backpressure here too: response bytes open their
// stream's window again only when consumed() says they reached the client.
// The connection's window opens as bytes arrive (each stream holds at most its
// own window), so one slow client never stalls the streams of others.
#pragma once
#include "proxy/message/h2_session.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::proxy {

class H2ClientSession {
public:
    struct Settings {
        std::int32_t stream_window = 64 * 1024;        // response body bytes a stream may have in flight
        std::int32_t connection_window = 1024 * 1024;  // and all streams together
        std::size_t max_header_list = 64 * 1024;       // advertised; the handler enforces it
    };

    // Called from inside receive() and take_output(), on the owner's thread.
    class Handler {
    public:
        virtual ~Handler() = default;
        // A HEADERS block begins on a stream sluice opened.
        virtual void on_headers_begin(std::int32_t stream) = 0;
        // One field of it. False: the stream is reset (too large, say).
        virtual bool on_field(std::int32_t stream, std::string_view name, std::string_view value) = 0;
        // The block is complete; `end`: the upstream ended the stream with it.
        virtual void on_headers_end(std::int32_t stream, bool end) = 0;
        virtual void on_data(std::int32_t stream, std::string_view bytes) = 0;
        virtual void on_data_end(std::int32_t stream) = 0;
        // The stream is gone (`code` 0: both sides ended it cleanly).
        virtual void on_stream_close(std::int32_t stream, std::uint32_t code) = 0;
        // Request body bytes for the stream, at most `max`, copied into `out`.
        virtual H2Session::Pull pull_body(std::int32_t stream, std::uint8_t* out, std::size_t max) = 0;
        // The upstream sent GOAWAY: streams above `last_stream` were never processed.
        virtual void on_goaway(std::int32_t last_stream, std::uint32_t code) = 0;
    };

    H2ClientSession(Handler& handler, const Settings& settings);
    ~H2ClientSession();
    H2ClientSession(const H2ClientSession&) = delete;
    H2ClientSession& operator=(const H2ClientSession&) = delete;

    // Opens a stream with a request head (`fields` start with the pseudo-fields);
    // `has_body`: DATA follows, pulled from the handler. Returns the stream id,
    // or a negative value when the session takes no more streams.
    std::int32_t open(const H2Fields& fields, bool has_body);
    // Another stream may be opened now: no GOAWAY, under the peer's
    // MAX_CONCURRENT_STREAMS; before the peer's SETTINGS say what that is, one.
    bool can_open() const;
    // The peer's first SETTINGS frame has arrived.
    bool settings_received() const { return settings_received_; }
    std::size_t open_streams() const { return open_; }

    // Bytes from the upstream. False: the connection must end (take_output()
    // then has the GOAWAY to send first, unless flooded()).
    bool receive(std::string_view bytes);
    void take_output(std::string& out, std::size_t max);
    bool finished() const;
    const std::string& error() const { return error_; }
    bool flooded() const { return flooded_; }

    void resume_data(std::int32_t stream);
    void consumed(std::int32_t stream, std::size_t bytes);
    void reset_stream(std::int32_t stream, std::uint32_t code);
    // The stream's owner is gone: late DATA only counts against the connection window.
    void forget_stream(std::int32_t stream);
    void goaway();
    static constexpr std::uint32_t kCancel = 8;

private:
    Handler& handler_;
    nghttp2_session* session_ = nullptr;
    std::string error_;
    std::size_t open_ = 0;
    bool flooded_ = false;
    bool goaway_ = false;
    bool settings_received_ = false;
    friend struct H2ClientCallbacks;
};

}  // namespace sluice::proxy
