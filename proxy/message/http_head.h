// HTTP/1.1 message heads and a streaming parser built on Beast's basic_parser.
//
// Heads are parsed from a copy of their bytes (so the views below stay valid for
// the whole exchange; a field whose view would point elsewhere, as Beast's
// obs-fold buffer does, is refused by the parser); bodies are parsed in place from the connection's input
// buffer and handed out as views, so body bytes are never copied on their way
// through sluice.
#pragma once
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <string_view>
#include <vector>

namespace sluice::proxy {

namespace http = boost::beast::http;

struct HeaderField {
    http::field id;  // field::unknown for names Beast does not know
    std::string_view name;
    std::string_view value;
};

struct MessageHead {
    std::string raw;  // the head's bytes; every view below points into it
    std::vector<HeaderField> fields;
    int version = 11;  // 10 or 11
    bool has_content_length = false;
    int transfer_encodings = 0;  // Transfer-Encoding lines seen
    int content_lengths = 0;     // Content-Length lines seen
    // Where the message's parser lists body bytes: kept here, with the head
    // that is reused across messages, so its capacity is too (no allocation
    // per message).
    std::vector<boost::asio::const_buffer> body_spans;

    void clear();
    // The first value of a field, or an empty view.
    std::string_view find(http::field f) const;
    // Whether any Connection field lists `token` (case-insensitive).
    bool connection_has(std::string_view token) const;
};

struct RequestHead : MessageHead {
    http::verb verb = http::verb::unknown;
    std::string_view method;
    std::string_view target;  // as received
    std::string_view path;    // target without the query; "/" for absolute-form with no path
    std::string_view query;   // "?..." or empty
    std::string_view host;    // Host field (or authority of an absolute-form target), with port
    bool absolute_form = false;  // the target was "http://authority/path": its authority is the host
    int hosts = 0;               // Host lines seen
    std::string normalized_path;  // where `path` points when normalization changed it
    // HTTP/2 extended CONNECT with :protocol websocket (RFC 8441), read as the
    // GET of a WebSocket upgrade; the stream's DATA frames are the tunnel.
    bool extended_connect = false;

    void clear();
    // Host without port, as received (compare case-insensitively).
    std::string_view host_name() const;
};

struct ResponseHead : MessageHead {
    int status = 0;
    std::string_view reason;
    void clear();
};

// Length of the head at the start of `data` (through the blank line), or 0 when
// the blank line has not arrived yet.
std::size_t find_head_end(std::string_view data);

// Parses one message. Construct a new parser for every message; the head it
// fills is owned by the caller and reused across messages.
template <bool isRequest>
class MessageParser : public http::basic_parser<isRequest> {
public:
    using Head = std::conditional_t<isRequest, RequestHead, ResponseHead>;

    explicit MessageParser(Head& head);

    // Body bytes seen by the last put() calls, as views into the caller's buffer.
    std::vector<boost::asio::const_buffer>& body() { return head_.body_spans; }
    std::uint64_t body_bytes() const { return body_bytes_; }
    // True once the final chunk (or the last byte of a sized body) was parsed.
    bool finished() const { return finished_; }
    // A chunked body whose parser waits for the next chunk-size line (or the
    // last chunk and trailers), with no chunk data pending.
    bool between_chunks() const { return between_chunks_; }
    // The trailers of a chunked body (names lower-cased; fields that frame,
    // route or connect the message are left out, RFC 9110 6.5.1), once parsed.
    const std::vector<std::pair<std::string, std::string>>& trailers() const { return trailers_; }

private:
    void on_request_impl(http::verb method, boost::beast::string_view method_str, boost::beast::string_view target, int version,
                         boost::beast::error_code& ec) override;
    void on_response_impl(int code, boost::beast::string_view reason, int version, boost::beast::error_code& ec) override;
    void on_field_impl(http::field name, boost::beast::string_view name_string, boost::beast::string_view value,
                       boost::beast::error_code& ec) override;
    void on_header_impl(boost::beast::error_code& ec) override;
    void on_body_init_impl(boost::optional<std::uint64_t> const& content_length, boost::beast::error_code& ec) override;
    std::size_t on_body_impl(boost::beast::string_view body, boost::beast::error_code& ec) override;
    void on_chunk_header_impl(std::uint64_t size, boost::beast::string_view extensions, boost::beast::error_code& ec) override;
    std::size_t on_chunk_body_impl(std::uint64_t remain, boost::beast::string_view body, boost::beast::error_code& ec) override;
    void on_finish_impl(boost::beast::error_code& ec) override;

    Head& head_;
    std::uint64_t body_bytes_ = 0;
    bool finished_ = false;
    bool between_chunks_ = false;
    std::vector<std::pair<std::string, std::string>> trailers_;
};

using RequestParser = MessageParser<true>;
using ResponseParser = MessageParser<false>;

extern template class MessageParser<true>;
extern template class MessageParser<false>;

// obs-fold (RFC 9112 5.2): a field line continued on the next line, which
// starts with a space or tab. Only the field section counts, not the start line.
bool has_obs_fold(std::string_view head);
// Replaces each obs-fold (CRLF and the blanks after it) with spaces, in place.
void replace_obs_fold(std::string& head);

}  // namespace sluice::proxy
