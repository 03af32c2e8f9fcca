// The attempt loop (Pingora's proxy loop): pick an endpoint, attempt the
// exchange there, and when the attempt fails before any response byte reached
// the client, try again only if the failure says that is safe and the retry
// budget allows.
#include "proxy/http/balancer.h"
#include "proxy/http/exchange.h"
#include "proxy/message/request_path.h"
#include "proxy/net/listener.h"
#include "proxy/worker/worker_context.h"

#include <boost/asio/write.hpp>

#include <openssl/evp.h>

#include <array>

namespace sluice::proxy {

namespace asio = boost::asio;
using Retry = UpstreamFailure::Retry;

namespace {

// Methods a retry may repeat once bytes went upstream (RFC 9110 9.2.2).
bool idempotent(http::verb v) {
    switch (v) {
    case http::verb::get:
    case http::verb::head:
    case http::verb::options:
    case http::verb::trace:
    case http::verb::put:
    case http::verb::delete_: return true;
    default: return false;
    }
}

constexpr std::size_t kMaxRetries = 2;  // on other endpoints, after the first attempt

// Retries in flight on this worker stay under a fifth of its exchanges on the
// cluster (and at least 3), so a failing cluster does not see its load multiplied.
class RetryBudget {
public:
    explicit RetryBudget(WorkerView::Cluster& c) : c_(c) { ++c_.active; }
    ~RetryBudget() {
        --c_.active;
        if (retrying_) --c_.retrying;
    }
    RetryBudget(const RetryBudget&) = delete;
    RetryBudget& operator=(const RetryBudget&) = delete;

    // This exchange may retry (once it has, it keeps its place in the budget).
    bool allows() {
        if (retrying_) return true;
        if (c_.retrying >= std::max<std::int64_t>(3, c_.active / 5)) return false;
        retrying_ = true;
        ++c_.retrying;
        return true;
    }

private:
    WorkerView::Cluster& c_;
    bool retrying_ = false;
};

// Counts an exchange on its endpoint while an attempt there lasts, on every path.
class ActiveOnEndpoint {
public:
    explicit ActiveOnEndpoint(std::shared_ptr<EndpointPool> p) : pool_(std::move(p)) { ++pool_->active_requests; }
    ~ActiveOnEndpoint() { --pool_->active_requests; }
    ActiveOnEndpoint(const ActiveOnEndpoint&) = delete;
    ActiveOnEndpoint& operator=(const ActiveOnEndpoint&) = delete;

private:
    std::shared_ptr<EndpointPool> pool_;
};

}  // namespace

asio::awaitable<ExchangeEnd> Exchange::forward() {
    const Snapshot& snap = *view_->snapshot;
    const RouteRuntime& route = snap.routes[route_];
    client_.watchdog().set_hard(deadline_after(route.timeouts.max_duration));
    auto& cluster = view_->clusters[route.cluster];
    const ClusterRuntime& cr = snap.clusters[route.cluster];
    cluster_ = route.cluster;

    std::string_view path = req_.path;
    if (const auto& rw = route.spec->rewrite) {
        if (rw->path) {
            path = *rw->path;
        } else {
            const auto& m = route.spec->match;
            std::string_view rest = req_.path.substr(m.path ? m.path->size() : m.path_prefix->size());
            rewritten_path_ = *rw->path_prefix;
            rewritten_path_ += rest;
            // The request path is normal, so only a remainder that starts with
            // '.' can make a dot segment where prefix and remainder meet.
            if (!rest.empty() && rest.front() == '.' && !rewrite_stays_within(rewritten_path_, *rw->path_prefix))
                co_return co_await send_error(ErrorKind::bad_request,
                                              "the path " + std::string(req_.path.substr(0, 200)) + " rewritten by " +
                                                  place().route_label() + " would leave its prefix " + *rw->path_prefix);
            path = rewritten_path_;
        }
    }
    up_ = UpstreamRequest{path, client_.peer_ip(), client_.listener_info()->scheme, {}};
    if (upgrade_) up_.upgrade = req_.extended_connect ? "websocket" : req_.find(http::field::upgrade);
    if (upgrade_ && req_.extended_connect) {
        // HTTP/2 has no Sec-WebSocket-Key (RFC 8441): the HTTP/1.1 hop gets one made here.
        std::array<unsigned char, 16> nonce;
        for (auto& b : nonce) b = static_cast<unsigned char>(client_.worker().rng()());
        websocket_key_.resize(25);  // 24 characters and the NUL EVP_EncodeBlock writes
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(websocket_key_.data()), nonce.data(), nonce.size());
        websocket_key_.resize(24);
        up_.websocket_key = websocket_key_;
    }
    set_request_framing(up_);
    const bool has_body = !request_complete();
    const bool repeatable = !has_body && idempotent(req_.verb);

    // From now on a client that leaves is seen at once, also while its body's
    // pump waits for the upstream to take more and so reads nothing.
    client_.watch_for_hangup();
    RetryBudget budget(cluster);
    std::array<std::size_t, kMaxRetries + 1> tried{};
    std::size_t ntried = 0;
    bool stale_retry_used = false;
    bool fresh_same_endpoint = false;
    std::optional<UpstreamFailure> last;
    for (;;) {
        if (!fresh_same_endpoint) {
            Pick pick = pick_endpoint({cr, cluster, req_, client_.peer_ip(), std::span(tried.data(), ntried),
                                       client_.worker().rng(), coarse_now_ns()});
            if (pick.endpoint == Pick::npos) {
                // After a failure, the client hears about that failure.
                if (!last) last = no_healthy_endpoint(place(), available_count(cr, coarse_now_ns()));
                co_return co_await fail(*last);
            }
            endpoint_ = pick.endpoint;
            set_affinity_ = pick.set_affinity;
            // Admission (WebSocket tunnels are not counted): the first attempt may
            // queue; a retry moves its slot only to an endpoint with room now.
            if (ntried == 0 && !upgrade_ && cr.admission->cap() > 0) {
                if (auto end = co_await admit()) co_return *end;
            } else if (ntried > 0 && admission_ && !readmit()) {
                co_return co_await fail(*last);
            }
        }
        AttemptEnd a = co_await attempt(fresh_same_endpoint);
        if (a.end) co_return *a.end;
        if (client_.aborted()) co_return ExchangeEnd::close;
        const UpstreamFailure& f = a.failure;
        const bool safe = f.retry == Retry::unsent || (f.retry == Retry::if_idempotent && repeatable);
        // A pooled connection the upstream had just closed: once more on a
        // fresh connection to the same endpoint, which is not to blame.
        if (safe && a.reused && !has_body && !stale_retry_used) {
            stale_retry_used = fresh_same_endpoint = true;
            close_upstream();
            upstream_.reset();
            continue;
        }
        fresh_same_endpoint = false;
        const bool others_left = ntried < kMaxRetries && cr.endpoints.size() > ntried + 1;
        // A failure another endpoint could have answered counts against this one.
        if (f.endpoint_at_fault || (safe && others_left)) report_endpoint_result(cr, endpoint_, true, coarse_now_ns());
        if (!safe || !others_left || !budget.allows()) co_return co_await fail(f);
        close_upstream();
        upstream_.reset();
        tried[ntried++] = endpoint_;
        ++view_->cluster_stats[cluster_]->retries;
        client_.clear_timeout();
        last = std::move(a.failure);
    }
}

asio::awaitable<Exchange::AttemptEnd> Exchange::attempt(bool fresh_connection) {
    const RouteRuntime& route = view_->snapshot->routes[route_];
    auto& cluster = view_->clusters[cluster_];
    rec_.upstream = true;
    rec_.connect.reset();
    rec_.first_byte.reset();
    ActiveOnEndpoint active(cluster.pools[endpoint_]);
    up_.fallback_host = view_->snapshot->clusters[cluster_].endpoints[endpoint_].key;
    up_head_.clear();
    build_upstream_request(req_, up_, up_head_);
    if (view_->snapshot->clusters[cluster_].http2) co_return co_await attempt_h2(fresh_connection);

    // A retry on the same endpoint never takes another pooled connection: it may be just as stale.
    std::shared_ptr<UpstreamConn> conn = fresh_connection ? nullptr : cluster.pools[endpoint_]->take();
    const bool reused = conn != nullptr;
    if (!conn) {
        AttemptEnd failed;
        conn = co_await connect_upstream(failed.failure);
        if (!conn) co_return failed;
    }
    upstream_ = conn;
    pump_ = Pump::idle;
    stop_pump_ = false;
    pump_head_sent_ = false;
    if (!request_complete()) {
        start_pump(conn);  // it sends the head with the first body bytes
    } else {
        client_.set_phase(Phase::request, deadline_after(route.timeouts.upstream_response));
        auto [ec, n] = client_.deadline_passed() ? cancelled_io()
                                               : co_await conn->transport.write(asio::buffer(up_head_));
        rec_.sent = Watchdog::Clock::now();
        if (ec) {
            // A head that failed to go out was never read by the upstream: any method may be sent again.
            AttemptEnd failed = co_await upstream_io_failed(ec, "while sending the request", Retry::unsent);
            failed.failure.endpoint_at_fault = true;
            failed.reused = reused;
            co_return failed;
        }
    }
    AttemptEnd end = co_await relay_response(conn);
    end.reused = reused;
    co_return end;
}

asio::awaitable<ExchangeEnd> Exchange::fail(const UpstreamFailure& failure) {
    if (upstream_ || h2_up_) {
        drop_upstream();
        co_await finish_pump();
    }
    if (client_.aborted() || pump_ == Pump::client_left) co_return ExchangeEnd::close;
    if (pump_ == Pump::client_bad_body)
        co_return co_await send_error(client_body_error_.kind, client_body_error_.message, true);
    co_return co_await send_error(failure.kind, failure.message);
}

}  // namespace sluice::proxy
