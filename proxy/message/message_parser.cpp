#include "proxy/message/message_parser.h"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>

#include <array>
#include <cstring>
#include <limits>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace sluice::proxy {

namespace {

using boost::system::error_code;
using Error = http::error;

// One table look-up per byte, for each of the three kinds of bytes a head has.
enum ByteClass : std::uint8_t {
    kToken = 1,   // tchar (RFC 9110 5.6.2): names, methods, list elements
    kValue = 2,   // field-value and reason bytes: HTAB, SP, VCHAR, obs-text
    kTarget = 4,  // request-target bytes: VCHAR and obs-text (Beast's reading)
    kHex = 8,
};

constexpr std::array<std::uint8_t, 256> kBytes = [] {
    std::array<std::uint8_t, 256> t{};
    for (int c = 0x21; c <= 0xff; ++c) t[static_cast<std::size_t>(c)] = kValue | kTarget;
    t[0x7f] = 0;
    t[' '] = kValue;
    t['\t'] = kValue;
    for (int c = '0'; c <= '9'; ++c) t[static_cast<std::size_t>(c)] |= kToken | kHex;
    for (int c = 'a'; c <= 'z'; ++c) t[static_cast<std::size_t>(c)] |= kToken;
    for (int c = 'A'; c <= 'Z'; ++c) t[static_cast<std::size_t>(c)] |= kToken;
    for (int c = 'a'; c <= 'f'; ++c) t[static_cast<std::size_t>(c)] |= kHex;
    for (int c = 'A'; c <= 'F'; ++c) t[static_cast<std::size_t>(c)] |= kHex;
    for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] |= kToken;
    return t;
}();

// ASCII case-insensitive, against a lower-case literal; inline, as it runs
// on every Connection and Transfer-Encoding element.
bool iequals(std::string_view v, std::string_view lower) {
    if (v.size() != lower.size()) return false;
    for (std::size_t i = 0; i < v.size(); ++i) {
        const char c = v[i] >= 'A' && v[i] <= 'Z' ? static_cast<char>(v[i] + ('a' - 'A')) : v[i];
        if (c != lower[i]) return false;
    }
    return true;
}

bool is(char c, ByteClass k) { return kBytes[static_cast<unsigned char>(c)] & k; }
bool blank(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view v) {
    while (!v.empty() && blank(v.front())) v.remove_prefix(1);
    while (!v.empty() && blank(v.back())) v.remove_suffix(1);
    return v;
}

bool all_token(std::string_view v) {
    for (char c : v)
        if (!is(c, kToken)) return false;
    return true;
}

bool all_digits(std::string_view v) {
    for (char c : v)
        if (c < '0' || c > '9') return false;
    return true;
}

// A non-empty run of digits that fits 64 bits.
bool parse_decimal(std::string_view n, std::uint64_t& v) {
    if (n.empty()) return false;
    constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
    v = 0;
    for (char c : n) {
        if (c < '0' || c > '9') return false;
        const auto d = static_cast<std::uint64_t>(c - '0');
        if (v > kMax / 10 || kMax - v * 10 < d) return false;
        v = v * 10 + d;
    }
    return true;
}

// Calls `each` with every element of a comma-separated list, blanks trimmed
// (empty ones too). Stops early when `each` returns false.
template <class Each>
bool each_element(std::string_view list, Each&& each) {
    for (;;) {
        const auto comma = list.find(',');
        if (!each(trim(list.substr(0, comma)))) return false;
        if (comma == std::string_view::npos) return true;
        list.remove_prefix(comma + 1);
    }
}

// Transfer-Encoding's codings, read as Beast reads them: tokens between
// commas, up to the first byte that is neither. Whether the first "chunked"
// among them is also the last. (sluice accepts only one "chunked" as a
// whole value; this says how the body is framed until that rule refuses.)
bool last_coding_is_chunked(std::string_view v) {
    const char* p = v.data();
    const char* end = p + v.size();
    bool need_comma = false, chunked = false;
    for (;;) {
        while (p < end && blank(*p)) ++p;
        if (p == end) return chunked;
        if (*p == ',') {
            need_comma = false;
            ++p;
            continue;
        }
        if (!is(*p, kToken) || need_comma) return chunked;
        const char* from = p;
        while (p < end && is(*p, kToken)) ++p;
        if (chunked) return false;  // a coding after chunked
        chunked = iequals(std::string_view(from, static_cast<std::size_t>(p - from)), "chunked");
        need_comma = true;
    }
}

// "HTTP/1.0" or "HTTP/1.1" at `p` (8 bytes there): 10 or 11, else 0.
int parse_version(const char* p) {
    if (std::memcmp(p, "HTTP/", 5) != 0 || p[5] < '0' || p[5] > '9' || p[6] != '.' || p[7] < '0' || p[7] > '9') return 0;
    const int v = 10 * (p[5] - '0') + (p[7] - '0');
    return v == 10 || v == 11 ? v : 0;
}

// The bytes of a field value or reason phrase from `p`: returns the CR that
// ends them, or null with `ec` (need_more when the line has not ended).
const char* value_end(const char* p, const char* end, Error bad, error_code& ec) {
#if defined(__SSE2__)
    // Sixteen bytes at a time: values are most of a head's bytes. A byte
    // ends the run when it is a control other than HTAB, or DEL.
    const __m128i last_control = _mm_set1_epi8(0x1f);
    const __m128i tab = _mm_set1_epi8('\t');
    const __m128i del = _mm_set1_epi8(0x7f);
    while (end - p >= 16) {
        const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        const __m128i control = _mm_cmpeq_epi8(_mm_min_epu8(x, last_control), x);
        const __m128i stop = _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(x, tab), control), _mm_cmpeq_epi8(x, del));
        if (const int mask = _mm_movemask_epi8(stop)) {
            p += __builtin_ctz(static_cast<unsigned>(mask));
            break;
        }
        p += 16;
    }
#endif
    while (p < end && is(*p, kValue)) ++p;
    if (p == end || (*p == '\r' && p + 1 == end)) {
        ec = Error::need_more;
        return nullptr;
    }
    if (*p != '\r') {
        ec = bad;  // a control byte, DEL or a bare LF
        return nullptr;
    }
    if (p[1] != '\n') {
        ec = Error::bad_line_ending;
        return nullptr;
    }
    return p;
}

// chunk-ext (RFC 9112 7.1.1) as Beast reads it: *( BWS ";" BWS name [ BWS "=" BWS value ] ),
// the value a token or a quoted-string. The whole of [p, end) must be one.
bool valid_chunk_extensions(const char* p, const char* end) {
    auto skip_blanks = [&] {
        while (p < end && blank(*p)) ++p;
    };
    auto skip_token = [&] {
        const char* from = p;
        while (p < end && is(*p, kToken)) ++p;
        return p > from;
    };
    while (p < end) {
        skip_blanks();
        if (p == end || *p != ';') return false;
        ++p;
        skip_blanks();
        if (!skip_token()) return false;
        const char* name_end = p;
        skip_blanks();
        if (p == end) return p == name_end;  // blanks end a name only before ';' or '='
        if (*p == ';') continue;
        if (*p != '=') return false;
        ++p;
        skip_blanks();
        if (p < end && *p == '"') {
            for (++p; p < end && *p != '"'; ++p)
                if (*p == '\\' && ++p == end) return false;
            if (p == end) return false;
            ++p;
        } else if (!skip_token()) {
            return false;
        }
    }
    return true;
}

}  // namespace

bool frames_or_connects(http::field f) {
    return is_hop_field(f) || f == http::field::host;
}

template <bool isRequest>
std::optional<std::uint64_t> MessageParser<isRequest>::content_length() const {
    if (!(flags_ & kContentLength)) return std::nullopt;
    return length_;
}

template <bool isRequest>
bool MessageParser<isRequest>::keep_alive() const {
    if (flags_ & kHttp11) {
        if (flags_ & kConnectionClose) return false;
    } else if (!(flags_ & kConnectionKeepAlive)) {
        return false;
    }
    return !(flags_ & kNeedEof);
}

template <bool isRequest>
void MessageParser<isRequest>::parse_head(error_code& ec) {
    ec = {};
    if (state_ != State::head) {
        ec = Error::stale_parser;
        return;
    }
    const char* p = head_.raw.data();
    const char* end = p + head_.raw.size();
    p = parse_start_line(p, end, ec);
    if (!p) return;
    p = parse_fields(p, end, false, ec);
    if (!p) return;
    if (p != end) {
        ec = Error::unexpected_body;  // bytes after the blank line: not a head alone
        return;
    }
    start_body();
}

template <bool isRequest>
const char* MessageParser<isRequest>::parse_start_line(const char* p, const char* end, error_code& ec) {
    if constexpr (isRequest) {
        // method SP request-target SP HTTP-version CRLF
        const char* method = p;
        while (p < end && is(*p, kToken)) ++p;
        if (p == end) return ec = Error::need_more, nullptr;
        if (*p != ' ' || p == method) return ec = Error::bad_method, nullptr;
        const char* target = ++p;
        while (p < end && is(*p, kTarget)) ++p;
        if (p == end) return ec = Error::need_more, nullptr;
        if (*p != ' ' || p == target) return ec = Error::bad_target, nullptr;
        const char* version = ++p;
        if (end - version < 10) return ec = Error::need_more, nullptr;
        head_.version = parse_version(version);
        if (head_.version == 0 || version[8] != '\r' || version[9] != '\n') return ec = Error::bad_version, nullptr;
        head_.method = std::string_view(method, static_cast<std::size_t>(target - 1 - method));
        head_.verb = http::string_to_verb(head_.method);
        head_.target = std::string_view(target, static_cast<std::size_t>(version - 1 - target));
        p = version + 10;

        std::string_view t = head_.target;
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
    } else {
        // HTTP-version SP 3DIGIT SP reason-phrase CRLF
        if (end - p < 9) return ec = Error::need_more, nullptr;
        head_.version = parse_version(p);
        if (head_.version == 0 || p[8] != ' ') return ec = Error::bad_version, nullptr;
        p += 9;
        if (end - p < 4) return ec = Error::need_more, nullptr;
        for (int i = 0; i < 3; ++i)
            if (p[i] < '0' || p[i] > '9') return ec = Error::bad_status, nullptr;
        if (p[3] != ' ') return ec = Error::bad_status, nullptr;
        head_.status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
        p += 4;
        const char* cr = value_end(p, end, Error::bad_reason, ec);
        if (!cr) return nullptr;
        head_.reason = std::string_view(p, static_cast<std::size_t>(cr - p));
        p = cr + 2;
    }
    if (head_.version >= 11) flags_ |= kHttp11;
    return p;
}

template <bool isRequest>
const char* MessageParser<isRequest>::parse_fields(const char* p, const char* end, bool trailer, error_code& ec) {
    for (;;) {
        if (end - p < 2) return ec = Error::need_more, nullptr;
        if (p[0] == '\r') {
            if (p[1] != '\n') return ec = Error::bad_line_ending, nullptr;
            return p + 2;
        }
        // field-name ":" OWS field-value OWS CRLF
        const char* name = p;
        while (p < end && is(*p, kToken)) ++p;
        if (p == end) return ec = Error::need_more, nullptr;
        if (*p != ':' || p == name) return ec = Error::bad_field, nullptr;
        const std::string_view name_view(name, static_cast<std::size_t>(p - name));
        ++p;
        while (p < end && blank(*p)) ++p;
        const char* value = p;
        const char* cr = nullptr;
        for (;;) {
            cr = value_end(p, end, Error::bad_value, ec);
            if (!cr) return nullptr;
            p = cr + 2;
            if (p == end) return ec = Error::need_more, nullptr;
            if (!blank(*p)) break;
            // An obs-fold (RFC 9112 5.2): the next line continues this one.
            if (isRequest || trailer) return ec = Error::bad_obs_fold, nullptr;
            unfold(cr);
        }
        const char* last = cr;
        while (last > value && blank(last[-1])) --last;
        while (value < last && blank(*value)) ++value;  // what a fold left in front
        const std::string_view value_view(value, static_cast<std::size_t>(last - value));
        const http::field id = http::string_to_field(name_view);
        frame_field(id, value_view, ec);
        if (ec) return nullptr;
        if (trailer)
            record_trailer(id, name_view, value_view);
        else
            record_field(id, name_view, value_view);
    }
}

template <bool isRequest>
void MessageParser<isRequest>::unfold(const char* cr) {
    // The head's own copy: the CRLF and the blanks after it become spaces,
    // so the value's view still points into head.raw.
    auto at = static_cast<std::size_t>(cr - head_.raw.data());
    head_.raw[at++] = ' ';
    head_.raw[at++] = ' ';
    while (at < head_.raw.size() && blank(head_.raw[at])) head_.raw[at++] = ' ';
}

template <bool isRequest>
void MessageParser<isRequest>::frame_field(http::field id, std::string_view value, error_code& ec) {
    switch (id) {
    case http::field::connection:
    case http::field::proxy_connection: {
        unsigned seen = 0;
        auto note = [&](std::string_view option) {
            if (iequals(option, "close")) seen |= kConnectionClose;
            if (iequals(option, "keep-alive")) seen |= kConnectionKeepAlive;
        };
        // Nearly always one option: all of it tokens means no comma, so there
        // is no list to split and trim.
        bool valid = true;
        if (all_token(value)) {
            note(value);
        } else {
            valid = each_element(value, [&](std::string_view option) {
                if (!all_token(option)) return false;
                note(option);
                return true;
            });
        }
        if (!valid) {
            ec = Error::bad_value;
            return;
        }
        flags_ |= seen;
        return;
    }
    case http::field::content_length: {
        if (flags_ & kChunked) {
            ec = Error::bad_content_length;
            return;
        }
        // A list of one number, or of the same number repeated.
        std::optional<std::uint64_t> length = content_length();
        bool multiple = false;
        auto one = [&](std::string_view n) {
            std::uint64_t v = 0;
            if (!parse_decimal(n, v)) return false;
            if (length && *length != v) multiple = true;
            length = v;
            return !multiple;
        };
        // Nearly always one number: no list to split and trim.
        const bool valid = all_digits(value) ? one(value) : each_element(value, one);
        if (!valid) {
            ec = multiple ? Error::multiple_content_length : Error::bad_content_length;
            return;
        }
        length_ = *length;
        flags_ |= kContentLength;
        return;
    }
    case http::field::transfer_encoding: {
        if (flags_ & (kChunked | kContentLength)) {
            ec = Error::bad_transfer_encoding;
            return;
        }
        if (last_coding_is_chunked(value)) flags_ |= kChunked;
        return;
    }
    default: return;
    }
}

template <bool isRequest>
void MessageParser<isRequest>::record_field(http::field id, std::string_view name, std::string_view value) {
    head_.fields.push_back({id, name, value});
    if (id == http::field::content_length) ++head_.content_lengths;
    if (id == http::field::transfer_encoding) ++head_.transfer_encodings;
    if constexpr (isRequest) {
        if (id == http::field::host) {
            ++head_.hosts;
            if (!head_.absolute_form && head_.hosts == 1) head_.host = value;
        }
    }
}

template <bool isRequest>
void MessageParser<isRequest>::record_trailer(http::field id, std::string_view name, std::string_view value) {
    if (frames_or_connects(id)) return;
    // Copied: their bytes are the connection's, and are consumed after this.
    std::string lower(name);
    for (char& c : lower)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    trailers_.emplace_back(std::move(lower), std::string(value));
}

template <bool isRequest>
void MessageParser<isRequest>::start_body() {
    head_.has_content_length = (flags_ & kContentLength) != 0;
    bool none = skip_body_;
    if constexpr (!isRequest) none = none || head_.status / 100 == 1 || head_.status == 204 || head_.status == 304;
    if (none) {
        state_ = State::done;
    } else if (flags_ & kContentLength) {
        remaining_ = length_;
        state_ = length_ > 0 ? State::length : State::done;
    } else if (flags_ & kChunked) {
        state_ = State::chunk_size;
    } else if constexpr (isRequest) {
        state_ = State::done;
    } else {
        flags_ |= kNeedEof;
        state_ = State::to_eof;
    }
}

template <bool isRequest>
void MessageParser<isRequest>::take_body(const char* p, std::size_t n) {
    head_.body_spans.emplace_back(p, n);
    body_bytes_ += n;
}

template <bool isRequest>
std::size_t MessageParser<isRequest>::put(boost::asio::const_buffer bytes, error_code& ec) {
    ec = {};
    if (state_ == State::head || state_ == State::done) {
        ec = state_ == State::head ? Error::need_more : Error::stale_parser;
        return 0;
    }
    const char* begin = static_cast<const char*>(bytes.data());
    const char* end = begin + bytes.size();
    const char* p = begin;
    while (p < end && state_ != State::done) {
        const auto left = static_cast<std::size_t>(end - p);
        switch (state_) {
        case State::to_eof:
            take_body(p, left);
            p = end;
            break;
        case State::length:
        case State::chunk_data: {
            const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, left));
            take_body(p, n);
            p += n;
            remaining_ -= n;
            if (remaining_ == 0) state_ = state_ == State::length ? State::done : State::chunk_crlf;
            break;
        }
        case State::chunk_crlf:
            if (left < 2) return static_cast<std::size_t>(p - begin);
            if (p[0] != '\r' || p[1] != '\n') {
                ec = Error::bad_chunk;
                return static_cast<std::size_t>(p - begin);
            }
            p += 2;
            state_ = State::chunk_size;
            break;
        case State::chunk_size: {
            const char* next = parse_chunk_line(p, end, ec);
            if (ec || next == p) return static_cast<std::size_t>(p - begin);
            p = next;
            break;
        }
        case State::head:
        case State::done: break;
        }
    }
    return static_cast<std::size_t>(p - begin);
}

template <bool isRequest>
const char* MessageParser<isRequest>::parse_chunk_line(const char* p, const char* end, error_code& ec) {
    // chunk-size [ chunk-ext ] CRLF
    const auto* cr = static_cast<const char*>(std::memchr(p, '\r', static_cast<std::size_t>(end - p)));
    if (!cr || cr + 1 == end) return p;
    if (cr[1] != '\n') return ec = Error::bad_line_ending, p;
    const char* q = p;
    std::uint64_t size = 0;
    for (; q < cr && is(*q, kHex); ++q) {
        if (size > std::numeric_limits<std::uint64_t>::max() >> 4) return ec = Error::bad_chunk, p;
        const char c = *q;
        size = (size << 4) | static_cast<std::uint64_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    if (q == p) return ec = Error::bad_chunk, p;
    if (!valid_chunk_extensions(q, cr)) return ec = Error::bad_chunk_extension, p;
    if (size > 0) {
        remaining_ = size;
        state_ = State::chunk_data;
        return cr + 2;
    }
    // The last chunk: it is taken with all its trailers, through the blank line.
    const char* eom = end - cr >= 4 && cr[2] == '\r' && cr[3] == '\n' ? cr + 4 : nullptr;
    if (!eom) {
        const auto* found = static_cast<const char*>(memmem(cr, static_cast<std::size_t>(end - cr), "\r\n\r\n", 4));
        if (!found) return p;
        eom = found + 4;
    }
    const char* after = parse_fields(cr + 2, eom, true, ec);
    if (!after) {
        if (ec == Error::need_more) ec = Error::bad_chunk;  // cannot be: the blank line is there
        return p;
    }
    state_ = State::done;
    return after;
}

template <bool isRequest>
void MessageParser<isRequest>::put_eof(error_code& ec) {
    ec = {};
    if (state_ == State::to_eof) {
        state_ = State::done;
        return;
    }
    if (state_ != State::done) ec = Error::partial_message;
}

template class MessageParser<true>;
template class MessageParser<false>;

}  // namespace sluice::proxy
