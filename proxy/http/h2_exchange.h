// An exchange on one HTTP/2 stream: the request head comes decoded from
// HPACK, the body from DATA frames buffered in the stream (bounded by the
// window sluice advertises, opened again as bytes go upstream), and the
// response goes out as HEADERS and DATA frames pulled by nghttp2 as the
// client's window allows. The upstream side is the same as for an HTTP/1.1
// client, whichever protocol the cluster speaks.
#pragma once
#include "proxy/http/exchange.h"

namespace sluice::proxy {

class H2Stream;

class H2Exchange final : public Exchange {
public:
    explicit H2Exchange(H2Stream& stream);

    // The head decoded by the stream's builder is in request(); refusals are answered.
    RequestHead& head() { return req_; }
    boost::asio::awaitable<ExchangeEnd> send_error(ErrorKind kind, std::string_view message,
                                                   bool force_close = false) override;
    bool request_body_done() const override;

private:
    bool request_complete() const override;
    void set_request_framing(UpstreamRequest& up) override;
    boost::asio::awaitable<Pump> pump_body() override;
    void stop_client_reads() override;
    boost::asio::awaitable<bool> relay_interim() override { co_return true; }  // 1xx are not relayed over HTTP/2
    void begin_response(const ResponseParser& parser) override;
    boost::asio::awaitable<bool> send_response(const std::vector<boost::asio::const_buffer>& body, bool last) override;
    bool response_closes() const override { return false; }
    // h2_websocket.cpp: after the upstream's 101, a 200 to the extended CONNECT
    // and the bytes bridged between the stream's DATA frames and the upstream.
    boost::asio::awaitable<ExchangeEnd> start_tunnel(std::shared_ptr<UpstreamConn> conn) override;
    boost::asio::awaitable<void> relay_upstream_to_stream(std::shared_ptr<UpstreamConn> conn);

    H2Stream& stream_;
    std::string error_body_;
    // The WebSocket bridge: the upstream-to-client direction has ended (and how).
    bool down_done_ = false;
    bool down_clean_ = false;  // the upstream closed its side cleanly
    std::uint64_t tunnel_down_ = 0, tunnel_up_ = 0;
};

}  // namespace sluice::proxy
