// Route-table lookup cost at 10, 1,000 and 10,000 routes (Google Benchmark).
// The table mixes exact paths, prefixes, host-bound prefixes and method-bound
// prefixes, as a large multi-tenant config would. A lookup probes a hash map per
// distinct prefix length, so its cost should stay flat as routes are added.
//   build/bench/router_bench
#include "config/spec.h"
#include "proxy/message/http_head.h"
#include "proxy/snapshot/router.h"

#include <benchmark/benchmark.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

using sluice::config::RouteSpec;
using sluice::proxy::RequestHead;
using sluice::proxy::RequestParser;
using sluice::proxy::Router;

std::vector<RouteSpec> make_routes(int n) {
    std::vector<RouteSpec> routes;
    for (int i = 0; i < n; ++i) {
        RouteSpec r;
        r.name = "r" + std::to_string(i);
        r.cluster = "c";
        const std::string id = std::to_string(i);
        switch (i % 4) {
        case 0: r.match.path = "/api/v1/items/" + id; break;
        case 1: r.match.path_prefix = "/svc" + id + "/"; break;
        case 2:
            r.match.path_prefix = "/tenants/" + id + "/";
            r.match.host = "t" + id + ".example.com";
            break;
        default:
            r.match.path_prefix = "/m" + id + "/";
            r.match.methods = {"GET", "POST"};
            break;
        }
        routes.push_back(std::move(r));
    }
    return routes;
}

// A parsed request head, as a session has it when it routes.
struct Request {
    RequestHead head;
    std::optional<RequestParser> parser;
    Request(const std::string& target, const std::string& host) {
        head.raw = "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n";
        parser.emplace(head);
        boost::beast::error_code ec;
        parser->put(boost::asio::buffer(head.raw), ec);
    }
};

void lookup(benchmark::State& state, const std::string& target, const std::string& host, bool expect_hit) {
    const auto routes = make_routes(static_cast<int>(state.range(0)));
    const Router router(routes);
    Request req(target, host);
    if ((router.match(req.head) != Router::npos) != expect_hit) state.SkipWithError("unexpected lookup result");
    for (auto _ : state) benchmark::DoNotOptimize(router.match(req.head));
}

// Targets near the end of each table, so a linear scan would show.
std::string last(int n, int kind) { return std::to_string((n / 4 - 1) * 4 + kind); }

void BM_ExactPath(benchmark::State& s) {
    lookup(s, "/api/v1/items/" + last(static_cast<int>(s.range(0)), 0), "x.test", true);
}
void BM_Prefix(benchmark::State& s) {
    lookup(s, "/svc" + last(static_cast<int>(s.range(0)), 1) + "/chat/completions?stream=1", "x.test", true);
}
void BM_PrefixWithHost(benchmark::State& s) {
    const std::string id = last(static_cast<int>(s.range(0)), 2);
    lookup(s, "/tenants/" + id + "/ws", "t" + id + ".example.com:443", true);
}
void BM_NoRoute(benchmark::State& s) { lookup(s, "/nothing/matches/this/path", "x.test", false); }

BENCHMARK(BM_ExactPath)->Arg(10)->Arg(1000)->Arg(10000);
BENCHMARK(BM_Prefix)->Arg(10)->Arg(1000)->Arg(10000);
BENCHMARK(BM_PrefixWithHost)->Arg(10)->Arg(1000)->Arg(10000);
BENCHMARK(BM_NoRoute)->Arg(10)->Arg(1000)->Arg(10000);

}  // namespace

BENCHMARK_MAIN();
