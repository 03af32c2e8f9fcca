#include "proxy/server/health_checker.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <random>

namespace sluice::proxy {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

}  // namespace

struct HealthChecker::Probe {
    Probe(asio::io_context& io, std::string c, EndpointRuntime e, config::HealthCheck s, std::shared_ptr<UpstreamTls> t)
        : cluster(std::move(c)), endpoint(std::move(e)), spec(std::move(s)), tls(std::move(t)), timer(io), io(io) {}

    std::string cluster;
    EndpointRuntime endpoint;  // a copy: the snapshot may go away
    config::HealthCheck spec;
    std::shared_ptr<UpstreamTls> tls;  // the cluster's TLS, as requests use it; null: plain
    asio::steady_timer timer;
    asio::io_context& io;
    std::shared_ptr<beast::tcp_stream> stream;  // the check in flight, to cancel on stop
    bool stopped = false;
    std::uint32_t passes = 0, fails = 0;
    std::string last_failure;

    void stop() {
        stopped = true;
        timer.cancel();
        if (stream) stream->cancel();
    }

    // GET the health check path and read the response head.
    template <class AsyncStream>
    asio::awaitable<boost::system::error_code> exchange(AsyncStream& s, http::response_parser<http::empty_body>& parser) {
        http::request<http::empty_body> req{http::verb::get, spec.path, 11};
        req.set(http::field::host, endpoint.key);
        req.set(http::field::user_agent, "sluice-health-check");
        req.keep_alive(false);
        auto [ec, n] = co_await http::async_write(s, req, nothrow);
        beast::flat_buffer buffer;
        if (!ec) std::tie(ec, n) = co_await http::async_read_header(s, buffer, parser, nothrow);
        co_return ec;
    }

    asio::awaitable<bool> check() {
        stream = std::make_shared<beast::tcp_stream>(io);
        auto s = stream;
        s->expires_after(spec.timeout);
        boost::system::error_code ec;
        if (endpoint.ip) {
            std::tie(ec) = co_await s->async_connect(tcp::endpoint(*endpoint.ip, endpoint.port), nothrow);
        } else {
            tcp::resolver resolver(io);
            auto [rec, results] = co_await resolver.async_resolve(endpoint.host, std::to_string(endpoint.port), nothrow);
            ec = rec;
            if (!ec) std::tie(ec, std::ignore) = co_await s->async_connect(results, nothrow);
        }
        if (ec) {
            last_failure = "connect: " + ec.message();
            co_return false;
        }
        http::response_parser<http::empty_body> parser;
        if (tls) {
            // The same TLS as requests: SNI, verification and client certificate.
            asio::ssl::stream<beast::tcp_stream&> tls_stream(*s, tls->context());
            tls->prepare(tls_stream.native_handle(), endpoint.host);
            std::tie(ec) = co_await tls_stream.async_handshake(asio::ssl::stream_base::client, nothrow);
            if (ec) {
                last_failure = ec == beast::error::timeout
                                   ? "TLS handshake: no answer within the timeout"
                                   : "TLS handshake: " + tls->describe_failure(tls_stream.native_handle(), ec, endpoint.host);
                boost::system::error_code ignored;
                s->socket().close(ignored);
                co_return false;
            }
            ec = co_await exchange(tls_stream, parser);
        } else {
            ec = co_await exchange(*s, parser);
        }
        boost::system::error_code ignored;
        s->socket().close(ignored);
        if (ec) {
            last_failure = ec == beast::error::timeout ? "no answer within the timeout" : ec.message();
            co_return false;
        }
        unsigned status = parser.get().result_int();
        if (status < 200 || status > 299) {
            last_failure = "status " + std::to_string(status);
            co_return false;
        }
        co_return true;
    }

    void record(bool ok) {
        auto& st = *endpoint.state;
        if (ok) {
            fails = 0;
            ++passes;
            st.passed_check.store(true, std::memory_order_relaxed);
            if (passes >= spec.healthy_threshold) {
                if (!st.healthy.exchange(true))
                    spdlog::info("cluster \"{}\" endpoint {} is healthy again ({} checks passed)", cluster, endpoint.key,
                                 passes);
                // Passing checks also end a passive ejection.
                if (st.ejected_until.exchange(0) > 0)
                    spdlog::info("cluster \"{}\" endpoint {} returns from ejection: health checks pass", cluster,
                                 endpoint.key);
            }
        } else {
            passes = 0;
            ++fails;
            if (fails >= spec.unhealthy_threshold && st.healthy.exchange(false))
                spdlog::warn("cluster \"{}\" endpoint {} is unhealthy after {} failed checks of GET {} (last: {}); "
                             "new requests avoid it, open ones continue",
                             cluster, endpoint.key, fails, spec.path, last_failure);
        }
    }
};

namespace {

asio::awaitable<void> run_probe(std::shared_ptr<HealthChecker::Probe> p) {
    std::minstd_rand rng(static_cast<unsigned>(std::hash<std::string>{}(p->cluster + p->endpoint.key)));
    std::uniform_real_distribution<double> spread(0.0, 1.0);
    auto interval = std::chrono::duration<double, std::milli>(p->spec.interval);
    // The first check at a random point of the interval, then every interval +-10%.
    p->timer.expires_after(std::chrono::duration_cast<std::chrono::milliseconds>(interval * spread(rng)));
    co_await p->timer.async_wait(nothrow);
    while (!p->stopped) {
        bool ok = co_await p->check();
        if (p->stopped) break;
        p->record(ok);
        p->timer.expires_after(std::chrono::duration_cast<std::chrono::milliseconds>(interval * (0.9 + 0.2 * spread(rng))));
        co_await p->timer.async_wait(nothrow);
    }
}

}  // namespace

void HealthChecker::update(const Snapshot& snap) {
    std::map<std::pair<std::string, std::string>, std::shared_ptr<Probe>> next;
    for (const auto& c : snap.clusters) {
        const auto& spec = snap.config.clusters[static_cast<std::size_t>(&c - snap.clusters.data())].health_check;
        for (const auto& e : c.endpoints) {
            std::pair<std::string, std::string> key{c.name, e.key};
            auto it = probes_.find(key);
            if (spec && it != probes_.end() && it->second->spec == *spec && it->second->endpoint.state == e.state &&
                it->second->tls == c.tls) {
                next[key] = it->second;  // unchanged: keeps running with its counts
                probes_.erase(it);
                continue;
            }
            if (!spec) {
                // No checks (any more): the endpoint is in rotation unless ejected.
                e.state->healthy.store(true, std::memory_order_relaxed);
                continue;
            }
            auto p = std::make_shared<Probe>(io_, c.name, e, *spec, c.tls);
            asio::co_spawn(io_, run_probe(p), asio::detached);
            next[key] = p;
        }
    }
    for (auto& [key, p] : probes_) p->stop();  // endpoints gone, or checks changed
    probes_ = std::move(next);
}

void HealthChecker::stop() {
    for (auto& [key, p] : probes_) p->stop();
    probes_.clear();
}

}  // namespace sluice::proxy
