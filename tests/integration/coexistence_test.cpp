// WebSockets and streams side by side on one listener, with no special config:
// several WebSocket echo sessions (text and binary, 1 byte to 1 MiB, fragmented),
// an NDJSON stream and an SSE stream that advance one chunk at a time, and
// plain keep-alive requests, all at once. Everything must arrive byte-exact.
#include "tests/support/client.h"
#include "tests/support/origin.h"
#include "tests/support/proxy_fixture.h"
#include "tests/support/websocket.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <random>
#include <thread>

using namespace sluice::test;

namespace {

// The origin writes chunk i+1 only after the client reported chunk i: each
// chunk provably crosses the proxy on its own.
class Lockstep {
public:
    void seen(int i) {
        std::lock_guard lock(mu_);
        seen_ = i;
        cv_.notify_all();
    }
    bool wait_seen(int i) {
        std::unique_lock lock(mu_);
        return cv_.wait_for(lock, std::chrono::seconds(20), [&] { return seen_ >= i; });
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    int seen_ = -1;
};

}  // namespace

TEST(Coexistence, WebSocketsStreamsAndRequestsOnOneListener) {
    constexpr int kChunks = 30;
    Lockstep ndjson_step, sse_step;
    auto ws_echo = websocket_echo_handler();
    TestOrigin origin([&](OriginExchange& ex) {
        auto t = ex.target();
        if (t == "/ws") return ws_echo(ex);
        if (t == "/ndjson") {
            ex.begin_chunked(200, "application/x-ndjson");
            for (int i = 0; i < kChunks; ++i) {
                if (i > 0) ndjson_step.wait_seen(i - 1);
                ex.chunk("{\"token\":" + std::to_string(i) + "}\n");
            }
            ex.end_chunked();
        } else if (t == "/sse") {
            ex.begin_chunked(200, "text/event-stream");
            for (int i = 0; i < kChunks; ++i) {
                if (i > 0) sse_step.wait_seen(i - 1);
                ex.chunk("id: " + std::to_string(i) + "\ndata: event " + std::to_string(i) + "\n\n");
            }
            ex.end_chunked();
        } else {
            ex.respond(200, "plain " + t);
        }
    });
    RunningProxy proxy(fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: app, endpoints: ["{o}"]}]
routes:
  - {name: chat, match: {path: /ws}, cluster: app}
  - {name: llm, match: {path_prefix: /}, cluster: app}
)",
                            {{"o", origin.address()}}));
    const auto port = proxy.port();
    std::atomic<int> failures{0};
    auto check = [&](bool ok) {
        if (!ok) ++failures;
    };
    std::vector<std::thread> threads;

    for (int w = 0; w < 4; ++w) {
        threads.emplace_back([&, w] {
            try {
                WsClient ws(port);
                std::mt19937 rng(static_cast<unsigned>(w));
                for (std::size_t size : {1u, 100u, 4096u, 70000u, 1u << 20}) {
                    std::string data(size, '\0');
                    for (auto& c : data) c = static_cast<char>(w % 2 ? rng() : 'a' + rng() % 26);
                    bool binary = w % 2 == 1;
                    if (size > 4096) ws.send_fragmented(data, 4, binary);
                    else ws.send(data, binary);
                    bool got_binary = !binary;
                    check(ws.receive(&got_binary) == data && got_binary == binary);
                }
                ws.close();
            } catch (const std::exception& e) {
                ADD_FAILURE() << "websocket " << w << ": " << e.what();
                ++failures;
            }
        });
    }
    auto stream = [&](const std::string& target, Lockstep& step, auto expected_chunk) {
        try {
            RawClient c(port);
            c.send("GET " + target + " HTTP/1.1\r\nHost: t\r\n\r\n");
            check(c.read_head().status == 200);
            std::string got;
            for (int i = 0; i < kChunks; ++i) {
                std::string want = expected_chunk(i);
                while (got.size() < want.size()) got += c.read_body_some();
                check(got.substr(0, want.size()) == want);
                got.erase(0, want.size());
                step.seen(i);
            }
            while (!c.body_done()) got += c.read_body_some();
            check(got.empty());
        } catch (const std::exception& e) {
            ADD_FAILURE() << target << ": " << e.what();
            ++failures;
        }
    };
    threads.emplace_back(stream, "/ndjson", std::ref(ndjson_step),
                         [](int i) { return "{\"token\":" + std::to_string(i) + "}\n"; });
    threads.emplace_back(stream, "/sse", std::ref(sse_step), [](int i) {
        return "id: " + std::to_string(i) + "\ndata: event " + std::to_string(i) + "\n\n";
    });
    for (int k = 0; k < 2; ++k) {
        threads.emplace_back([&, k] {
            try {
                RawClient c(port);
                for (int i = 0; i < 50; ++i) {
                    std::string target = "/plain/" + std::to_string(k) + "/" + std::to_string(i);
                    check(c.get(target).body == "plain " + target);
                }
            } catch (const std::exception& e) {
                ADD_FAILURE() << "keep-alive client: " << e.what();
                ++failures;
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(failures.load(), 0);
    auto stats = proxy.server->tunnel_stats();
    EXPECT_EQ(stats["chat"].opened, 4u);
    EXPECT_EQ(stats["llm"].opened, 0u);  // streams are not tunnels
    auto totals = proxy.server->collect_stats();
    EXPECT_GT(totals.routes["llm"].streams, 0u);
    EXPECT_EQ(totals.routes["llm"].streams_active, 0);
    EXPECT_EQ(totals.routes["chat"].streams, 0u);
}
