// An exchange on an HTTP/1.1 connection: the request head parsed from the
// connection's buffer, the body read through the same buffer and framed
// (chunked or sized) for the upstream, the response head and body framed for
// the client and written with one gather write per piece, 1xx heads relayed,
// and the upgrade to a tunnel after a 101.
//
// The connection owns one Http1Exchange and re-initialises it for each
// request, so the strings and vectors it grew stay allocated. Files:
//   http1_exchange.cpp  head, errors, request body, response writes
//   tunnel_handoff.cpp  after a 101: both sockets to a tunnel
#pragma once
#include "proxy/http/exchange.h"

namespace sluice::proxy {

class HttpConnection;

class Http1Exchange final : public Exchange {
public:
    explicit Http1Exchange(HttpConnection& conn);

    // Parses the head that is the first `end` bytes of the connection's buffer,
    // under the path rules of the snapshot the connection read it with.
    // False after refusing it with an answer (400, 501).
    boost::asio::awaitable<bool> take_head(std::size_t end, const config::Paths& paths);
    boost::asio::awaitable<ExchangeEnd> send_error(ErrorKind kind, std::string_view message,
                                                   bool force_close = false) override;
    void finish() override;
    bool request_body_done() const override;

private:
    bool request_complete() const override { return req_parser_->is_done(); }
    void set_request_framing(UpstreamRequest& up) override;
    boost::asio::awaitable<Pump> pump_body() override;
    void stop_client_reads() override;
    boost::asio::awaitable<bool> relay_interim() override;
    void begin_response(const ResponseParser& parser) override;
    boost::asio::awaitable<bool> send_response(const std::vector<boost::asio::const_buffer>& body, bool last) override;
    bool response_closes() const override { return down_.close; }
    boost::asio::awaitable<ExchangeEnd> start_tunnel(std::shared_ptr<UpstreamConn> conn) override;

    HttpConnection& conn_;
    std::optional<RequestParser> req_parser_;
    bool client_keep_alive_ = true;
    std::string out_head_;  // response head for the client; reused
    ClientResponse down_;   // how the response goes to the client
    bool head_sent_ = false;
    std::vector<boost::asio::const_buffer> gather_;
    char chunk_line_[24];
    std::string trailer_block_;  // the last chunk with trailers from an HTTP/2 upstream
};

}  // namespace sluice::proxy
