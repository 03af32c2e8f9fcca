// The server side of one HTTP/2 connection, without I/O: bytes from the
// client go in through receive(), bytes for the client come out of
// take_output(), and what happens on each stream is told to a Handler. It
// wraps an nghttp2 session (the HTTP/2 library under curl, Apache and Node)
// and is the only code in sluice that sees frames.
//
// Flow control follows backpressure: nghttp2 does not open windows by itself
// (no_auto_window_update); consumed() opens them as the request body bytes
// leave sluice. Abuse is bounded by nghttp2's own counters (stream resets,
// CONTINUATION frames, SETTINGS entries, unanswered PING and SETTINGS ACKs)
// set here, and by the request head limit.
#pragma once
#include "proxy/message/h2_request.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct nghttp2_session;

namespace sluice::proxy {

struct ResponseHead;
using H2Fields = std::vector<std::pair<std::string, std::string>>;

class H2Session {
public:
    struct Settings {
        std::uint32_t max_concurrent_streams = 100;
        std::size_t max_header_list = 64 * 1024;  // limits.request_headers
        std::int32_t stream_window = 64 * 1024;    // request body bytes a stream may have in flight
        std::int32_t connection_window = 1024 * 1024;  // and all streams together
    };

    // What a response body source answers when nghttp2 asks for bytes.
    struct Pull {
        std::size_t bytes = 0;
        bool deferred = false;  // nothing now: resume_data() when there is
        bool end = false;       // the last bytes
        const H2Fields* trailers = nullptr;  // with `end`: sent after them, ending the stream
    };

    // Called from inside receive() and take_output(), on the owner's thread.
    class Handler {
    public:
        virtual ~Handler() = default;
        // A client opens a stream: where its head goes, or null to refuse it.
        virtual H2RequestBuilder* on_stream_open(std::int32_t stream) = 0;
        // The request head is complete; `end` when it has no body.
        virtual void on_request(std::int32_t stream, bool end) = 0;
        virtual void on_body(std::int32_t stream, std::string_view bytes) = 0;
        // A field of the request's trailers. False: the stream is reset (too large).
        virtual bool on_trailer(std::int32_t stream, std::string_view name, std::string_view value) = 0;
        virtual void on_request_end(std::int32_t stream) = 0;
        // The stream is gone (`code` 0: both sides ended it cleanly).
        virtual void on_stream_close(std::int32_t stream, std::uint32_t code) = 0;
        // Response body bytes for the stream, at most `max`, copied into `out`.
        virtual Pull pull_body(std::int32_t stream, std::uint8_t* out, std::size_t max) = 0;
    };

    H2Session(Handler& handler, const Settings& settings);
    ~H2Session();
    H2Session(const H2Session&) = delete;
    H2Session& operator=(const H2Session&) = delete;

    // Bytes from the client. False: the connection must end (a connection
    // error, or a flood); take_output() then has the GOAWAY to send first.
    bool receive(std::string_view bytes);
    // Appends frames ready to go out to `out`, up to about `max` bytes.
    void take_output(std::string& out, std::size_t max);
    // Neither side has anything more to say: the connection can close.
    bool finished() const;
    // Why receive() failed, for the log.
    const std::string& error() const { return error_; }
    // receive() failed on a flood (answers piling up unread): close now, say nothing more.
    bool flooded() const { return flooded_; }

    // A response head (`end`: no body follows). Field names are lower-cased;
    // hop-by-hop fields are left out.
    void submit_response(std::int32_t stream, const ResponseHead& head, bool end,
                         const std::vector<std::pair<std::string, std::string>>& extra = {});
    // A response made of a status and fields alone, with `body` (sluice's own answers).
    void submit_simple(std::int32_t stream, int status, const std::vector<std::pair<std::string, std::string>>& fields,
                       bool has_body);
    // More body bytes wait for a stream whose source said deferred.
    void resume_data(std::int32_t stream);
    // Request body bytes have left sluice: their window opens again.
    void consumed(std::int32_t stream, std::size_t bytes);
    void reset_stream(std::int32_t stream, std::uint32_t code);
    // The stream's owner is gone: its late DATA only counts against the connection window.
    void forget_stream(std::int32_t stream);
    // Graceful end: GOAWAY naming the last stream this connection took;
    // streams up to it run on, no new one is accepted.
    void goaway();
    // RFC 9113 error codes sluice uses.
    static constexpr std::uint32_t kNoError = 0, kInternalError = 2, kRefusedStream = 7, kEnhanceYourCalm = 11;

private:
    // Client stream resets: a token bucket (rapid reset).
    struct Bucket {
        double tokens = 200;
        std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
        bool take();
    };

    Handler& handler_;
    nghttp2_session* session_ = nullptr;
    Bucket resets_;
    Settings settings_;
    std::string error_;
    bool flooded_ = false;
    friend struct H2Callbacks;
};

}  // namespace sluice::proxy
