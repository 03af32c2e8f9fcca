#include "proxy/http/h2_stream.h"

#include "proxy/http/h2_connection.h"
#include "proxy/net/log.h"
#include "proxy/worker/worker_context.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <cstring>

namespace sluice::proxy {

namespace asio = boost::asio;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

}  // namespace

H2Stream::H2Stream(std::shared_ptr<H2Connection> conn, std::int32_t id)
    : conn_(std::move(conn)),
      id_(id),
      exchange_(*this),
      dog_(conn_->executor()),
      body_wake_(conn_->executor()),
      out_wake_(conn_->executor()) {}

void H2Stream::start(bool request_ended) {
    started_ = true;
    request_ended_ = request_ended;
    asio::co_spawn(conn_->executor(), [self = shared_from_this()] { return self->run(); },
                   log_if_thrown("HTTP/2 stream"));
}

asio::awaitable<void> H2Stream::run() {
    // However the exchange ends (an exception included), the connection forgets the stream.
    struct Done {
        H2Stream& s;
        ~Done() { s.conn_->stream_done(s.id_); }
    } done{*this};
    if (gone_) co_return;  // reset in the same read as its HEADERS (rapid reset): no upstream hears of it
    running_ = true;
    exchange_.begin();
    const auto snapshot = worker().view()->snapshot;
    if (auto refusal = builder_.finish(exchange_.head(), snapshot->config.paths)) {
        co_await exchange_.send_error(refusal->kind, refusal->message);
        exchange_.finish_refused();
    } else {
        co_await exchange_.run();
        exchange_.finish();
    }
    running_ = false;
    dog_.stop();
    if (!gone_) {
        // A response cut short (the upstream broke off, a deadline passed) is
        // reset so the client can tell; a complete one may leave the request
        // body unread, which the client is told to stop sending (RFC 9113 8.1).
        if (!out_done_) conn_->session().reset_stream(id_, H2Session::kInternalError);
        else if (!request_ended_) conn_->session().reset_stream(id_, H2Session::kNoError);
        conn_->flush();
    }
}

void H2Stream::on_body(std::string_view bytes) {
    if (body_off_ == body_in_.size()) {
        body_in_.clear();
        body_off_ = 0;
    }
    body_in_.append(bytes);  // bounded by the stream window sluice advertised
    body_wake_.cancel();
}

bool H2Stream::on_trailer(std::string_view name, std::string_view value, std::size_t limit) {
    // Trailers count against limits.request_headers with the head (as for HTTP/1.1).
    trailer_bytes_ += name.size() + value.size() + 32;
    if (builder_.size() + trailer_bytes_ > limit) return false;
    trailers_in_.emplace_back(name, value);
    return true;
}

void H2Stream::on_request_end() {
    request_ended_ = true;
    body_wake_.cancel();
}

void H2Stream::on_gone() {
    if (gone_) return;
    gone_ = true;
    // A reset or a vanished connection is the client leaving, in whatever
    // phase its exchange is (one not yet running never reaches an upstream).
    if (running_ && !out_done_) exchange_.client_left();
    body_wake_.cancel();
    out_wake_.cancel();
}

void H2Stream::abort() {
    on_gone();
    dog_.stop();
}

void H2Stream::consume_body(std::size_t n) {
    body_off_ += n;
    conn_->session().consumed(id_, n);
    conn_->flush();  // the WINDOW_UPDATE
}

asio::awaitable<void> H2Stream::wait_body() {
    if (gone_ || deadline_passed() || request_ended_ || body_off_ < body_in_.size()) co_return;
    body_wake_.expires_at(Watchdog::time_point::max());
    co_await body_wake_.async_wait(nothrow);
}

void H2Stream::submit_head(const ResponseHead& head, bool end,
                           const std::vector<std::pair<std::string, std::string>>& extra) {
    out_.clear();
    out_index_ = 0;
    out_last_ = out_done_ = end;
    conn_->session().submit_response(id_, head, end, extra);
    conn_->flush();
}

void H2Stream::submit_tunnel_head(const H2Fields& fields) {
    out_.clear();
    out_index_ = 0;
    out_last_ = out_done_ = false;
    conn_->session().submit_simple(id_, 200, fields, true);
    conn_->flush();
}

void H2Stream::submit_answer(int status, const std::vector<std::pair<std::string, std::string>>& fields,
                             std::string_view body) {
    answer_.assign(body);
    out_.assign({asio::buffer(answer_)});
    out_index_ = 0;
    out_last_ = true;
    out_done_ = body.empty();
    conn_->session().submit_simple(id_, status, fields, !body.empty());
    conn_->flush();
}

asio::awaitable<bool> H2Stream::send_body(const std::vector<asio::const_buffer>& body, bool last,
                                          const H2Fields* trailers) {
    out_trailers_ = trailers;
    out_.clear();
    out_index_ = 0;
    for (const auto& b : body)
        if (b.size()) out_.push_back(b);
    out_last_ = last;
    conn_->session().resume_data(id_);
    conn_->flush();
    // nghttp2 takes the bytes as the client's window allows; until then the
    // upstream is not read (backpressure), and the views stay valid.
    while (!gone_ && !deadline_passed() && (out_index_ < out_.size() || (last && !out_done_))) {
        out_wake_.expires_at(Watchdog::time_point::max());
        co_await out_wake_.async_wait(nothrow);
    }
    // All taken counts as sent, also when the stream closed right after (its END_STREAM went out).
    const bool sent = out_index_ == out_.size() && (!last || out_done_);
    if (!sent) {
        // The views point into the upstream's buffer, which goes with the exchange: nothing may pull them now.
        out_.clear();
        out_index_ = 0;
        out_last_ = false;
    }
    out_trailers_ = nullptr;
    co_return sent;
}

asio::awaitable<bool> H2Stream::wait_answer_taken() {
    const std::uint64_t deadlines = deadlines_;
    while (!gone_ && deadlines == deadlines_ && !out_done_) {
        out_wake_.expires_at(Watchdog::time_point::max());
        co_await out_wake_.async_wait(nothrow);
    }
    co_return out_done_;
}

H2Session::Pull H2Stream::pull_body(std::uint8_t* out, std::size_t max) {
    H2Session::Pull pull;
    while (out_index_ < out_.size() && pull.bytes < max) {
        asio::const_buffer& b = out_[out_index_];
        std::size_t n = std::min(b.size(), max - pull.bytes);
        std::memcpy(out + pull.bytes, b.data(), n);
        pull.bytes += n;
        b += n;
        if (b.size() == 0) ++out_index_;
    }
    if (out_index_ == out_.size()) {
        if (out_last_) {
            pull.end = true;
            pull.trailers = out_trailers_;
            out_done_ = true;
        } else {
            pull.deferred = true;
        }
        out_wake_.cancel();
    }
    return pull;
}

WorkerContext& H2Stream::worker() const { return conn_->worker(); }
const std::shared_ptr<ListenerInfo>& H2Stream::listener_info() const { return conn_->listener_info(); }
const std::string& H2Stream::peer_ip() const { return conn_->peer_ip(); }
std::string H2Stream::client_address() const { return conn_->client_address(); }
bool H2Stream::draining() const { return conn_->draining(); }
asio::any_io_executor H2Stream::executor() { return conn_->executor(); }

void H2Stream::set_phase(Phase p, Watchdog::time_point deadline) {
    phase_ = p;
    dog_.fixed(deadline);
    dog_.arm(shared_from_this());
}

void H2Stream::set_streaming(Phase p, Watchdog::Clock::duration idle) {
    phase_ = p;
    dog_.streaming(idle);
    dog_.arm(shared_from_this());
}

void H2Stream::on_deadline(Watchdog::Which which) {
    timed_out_ = deadline_passed_in(phase_, which == Watchdog::Which::hard, which == Watchdog::Which::idle);
    ++deadlines_;
    exchange_.cancel_upstream();
    body_wake_.cancel();
    out_wake_.cancel();
}

}  // namespace sluice::proxy
