// Fuzz target: the bytes an HTTP/2 upstream sends back, as sluice's client
// session reads them (nghttp2), with each stream's head and trailers gathered
// by H2ResponseBuilder and the head read by the same response rules as an
// HTTP/1.1 head. Checks that heads stay within their limit, that a stream
// never holds more body bytes than the window sluice advertised, that every
// view of a parsed head points into its bytes, and that the output stays
// bounded.
//
// Input: one byte choosing how many requests to open (1 to 8, some with a
// body; one before the upstream's SETTINGS, the rest as they allow), then
// what the upstream sends (starting with its SETTINGS).
#include "fuzz_check.h"
#include "proxy/message/h2_client_session.h"
#include "proxy/message/h2_response.h"
#include "proxy/message/http_head.h"
#include "proxy/message/message_parser.h"
#include "proxy/message/message_rules.h"

#include <map>
#include <memory>
#include <string>

using namespace sluice::proxy;

namespace {

constexpr std::int32_t kWindow = 16 * 1024;
constexpr std::size_t kMaxHead = 4096;

struct Stream {
    H2ResponseBuilder response{kMaxHead};
    std::size_t unconsumed = 0;
    std::size_t body = 0;
    std::string out = "request body";
    std::size_t pulled = 0;
};

class Handler final : public H2ClientSession::Handler {
public:
    H2ClientSession* session = nullptr;
    std::map<std::int32_t, std::unique_ptr<Stream>> streams;

    Stream& find(std::int32_t id) {
        auto it = streams.find(id);
        CHECK(it != streams.end());
        return *it->second;
    }
    void on_headers_begin(std::int32_t id) override { find(id).response.begin_block(); }
    bool on_field(std::int32_t id, std::string_view name, std::string_view value) override {
        return find(id).response.add(name, value);
    }
    void on_headers_end(std::int32_t id, bool end) override {
        Stream& s = find(id);
        if (!s.response.end_block(end)) return;
        CHECK(s.response.head().size() < 2 * kMaxHead);
        ResponseHead head;
        head.raw = s.response.head();
        ResponseParser parser(head);
        if (!parse_response_head(head, parser, false)) {
            for (const auto& f : head.fields) CHECK(inside(f.name, head.raw) && inside(f.value, head.raw));
            CHECK(head.status >= 100 && head.status <= 999);
        }
    }
    void on_data(std::int32_t id, std::string_view bytes) override {
        Stream& s = find(id);
        s.body += bytes.size();
        s.unconsumed += bytes.size();
        CHECK(s.unconsumed <= static_cast<std::size_t>(kWindow));
        if (s.body % 3 == 0) {
            session->consumed(id, s.unconsumed);
            s.unconsumed = 0;
        }
    }
    void on_data_end(std::int32_t) override {}
    void on_stream_close(std::int32_t id, std::uint32_t) override {
        session->forget_stream(id);
        streams.erase(id);
    }
    H2Session::Pull pull_body(std::int32_t id, std::uint8_t* out, std::size_t max) override {
        Stream& s = find(id);
        std::size_t n = std::min(max, s.out.size() - s.pulled);
        std::memcpy(out, s.out.data() + s.pulled, n);
        s.pulled += n;
        return {n, false, s.pulled == s.out.size()};
    }
    void on_goaway(std::int32_t, std::uint32_t) override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    Handler handler;
    H2ClientSession::Settings settings;
    settings.stream_window = kWindow;
    settings.connection_window = 4 * kWindow;
    settings.max_header_list = kMaxHead;
    H2ClientSession session(handler, settings);
    handler.session = &session;
    // Requests open as the session allows: one until the upstream's SETTINGS
    // say how many it takes, then up to its limit.
    const int requests = 1 + data[0] % 8;
    int opened = 0;
    auto open_more = [&] {
        while (opened < requests && session.can_open()) {
            const bool body = opened % 2 == 1;
            std::int32_t id = session.open({{":method", body ? "POST" : "GET"},
                                            {":scheme", "http"},
                                            {":authority", "upstream"},
                                            {":path", "/x"}},
                                           body);
            CHECK(id > 0);
            handler.streams[id] = std::make_unique<Stream>();
            ++opened;
        }
    };
    open_more();
    CHECK(opened == 1);
    std::string out;
    session.take_output(out, 64 * 1024);
    const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
    for (std::size_t at = 0; at < input.size();) {
        std::size_t n = std::min<std::size_t>(input.size() - at, 1 + (at * 7919) % 4096);
        bool more = session.receive(input.substr(at, n));
        at += n;
        if (more) open_more();
        out.clear();
        session.take_output(out, 64 * 1024);
        CHECK(out.size() < 64 * 1024 + 17 * 1024);
        if (!more) break;
    }
    return 0;
}
