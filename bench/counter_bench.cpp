// Why the request path counts into per-worker plain integers rather than
// prometheus-cpp's own Counter (an atomic double shared by every thread): the
// cost of one count, with 1 and 2 threads counting at once.
//   cmake --build build --target counter_bench && ./build/bench/counter_bench
#include "proxy/worker/access_log.h"
#include "proxy/worker/worker_stats.h"

#include <benchmark/benchmark.h>
#include <prometheus/counter.h>

#include <atomic>

namespace {

prometheus::Counter shared_counter;
std::atomic<std::uint64_t> shared_atomic{0};

void PrometheusCounterShared(benchmark::State& state) {
    for (auto _ : state) shared_counter.Increment();
}
BENCHMARK(PrometheusCounterShared)->Threads(1)->Threads(2);

void AtomicFetchAddShared(benchmark::State& state) {
    for (auto _ : state) shared_atomic.fetch_add(1, std::memory_order_relaxed);
}
BENCHMARK(AtomicFetchAddShared)->Threads(1)->Threads(2);

void PerWorkerPlainCounter(benchmark::State& state) {
    alignas(64) std::uint64_t mine = 0;
    for (auto _ : state) {
        ++mine;
        benchmark::DoNotOptimize(mine);
    }
}
BENCHMARK(PerWorkerPlainCounter)->Threads(1)->Threads(2);

// What sluice does per response: the code counter (by listener and status)
// and the duration histogram, on the worker's own RouteStats.
void PerWorkerRouteStatsResponse(benchmark::State& state) {
    sluice::proxy::RouteStats stats;
    const std::string listener = "public";
    double d = 0.0001;
    for (auto _ : state) {
        stats.count_response(listener, 200);
        stats.duration.observe(d);
        d = d > 10 ? 0.0001 : d * 1.7;
    }
    benchmark::DoNotOptimize(stats.duration.count());
}
BENCHMARK(PerWorkerRouteStatsResponse)->Threads(1)->Threads(2);

// One access log line: formatting, and formatting plus the ring.
sluice::proxy::AccessRecord sample_record() {
    sluice::proxy::AccessRecord r;
    r.start = std::chrono::system_clock::now();
    r.listener = "public";
    r.route = "chat";
    r.cluster = "chat";
    r.endpoint = "127.0.0.1:3000";
    r.client = "127.0.0.1:51244";
    r.method = "GET";
    r.path = "/api/v1/messages";
    r.status = 200;
    r.bytes_sent = 512;
    r.duration = 0.00123;
    r.upstream_connect = 0.0001;
    r.upstream_first_byte = 0.001;
    return r;
}

void AccessLineFormat(benchmark::State& state) {
    auto r = sample_record();
    std::string line;
    for (auto _ : state) {
        line.clear();
        sluice::proxy::format_access_line(r, line);
        benchmark::DoNotOptimize(line.data());
    }
}
BENCHMARK(AccessLineFormat);

void AccessLogWriteToDevNull(benchmark::State& state) {
    static sluice::proxy::AccessLog log(1);
    std::string error;
    log.configure({true, "/dev/null"}, error);
    auto r = sample_record();
    for (auto _ : state) log.write(0, r);
    state.counters["dropped"] = static_cast<double>(log.dropped());
}
BENCHMARK(AccessLogWriteToDevNull);

}  // namespace

BENCHMARK_MAIN();
