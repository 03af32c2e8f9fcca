#include "proxy/http/http1_exchange.h"

#include "proxy/http/http_connection.h"
#include "proxy/worker/worker_context.h"

namespace sluice::proxy {

namespace asio = boost::asio;

namespace {

constexpr std::size_t kBodyRead = 4096;  // at least this much room for each read of a request body

}  // namespace

Http1Exchange::Http1Exchange(HttpConnection& conn) : Exchange(conn), conn_(conn) {}

asio::awaitable<bool> Http1Exchange::take_head(std::size_t end, const config::Paths& paths) {
    IoBuffer& in = conn_.in();
    // The head is parsed from a copy so its views stay valid through the exchange.
    req_.clear();
    req_.raw.assign(in.data().data(), end);
    in.consume(end);
    req_parser_.emplace(req_);
    if (auto refusal = parse_request_head(req_, *req_parser_, paths)) {
        client_keep_alive_ = false;
        co_await send_error(refusal->kind, refusal->message, true);
        co_return false;
    }
    client_keep_alive_ = req_parser_->keep_alive();
    co_return true;
}

asio::awaitable<ExchangeEnd> Http1Exchange::send_error(ErrorKind kind, std::string_view message, bool force_close) {
    bool close = force_close || !client_keep_alive_ || !request_body_done() || conn_.draining();
    out_head_ = render_error(kind, message, close, req_.verb == http::verb::head);
    record_error(kind, message);
    conn_.set_phase(Phase::response, deadline_after(conn_.worker().view()->snapshot->config.timeouts.stream_idle));
    auto [ec, n] = co_await conn_.client().write(asio::buffer(out_head_));
    co_return (ec || close) ? ExchangeEnd::close : ExchangeEnd::keep_alive;
}

void Http1Exchange::finish() {
    Exchange::finish();
    req_parser_.reset();
}

bool Http1Exchange::request_body_done() const {
    return !req_parser_ || (req_parser_->is_done() && pump_ != Pump::running);
}

void Http1Exchange::set_request_framing(UpstreamRequest& up) { proxy::set_request_framing(up, *req_parser_, req_); }

asio::awaitable<Exchange::Pump> Http1Exchange::pump_body() {
    IoBuffer& in = conn_.in();
    for (;;) {
        // Trailers count against the request head limit (limits.request_headers).
        auto step = feed_body(*req_parser_, in.data(), view_->snapshot->config.limits.request_headers);
        if (step.refusal) {
            client_body_error_ = std::move(*step.refusal);
            co_return Pump::client_bad_body;
        }
        const std::size_t used = step.used;
        const bool last = req_parser_->is_done();
        for (const auto& b : req_parser_->body()) rec_.bytes_in += b.size();
        const bool sent = co_await send_request_body(req_parser_->body(), last, last ? &req_parser_->trailers() : nullptr);
        if (!sent) co_return stop_pump_ ? Pump::stopped : Pump::upstream_failed;
        req_parser_->body().clear();
        in.consume(used);
        if (last) co_return Pump::done;
        // Body bytes go into a large block (the head used a small one).
        auto [ec, n] = conn_.deadline_passed() ? cancelled_io() : co_await conn_.client().read_some(in.prepare(kBodyRead));
        if (ec) {
            if (stop_pump_) co_return Pump::stopped;
            co_return conn_.deadline_passed() ? Pump::client_stalled : Pump::client_left;
        }
        in.commit(n);
        conn_.watchdog().touch();
    }
}

void Http1Exchange::stop_client_reads() {
    boost::system::error_code ec;
    conn_.client().socket().cancel(ec);
}

asio::awaitable<bool> Http1Exchange::relay_interim() {
    if (req_.version < 11) co_return true;  // HTTP/1.0 clients do not expect 1xx
    out_head_.clear();
    build_interim_response(resp_, out_head_);
    auto [ec, n] = conn_.deadline_passed() ? cancelled_io() : co_await conn_.client().write(asio::buffer(out_head_));
    if (ec && !conn_.deadline_passed() && !conn_.aborted()) record_cancel(CancelPhase::waiting);
    co_return !ec;
}

void Http1Exchange::begin_response(const ResponseParser& parser) {
    down_ = ClientResponse{};
    down_.client_http10 = req_.version < 11;
    set_response_framing(down_, parser, resp_);
    down_.close = !client_keep_alive_ || !request_body_done() || conn_.draining() || down_.framing == Framing::until_close;
    rec_.stream = down_.framing == Framing::chunked || down_.framing == Framing::until_close;
    if (set_affinity_) down_.extra_fields = affinity_cookie();
    out_head_.clear();
    build_client_response(resp_, down_, out_head_);
    head_sent_ = false;
}

asio::awaitable<bool> Http1Exchange::send_response(const std::vector<asio::const_buffer>& body, bool last) {
    gather_.clear();
    if (!head_sent_) gather_.emplace_back(asio::buffer(out_head_));
    const bool trailers = last && down_.framing == Framing::chunked && !resp_trailers_.empty();
    append_body(gather_, body, down_.framing, chunk_line_, last && down_.framing == Framing::chunked && !trailers);
    if (trailers) append_last_chunk(gather_, resp_trailers_, trailer_block_);
    if (gather_.empty()) co_return true;
    auto [ec, n] = conn_.deadline_passed() ? cancelled_io() : co_await conn_.client().write(gather_);
    head_sent_ = true;
    co_return !ec;
}

}  // namespace sluice::proxy
