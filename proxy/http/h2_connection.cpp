#include "proxy/http/h2_connection.h"

#include "proxy/http/h2_stream.h"
#include "proxy/net/log.h"
#include "proxy/worker/worker_context.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace sluice::proxy {

namespace asio = boost::asio;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kWriteBatch = 64 * 1024;  // frames gathered into one write
// After the last frame (a GOAWAY) the connection reads and drops what the
// client still sends, for a while: closing with unread bytes would reset the
// connection, and the client could lose the GOAWAY that says why.
constexpr std::size_t kMaxLingerBytes = 1024 * 1024;
constexpr auto kLinger = std::chrono::seconds(2);

H2Session::Settings settings_of(const Snapshot& snap) {
    H2Session::Settings s;
    s.max_concurrent_streams = snap.config.limits.http2_max_concurrent_streams;
    s.max_header_list = snap.config.limits.request_headers;
    return s;
}

}  // namespace

H2Connection::H2Connection(WorkerContext& worker, std::shared_ptr<ListenerInfo> listener, Transport client,
                           std::string_view received, std::string peer_ip, std::uint16_t peer_port)
    : worker_(worker),
      listener_(std::move(listener)),
      client_(std::move(client)),
      peer_ip_(std::move(peer_ip)),
      peer_port_(peer_port),
      session_(*this, settings_of(*worker.view()->snapshot)),
      in_(worker.buffers()),
      write_wake_(client_.socket().get_executor()),
      idle_timer_(client_.socket().get_executor()) {
    client_.set_duplex();
    if (!received.empty()) {
        auto room = in_.prepare(received.size());
        std::memcpy(room.data(), received.data(), received.size());
        in_.commit(received.size());
    }
    listener_->connections.fetch_add(1, std::memory_order_relaxed);
    worker_.add_downstream(this);
}

H2Connection::~H2Connection() {
    listener_->connections.fetch_sub(1, std::memory_order_relaxed);
    worker_.remove_downstream(this);
}

void H2Connection::start() {
    auto self = std::static_pointer_cast<H2Connection>(shared_from_this());
    asio::co_spawn(executor(), [self] { return self->write_loop(); }, log_if_thrown("HTTP/2 connection"));
    asio::co_spawn(executor(), [self] { return self->read_loop(); }, log_if_thrown("HTTP/2 connection"));
    became_idle();
}

asio::awaitable<void> H2Connection::read_loop() {
    auto keep = shared_from_this();
    std::size_t dropped = 0;
    while (!closed_ && dropped < kMaxLingerBytes) {
        if (!in_.empty()) {
            if (reading_ && !session_.receive(in_.data())) {
                if (!session_.error().empty())
                    spdlog::debug("HTTP/2 client {} on listener \"{}\": {}", client_address(), listener_->spec.name,
                                  session_.error());
                stop_reading();
                if (session_.flooded()) close();
            } else if (!reading_) {
                dropped += in_.size();
            }
            in_.consume(in_.size());
            flush();
        }
        auto [ec, n] = co_await client_.read_some(in_.prepare());
        if (ec || closed_) break;
        in_.commit(n);
    }
    in_.consume(in_.size());
    in_.release_if_empty();
    stop_reading();
    read_done_ = true;
    // The client has closed its side too: nothing to linger for.
    if (write_done_) close();
}

void H2Connection::stop_reading() {
    if (!reading_) return;
    reading_ = false;
    // The goodbye gets kLinger to go out, also to a client that reads nothing.
    idle_timer_.expires_after(kLinger);
    idle_timer_.async_wait([self = shared_from_this(), this](const boost::system::error_code& e) {
        if (!e) close();
    });
    // The client is gone or broke the protocol: every stream's exchange ends as a client leaving.
    for (auto& [id, stream] : streams_) stream->on_gone();
    flush();  // the writer sends what is left (a GOAWAY) and ends
}

asio::awaitable<void> H2Connection::write_loop() {
    auto keep = shared_from_this();
    while (!closed_) {
        out_.clear();
        session_.take_output(out_, kWriteBatch);
        if (out_.empty()) {
            // Nothing to say, and nothing more will come: the connection is over.
            if (!reading_ || session_.finished()) break;
            write_wake_.expires_at(asio::steady_timer::time_point::max());
            co_await write_wake_.async_wait(nothrow);
            continue;
        }
        auto [ec, n] = co_await client_.write(asio::buffer(out_));
        if (ec) {
            close();
            co_return;
        }
    }
    // All said: FIN, then the reader drops what still comes until the client
    // closes too, for kLinger at most.
    write_done_ = true;
    boost::system::error_code ec;
    client_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
    if (read_done_) close();
    // Otherwise the reader drops what still comes until the client closes
    // too, or the linger timer stop_reading() sets ends it.
    else stop_reading();
}

void H2Connection::close() {
    if (closed_) return;
    closed_ = true;
    idle_timer_.cancel();
    boost::system::error_code ec;
    client_.socket().close(ec);
    std::vector<std::int32_t> unstarted;
    for (auto& [id, stream] : streams_) {
        stream->abort();
        if (!stream->started()) unstarted.push_back(id);
    }
    for (auto id : unstarted) streams_.erase(id);  // their exchanges never ran to end them
    write_wake_.cancel();
}

H2Stream* H2Connection::find(std::int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
}

H2RequestBuilder* H2Connection::on_stream_open(std::int32_t id) {
    // A drain's GOAWAY told the client to open no more; nghttp2 refuses
    // streams over the advertised concurrency itself.
    if (closed_) return nullptr;
    auto stream = std::make_shared<H2Stream>(std::static_pointer_cast<H2Connection>(shared_from_this()), id);
    H2RequestBuilder* builder = &stream->builder();
    streams_.emplace(id, std::move(stream));
    idle_timer_.cancel();
    return builder;
}

void H2Connection::on_request(std::int32_t id, bool end) {
    if (auto* s = find(id)) s->start(end);
}

void H2Connection::on_body(std::int32_t id, std::string_view bytes) {
    if (auto* s = find(id)) s->on_body(bytes);
    else session_.consumed(id, bytes.size());  // its exchange is over: the connection window opens again
}

bool H2Connection::on_trailer(std::int32_t id, std::string_view name, std::string_view value) {
    auto* s = find(id);
    return !s || s->on_trailer(name, value, worker_.view()->snapshot->config.limits.request_headers);
}

void H2Connection::on_request_end(std::int32_t id) {
    if (auto* s = find(id)) s->on_request_end();
}

void H2Connection::on_stream_close(std::int32_t id, std::uint32_t) {
    // A reset by the client (or a stream error) before the exchange ended: it
    // left. A stream that ended cleanly has already had its exchange finish.
    // One that never had a whole head has no exchange to end it: it goes now.
    if (auto* s = find(id)) {
        s->on_gone();
        if (!s->started()) stream_done(id);
    }
}

H2Session::Pull H2Connection::pull_body(std::int32_t id, std::uint8_t* out, std::size_t max) {
    if (auto* s = find(id)) return s->pull_body(out, max);
    return H2Session::Pull{0, false, true};
}

void H2Connection::stream_done(std::int32_t id) {
    session_.forget_stream(id);
    streams_.erase(id);
    if (streams_.empty()) became_idle();
}

void H2Connection::became_idle() {
    if (closed_ || !reading_) return;  // ending already: the linger timer runs
    if (draining()) {
        close_if_idle();
        return;
    }
    const auto idle = worker_.view()->snapshot->config.timeouts.http_idle;
    if (idle.count() == 0) return;
    idle_timer_.expires_after(idle);
    idle_timer_.async_wait([self = weak_from_this(), this](const boost::system::error_code& ec) {
        auto keep = self.lock();
        if (ec || !keep || !streams_.empty()) return;
        session_.goaway();  // idle for timeouts.http_idle: goodbye
        goaway_sent_ = true;
        stop_reading();
    });
}

void H2Connection::close_if_idle() {
    // A drain: GOAWAY at once, so the client opens no new stream here; the
    // streams in flight run on, and the connection ends after the last one.
    if (!goaway_sent_ && !closed_) {
        session_.goaway();
        goaway_sent_ = true;
        flush();
    }
    if (streams_.empty()) stop_reading();
}

void H2Connection::abort(CloseReason) { close(); }

void H2Connection::describe(std::vector<ConnectionInfo>& out) const {
    for (const auto& [id, stream] : streams_) {
        ConnectionInfo info;
        if (stream->describe(info)) out.push_back(std::move(info));
    }
}

std::string H2Connection::client_address() const {
    if (peer_ip_.find(':') != std::string::npos) return "[" + peer_ip_ + "]:" + std::to_string(peer_port_);
    return peer_ip_ + ":" + std::to_string(peer_port_);
}

bool H2Connection::draining() const {
    return worker_.draining() || listener_->closing.load(std::memory_order_relaxed);
}

}  // namespace sluice::proxy
