#include "proxy/http/h2_upstream_stream.h"

#include "proxy/http/h2_upstream_conn.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>

namespace sluice::proxy {

namespace asio = boost::asio;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

}  // namespace

H2UpstreamStream::H2UpstreamStream(const asio::any_io_executor& ex, std::size_t max_head)
    : response_(max_head), resp_wake_(ex), req_wake_(ex) {}

void H2UpstreamStream::on_headers_begin() { response_.begin_block(); }

bool H2UpstreamStream::on_field(std::string_view name, std::string_view value) { return response_.add(name, value); }

void H2UpstreamStream::on_headers_end(bool end) {
    response_.end_block(end);
    if (response_.ended()) ended_ = true;
    resp_wake_.cancel();
}

void H2UpstreamStream::on_data(std::string_view bytes) {
    body_.append(bytes);  // bounded by the stream window sluice advertised
    resp_wake_.cancel();
}

void H2UpstreamStream::on_data_end() {
    ended_ = true;
    resp_wake_.cancel();
}

void H2UpstreamStream::on_close(std::uint32_t code) {
    closed_ = true;
    code_ = code;
    resp_wake_.cancel();
    req_wake_.cancel();
}

void H2UpstreamStream::take_body(std::string& out) {
    out.clear();
    out.swap(body_);
}

asio::awaitable<void> H2UpstreamStream::wait_response() {
    resp_wake_.expires_at(Watchdog::time_point::max());
    co_await resp_wake_.async_wait(nothrow);
}

void H2UpstreamStream::wake() {
    ++wakes_;
    resp_wake_.cancel();
    req_wake_.cancel();
}

asio::awaitable<bool> H2UpstreamStream::send_body(const std::vector<asio::const_buffer>& body, bool last,
                                                  H2UpstreamConn& conn, const H2Fields* trailers) {
    if (closed_) co_return false;
    req_trailers_ = trailers;
    for (const auto& b : body) req_out_.append(static_cast<const char*>(b.data()), b.size());
    req_last_ = last;
    conn.resume(id);
    // nghttp2 pulls the bytes as the upstream's window allows; until then the
    // client's body is not read further (backpressure).
    const std::uint64_t wakes = wakes_;
    while (!closed_ && wakes == wakes_ && (!req_out_.empty() || (last && !req_done_))) {
        req_wake_.expires_at(Watchdog::time_point::max());
        co_await req_wake_.async_wait(nothrow);
    }
    req_trailers_ = nullptr;
    co_return req_out_.empty() && (!last || req_done_);
}

H2Session::Pull H2UpstreamStream::pull_body(std::uint8_t* out, std::size_t max) {
    H2Session::Pull pull;
    pull.bytes = std::min(max, req_out_.size());
    std::memcpy(out, req_out_.data(), pull.bytes);
    req_out_.erase(0, pull.bytes);
    if (req_out_.empty()) {
        if (req_last_) {
            pull.end = true;
            pull.trailers = req_trailers_;
            req_done_ = true;
        } else {
            pull.deferred = true;
        }
        req_wake_.cancel();
    }
    return pull;
}

}  // namespace sluice::proxy
