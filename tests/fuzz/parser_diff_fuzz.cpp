// Fuzz target: sluice's HTTP/1.1 parser against Beast 1.81's, the parser it
// replaced. On the same message both must accept or both refuse, and what
// they accept must read the same: start line, fields, framing, body bytes
// and trailers (of messages with no Transfer-Encoding or one "chunked", the
// only ones sluice lets through). The differences by design (message_parser.h)
// are checked as such:
//  - an obs-fold in a request head or in trailers is refused (Beast
//    unfolds it); in a response head it becomes spaces, which Beast is given
//    already replaced;
//  - a last chunk's line is refused as soon as it is whole (Beast waits for
//    the trailers to end first).
//
// Input: one byte of settings (request or response, a response to HEAD,
// read size), then the message.
#include "fuzz_check.h"
#include "proxy/message/http_head.h"
#include "proxy/message/message_parser.h"

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

#include <string>
#include <utility>
#include <vector>

using namespace sluice::proxy;
namespace http = boost::beast::http;

namespace {

// What a parser read, in a form two parsers can be compared by.
struct Reading {
    std::string start;  // method, target, version / status, reason, version
    std::vector<std::pair<std::string, std::string>> fields;
    std::vector<std::pair<std::string, std::string>> trailers;
    std::string body;
    bool done = false;
};

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

template <bool isRequest>
class Oracle : public http::basic_parser<isRequest> {
public:
    Reading r;

private:
    void on_request_impl(http::verb, boost::beast::string_view method, boost::beast::string_view target, int version,
                         boost::beast::error_code&) override {
        r.start = std::string(method) + " " + std::string(target) + " " + std::to_string(version);
    }
    void on_response_impl(int code, boost::beast::string_view reason, int version, boost::beast::error_code&) override {
        r.start = std::to_string(code) + " " + std::string(reason) + " " + std::to_string(version);
    }
    void on_field_impl(http::field f, boost::beast::string_view name, boost::beast::string_view value,
                       boost::beast::error_code&) override {
        if (!this->is_header_done())
            r.fields.emplace_back(std::string(name), std::string(value));
        else if (!frames_or_connects(f))
            r.trailers.emplace_back(lower(name), std::string(value));
    }
    void on_header_impl(boost::beast::error_code&) override {}
    void on_body_init_impl(boost::optional<std::uint64_t> const&, boost::beast::error_code&) override {}
    std::size_t on_body_impl(boost::beast::string_view body, boost::beast::error_code&) override {
        r.body.append(body.data(), body.size());
        return body.size();
    }
    void on_chunk_header_impl(std::uint64_t, boost::beast::string_view, boost::beast::error_code&) override {}
    std::size_t on_chunk_body_impl(std::uint64_t, boost::beast::string_view body, boost::beast::error_code&) override {
        r.body.append(body.data(), body.size());
        return body.size();
    }
    void on_finish_impl(boost::beast::error_code&) override { r.done = true; }
};

// Beast's reading of a whole message in one put: its error, and whether it ended.
template <bool isRequest>
std::pair<boost::system::error_code, bool> beast_reading(const std::string& head, const std::string& body, bool head_request) {
    Oracle<isRequest> beast;
    beast.header_limit(std::numeric_limits<std::uint32_t>::max());
    beast.body_limit(boost::none);
    beast.eager(true);
    if (head_request) beast.skip(true);
    const std::string all = head + body;
    boost::system::error_code ec;
    beast.put(boost::asio::buffer(all), ec);
    if (ec == http::error::need_more) ec = {};
    return {ec, beast.is_done()};
}

// Whether a line after the first (of a head, or of a body's framing) starts
// with a blank.
bool has_fold(std::string_view bytes) {
    const auto first = bytes.find("\r\n");
    if (first == std::string_view::npos) return false;
    for (auto i = bytes.find("\r\n", first + 2); i != std::string_view::npos; i = bytes.find("\r\n", i + 2))
        if (i + 2 < bytes.size() && (bytes[i + 2] == ' ' || bytes[i + 2] == '\t')) return true;
    return false;
}

// Each obs-fold of a head (CRLF and the blanks after it) as spaces.
std::string unfolded(std::string head) {
    const auto start_line = head.find("\r\n");
    if (start_line == std::string::npos) return head;
    for (auto i = head.find("\r\n", start_line + 2); i != std::string::npos; i = head.find("\r\n", i + 2)) {
        if (i + 2 < head.size() && (head[i + 2] == ' ' || head[i + 2] == '\t')) {
            head[i] = head[i + 1] = ' ';
            for (auto k = i + 2; k < head.size() && (head[k] == ' ' || head[k] == '\t'); ++k) head[k] = ' ';
        }
    }
    return head;
}

template <bool isRequest>
void compare(std::string raw, std::string_view body_bytes, bool head_request, std::size_t step) {
    using Head = typename MessageParser<isRequest>::Head;
    Head head;
    head.raw = raw;
    const std::string beast_raw = isRequest ? raw : unfolded(raw);
    MessageParser<isRequest> ours(head);
    Oracle<isRequest> beast;
    beast.header_limit(std::numeric_limits<std::uint32_t>::max());
    beast.body_limit(boost::none);
    beast.eager(true);
    if (head_request) {
        ours.skip_body();
        beast.skip(true);
    }
    boost::system::error_code ours_ec, beast_ec;
    ours.parse_head(ours_ec);
    const std::size_t used = beast.put(boost::asio::buffer(beast_raw), beast_ec);
    CHECK_MSG(!beast_ec == beast.is_header_done() || beast_ec, "Beast stopped inside a whole head:\n" + raw);
    if (isRequest && ours_ec == http::error::bad_obs_fold) {
        CHECK(has_fold(raw));
        return;
    }
    CHECK_MSG(!ours_ec == !beast_ec, "head: sluice says '" + ours_ec.message() + "', Beast '" + beast_ec.message() +
                                         "' on:\n" + head.raw);
    if (ours_ec) return;
    CHECK(used == head.raw.size());
    CHECK_MSG(head.raw == beast_raw, "unfolded differently:\n" + head.raw + "\nagainst\n" + beast_raw);

    Reading mine;
    if constexpr (isRequest)
        mine.start = std::string(head.method) + " " + std::string(head.target) + " " + std::to_string(head.version);
    else
        mine.start = std::to_string(head.status) + " " + std::string(head.reason) + " " + std::to_string(head.version);
    for (const auto& f : head.fields) {
        CHECK(inside(f.name, head.raw) && inside(f.value, head.raw));
        CHECK(f.id == http::string_to_field(f.name));
        mine.fields.emplace_back(std::string(f.name), std::string(f.value));
    }
    CHECK_MSG(mine.start == beast.r.start, mine.start + " against " + beast.r.start);
    CHECK_MSG(mine.fields == beast.r.fields, "the fields differ in:\n" + head.raw);
    // Past this the framing counts, and sluice refuses every Transfer-Encoding
    // but one "chunked" (message_rules.cpp) before it: how the two parsers
    // frame a message with another one does not matter.
    if (head.transfer_encodings > 1) return;
    if (head.transfer_encodings == 1) {
        std::string_view te = head.find(http::field::transfer_encoding);
        while (!te.empty() && (te.back() == ' ' || te.back() == '\t')) te.remove_suffix(1);
        if (lower(te) != "chunked") return;
    }
    CHECK(ours.chunked() == beast.chunked());
    CHECK(ours.content_length().has_value() == beast.content_length().has_value());
    if (ours.content_length()) CHECK(*ours.content_length() == *beast.content_length());
    CHECK(ours.need_eof() == beast.need_eof());
    CHECK(ours.keep_alive() == beast.keep_alive());
    CHECK(ours.is_done() == beast.is_done());

    // The body: to Beast all at once (fed piecewise, 1.81 asserts on a last
    // chunk split after its line); to sluice's in pieces of `step`, the
    // unconsumed bytes staying in front as in a connection buffer.
    if (!beast.is_done() && !body_bytes.empty()) beast.put(boost::asio::buffer(body_bytes.data(), body_bytes.size()), beast_ec);
    if (beast_ec == http::error::need_more) beast_ec = {};
    std::string buffer;
    std::string_view rest = body_bytes;
    while (!ours.is_done() && !ours_ec && !rest.empty()) {
        buffer.append(rest.substr(0, step));
        rest.remove_prefix(std::min(step, rest.size()));
        const std::size_t n = ours.put(boost::asio::buffer(buffer), ours_ec);
        CHECK(n <= buffer.size());
        for (auto b : ours.body()) {
            CHECK(inside({static_cast<const char*>(b.data()), b.size()}, buffer));
            mine.body.append(static_cast<const char*>(b.data()), b.size());
        }
        ours.body().clear();
        buffer.erase(0, n);
    }
    if (!ours.is_done() && !ours_ec && ours.need_eof()) ours.put_eof(ours_ec);
    if (beast.need_eof() && !beast_ec && !beast.is_done()) beast.put_eof(beast_ec);
    CHECK(ours.body_bytes() == mine.body.size());
    mine.trailers = ours.trailers();

    if (ours_ec && !beast_ec) {
        // By design: see the top of this file.
        const bool fold = ours_ec == http::error::bad_obs_fold && has_fold("\r\n" + std::string(body_bytes));
        // sluice refuses a last chunk's line as soon as it is whole; Beast
        // reads it only once the trailers have ended. Ended here, Beast must
        // refuse it too, or still wait on an open quoted string.
        bool later = false;
        if (!beast.is_done()) {
            const auto [ended_ec, ended_done] = beast_reading<isRequest>(beast_raw, std::string(body_bytes) + "\r\n\r\n", head_request);
            later = ended_ec || (!ended_done && body_bytes.find('"') != std::string_view::npos);
        }
        CHECK_MSG(fold || later, "body: sluice says '" + ours_ec.message() + "', Beast accepts:\n" + head.raw +
                                     std::string(body_bytes));
        return;
    }
    CHECK_MSG(!beast_ec || ours_ec,
              "body: Beast says '" + beast_ec.message() + "', sluice accepts:\n" + head.raw + std::string(body_bytes));
    if (ours_ec || beast_ec) return;
    CHECK_MSG(ours.is_done() == beast.is_done(), "done: " + std::to_string(ours.is_done()) + " in:\n" + head.raw +
                                                    std::string(body_bytes));
    CHECK(mine.body == beast.r.body.substr(0, mine.body.size()));
    if (ours.is_done()) {
        CHECK(mine.body == beast.r.body);
        CHECK(mine.trailers == beast.r.trailers);
        CHECK(ours.keep_alive() == beast.keep_alive());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const bool request = data[0] & 1;
    const bool head_request = !request && (data[0] & 2);
    const std::size_t step = 1 + (data[0] >> 2);
    const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
    const std::size_t end = find_head_end(bytes);
    if (end == 0 || end > 65536) return 0;
    std::string raw = bytes.substr(0, end);
    const std::string_view body = std::string_view(bytes).substr(end);
    if (request)
        compare<true>(std::move(raw), body, false, step);
    else
        compare<false>(std::move(raw), body, head_request, step);
    return 0;
}
