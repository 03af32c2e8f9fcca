#include "proxy/message/http_head.h"

#include <boost/beast/core/string.hpp>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace sluice::proxy {

using boost::beast::iequals;

void MessageHead::clear() {
    raw.clear();
    fields.clear();
    version = 11;
    has_content_length = false;
    transfer_encodings = 0;
    content_lengths = 0;
    body_spans.clear();
}

std::string_view MessageHead::find(http::field f) const {
    for (const auto& h : fields)
        if (h.id == f) return h.value;
    return {};
}

bool MessageHead::connection_has(std::string_view token) const {
    for (const auto& h : fields) {
        if (h.id != http::field::connection) continue;
        std::string_view v = h.value;
        while (!v.empty()) {
            auto comma = v.find(',');
            std::string_view t = v.substr(0, comma);
            while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
            while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
            if (iequals(t, token)) return true;
            if (comma == std::string_view::npos) break;
            v.remove_prefix(comma + 1);
        }
    }
    return false;
}

void RequestHead::clear() {
    MessageHead::clear();
    verb = http::verb::unknown;
    method = target = path = query = host = {};
    absolute_form = false;
    hosts = 0;
    normalized_path.clear();
    extended_connect = false;
}

std::string_view RequestHead::host_name() const {
    std::string_view h = host;
    if (!h.empty() && h.front() == '[') {
        auto close = h.find(']');
        return close == std::string_view::npos ? h : h.substr(0, close + 1);
    }
    auto colon = h.rfind(':');
    return colon == std::string_view::npos ? h : h.substr(0, colon);
}

void ResponseHead::clear() {
    MessageHead::clear();
    status = 0;
    reason = {};
}

std::size_t find_head_end(std::string_view data) {
    // The blank line ends at a '\n' with "\r\n\r" before it. A head has a
    // dozen lines, and the vectorised memchr hops from line to line: a third
    // of what memmem's general search costs on a head this short.
    const char* begin = data.data();
    const char* end = begin + data.size();
    for (const char* from = begin + std::min<std::size_t>(3, data.size()); from < end;) {
        const auto* nl = static_cast<const char*>(std::memchr(from, '\n', static_cast<std::size_t>(end - from)));
        if (!nl) return 0;
        if (nl[-1] == '\r' && nl[-2] == '\n' && nl[-3] == '\r') return static_cast<std::size_t>(nl - begin) + 1;
        from = nl + 1;
    }
    return 0;
}

template <bool isRequest>
MessageParser<isRequest>::MessageParser(Head& head) : head_(head) {
    // Our own limits are enforced before the parser sees the head.
    this->header_limit(std::numeric_limits<std::uint32_t>::max());
    this->body_limit(boost::none);
}

template <bool isRequest>
void MessageParser<isRequest>::on_request_impl(http::verb method, boost::beast::string_view method_str, boost::beast::string_view target,
                                               int version, boost::beast::error_code&) {
    if constexpr (isRequest) {
        head_.verb = method;
        head_.method = method_str;
        head_.target = target;
        head_.version = version;
        std::string_view t = target;
        // absolute-form (RFC 9112 3.2.2): the authority becomes the host.
        if (t.size() > 7 && (iequals(t.substr(0, 7), "http://") || (t.size() > 8 && iequals(t.substr(0, 8), "https://")))) {
            t.remove_prefix(t[4] == ':' ? 7 : 8);
            auto slash = t.find_first_of("/?");
            head_.host = t.substr(0, slash);
            head_.absolute_form = true;
            t = slash == std::string_view::npos ? std::string_view{} : t.substr(slash);
        }
        auto q = t.find('?');
        head_.path = t.substr(0, q);
        head_.query = q == std::string_view::npos ? std::string_view{} : t.substr(q);
        // "http://host" and "http://host?q" mean "/"; an origin-form target
        // without a path ("?q") stays empty and is refused.
        if (head_.path.empty() && head_.absolute_form) head_.path = "/";
    }
}

template <bool isRequest>
void MessageParser<isRequest>::on_response_impl(int code, boost::beast::string_view reason, int version, boost::beast::error_code&) {
    if constexpr (!isRequest) {
        head_.status = code;
        head_.reason = reason;
        head_.version = version;
    }
}

template <bool isRequest>
void MessageParser<isRequest>::on_field_impl(http::field name, boost::beast::string_view name_string, boost::beast::string_view value,
                                             boost::beast::error_code& ec) {
    if (this->is_header_done()) {
        // Chunked trailers (Beast bounds them with the header limit): copied,
        // as their bytes are the connection's and are consumed after this.
        switch (name) {
        case http::field::content_length:
        case http::field::transfer_encoding:
        case http::field::host:
        case http::field::connection:
        case http::field::keep_alive:
        case http::field::proxy_connection:
        case http::field::te:
        case http::field::trailer:
        case http::field::upgrade: return;
        default: break;
        }
        std::string lower(name_string);
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        trailers_.emplace_back(std::move(lower), std::string(value));
        return;
    }
    // Every view must point into head_.raw, which lives as long as the head.
    // Beast hands out a view into its own reused buffer for a folded value.
    auto inside = [&](boost::beast::string_view v) {
        const char* b = head_.raw.data();
        return v.empty() || (v.data() >= b && v.data() + v.size() <= b + head_.raw.size());
    };
    if (!inside(name_string) || !inside(value)) {
        ec = http::error::bad_value;
        return;
    }
    head_.fields.push_back({name, name_string, value});
    if (name == http::field::content_length) ++head_.content_lengths;
    if (name == http::field::transfer_encoding) ++head_.transfer_encodings;
    if constexpr (isRequest) {
        if (name == http::field::host) {
            ++head_.hosts;
            if (!head_.absolute_form && head_.hosts == 1) head_.host = value;
        }
    }
}

template <bool isRequest>
void MessageParser<isRequest>::on_header_impl(boost::beast::error_code&) {
    head_.has_content_length = this->content_length().has_value() && !this->chunked();
}

template <bool isRequest>
void MessageParser<isRequest>::on_body_init_impl(boost::optional<std::uint64_t> const&, boost::beast::error_code&) {
    between_chunks_ = this->chunked();
}

template <bool isRequest>
std::size_t MessageParser<isRequest>::on_body_impl(boost::beast::string_view body, boost::beast::error_code&) {
    head_.body_spans.emplace_back(body.data(), body.size());
    body_bytes_ += body.size();
    return body.size();
}

template <bool isRequest>
void MessageParser<isRequest>::on_chunk_header_impl(std::uint64_t size, boost::beast::string_view, boost::beast::error_code&) {
    between_chunks_ = size == 0;
}

template <bool isRequest>
std::size_t MessageParser<isRequest>::on_chunk_body_impl(std::uint64_t remain, boost::beast::string_view body,
                                                         boost::beast::error_code&) {
    head_.body_spans.emplace_back(body.data(), body.size());
    body_bytes_ += body.size();
    if (body.size() == remain) between_chunks_ = true;  // the chunk's last bytes
    return body.size();
}

template <bool isRequest>
void MessageParser<isRequest>::on_finish_impl(boost::beast::error_code&) {
    finished_ = true;
}

template class MessageParser<true>;
template class MessageParser<false>;

bool has_obs_fold(std::string_view head) {
    auto line_end = head.find("\r\n");
    if (line_end == std::string_view::npos) return false;
    // A line that starts with SP or HTAB right after the start line is not a
    // fold but whitespace before the first field; Beast refuses it.
    for (auto i = head.find("\r\n", line_end + 2); i != std::string_view::npos; i = head.find("\r\n", i + 2))
        if (i + 2 < head.size() && (head[i + 2] == ' ' || head[i + 2] == '\t')) return true;
    return false;
}

void replace_obs_fold(std::string& head) {
    auto line_end = head.find("\r\n");
    if (line_end == std::string::npos) return;
    for (auto i = head.find("\r\n", line_end + 2); i != std::string::npos; i = head.find("\r\n", i + 2)) {
        if (i + 2 < head.size() && (head[i + 2] == ' ' || head[i + 2] == '\t')) {
            head[i] = ' ';
            head[i + 1] = ' ';
            for (std::size_t k = i + 2; k < head.size() && (head[k] == ' ' || head[k] == '\t'); ++k) head[k] = ' ';
        }
    }
}

}  // namespace sluice::proxy
