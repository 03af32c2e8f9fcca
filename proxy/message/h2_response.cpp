#include "proxy/message/h2_response.h"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/status.hpp>

#include <charconv>

namespace sluice::proxy {

void H2ResponseBuilder::begin_block() {
    // A block after the final head is the trailers; after a 1xx, the next head.
    in_trailers_ = head_ready_;
    status_ = 0;
    has_length_ = false;
    fields_.clear();
}

bool H2ResponseBuilder::add(std::string_view name, std::string_view value) {
    // As a server counts a header list (RFC 9113 6.5.2): name, value and 32 per field.
    bytes_ += name.size() + value.size() + 32;
    if (bytes_ > max_bytes_) {
        refusal_ = "upstream response headers are larger than " + std::to_string(max_bytes_ / 1024) + "KiB";
        return false;
    }
    if (in_trailers_) {
        if (!name.empty() && name.front() != ':') trailers_.emplace_back(name, value);
        return true;
    }
    if (name == ":status") {
        int status = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), status);
        if (ec == std::errc{} && end == value.data() + value.size() && value.size() == 3) status_ = status;
        return true;
    }
    if (!name.empty() && name.front() == ':') return true;  // nghttp2 has checked the pseudo-fields
    if (boost::beast::iequals(name, "content-length")) has_length_ = true;
    fields_ += name;
    fields_ += ": ";
    fields_ += value;
    fields_ += "\r\n";
    return true;
}

bool H2ResponseBuilder::end_block(bool end) {
    if (in_trailers_) {
        ended_ = true;
        return false;
    }
    if (status_ >= 100 && status_ < 200 && !end) return false;  // interim (100, 103): not relayed
    head_ = "HTTP/1.1 ";
    head_ += std::to_string(status_);
    head_ += ' ';
    head_ += boost::beast::http::obsolete_reason(static_cast<boost::beast::http::status>(status_));
    head_ += "\r\n";
    head_ += fields_;
    // DATA frames delimit the body: a head that ends the stream has none;
    // otherwise its length is unknown to the parser (chunked, here).
    if (!has_length_) head_ += end ? "content-length: 0\r\n" : "transfer-encoding: chunked\r\n";
    head_ += "\r\n";
    fields_.clear();
    fields_.shrink_to_fit();
    head_ready_ = true;
    ended_ = end;
    return true;
}

}  // namespace sluice::proxy
