#include "proxy/http_session.h"

#include "config/duration.h"
#include "proxy/log.h"
#include "proxy/message_rules.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>

#include <cstring>

namespace sluice::proxy {
namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxLingerBytes = 1024 * 1024;
constexpr auto kLinger = std::chrono::seconds(2);

// Client-supplied text in our messages stays short and on one line.
std::string printable(std::string_view s, std::size_t max = 200) {
    std::string out;
    for (char c : s.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    if (s.size() > max) out += "...";
    return out;
}

}  // namespace

Session::Session(Worker& worker, std::shared_ptr<ListenerInfo> listener, tcp::socket socket)
    : worker_(worker),
      listener_(std::move(listener)),
      client_(std::move(socket)),
      in_(worker.buffers(), true),
      dog_(client_.socket().get_executor()),
      pump_done_(client_.socket().get_executor()) {
    boost::system::error_code ec;
    auto peer = client_.socket().remote_endpoint(ec);
    if (!ec) {
        peer_ip_ = peer.address().to_string();
        peer_port_ = peer.port();
    }
    client_.socket().set_option(tcp::no_delay(true), ec);
    listener_->connections.fetch_add(1, std::memory_order_relaxed);
    worker_.add_downstream(this);
}

Session::~Session() {
    listener_->connections.fetch_sub(1, std::memory_order_relaxed);
    worker_.remove_downstream(this);
}

void Session::start() {
    // request_headers counts from accept for the first request (the TLS handshake included).
    const auto& snap = *worker_.view()->snapshot;
    const auto& t = snap.config.timeouts;
    if (listener_->scheme == "https") {
        tls_ = snap.tls_for(listener_->spec.name);
        if (!tls_) return;  // the listener lost TLS in a change that raced this accept: drop the connection
        client_.use_tls(tls_->initial());
    }
    set_phase(Phase::idle, deadline_after(t.request_headers));
    asio::co_spawn(client_.socket().get_executor(), [self = self()] { return self->run(); },
                   [](std::exception_ptr e) {
                       if (!e) return;
                       try {
                           std::rethrow_exception(e);
                       } catch (const std::exception& x) {
                           spdlog::error("connection ended by an internal error: {}", x.what());
                       }
                   });
}

void Session::set_phase(Phase p, Watchdog::time_point deadline) {
    phase_ = p;
    dog_.set_phase(deadline);
    dog_.set_idle(Watchdog::Clock::duration::zero());
    dog_.arm(self());
}

void Session::set_streaming() {
    const auto& t = view_->snapshot->routes[route_].timeouts;
    dog_.set_phase(Watchdog::time_point::max());
    dog_.set_idle(t.stream_idle);
    dog_.arm(self());
}

void Session::on_deadline(Watchdog::Which which) {
    if (which == Watchdog::Which::hard) timed_out_ = Timeout::max_duration;
    else if (which == Watchdog::Which::idle) timed_out_ = Timeout::stream_idle;
    else {
        switch (phase_) {
        case Phase::idle: timed_out_ = Timeout::http_idle; break;
        case Phase::head: timed_out_ = Timeout::request_headers; break;
        case Phase::connect: timed_out_ = Timeout::connect; break;
        case Phase::request: timed_out_ = Timeout::upstream_response; break;
        case Phase::response: timed_out_ = Timeout::stream_idle; break;
        case Phase::closing: timed_out_ = Timeout::http_idle; break;
        }
    }
    // Pending operations fail with operation_aborted; the coroutine reads timed_out_.
    boost::system::error_code ec;
    client_.socket().cancel(ec);
    if (upstream_) upstream_->socket().cancel(ec);
    if (resolver_) resolver_->cancel();
}

void Session::close_if_idle() {
    if (phase_ != Phase::idle) return;
    aborted_ = true;
    boost::system::error_code ec;
    client_.socket().cancel(ec);
}

void Session::abort(CloseReason) {
    aborted_ = true;
    boost::system::error_code ec;
    client_.socket().close(ec);
    if (upstream_) upstream_->stream.close();
}

bool Session::request_body_done() const {
    return !req_parser_ || (req_parser_->is_done() && pump_ != Pump::running);
}

asio::awaitable<void> Session::run() {
    if (client_.tls()) {
        auto ec = co_await client_.handshake(asio::ssl::stream_base::server);
        tls_.reset();  // the SNI callback is done with it
        auto& counts = worker_.stats().listener(listener_->spec.name);
        ++(ec || aborted_ ? counts.tls_handshake_failures : counts.tls_handshakes);
        if (ec || aborted_) {
            // Scanners, plain HTTP on the TLS port, untrusted certificates: not worth a warning each.
            spdlog::debug("TLS handshake with {} on listener \"{}\" failed: {}", client_address(), listener_->spec.name,
                          timed_out_ != Timeout::none ? "timed out (timeouts.request_headers)" : ec.message());
            boost::system::error_code ignored;
            client_.socket().close(ignored);
            dog_.stop();
            co_return;
        }
    }
    bool first = true;
    while (!aborted_) {
        if (!co_await wait_for_request(first)) break;
        rec_ = Record{};
        rec_.start = Watchdog::Clock::now();
        req_.clear();
        if (!co_await read_request_head()) {
            if (rec_.status) account_exchange();  // refused with an answer (400, 408, 414, 431)
            break;
        }
        Exchange e = co_await handle_request();
        account_exchange();
        // The exchange's snapshot is let go here: an old config dies with its last request.
        dog_.set_hard(Watchdog::time_point::max());
        worker_.release_view(view_);
        upstream_.reset();
        req_parser_.reset();
        // Draining: whatever the response said, no further request on this connection.
        if (e == Exchange::close || aborted_ || draining()) break;
        first = false;
    }
    co_await close_gracefully();
    dog_.stop();
}

asio::awaitable<bool> Session::wait_for_request(bool first) {
    timed_out_ = Timeout::none;
    // A copy: the worker may move to a newer snapshot while this connection idles.
    const config::Timeouts t = worker_.view()->snapshot->config.timeouts;
    if (!in_.empty()) {  // a pipelined request is already here
        set_phase(Phase::head, deadline_after(t.request_headers));
        co_return true;
    }
    if (!first) set_phase(Phase::idle, deadline_after(t.http_idle));
    if (client_.tls()) {
        // TLS may hold bytes already read from the socket, which a readiness
        // wait would not see: read instead (the buffer stays while idle).
        auto [ec, n] = deadline_passed() ? cancelled_io() : co_await client_.read_some(in_.prepare());
        if (ec || aborted_) co_return false;
        in_.commit(n);
    } else {
        in_.release_if_empty();  // an idle connection holds no pooled buffer
        if (deadline_passed()) co_return false;
        // A read, not a readiness wait: Asio re-arms epoll (one epoll_ctl) for
        // every wait, while a read waits on the registration it already has.
        auto [ec, n] = co_await client_.socket().async_read_some(asio::buffer(idle_read_), nothrow);
        if (ec || aborted_) co_return false;
        std::memcpy(in_.prepare(n).data(), idle_read_, n);
        in_.commit(n);
    }
    if (first) phase_ = Phase::head;  // keeps the deadline counted from accept
    else set_phase(Phase::head, deadline_after(t.request_headers));
    co_return true;
}

asio::awaitable<bool> Session::read_request_head() {
    const auto snapshot = worker_.view()->snapshot;
    const auto& limits = snapshot->config.limits;
    std::size_t end = 0;
    for (;;) {
        // RFC 9112 2.2: empty lines before a request line are ignored.
        while (in_.size() >= 2 && in_.data().substr(0, 2) == "\r\n") in_.consume(2);
        std::string_view data = in_.data();
        std::size_t eol = data.find("\r\n");
        if ((eol == std::string_view::npos ? data.size() : eol) > limits.request_line) {
            co_await send_error(ErrorKind::uri_too_long,
                                "the request line is longer than " + config::format_size(limits.request_line) +
                                    " (limits.request_line); shorten the URL or raise the limit",
                                true);
            co_return false;
        }
        end = find_head_end(data);
        if (end > limits.request_headers || (end == 0 && data.size() >= limits.request_headers)) {
            co_await send_error(ErrorKind::headers_too_large,
                                "the request headers are larger than " + config::format_size(limits.request_headers) +
                                    " (limits.request_headers); send fewer or smaller headers or raise the limit",
                                true);
            co_return false;
        }
        if (end) break;
        auto [ec, n] = deadline_passed() ? cancelled_io() : co_await client_.read_some(in_.prepare());
        if (ec) {
            if (timed_out_ == Timeout::request_headers && !in_.empty())
                co_await send_error(ErrorKind::request_timeout,
                                    "the request headers did not arrive within " +
                                        config::describe_duration(snapshot->config.timeouts.request_headers) +
                                        " (timeouts.request_headers)",
                                    true);
            co_return false;  // the client left, or sent nothing in time
        }
        in_.commit(n);
    }

    // The head is parsed from a copy so its views stay valid through the exchange.
    req_.clear();
    req_.raw.assign(in_.data().data(), end);
    in_.consume(end);
    req_parser_.emplace(req_);
    if (auto refusal = parse_request_head(req_, *req_parser_, snapshot->config.paths)) {
        client_keep_alive_ = false;
        co_await send_error(refusal->kind, refusal->message, true);
        co_return false;
    }
    req_parser_->eager(true);
    client_keep_alive_ = req_parser_->keep_alive();
    co_return true;
}

asio::awaitable<Session::Exchange> Session::handle_request() {
    view_ = worker_.view();
    const Snapshot& snap = *view_->snapshot;
    std::size_t r = snap.router.match(req_);
    if (r == Router::npos) {
        std::string msg = "no route matches " + printable(req_.method, 32) + " " + printable(req_.path) +
                          " on listener \"" + listener_->spec.name + "\"";
        if (snap.builtin_default) {
            const auto& a = snap.config.admin;
            std::string admin = "http://" + (a.address.find(':') != std::string::npos ? "[" + a.address + "]" : a.address) +
                                ":" + std::to_string(a.port);
            msg += "\nsluice is running its built-in default config, which has no routes. Add a cluster and a route "
                   "on the admin API:\n  curl -X PUT " + admin +
                   "/clusters/app -H 'Content-Type: application/json' -d '{\"endpoints\": [\"127.0.0.1:3000\"]}'\n"
                   "  curl -X POST " + admin +
                   "/routes -H 'Content-Type: application/json' -d '{\"name\": \"all\", \"match\": {\"path_prefix\": "
                   "\"/\"}, \"cluster\": \"app\"}'"
                   "\nor start sluice with --config FILE (see docs/config.md)";
        }
        co_return co_await send_error(ErrorKind::no_route, msg);
    }
    route_ = r;
    rec_.routed = true;
    const RouteRuntime& route = snap.routes[r];
    // Upgrade: websocket with an "upgrade" token in Connection, any case, any
    // order. HTTP/1.0 has no upgrades (RFC 9110 7.8): the request goes on as a
    // plain one, its Upgrade dropped as hop-by-hop.
    bool upgrade = req_.version >= 11 && req_.connection_has("upgrade") &&
                   boost::beast::iequals(req_.find(http::field::upgrade), "websocket");
    upgrade_ = upgrade && route.spec->websocket;
    if (upgrade && !route.spec->websocket)
        co_return co_await send_error(ErrorKind::websocket_disabled,
                                      "route \"" + route.spec->name +
                                          "\" does not accept WebSocket upgrades (websocket: false)");
    // After a 101 every byte is tunnel data: a body would be read as frames.
    if (upgrade_ && !req_parser_->is_done())
        co_return co_await send_error(ErrorKind::bad_request, "a WebSocket upgrade request cannot carry a body", true);
    co_return co_await forward(r);
}

asio::awaitable<Session::Exchange> Session::send_error(ErrorKind kind, std::string_view message, bool force_close) {
    bool close = force_close || !client_keep_alive_ || !request_body_done() || draining();
    out_head_ = render_error(kind, message, close, req_.verb == http::verb::head);
    rec_.status = status_of(kind);
    rec_.error = kind;
    ++route_stats().errors[static_cast<std::size_t>(kind)];
    log_proxy_error(listener_->spec.name, status_of(kind), code_of(kind), message);
    phase_ = Phase::response;
    dog_.set_phase(deadline_after(worker_.view()->snapshot->config.timeouts.stream_idle));
    dog_.arm(self());
    auto [ec, n] = co_await client_.write(asio::buffer(out_head_));
    co_return (ec || close) ? Exchange::close : Exchange::keep_alive;
}

RouteStats& Session::route_stats() {
    if (rec_.routed && view_) return *view_->route_stats[route_];
    return worker_.stats().route("");
}

std::string Session::client_address() const {
    if (peer_ip_.find(':') != std::string::npos) return "[" + peer_ip_ + "]:" + std::to_string(peer_port_);
    return peer_ip_ + ":" + std::to_string(peer_port_);
}

void Session::count_response(int status) {
    RouteStats& rs = route_stats();
    rs.count_response(listener_->spec.name, status);
    rs.duration.observe(std::chrono::duration<double>(Watchdog::Clock::now() - rec_.start).count());
}

void Session::account_exchange() {
    if (rec_.tunneled) return;  // counted at the upgrade; the tunnel logs its own line
    RouteStats& rs = route_stats();
    if (rec_.streaming) {
        --rs.streams_active;
        rec_.streaming = false;
    }
    if (rec_.status) count_response(rec_.status);
    if (!worker_.access_log_enabled()) return;
    const auto now = Watchdog::Clock::now();
    const auto& snap = view_ ? *view_->snapshot : *worker_.view()->snapshot;
    AccessRecord r;
    const auto took = now - rec_.start;
    r.duration = std::chrono::duration<double>(took).count();
    r.start = std::chrono::system_clock::now() - std::chrono::duration_cast<std::chrono::system_clock::duration>(took);
    r.kind = rec_.stream ? "stream" : "http";
    r.listener = listener_->spec.name;
    if (rec_.routed && view_) r.route = snap.routes[route_].spec->name;
    if (rec_.upstream && view_) {
        r.cluster = snap.clusters[cluster_].name;
        r.endpoint = snap.clusters[cluster_].endpoints[endpoint_].key;
    }
    std::string client = client_address();
    r.client = client;
    r.method = req_.method;
    r.path = req_.path;
    r.status = rec_.status;
    r.bytes_received = rec_.bytes_in;
    r.bytes_sent = rec_.bytes_out;
    if (rec_.connect) r.upstream_connect = std::chrono::duration<double>(*rec_.connect).count();
    if (rec_.first_byte) r.upstream_first_byte = std::chrono::duration<double>(*rec_.first_byte).count();
    if (rec_.error) r.error = code_of(*rec_.error);
    r.config_version = snap.version;
    worker_.log_access(r);
}

bool Session::describe(ConnectionInfo& out) const {
    if (!rec_.streaming || !view_) return false;
    const Snapshot& snap = *view_->snapshot;
    out.kind = "stream";
    out.listener = listener_->spec.name;
    out.route = snap.routes[route_].spec->name;
    out.cluster = snap.clusters[cluster_].name;
    out.endpoint = snap.clusters[cluster_].endpoints[endpoint_].key;
    out.client = client_address();
    out.started = rec_.start;
    out.bytes_from_client = rec_.bytes_in;
    out.bytes_to_client = rec_.bytes_out;
    out.config_version = snap.version;
    return true;
}

asio::awaitable<void> Session::close_gracefully() {
    boost::system::error_code ec;
    if (aborted_ || !client_.socket().is_open()) {
        client_.socket().close(ec);
        co_return;
    }
    // Unread client bytes would turn our close into a reset that can destroy the
    // response still in flight; send FIN, then read and discard for a moment.
    bool unread = !in_.empty() || !request_body_done();
    set_phase(Phase::closing, Watchdog::Clock::now() + kLinger);
    if (client_.tls() && !deadline_passed()) co_await client_.close_notify();  // TLS says "done" before TCP does
    client_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (unread && !ec) {
        std::size_t discarded = 0;
        while (discarded < kMaxLingerBytes) {
            in_.consume(in_.size());
            auto [rec, n] = deadline_passed() ? cancelled_io() : co_await client_.read_some(in_.prepare());
            if (rec) break;
            discarded += n;
        }
    }
    client_.socket().close(ec);
}

}  // namespace sluice::proxy
