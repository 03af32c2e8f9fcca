#include "proxy/tls_tunnel.h"

#include "proxy/worker.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

namespace sluice::proxy {
namespace asio = boost::asio;
namespace {
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
}

TlsTunnel::TlsTunnel(Worker& worker, Tunnel::Setup meta, TlsStream client)
    : worker_(worker),
      s_(std::move(meta)),
      client_(std::move(client)),
      dog_(client_.get_executor()),
      counters_(worker.stats().tunnels(s_.route)),
      reader_stopped_(client_.get_executor()) {
    tunnel_opened(worker_, this, s_, counters_);
}

TlsTunnel::~TlsTunnel() { tunnel_gone(worker_, this, s_); }

void TlsTunnel::start() {
    boost::system::error_code ec;
    s_.upstream.set_option(asio::ip::tcp::no_delay(true), ec);
    dog_.set_idle(s_.idle);
    dog_.set_hard(s_.hard_deadline);
    dog_.arm(self());
    reader_running_ = true;
    reader_stopped_.expires_at(asio::steady_timer::time_point::max());
    asio::co_spawn(client_.get_executor(), [self = self()] { return self->client_to_upstream(); }, asio::detached);
    asio::co_spawn(client_.get_executor(), [self = self()] { return self->upstream_to_client(); }, asio::detached);
}

asio::awaitable<void> TlsTunnel::client_to_upstream() {
    struct Stopped {  // tells upstream_to_client that no read is pending on the TLS stream any more
        TlsTunnel& t;
        ~Stopped() {
            t.reader_running_ = false;
            t.reader_stopped_.cancel();
        }
    } stopped{*this};
    if (!s_.to_upstream.empty()) {
        auto [ec, n] = co_await asio::async_write(s_.upstream, asio::buffer(s_.to_upstream), nothrow);
        if (ec) co_return finish(CloseReason::upstream_closed);
        up_bytes_ += n;
        counters_.bytes_upstream += n;
        std::string().swap(s_.to_upstream);
    }
    for (;;) {
        auto [ec, n] = co_await client_.async_read_some(asio::buffer(up_buf_.get(), kBuffer), nothrow);
        if (closed_ || upstream_eof_) co_return;
        if (ec == asio::error::eof) {
            // close_notify: the client is done sending; the upstream may still answer.
            client_done_ = true;
            boost::system::error_code ignored;
            s_.upstream.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
            co_return;
        }
        if (ec == asio::ssl::error::stream_truncated) {
            spdlog::debug("wss tunnel on route \"{}\": the client closed TCP without TLS close_notify (truncated)",
                          s_.route);
            co_return finish(CloseReason::error);
        }
        if (ec) co_return finish(CloseReason::client_closed);
        up_bytes_ += n;
        counters_.bytes_upstream += n;
        dog_.touch();
        auto [wec, m] = co_await asio::async_write(s_.upstream, asio::buffer(up_buf_.get(), n), nothrow);
        if (closed_) co_return;
        if (wec) co_return finish(CloseReason::upstream_closed);
    }
}

asio::awaitable<void> TlsTunnel::upstream_to_client() {
    if (!s_.to_client.empty()) {
        auto [ec, n] = co_await asio::async_write(client_, asio::buffer(s_.to_client), nothrow);
        if (ec) co_return finish(CloseReason::client_closed);
        down_bytes_ += n;
        counters_.bytes_downstream += n;
        std::string().swap(s_.to_client);
    }
    for (;;) {
        auto [ec, n] = co_await s_.upstream.async_read_some(asio::buffer(down_buf_.get(), kBuffer), nothrow);
        if (closed_) co_return;
        if (ec == asio::error::eof) {
            // The upstream is done: stop reading the client, say close_notify, close.
            upstream_eof_ = true;
            if (reader_running_) {
                boost::system::error_code ignored;
                client_.next_layer().cancel(ignored);
                while (reader_running_) co_await reader_stopped_.async_wait(nothrow);
            }
            if (closed_) co_return;
            SSL_set_shutdown(client_.native_handle(), SSL_RECEIVED_SHUTDOWN);  // send ours, wait for nothing
            co_await client_.async_shutdown(nothrow);
            if (closed_) co_return;
            // Then FIN, and let the client finish its side (its own close_notify)
            // for a moment: closing at once would answer those bytes with a reset.
            const CloseReason reason = client_done_ ? CloseReason::client_closed : CloseReason::upstream_closed;
            boost::system::error_code ignored;
            client_.next_layer().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
            lingering_ = reason;
            dog_.set_idle(Watchdog::Clock::duration::zero());
            dog_.set_phase(Watchdog::Clock::now() + std::chrono::seconds(2));
            dog_.arm(self());
            for (;;) {
                auto [rec, got] = co_await client_.next_layer().async_read_some(
                    asio::buffer(down_buf_.get(), kBuffer), nothrow);
                if (closed_) co_return;
                if (rec) break;
            }
            co_return finish(reason);
        }
        if (ec) co_return finish(CloseReason::upstream_closed);
        down_bytes_ += n;
        counters_.bytes_downstream += n;
        dog_.touch();
        auto [wec, m] = co_await asio::async_write(client_, asio::buffer(down_buf_.get(), n), nothrow);
        if (closed_) co_return;
        if (wec) co_return finish(CloseReason::client_closed);
    }
}

bool TlsTunnel::describe(ConnectionInfo& out) const {
    if (closed_) return false;
    describe_tunnel(s_, up_bytes_, down_bytes_, out);
    return true;
}

void TlsTunnel::on_deadline(Watchdog::Which which) {
    if (lingering_) return finish(*lingering_);
    finish(which == Watchdog::Which::hard ? CloseReason::max_duration : CloseReason::idle_timeout);
}

void TlsTunnel::finish(CloseReason reason) {
    if (closed_) return;
    closed_ = true;
    dog_.stop();
    boost::system::error_code ec;
    client_.next_layer().close(ec);
    s_.upstream.close(ec);
    reader_stopped_.cancel();
    tunnel_ended(worker_, s_, counters_, reason, up_bytes_, down_bytes_);
}

}  // namespace sluice::proxy
