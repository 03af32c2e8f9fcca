// Fuzz target: one upstream response as sluice reads it and relays it. What
// sluice accepts must reach the client as exactly one response that a fresh
// strict parser reads with the same status and body bytes; what it refuses
// never reaches the client.
//
// Input: three bytes of settings (the request was a HEAD, the client speaks
// HTTP/1.0, read size), then the bytes the upstream sends.
#include "fuzz_check.h"
#include "proxy/message/forward_headers.h"
#include "proxy/message/http_head.h"
#include "proxy/message/message_parser.h"
#include "proxy/message/message_rules.h"

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <string>

using namespace sluice::proxy;
namespace http = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) return 0;
    const bool head_request = data[0] & 1;
    const bool client_http10 = data[0] & 2;
    const std::size_t step = 1 + (data[1] | data[2] << 8) % 8192;
    const std::string bytes(reinterpret_cast<const char*>(data) + 3, size - 3);

    const std::size_t end = find_head_end(bytes);
    if (end == 0 || end > 65536) return 0;
    ResponseHead head;
    head.raw = bytes.substr(0, end);
    ResponseParser parser(head);
    if (auto refusal = parse_response_head(head, parser, head_request)) {
        CHECK(refusal->kind == ErrorKind::upstream_bad_response);
        return 0;
    }
    for (const auto& f : head.fields) CHECK(inside(f.name, head.raw) && inside(f.value, head.raw));
    CHECK(head.status >= 100 && head.status <= 599);
    if (head.status < 200) return 0;  // interim: relayed as is, then the next head is read

    ClientResponse down;
    down.client_http10 = client_http10;
    set_response_framing(down, parser, head);
    std::string wire;
    build_client_response(head, down, wire);

    std::string buffer, body;
    std::string_view rest = std::string_view(bytes).substr(end);
    char line[24];
    std::vector<boost::asio::const_buffer> gather;
    while (!parser.is_done()) {
        if (rest.empty()) {
            if (!parser.need_eof()) return 0;  // cut short: the client sees an incomplete response
            boost::beast::error_code ec;
            parser.put_eof(ec);
            if (ec) return 0;
        } else {
            buffer.append(rest.substr(0, step));
            rest.remove_prefix(std::min(step, rest.size()));
            auto s = feed_body(parser, buffer, 65536);
            CHECK(s.used <= buffer.size());
            if (s.refusal) return 0;  // the relay cuts the response
            buffer.erase(0, s.used);
            CHECK(buffer.size() <= 65536 + step + 2);
        }
        for (auto b : parser.body()) body.append(static_cast<const char*>(b.data()), b.size());
        gather.clear();
        append_body(gather, parser.body(), down.framing, line, parser.is_done() && down.framing == Framing::chunked);
        for (auto b : gather) wire.append(static_cast<const char*>(b.data()), b.size());
        parser.body().clear();
    }

    http::response_parser<http::string_body> again;
    again.header_limit(1 << 20);  // a client takes any head size; Beast's default stops at 8 KiB
    again.body_limit(boost::none);
    again.eager(true);
    if (head_request) again.skip(true);
    boost::beast::error_code ec;
    std::size_t used = again.put(boost::asio::buffer(wire), ec);
    if (!ec && !again.is_done() && down.framing == Framing::until_close) again.put_eof(ec);
    CHECK_MSG(!ec, ec.message() + " in:\n" + wire);
    CHECK_MSG(again.is_done() && used == wire.size(), "the client would read more than one response:\n" + wire);
    CHECK(again.get().result_int() == static_cast<unsigned>(head.status));
    if (!head_request) CHECK(again.get().body() == body);
    return 0;
}
