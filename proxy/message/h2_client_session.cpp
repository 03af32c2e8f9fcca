#include "proxy/message/h2_client_session.h"

#include "proxy/message/h2_nv.h"

#include <array>
#include <new>

namespace sluice::proxy {

namespace {

// Marks a stream sluice still cares about (its owner has not forgotten it).
char kOwned;

}  // namespace

struct H2ClientCallbacks {
    static H2ClientSession& self(void* p) { return *static_cast<H2ClientSession*>(p); }
    static bool owned(nghttp2_session* s, std::int32_t id) { return nghttp2_session_get_stream_user_data(s, id); }

    static int begin_headers(nghttp2_session* s, const nghttp2_frame* frame, void* p) {
        if (frame->hd.type == NGHTTP2_HEADERS && owned(s, frame->hd.stream_id))
            self(p).handler_.on_headers_begin(frame->hd.stream_id);
        return 0;
    }

    static int header(nghttp2_session* s, const nghttp2_frame* frame, const std::uint8_t* name, std::size_t namelen,
                      const std::uint8_t* value, std::size_t valuelen, std::uint8_t, void* p) {
        if (frame->hd.type != NGHTTP2_HEADERS || !owned(s, frame->hd.stream_id)) return 0;
        const bool ok = self(p).handler_.on_field(frame->hd.stream_id, {reinterpret_cast<const char*>(name), namelen},
                                                  {reinterpret_cast<const char*>(value), valuelen});
        return ok ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets the stream
    }

    static int frame_recv(nghttp2_session* s, const nghttp2_frame* frame, void* p) {
        H2ClientSession& me = self(p);
        const std::int32_t id = frame->hd.stream_id;
        const bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
        switch (frame->hd.type) {
        case NGHTTP2_HEADERS:
            if (owned(s, id)) me.handler_.on_headers_end(id, end);
            break;
        case NGHTTP2_DATA:
            if (end && owned(s, id)) me.handler_.on_data_end(id);
            break;
        case NGHTTP2_SETTINGS:
            if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) me.settings_received_ = true;
            break;
        case NGHTTP2_GOAWAY:
            me.goaway_ = true;
            me.handler_.on_goaway(frame->goaway.last_stream_id, frame->goaway.error_code);
            break;
        default: break;
        }
        return 0;
    }

    static int data_chunk(nghttp2_session* s, std::uint8_t, std::int32_t id, const std::uint8_t* data, std::size_t len,
                          void* p) {
        if (!owned(s, id)) {
            nghttp2_session_consume(s, id, len);  // nobody takes them: the windows open again
            return 0;
        }
        // The connection's window opens at once, the stream's only as the client
        // takes the bytes: a slow client holds its own stream, never the
        // connection other clients' streams share.
        nghttp2_session_consume_connection(s, len);
        self(p).handler_.on_data(id, {reinterpret_cast<const char*>(data), len});
        return 0;
    }

    static int stream_close(nghttp2_session* s, std::int32_t id, std::uint32_t code, void* p) {
        H2ClientSession& me = self(p);
        if (me.open_) --me.open_;
        if (owned(s, id)) me.handler_.on_stream_close(id, code);
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

H2ClientSession::H2ClientSession(Handler& handler, const Settings& settings) : handler_(handler) {
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_option* opt = nullptr;
    if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0) throw std::bad_alloc();
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, H2ClientCallbacks::begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, H2ClientCallbacks::header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, H2ClientCallbacks::frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, H2ClientCallbacks::data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, H2ClientCallbacks::stream_close);
    nghttp2_session_callbacks_set_error_callback2(cbs, H2ClientCallbacks::error);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_no_closed_streams(opt, 1);
    // A peer that never advertises a limit still gets at most this many streams from sluice.
    nghttp2_option_set_peer_max_concurrent_streams(opt, 100);
    int rv = nghttp2_session_client_new2(&session_, cbs, this, opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    if (rv != 0) throw std::bad_alloc();
    const std::array<nghttp2_settings_entry, 3> iv{{
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<std::uint32_t>(settings.stream_window)},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<std::uint32_t>(settings.max_header_list)},
    }};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv.data(), iv.size());
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, settings.connection_window);
}

H2ClientSession::~H2ClientSession() { nghttp2_session_del(session_); }

std::int32_t H2ClientSession::open(const H2Fields& fields, bool has_body) {
    if (!can_open()) return -1;
    std::vector<nghttp2_nv> nva;
    nva.reserve(fields.size());
    for (const auto& [n, v] : fields) nva.push_back(make_nv(n, v));
    nghttp2_data_provider provider{};
    provider.read_callback = H2ClientCallbacks::read_body;
    const std::int32_t id =
        nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), has_body ? &provider : nullptr, &kOwned);
    if (id > 0) ++open_;
    return id;
}

bool H2ClientSession::can_open() const {
    if (goaway_ || !nghttp2_session_check_request_allowed(session_)) return false;
    // Until the peer says how many streams it takes, it may be fewer than
    // nghttp2 assumes (100): streams over its limit would be refused.
    if (!settings_received_) return open_ == 0;
    return open_ < nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

bool H2ClientSession::receive(std::string_view bytes) { return receive_bytes(session_, bytes, error_, flooded_); }

void H2ClientSession::take_output(std::string& out, std::size_t max) { take_frames(session_, out, max); }

bool H2ClientSession::finished() const { return session_finished(session_); }

void H2ClientSession::resume_data(std::int32_t stream) { nghttp2_session_resume_data(session_, stream); }

void H2ClientSession::consumed(std::int32_t stream, std::size_t bytes) {
    nghttp2_session_consume_stream(session_, stream, bytes);
}

void H2ClientSession::reset_stream(std::int32_t stream, std::uint32_t code) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream, code);
}

void H2ClientSession::forget_stream(std::int32_t stream) {
    nghttp2_session_set_stream_user_data(session_, stream, nullptr);
}

void H2ClientSession::goaway() {
    goaway_ = true;
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, nullptr, 0);
}

}  // namespace sluice::proxy
