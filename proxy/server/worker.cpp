#include "proxy/server/worker.h"

#include "proxy/http/http_connection.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

namespace sluice::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);
constexpr auto kAcceptLogEvery = std::chrono::seconds(10);

}  // namespace

struct Worker::Acceptor {
    Acceptor(asio::io_context& io, std::shared_ptr<ListenerInfo> l) : info(std::move(l)), acceptor(io), backoff(io) {}
    std::shared_ptr<ListenerInfo> info;
    tcp::acceptor acceptor;
    asio::steady_timer backoff;
    std::chrono::steady_clock::time_point logged{};  // the last "cannot accept" warning
};

Worker::Worker(std::size_t index, SnapshotStore& store, AccessLog& access_log, bool splice)
    : context_(index, store, access_log, splice) {}

Worker::~Worker() { stop(); }

void Worker::start() {
    running_ = true;
    thread_ = std::thread([this] {
        auto guard = asio::make_work_guard(context_.io());
        context_.sweep_pools();
        context_.io().run();
    });
}

void Worker::adopt_listener(std::shared_ptr<ListenerInfo> listener, int fd) {
    asio::post(context_.io(), [this, listener = std::move(listener), fd] {
        auto a = std::make_unique<Acceptor>(context_.io(), listener);
        boost::system::error_code ec;
        a->acceptor.assign(listener->bound.protocol(), fd, ec);
        if (ec) {
            spdlog::error("worker {}: cannot use the socket of listener \"{}\": {}", context_.index(),
                          listener->spec.name, ec.message());
            return;
        }
        accept_next(a.get());
        acceptors_.push_back(std::move(a));
    });
}

void Worker::accept_next(Acceptor* a) {
    a->acceptor.async_accept([this, a](const boost::system::error_code& ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || !a->acceptor.is_open()) return;
        if (ec) {
            // Out of descriptors or memory: the connection stays in the backlog
            // and the socket stays readable, so an immediate retry would spin.
            // Pause this acceptor, count it, and warn once per interval.
            ++context_.stats().listener(a->info->spec.name).accept_errors;
            if (auto now = std::chrono::steady_clock::now(); now - a->logged >= kAcceptLogEvery) {
                a->logged = now;
                spdlog::warn("listener \"{}\" cannot accept connections: {}; retrying every {}ms{}", a->info->spec.name,
                             ec.message(), kAcceptBackoff.count(),
                             ec == asio::error::no_descriptors ? " (raise the open-file limit, ulimit -n)" : "");
            }
            a->backoff.expires_after(kAcceptBackoff);
            a->backoff.async_wait([this, a](const boost::system::error_code& wec) {
                if (!wec) accept_next(a);
            });
            return;
        }
        std::make_shared<HttpConnection>(context_, a->info, std::move(socket))->start();
        accept_next(a);
    });
}

void Worker::refresh() {
    asio::post(context_.io(), [this] { context_.view(); });
}

void Worker::announce_drain() {
    asio::post(context_.io(), [this] { context_.announce_drain(); });
}

void Worker::drain(std::chrono::milliseconds window) {
    asio::post(context_.io(), [this, window] {
        context_.announce_drain();
        close_acceptors(nullptr);
        context_.drain_connections(nullptr, window);
    });
}

void Worker::remove_listener(std::shared_ptr<ListenerInfo> listener, std::chrono::milliseconds window) {
    asio::post(context_.io(), [this, listener, window] {
        close_acceptors(listener.get());
        context_.drain_connections(listener.get(), window);
    });
}

void Worker::close_acceptors(const ListenerInfo* listener) {
    for (auto& a : acceptors_) {
        if (listener && a->info.get() != listener) continue;
        boost::system::error_code ec;
        a->acceptor.close(ec);
    }
}

void Worker::stop() {
    if (!thread_.joinable()) return;
    asio::post(context_.io(), [this] {
        context_.abort_all();
        close_acceptors(nullptr);
        context_.io().stop();
    });
    thread_.join();
    running_ = false;
}

}  // namespace sluice::proxy
