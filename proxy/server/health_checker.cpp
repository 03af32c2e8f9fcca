#include "proxy/server/health_checker.h"

#include "proxy/message/h2_client_session.h"

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

#include <array>
#include <charconv>
#include <random>

namespace sluice::proxy {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

// An HTTP/2 check waits for the response head only: its :status, or the stream's end.
class H2HeadProbe final : public H2ClientSession::Handler {
public:
    unsigned status = 0;
    bool closed = false;

    void on_headers_begin(std::int32_t) override {}
    bool on_field(std::int32_t, std::string_view name, std::string_view value) override {
        if (name == ":status") std::from_chars(value.data(), value.data() + value.size(), status);
        return true;
    }
    void on_headers_end(std::int32_t, bool) override {
        if (status < 200) status = 0;  // an interim head: the final one follows
    }
    void on_data(std::int32_t, std::string_view) override {}
    void on_data_end(std::int32_t) override {}
    void on_stream_close(std::int32_t, std::uint32_t) override { closed = true; }
    H2Session::Pull pull_body(std::int32_t, std::uint8_t*, std::size_t) override { return {0, false, true}; }
    void on_goaway(std::int32_t, std::uint32_t) override { closed = true; }
};

}  // namespace

struct HealthChecker::Probe {
    Probe(asio::io_context& io, std::string c, EndpointRuntime e, config::HealthCheck s, std::shared_ptr<UpstreamTls> t,
          bool h2)
        : cluster(std::move(c)), endpoint(std::move(e)), spec(std::move(s)), tls(std::move(t)), http2(h2), timer(io),
          io(io) {}

    std::string cluster;
    EndpointRuntime endpoint;  // a copy: the snapshot may go away
    config::HealthCheck spec;
    std::shared_ptr<UpstreamTls> tls;  // the cluster's TLS, as requests use it; null: plain
    bool http2 = false;                // protocol: http2: the check is an HTTP/2 stream
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

    // The same GET as one HTTP/2 stream on a connection of its own (h2c, or h2 by ALPN).
    template <class AsyncStream>
    asio::awaitable<boost::system::error_code> exchange_h2(AsyncStream& s, unsigned& status) {
        H2HeadProbe head;
        H2ClientSession session(head, H2ClientSession::Settings{});
        session.open({{":method", "GET"},
                      {":scheme", tls ? "https" : "http"},
                      {":authority", endpoint.key},
                      {":path", spec.path},
                      {"user-agent", "sluice-health-check"}},
                     false);
        std::string out;
        std::array<char, 16384> in;
        for (;;) {
            out.clear();
            session.take_output(out, 64 * 1024);
            if (!out.empty()) {
                auto [ec, n] = co_await asio::async_write(s, asio::buffer(out), nothrow);
                if (ec) co_return ec;
            }
            if (head.status >= 200) break;
            if (head.closed) co_return asio::error::connection_reset;
            auto [ec, n] = co_await s.async_read_some(asio::buffer(in), nothrow);
            if (ec) co_return ec;
            if (!session.receive({in.data(), n}) && head.status < 200) co_return asio::error::connection_aborted;
        }
        status = head.status;
        co_return boost::system::error_code{};
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
        unsigned h2_status = 0;
        if (tls) {
            // The same TLS as requests: SNI, verification and client certificate.
            asio::ssl::stream<beast::tcp_stream&> tls_stream(*s, tls->context());
            tls->prepare(tls_stream.native_handle(), endpoint.host, http2);
            std::tie(ec) = co_await tls_stream.async_handshake(asio::ssl::stream_base::client, nothrow);
            if (ec) {
                last_failure = ec == beast::error::timeout
                                   ? "TLS handshake: no answer within the timeout"
                                   : "TLS handshake: " + tls->describe_failure(tls_stream.native_handle(), ec, endpoint.host);
                boost::system::error_code ignored;
                s->socket().close(ignored);
                co_return false;
            }
            if (http2 && !UpstreamTls::agreed_h2(tls_stream.native_handle())) {
                last_failure = "the endpoint did not agree to HTTP/2 by ALPN";
                boost::system::error_code ignored;
                s->socket().close(ignored);
                co_return false;
            }
            if (http2) ec = co_await exchange_h2(tls_stream, h2_status);
            else ec = co_await exchange(tls_stream, parser);
        } else if (http2) {
            ec = co_await exchange_h2(*s, h2_status);
        } else {
            ec = co_await exchange(*s, parser);
        }
        boost::system::error_code ignored;
        s->socket().close(ignored);
        if (ec) {
            last_failure = ec == beast::error::timeout ? "no answer within the timeout" : ec.message();
            co_return false;
        }
        unsigned status = http2 ? h2_status : parser.get().result_int();
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
                it->second->tls == c.tls && it->second->http2 == c.http2) {
                next[key] = it->second;  // unchanged: keeps running with its counts
                probes_.erase(it);
                continue;
            }
            if (!spec) {
                // No checks (any more): the endpoint is in rotation unless ejected.
                e.state->healthy.store(true, std::memory_order_relaxed);
                continue;
            }
            auto p = std::make_shared<Probe>(io_, c.name, e, *spec, c.tls, c.http2);
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
