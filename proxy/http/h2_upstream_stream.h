// One exchange's stream on a multiplexed upstream connection (HTTP/2), as the
// exchange sees it: the response head and trailers as they arrive, the body
// bytes the connection received for it (bounded by the stream window, which
// opens again only as the client takes them), and the request body bytes
// waiting for nghttp2 to pull them as the upstream's window allows.
//
// Every method runs on the worker thread of the exchange.
#pragma once
#include "proxy/message/h2_client_session.h"
#include "proxy/message/h2_response.h"
#include "proxy/net/watchdog.h"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::proxy {

class H2UpstreamConn;

class H2UpstreamStream {
public:
    H2UpstreamStream(const boost::asio::any_io_executor& ex, std::size_t max_head);

    // From the connection (H2ClientSession::Handler events).
    void on_headers_begin();
    bool on_field(std::string_view name, std::string_view value);
    void on_headers_end(bool end);
    void on_data(std::string_view bytes);
    void on_data_end();
    void on_close(std::uint32_t code);
    H2Session::Pull pull_body(std::uint8_t* out, std::size_t max);

    // For the exchange. The final response head, as an HTTP/1.1 head (status
    // line, fields, and the framing its end implies) for the response parser.
    bool head_ready() const { return response_.head_ready(); }
    const std::string& head() const { return response_.head(); }
    // Body bytes received and not yet handed out; take_body() moves them to `out`.
    bool has_body() const { return !body_.empty(); }
    void take_body(std::string& out);
    bool ended() const { return ended_; }  // the upstream ended the stream (trailers, if any, are here)
    const H2Fields& trailers() const { return response_.trailers(); }
    bool closed() const { return closed_; }
    std::uint32_t close_code() const { return code_; }
    // Why the stream failed on sluice's side (a head too large), or empty.
    const std::string& refusal() const { return response_.refusal(); }

    // Waits for any news on the response side (or wake()).
    boost::asio::awaitable<void> wait_response();
    // Queues request body bytes and waits until nghttp2 took them all. False:
    // the stream closed or was woken before that.
    // `trailers` (with `last`) follow the body; the caller keeps them until this returns.
    boost::asio::awaitable<bool> send_body(const std::vector<boost::asio::const_buffer>& body, bool last,
                                           H2UpstreamConn& conn, const H2Fields* trailers = nullptr);
    // Wakes every wait (a deadline passed, the exchange is stopping).
    void wake();

    std::int32_t id = 0;

private:
    H2ResponseBuilder response_;
    std::string body_;
    bool ended_ = false;
    bool closed_ = false;
    std::uint32_t code_ = 0;

    std::string req_out_;  // request body bytes nghttp2 has not pulled yet
    bool req_last_ = false;
    const H2Fields* req_trailers_ = nullptr;
    bool req_done_ = false;  // the end of the request body was pulled
    std::uint64_t wakes_ = 0;

    boost::asio::steady_timer resp_wake_, req_wake_;
};

}  // namespace sluice::proxy
