#include "proxy/http/h2_upstream_conn.h"

#include "proxy/http/h2_upstream_stream.h"
#include "proxy/net/log.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace sluice::proxy {

namespace asio = boost::asio;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kWriteBatch = 64 * 1024;
constexpr std::uint32_t kInternalError = 2, kRefusedStream = 7;

}  // namespace

H2UpstreamConn::H2UpstreamConn(std::shared_ptr<UpstreamConn> conn, std::weak_ptr<EndpointPool> pool)
    : conn_(std::move(conn)),
      pool_(std::move(pool)),
      session_(*this, H2ClientSession::Settings{}),
      write_wake_(conn_->socket().get_executor()),
      idle_since_(std::chrono::steady_clock::now()) {
    conn_->transport.set_duplex();
}

H2UpstreamConn::~H2UpstreamConn() { conn_->transport.close(); }

void H2UpstreamConn::start() {
    auto self = shared_from_this();
    asio::co_spawn(write_wake_.get_executor(), [self] { return self->write_loop(); },
                   log_if_thrown("HTTP/2 upstream connection"));
    asio::co_spawn(write_wake_.get_executor(), [self] { return self->read_loop(); },
                   log_if_thrown("HTTP/2 upstream connection"));
}

bool H2UpstreamConn::open(const std::shared_ptr<H2UpstreamStream>& s, const H2Fields& fields, bool has_body) {
    if (!can_open()) return false;
    const std::int32_t id = session_.open(fields, has_body);
    if (id <= 0) return false;
    s->id = id;
    streams_.emplace(id, s);
    flush();
    return true;
}

void H2UpstreamConn::release(H2UpstreamStream& s) {
    auto it = streams_.find(s.id);
    if (it == streams_.end()) return;
    if (!s.closed()) {
        // The exchange ended first (the client left, a deadline): the upstream stops too.
        session_.reset_stream(s.id, H2ClientSession::kCancel);
        session_.forget_stream(s.id);
        flush();
    }
    streams_.erase(it);
    if (!streams_.empty()) return;
    idle_since_ = std::chrono::steady_clock::now();
    if (!in_pool_) close();  // after a GOAWAY, the last stream has ended
}

asio::awaitable<void> H2UpstreamConn::wait_ready(std::chrono::steady_clock::duration limit) {
    if (!starting()) co_return;
    co_await ready_waiters_.wait(write_wake_.get_executor(), limit);
}

void H2UpstreamConn::resume(std::int32_t id) {
    session_.resume_data(id);
    flush();
}

void H2UpstreamConn::consumed(std::int32_t id, std::size_t n) {
    session_.consumed(id, n);
    flush();
}

bool H2UpstreamConn::idle(std::chrono::steady_clock::time_point& since) const {
    if (!streams_.empty()) return false;
    since = idle_since_;
    return true;
}

asio::awaitable<void> H2UpstreamConn::read_loop() {
    auto keep = shared_from_this();
    IoBuffer& in = conn_->in;
    while (!closed_) {
        auto [ec, n] = co_await conn_->transport.read_some(in.prepare());
        if (ec || closed_) {
            if (failure_.empty())
                failure_ = ec == asio::error::eof ? "upstream closed the HTTP/2 connection"
                                                  : "upstream HTTP/2 connection failed: " + ec.message();
            break;
        }
        in.commit(n);
        const bool more = session_.receive(in.data());
        if (session_.settings_received()) ready_waiters_.wake_all();
        in.consume(in.size());
        flush();
        if (!more) {
            if (failure_.empty())
                failure_ = session_.error().empty() ? "upstream ended the HTTP/2 connection"
                                                    : "upstream broke the HTTP/2 protocol: " + session_.error();
            if (session_.flooded()) break;
            leave_pool();
            // The writer sends the GOAWAY and closes.
            co_return;
        }
    }
    close();
}

asio::awaitable<void> H2UpstreamConn::write_loop() {
    auto keep = shared_from_this();
    while (!closed_) {
        out_.clear();
        session_.take_output(out_, kWriteBatch);
        if (out_.empty()) {
            if (session_.finished()) break;
            write_wake_.expires_at(asio::steady_timer::time_point::max());
            co_await write_wake_.async_wait(nothrow);
            continue;
        }
        auto [ec, n] = co_await conn_->transport.write(asio::buffer(out_));
        if (ec) {
            if (failure_.empty()) failure_ = "upstream HTTP/2 connection failed while sending: " + ec.message();
            break;
        }
    }
    close();
}

void H2UpstreamConn::close() {
    if (closed_) return;
    closed_ = true;
    leave_pool();
    conn_->transport.close();
    write_wake_.cancel();
    ready_waiters_.wake_all();
    // Streams still open end with the connection; those the upstream never
    // processed (above a GOAWAY's last stream) may be sent again anywhere.
    auto streams = std::move(streams_);
    streams_.clear();
    for (auto& [id, s] : streams) s->on_close(id > last_processed_ ? kRefusedStream : kInternalError);
}

void H2UpstreamConn::leave_pool() {
    if (!in_pool_) return;
    in_pool_ = false;
    if (auto pool = pool_.lock()) pool->remove_shared(this);
}

H2UpstreamStream* H2UpstreamConn::find(std::int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
}

void H2UpstreamConn::on_headers_begin(std::int32_t id) {
    if (auto* s = find(id)) s->on_headers_begin();
}

bool H2UpstreamConn::on_field(std::int32_t id, std::string_view name, std::string_view value) {
    auto* s = find(id);
    return !s || s->on_field(name, value);
}

void H2UpstreamConn::on_headers_end(std::int32_t id, bool end) {
    if (auto* s = find(id)) s->on_headers_end(end);
}

void H2UpstreamConn::on_data(std::int32_t id, std::string_view bytes) {
    if (auto* s = find(id)) s->on_data(bytes);
    else session_.consumed(id, bytes.size());
}

void H2UpstreamConn::on_data_end(std::int32_t id) {
    if (auto* s = find(id)) s->on_data_end();
}

void H2UpstreamConn::on_stream_close(std::int32_t id, std::uint32_t code) {
    if (auto* s = find(id)) s->on_close(code);
}

H2Session::Pull H2UpstreamConn::pull_body(std::int32_t id, std::uint8_t* out, std::size_t max) {
    if (auto* s = find(id)) return s->pull_body(out, max);
    return H2Session::Pull{0, false, true};
}

void H2UpstreamConn::on_goaway(std::int32_t last_stream, std::uint32_t code) {
    last_processed_ = last_stream;
    spdlog::debug("upstream HTTP/2 GOAWAY (code {}, last stream {})", code, last_stream);
    leave_pool();  // streams up to last_stream run on; new ones go elsewhere
    if (streams_.empty()) close();
}

}  // namespace sluice::proxy
