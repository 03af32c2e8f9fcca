#include "proxy/message/h2_nv.h"

#include <vector>

namespace sluice::proxy {

nghttp2_nv make_nv(std::string_view name, std::string_view value) {
    return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
            reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
            NGHTTP2_NV_FLAG_NONE};
}

ssize_t finish_pull(nghttp2_session* session, std::int32_t stream, const H2Session::Pull& pull, std::uint32_t* flags) {
    if (pull.deferred && pull.bytes == 0) return NGHTTP2_ERR_DEFERRED;
    if (pull.end) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (pull.trailers && !pull.trailers->empty()) {
            // The trailers end the stream (gRPC's grpc-status travels here).
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            std::vector<nghttp2_nv> nva;
            nva.reserve(pull.trailers->size());
            for (const auto& [n, v] : *pull.trailers) nva.push_back(make_nv(n, v));
            nghttp2_submit_trailer(session, stream, nva.data(), nva.size());
        }
    }
    return static_cast<ssize_t>(pull.bytes);
}

bool receive_bytes(nghttp2_session* session, std::string_view bytes, std::string& error, bool& flooded) {
    auto rv = nghttp2_session_mem_recv(session, reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    if (rv < 0) {
        if (error.empty()) error = nghttp2_strerror(static_cast<int>(rv));
        // A flood ends the connection at once; other errors queue their GOAWAY.
        flooded = rv == NGHTTP2_ERR_FLOODED;
        if (!flooded) nghttp2_session_terminate_session(session, NGHTTP2_PROTOCOL_ERROR);
        return false;
    }
    return nghttp2_session_want_read(session) != 0;
}

void take_frames(nghttp2_session* session, std::string& out, std::size_t max) {
    while (out.size() < max) {
        const std::uint8_t* data = nullptr;
        auto n = nghttp2_session_mem_send(session, &data);
        if (n <= 0) break;
        out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    }
}

bool session_finished(nghttp2_session* session) {
    return !nghttp2_session_want_read(session) && !nghttp2_session_want_write(session);
}

}  // namespace sluice::proxy
