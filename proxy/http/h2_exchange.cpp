#include "proxy/http/h2_exchange.h"

#include "proxy/http/h2_stream.h"
#include "proxy/worker/worker_context.h"

#include <charconv>

namespace sluice::proxy {

namespace asio = boost::asio;

H2Exchange::H2Exchange(H2Stream& stream) : Exchange(stream), stream_(stream) {}

asio::awaitable<ExchangeEnd> H2Exchange::send_error(ErrorKind kind, std::string_view message, bool) {
    record_error(kind, message);
    stream_.set_phase(Phase::response,
                      deadline_after(stream_.worker().view()->snapshot->config.timeouts.stream_idle));
    error_body_.assign(message);
    error_body_ += '\n';
    const bool head = req_.verb == http::verb::head;
    stream_.submit_answer(status_of(kind), error_fields(kind, message), head ? std::string_view{} : error_body_);
    co_await stream_.wait_answer_taken();
    co_return ExchangeEnd::close;
}

bool H2Exchange::request_body_done() const { return request_complete() && pump_ != Pump::running; }

// No body bytes are left to forward: the client ended the stream and the pump took them all.
// An extended CONNECT has no body: its DATA frames are the tunnel's.
bool H2Exchange::request_complete() const {
    return req_.extended_connect || (stream_.request_ended() && stream_.body().empty());
}

void H2Exchange::set_request_framing(UpstreamRequest& up) {
    if (req_.extended_connect) {
        up.framing = Framing::none;
    } else if (stream_.request_ended() && !stream_.trailers().empty()) {
        // Trailers go to an HTTP/1.1 upstream only in the last chunk.
        up.framing = Framing::chunked;
    } else if (req_.has_content_length) {
        // nghttp2 checks that the DATA frames add up to it.
        std::string_view v = req_.find(http::field::content_length);
        up.framing = Framing::length;
        std::from_chars(v.data(), v.data() + v.size(), up.content_length);
    } else if (stream_.request_ended()) {
        // The whole body is here already: its length is known.
        up.framing = stream_.body().empty() ? Framing::none : Framing::length;
        up.content_length = stream_.body().size();
    } else {
        up.framing = Framing::chunked;
    }
}

asio::awaitable<Exchange::Pump> H2Exchange::pump_body() {
    std::vector<asio::const_buffer> spans;
    for (;;) {
        co_await stream_.wait_body();
        if (stop_pump_) co_return Pump::stopped;
        if (stream_.gone()) co_return Pump::client_left;
        if (stream_.deadline_passed()) co_return Pump::client_stalled;
        const std::string_view body = stream_.body();
        const bool last = stream_.request_ended();
        if (body.empty() && !last && pump_head_sent_) continue;
        spans.assign({asio::buffer(body.data(), body.size())});
        const bool sent = co_await send_request_body(spans, last, last ? &stream_.trailers() : nullptr);
        if (!sent) co_return stop_pump_ ? Pump::stopped : Pump::upstream_failed;
        rec_.bytes_in += body.size();
        if (!body.empty()) stream_.consume_body(body.size());
        if (last) co_return Pump::done;
    }
}

void H2Exchange::stop_client_reads() { stream_.wake_body(); }

void H2Exchange::begin_response(const ResponseParser& parser) {
    ClientResponse down;
    set_response_framing(down, parser, resp_);
    rec_.stream = down.framing == Framing::chunked || down.framing == Framing::until_close;
    std::vector<std::pair<std::string, std::string>> extra;
    if (set_affinity_) extra.emplace_back("set-cookie", affinity_value());
    stream_.submit_head(resp_, down.framing == Framing::none, extra);
}

asio::awaitable<bool> H2Exchange::send_response(const std::vector<asio::const_buffer>& body, bool last) {
    co_return co_await stream_.send_body(body, last, last ? &resp_trailers_ : nullptr);
}

}  // namespace sluice::proxy
