// Admission (max_requests_per_endpoint): an origin that takes N at a time
// never gets more than N from sluice, counted across workers; the rest wait in
// the cluster's queue and go in arrival order; a full queue and a wait past
// queue.timeout are 503s that say so with Retry-After; a queued client that
// leaves is dropped at once; a change of the cap applies to the next admission.
#include "tests/support/client.h"
#include "tests/support/deadline.h"
#include "tests/support/origin.h"
#include "tests/support/prometheus_text.h"
#include "tests/support/proxy_fixture.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>

using namespace sluice::test;

namespace {

const char* kAdmissionConfig = R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters:
  - {name: gpu, endpoints: ["{o}"], max_requests_per_endpoint: {cap}, queue: {size: {size}, timeout: {timeout}}}
routes: [{name: gen, match: {path_prefix: /}, cluster: gpu}]
)";

// A "GPU server": counts generations in flight, remembers the order they
// started in, and streams three tokens when the test grants it a permit.
class Gpu {
public:
    Gpu()
        : origin([this](OriginExchange& ex) {
              {
                  std::unique_lock lock(mu);
                  started.push_back(ex.target());
                  max_in_flight = std::max(max_in_flight, ++in_flight);
                  cv.wait_for(lock, std::chrono::seconds(20), [&] { return permits > 0; });
                  --permits;
              }
              ex.begin_chunked(200, "text/event-stream");
              for (int i = 0; i < 3; ++i) ex.chunk("data: token\n\n");
              {
                  std::lock_guard lock(mu);
                  --in_flight;  // before the last chunk: sluice frees the slot only after relaying it
              }
              ex.end_chunked();
          }) {}
    int now_in_flight() {
        std::lock_guard lock(mu);
        return in_flight;
    }
    std::size_t started_count() {
        std::lock_guard lock(mu);
        return started.size();
    }
    // Lets `n` generations finish.
    void finish(int n) {
        std::lock_guard lock(mu);
        permits += n;
        cv.notify_all();
    }
    void finish_all() { finish(1 << 20); }

    std::mutex mu;
    std::condition_variable cv;
    int permits = 0;
    std::vector<std::string> started;
    int in_flight = 0, max_in_flight = 0;
    TestOrigin origin;
};

class Admission : public ::testing::Test {
protected:
    void TearDown() override {
        gpu.finish_all();
        proxy.reset();
    }
    void start(int cap, int size, const std::string& timeout = "30s") {
        proxy = std::make_unique<RunningProxy>(fill(kAdmissionConfig, {{"o", gpu.origin.address()},
                                                                      {"cap", std::to_string(cap)},
                                                                      {"size", std::to_string(size)},
                                                                      {"timeout", timeout}}));
    }
    Exposition metrics() { return parse_exposition(http_request(proxy->admin_port(), "GET", "/metrics").body); }
    double depth() { return metrics().value_or_zero("sluice_cluster_queue_depth", {{"cluster", "gpu"}}); }
    // Sends a generation request on a new connection.
    std::unique_ptr<RawClient> send(int id) {
        auto c = std::make_unique<RawClient>(proxy->port(), 30000);
        c->send("POST /gen/" + std::to_string(id) + " HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi");
        return c;
    }
    void set_cap(int cap, int size) {
        auto r = http_request(proxy->admin_port(), "PUT", "/clusters/gpu",
                              "{\"endpoints\": [\"" + gpu.origin.address() + "\"], \"max_requests_per_endpoint\": " +
                                  std::to_string(cap) + ", \"queue\": {\"size\": " + std::to_string(size) + "}}");
        ASSERT_EQ(r.status, 200u) << r.body;
    }

    Gpu gpu;
    std::unique_ptr<RunningProxy> proxy;
};

}  // namespace

TEST_F(Admission, FiftyStreamsThroughAnOriginOfFourGoFourAtATimeInArrivalOrder) {
    start(4, 100);
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int i = 0; i < 4; ++i) clients.push_back(send(i));
    ASSERT_TRUE(eventually([&] { return gpu.now_in_flight() == 4; }));
    // One at a time, each queued before the next is sent: that is their arrival order.
    for (int i = 4; i < 50; ++i) {
        clients.push_back(send(i));
        ASSERT_TRUE(eventually([&] { return depth() == i - 3; })) << "request " << i << " was not queued";
    }
    EXPECT_EQ(gpu.now_in_flight(), 4);
    // One generation ends at a time: the request admitted in its place is the
    // one that has waited longest.
    for (int i = 4; i < 50; ++i) {
        gpu.finish(1);
        ASSERT_TRUE(eventually([&] { return gpu.started_count() == static_cast<std::size_t>(i) + 1; }));
        std::lock_guard lock(gpu.mu);
        EXPECT_EQ(gpu.started.back(), "/gen/" + std::to_string(i));
        EXPECT_LE(gpu.in_flight, 4);
    }
    gpu.finish_all();
    for (auto& c : clients) {
        auto r = c->read_response();
        EXPECT_EQ(r.status, 200u);
        EXPECT_EQ(r.body, "data: token\n\ndata: token\n\ndata: token\n\n");
    }
    EXPECT_EQ(gpu.max_in_flight, 4);
    EXPECT_EQ(gpu.started.size(), 50u);
    auto m = metrics();
    EXPECT_EQ(m.value_or_zero("sluice_cluster_queue_depth", {{"cluster", "gpu"}}), 0);
    EXPECT_EQ(m.value_or_zero("sluice_queue_wait_seconds_count", {{"cluster", "gpu"}}), 50);
    EXPECT_EQ(m.value_or_zero("sluice_endpoint_requests_active", {{"cluster", "gpu"}}), 0);
}

TEST_F(Admission, AFullQueueIs503QueueFullWithRetryAfter) {
    start(1, 0);
    auto first = send(0);
    ASSERT_TRUE(eventually([&] { return gpu.now_in_flight() == 1; }));
    auto r = http_get(proxy->port(), "/gen/1");
    EXPECT_EQ(r.status, 503u);
    EXPECT_EQ(r.header("x-sluice-error"), "queue_full");
    EXPECT_EQ(r.header("Retry-After"), "1");
    EXPECT_EQ(r.body,
              "cluster \"gpu\" has max_requests_per_endpoint 1 in flight on its endpoint and no queue (queue.size 0); "
              "retry later, or raise max_requests_per_endpoint or queue.size\n");
    EXPECT_EQ(metrics().value_or_zero("sluice_endpoint_requests_active", {{"cluster", "gpu"}}), 1);
    gpu.finish_all();
    EXPECT_EQ(first->read_response().status, 200u);
    EXPECT_EQ(gpu.started.size(), 1u);
}

TEST_F(Admission, AWaitPastTheQueueTimeoutIs503QueueTimeout) {
    start(1, 5, "200ms");
    auto first = send(0);
    ASSERT_TRUE(eventually([&] { return gpu.now_in_flight() == 1; }));
    auto r = http_get(proxy->port(), "/gen/1");
    EXPECT_EQ(r.status, 503u);
    EXPECT_EQ(r.header("x-sluice-error"), "queue_timeout");
    EXPECT_EQ(r.header("Retry-After"), "1");
    EXPECT_EQ(r.body,
              "waited 200ms (queue.timeout) in the queue of cluster \"gpu\" for one of its endpoints to have fewer "
              "than max_requests_per_endpoint 1 in flight; retry later, or raise max_requests_per_endpoint or "
              "queue.timeout\n");
    EXPECT_EQ(depth(), 0);
    gpu.finish_all();
    EXPECT_EQ(first->read_response().status, 200u);
    EXPECT_EQ(gpu.started.size(), 1u);
}

TEST_F(Admission, AQueuedClientThatLeavesIsDroppedAtOnce) {
    start(1, 5);
    auto first = send(0);
    ASSERT_TRUE(eventually([&] { return gpu.now_in_flight() == 1; }));
    {
        auto leaver = send(1);
        ASSERT_TRUE(eventually([&] { return depth() == 1; }));
    }  // gone while queued
    EXPECT_TRUE(eventually([&] { return depth() == 0; }));
    EXPECT_TRUE(eventually([&] {
        return metrics().value_or_zero("sluice_client_cancels_total", {{"route", "gen"}, {"phase", "queued"}}) == 1;
    }));
    auto third = send(2);
    ASSERT_TRUE(eventually([&] { return depth() == 1; }));
    gpu.finish_all();
    EXPECT_EQ(first->read_response().status, 200u);
    EXPECT_EQ(third->read_response().status, 200u);
    // The one who left never reached the origin, and its place went to the next.
    EXPECT_EQ(gpu.started, (std::vector<std::string>{"/gen/0", "/gen/2"}));
}

TEST_F(Admission, ACapChangeAppliesToTheNextAdmissionAndAdmitsWaitersThatNowFit) {
    start(1, 10);
    std::vector<std::unique_ptr<RawClient>> clients;
    clients.push_back(send(0));
    ASSERT_TRUE(eventually([&] { return gpu.now_in_flight() == 1; }));
    clients.push_back(send(1));
    clients.push_back(send(2));
    ASSERT_TRUE(eventually([&] { return depth() == 2; }));
    set_cap(3, 10);  // the two waiting now fit
    EXPECT_TRUE(eventually([&] { return gpu.now_in_flight() == 3; }));
    EXPECT_EQ(depth(), 0);
    set_cap(2, 10);  // lower: nobody is cut, the next one waits
    clients.push_back(send(3));
    ASSERT_TRUE(eventually([&] { return depth() == 1; }));
    EXPECT_EQ(gpu.now_in_flight(), 3);
    gpu.finish_all();
    for (auto& c : clients) EXPECT_EQ(c->read_response().status, 200u);
    EXPECT_EQ(gpu.max_in_flight, 3);
}
