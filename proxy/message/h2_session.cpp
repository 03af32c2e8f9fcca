#include "proxy/message/h2_session.h"

#include "proxy/message/h2_nv.h"
#include "proxy/message/http_head.h"

#include <boost/beast/core/string.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <stdexcept>

namespace sluice::proxy {

namespace {

// Client stream resets taken before the connection ends with ENHANCE_YOUR_CALM
// (RFC 9113 10.5, "rapid reset"): a burst, then a rate per second. nghttp2's
// own limit (which answers INTERNAL_ERROR) stays as a backstop above it.
constexpr double kResetBurst = 200, kResetRate = 100;

// The HTTP/1.1 hop's fields that HTTP/2 forbids (RFC 9113 8.2.2):
// Content-Length and Trailer mean the same on a stream and stay.
bool connection_specific(http::field id) {
    return is_hop_field(id) && id != http::field::content_length && id != http::field::trailer;
}

}  // namespace

// The C callbacks, with the session as user data.
struct H2Callbacks {
    static H2Session& self(void* p) { return *static_cast<H2Session*>(p); }

    static int begin_headers(nghttp2_session* s, const nghttp2_frame* frame, void* p) {
        if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
        H2Session& me = self(p);
        H2RequestBuilder* builder = me.handler_.on_stream_open(frame->hd.stream_id);
        if (!builder) {
            nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id, H2Session::kRefusedStream);
            return 0;
        }
        builder->reset(me.settings_.max_header_list);
        nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, builder);
        return 0;
    }

    static int header(nghttp2_session* s, const nghttp2_frame* frame, const std::uint8_t* name, std::size_t namelen,
                      const std::uint8_t* value, std::size_t valuelen, std::uint8_t, void* p) {
        if (frame->hd.type != NGHTTP2_HEADERS) return 0;
        auto* builder = static_cast<H2RequestBuilder*>(nghttp2_session_get_stream_user_data(s, frame->hd.stream_id));
        if (frame->headers.cat == NGHTTP2_HCAT_HEADERS) {
            // The request's trailers (nghttp2 has refused pseudo-fields in them).
            if (!builder) return 0;
            const bool ok = self(p).handler_.on_trailer(frame->hd.stream_id,
                                                        {reinterpret_cast<const char*>(name), namelen},
                                                        {reinterpret_cast<const char*>(value), valuelen});
            return ok ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
        if (builder)
            builder->add({reinterpret_cast<const char*>(name), namelen}, {reinterpret_cast<const char*>(value), valuelen});
        return 0;
    }

    static int frame_recv(nghttp2_session* s, const nghttp2_frame* frame, void* p) {
        H2Session& me = self(p);
        const std::int32_t id = frame->hd.stream_id;
        const bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
        switch (frame->hd.type) {
        case NGHTTP2_HEADERS:
            if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
                if (nghttp2_session_get_stream_user_data(s, id)) me.handler_.on_request(id, end);
            } else if (end) {
                me.handler_.on_request_end(id);
            }
            break;
        case NGHTTP2_DATA:
            if (end) me.handler_.on_request_end(id);
            break;
        case NGHTTP2_RST_STREAM:
            if (!me.resets_.take()) nghttp2_session_terminate_session(s, H2Session::kEnhanceYourCalm);
            break;
        default: break;
        }
        return 0;
    }

    static int data_chunk(nghttp2_session* s, std::uint8_t, std::int32_t id, const std::uint8_t* data, std::size_t len,
                          void* p) {
        if (!nghttp2_session_get_stream_user_data(s, id)) {
            // A refused stream: its bytes count against the connection window only.
            nghttp2_session_consume_connection(s, len);
            return 0;
        }
        self(p).handler_.on_body(id, {reinterpret_cast<const char*>(data), len});
        return 0;
    }

    static int stream_close(nghttp2_session* s, std::int32_t id, std::uint32_t code, void* p) {
        if (nghttp2_session_get_stream_user_data(s, id)) self(p).handler_.on_stream_close(id, code);
        return 0;
    }

    static ssize_t read_body(nghttp2_session* s, std::int32_t id, std::uint8_t* buf, std::size_t length,
                             std::uint32_t* flags, nghttp2_data_source*, void* p) {
        return finish_pull(s, id, self(p).handler_.pull_body(id, buf, length), flags);
    }

    static int error(nghttp2_session*, int, const char* msg, std::size_t len, void* p) {
        self(p).error_.assign(msg, len);
        return 0;
    }
};

bool H2Session::Bucket::take() {
    const auto now = std::chrono::steady_clock::now();
    tokens = std::min(kResetBurst, tokens + std::chrono::duration<double>(now - last).count() * kResetRate);
    last = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
}

H2Session::H2Session(Handler& handler, const Settings& settings) : handler_(handler), settings_(settings) {
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_option* opt = nullptr;
    if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0)
        throw std::bad_alloc();
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, H2Callbacks::begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, H2Callbacks::header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, H2Callbacks::frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, H2Callbacks::data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, H2Callbacks::stream_close);
    nghttp2_session_callbacks_set_error_callback2(cbs, H2Callbacks::error);
    // Windows open as sluice passes request bytes on, not as they arrive.
    nghttp2_option_set_no_auto_window_update(opt, 1);
    // Closed streams are forgotten at once (no priority tree to keep them for).
    nghttp2_option_set_no_closed_streams(opt, 1);
    nghttp2_option_set_stream_reset_rate_limit(opt, 4 * kResetBurst, 4 * kResetRate);
    int rv = nghttp2_session_server_new2(&session_, cbs, this, opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    if (rv != 0) throw std::bad_alloc();
    const std::array<nghttp2_settings_entry, 4> iv{{
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, settings_.max_concurrent_streams},
        {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},  // WebSocket over HTTP/2 (RFC 8441)
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<std::uint32_t>(settings_.stream_window)},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<std::uint32_t>(settings_.max_header_list)},
    }};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv.data(), iv.size());
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, settings_.connection_window);
}

H2Session::~H2Session() { nghttp2_session_del(session_); }

bool H2Session::receive(std::string_view bytes) { return receive_bytes(session_, bytes, error_, flooded_); }

void H2Session::take_output(std::string& out, std::size_t max) { take_frames(session_, out, max); }

bool H2Session::finished() const { return session_finished(session_); }

void H2Session::submit_response(std::int32_t stream, const ResponseHead& head, bool end,
                                const std::vector<std::pair<std::string, std::string>>& extra) {
    std::vector<nghttp2_nv> nva;
    std::vector<std::string> names;  // lower-cased copies; nghttp2 copies them again on submit
    nva.reserve(head.fields.size() + extra.size() + 1);
    names.reserve(head.fields.size());
    const std::string status = std::to_string(head.status);
    nva.push_back(make_nv(":status", status));
    for (const auto& f : head.fields) {
        if (connection_specific(f.id) || (head.connection_has(f.name))) continue;
        std::string& name = names.emplace_back(f.name);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        nva.push_back(make_nv(name, f.value));
    }
    for (const auto& [n, v] : extra) nva.push_back(make_nv(n, v));
    nghttp2_data_provider provider{};
    provider.read_callback = H2Callbacks::read_body;
    nghttp2_submit_response(session_, stream, nva.data(), nva.size(), end ? nullptr : &provider);
}

void H2Session::submit_simple(std::int32_t stream, int status,
                              const std::vector<std::pair<std::string, std::string>>& fields, bool has_body) {
    std::vector<nghttp2_nv> nva;
    nva.reserve(fields.size() + 1);
    const std::string s = std::to_string(status);
    nva.push_back(make_nv(":status", s));
    for (const auto& [n, v] : fields) nva.push_back(make_nv(n, v));
    nghttp2_data_provider provider{};
    provider.read_callback = H2Callbacks::read_body;
    nghttp2_submit_response(session_, stream, nva.data(), nva.size(), has_body ? &provider : nullptr);
}

void H2Session::resume_data(std::int32_t stream) { nghttp2_session_resume_data(session_, stream); }

void H2Session::consumed(std::int32_t stream, std::size_t bytes) { nghttp2_session_consume(session_, stream, bytes); }

void H2Session::reset_stream(std::int32_t stream, std::uint32_t code) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream, code);
}

void H2Session::forget_stream(std::int32_t stream) { nghttp2_session_set_stream_user_data(session_, stream, nullptr); }

void H2Session::goaway() {
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_), kNoError,
                          nullptr, 0);
}

}  // namespace sluice::proxy
