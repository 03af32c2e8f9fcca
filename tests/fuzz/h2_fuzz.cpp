// Fuzz target: the bytes an HTTP/2 client sends, as sluice's session reads
// them (nghttp2 and sluice's head rules), with every request answered. Checks
// that no view outlives its bytes, that a stream never holds more body bytes
// than the window sluice advertised (flow control bounds memory), and that the
// session's output stays bounded while it answers.
//
// Input: one byte of settings (concurrency), then what follows the client
// connection preface.
#include "fuzz_check.h"
#include "proxy/message/h2_request.h"
#include "proxy/message/h2_session.h"
#include "proxy/message/http_head.h"

#include <map>
#include <memory>
#include <string>

using namespace sluice::proxy;

namespace {

constexpr std::int32_t kWindow = 16 * 1024;

struct Stream {
    H2RequestBuilder builder;
    RequestHead head;
    std::size_t body = 0, unconsumed = 0;
    bool answered = false;
    std::string out = "response body";
    std::size_t pulled = 0;
};

class Handler final : public H2Session::Handler {
public:
    H2Session* session = nullptr;
    std::map<std::int32_t, std::unique_ptr<Stream>> streams;

    H2RequestBuilder* on_stream_open(std::int32_t id) override {
        if (streams.size() >= 64) return nullptr;
        auto& s = streams[id];
        s = std::make_unique<Stream>();
        return &s->builder;
    }
    void on_request(std::int32_t id, bool) override {
        auto it = streams.find(id);
        CHECK(it != streams.end());
        Stream& s = *it->second;
        sluice::config::Paths paths;
        if (auto refusal = s.builder.finish(s.head, paths)) {
            CHECK(!refusal->message.empty());
            session->submit_simple(id, status_of(refusal->kind), error_fields(refusal->kind, refusal->message), false);
        } else {
            for (const auto& f : s.head.fields) CHECK(inside(f.name, s.head.raw) && inside(f.value, s.head.raw));
            // An extended CONNECT reads as a GET: its method is a literal, not a view of the input.
            CHECK((s.head.extended_connect || inside(s.head.method, s.head.raw)) && inside(s.head.host, s.head.raw));
            ResponseHead resp;
            resp.status = 200;
            session->submit_response(id, resp, false);
        }
        s.answered = true;
    }
    void on_body(std::int32_t id, std::string_view bytes) override {
        auto it = streams.find(id);
        CHECK(it != streams.end());
        Stream& s = *it->second;
        s.body += bytes.size();
        s.unconsumed += bytes.size();
        // Nothing consumed: the client may not send past the window.
        CHECK(s.unconsumed <= static_cast<std::size_t>(kWindow));
        if (s.body % 3 == 0) {
            session->consumed(id, s.unconsumed);
            s.unconsumed = 0;
        }
    }
    bool on_trailer(std::int32_t id, std::string_view name, std::string_view value) override {
        CHECK(streams.count(id));
        return name.size() + value.size() < 1024;
    }
    void on_request_end(std::int32_t) override {}
    void on_stream_close(std::int32_t id, std::uint32_t) override { streams.erase(id); }
    H2Session::Pull pull_body(std::int32_t id, std::uint8_t* out, std::size_t max) override {
        auto it = streams.find(id);
        if (it == streams.end()) return {0, false, true};
        Stream& s = *it->second;
        std::size_t n = std::min(max, s.out.size() - s.pulled);
        std::memcpy(out, s.out.data() + s.pulled, n);
        s.pulled += n;
        return {n, false, s.pulled == s.out.size()};
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    Handler handler;
    H2Session::Settings settings;
    settings.max_concurrent_streams = 1 + data[0] % 32;
    settings.max_header_list = 4096;
    settings.stream_window = kWindow;
    settings.connection_window = 4 * kWindow;
    H2Session session(handler, settings);
    handler.session = &session;
    std::string input = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    input.append(reinterpret_cast<const char*>(data) + 1, size - 1);
    std::string out;
    // Fed in pieces, as reads would bring it, answering between them.
    for (std::size_t at = 0; at < input.size();) {
        std::size_t n = std::min<std::size_t>(input.size() - at, 1 + (at * 7919) % 4096);
        bool more = session.receive(std::string_view(input).substr(at, n));
        at += n;
        out.clear();
        session.take_output(out, 64 * 1024);
        CHECK(out.size() < 64 * 1024 + 17 * 1024);  // one batch, plus at most one frame past it
        if (!more) break;
    }
    return 0;
}
