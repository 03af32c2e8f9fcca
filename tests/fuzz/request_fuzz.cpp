// Fuzz target: one request as sluice reads it (head rules, body framing with
// its bounds) and as it forwards it. Whatever sluice accepts must reach the
// upstream as exactly one request that an independent strict parser (Beast's
// own, fresh) reads with the same method, target, Host and body bytes.
//
// Input: five bytes of settings (path rules, read size, trailer limit), then
// the bytes a client sends.
#include "fuzz_check.h"
#include "proxy/message/forward_headers.h"
#include "proxy/message/http_head.h"
#include "proxy/message/message_parser.h"
#include "proxy/message/message_rules.h"

#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <optional>
#include <string>

using namespace sluice::proxy;
namespace http = boost::beast::http;

// A head may be up to 64 KiB from the client plus what sluice adds; the
// upstream's reader here takes any size (Beast's default stops at 8 KiB).
constexpr std::uint32_t kUpstreamHeadLimit = 1 << 20;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 5) return 0;
    sluice::config::Paths paths;
    paths.encoded_slash = static_cast<sluice::config::Paths::EncodedSlash>(data[0] % 3);
    paths.merge_slashes = data[0] & 4;
    const std::size_t step = 1 + (data[1] | data[2] << 8) % 8192;
    const std::size_t trailer_limit = 64 + (data[3] | data[4] << 8) % 65473;
    const std::string bytes(reinterpret_cast<const char*>(data) + 5, size - 5);

    // The session waits for the whole head (within limits.request_headers).
    const std::size_t end = find_head_end(bytes);
    if (end == 0 || end > 65536) return 0;
    RequestHead head;
    head.raw = bytes.substr(0, end);
    RequestParser parser(head);
    if (auto refusal = parse_request_head(head, parser, paths)) {
        CHECK(!refusal->message.empty());
        CHECK(status_of(refusal->kind) >= 400);
        return 0;
    }
    // No view outlives its bytes: every one points into the head's own copy.
    for (const auto& f : head.fields) CHECK(inside(f.name, head.raw) && inside(f.value, head.raw));
    CHECK(inside(head.path, head.raw) || inside(head.path, head.normalized_path) || head.path == "/");
    CHECK(inside(head.host, head.raw));

    UpstreamRequest up{head.path, "127.0.0.1", "http", "backend:1"};
    set_request_framing(up, parser, head);
    std::string wire;
    build_upstream_request(head, up, wire);
    const std::size_t head_bytes = wire.size();

    // The body, fed the way a connection buffer is: unconsumed bytes stay.
    std::string buffer, body;
    std::string_view rest = std::string_view(bytes).substr(end);
    char line[24];
    std::vector<boost::asio::const_buffer> gather;
    bool refused = false;
    while (!parser.is_done() && !rest.empty()) {
        buffer.append(rest.substr(0, step));
        rest.remove_prefix(std::min(step, rest.size()));
        auto s = feed_body(parser, buffer, trailer_limit);
        CHECK(s.used <= buffer.size());
        for (auto b : parser.body()) {
            CHECK(inside({static_cast<const char*>(b.data()), b.size()}, buffer));
            body.append(static_cast<const char*>(b.data()), b.size());
        }
        gather.clear();
        append_body(gather, parser.body(), up.framing, line, parser.is_done() && up.framing == Framing::chunked);
        for (auto b : gather) wire.append(static_cast<const char*>(b.data()), b.size());
        parser.body().clear();
        if (s.refusal) {
            refused = true;
            break;
        }
        buffer.erase(0, s.used);
        // Bounded: what waits unconsumed is at most one chunk line or the trailers, plus one read.
        CHECK(buffer.size() <= std::max(kMaxChunkLine, trailer_limit) + step + 2);
    }
    if (refused) return 0;

    // An independent reading of what went upstream.
    if (parser.is_done()) {
        http::request_parser<http::string_body> again;
        again.header_limit(kUpstreamHeadLimit);
        again.body_limit(boost::none);
        again.eager(true);
        boost::beast::error_code ec;
        std::size_t used = again.put(boost::asio::buffer(wire), ec);
        CHECK_MSG(!ec, ec.message() + " in:\n" + wire);
        CHECK_MSG(again.is_done() && used == wire.size(), "the upstream would read more than one request:\n" + wire);
        const auto& m = again.get();
        CHECK(m.method_string() == head.method);
        CHECK(m.target() == std::string(head.path) + std::string(head.query));
        CHECK(m.body() == body);
        CHECK(m.count(http::field::host) == 1);
        CHECK(m.count(http::field::transfer_encoding) + m.count(http::field::content_length) <= 1);
    } else {
        http::request_parser<http::empty_body> again;
        again.header_limit(kUpstreamHeadLimit);
        again.body_limit(boost::none);  // sluice sets none either: bodies stream through
        boost::beast::error_code ec;
        again.put(boost::asio::buffer(wire.data(), head_bytes), ec);
        CHECK_MSG(!ec || ec == http::error::need_more, ec.message() + " in:\n" + wire.substr(0, head_bytes));
        CHECK(again.is_header_done());
    }
    return 0;
}
