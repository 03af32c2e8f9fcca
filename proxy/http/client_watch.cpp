#include "proxy/http/client_watch.h"

#include "proxy/http/http_connection.h"
#include "proxy/worker/worker_context.h"

#include <sys/epoll.h>

namespace sluice::proxy {

// What the readiness set holds: a weak reference, so a registration never
// keeps a connection alive.
struct ClientWatch::Hangup final : Readiness::Handler {
    explicit Hangup(std::weak_ptr<HttpConnection> c) : conn(std::move(c)) {}
    void on_ready(int, std::uint32_t) override {
        if (auto c = conn.lock()) c->watch().on_hangup();
    }
    std::weak_ptr<HttpConnection> conn;
};

void ClientWatch::arm() {
    if (!registration_) {
        registration_ = conn_.worker().readiness().watch(std::make_shared<Hangup>(conn_.self()),
                                                         conn_.client().socket().native_handle(), EPOLLRDHUP);
        if (!registration_) return;  // out of memory for epoll: the exchange goes on unwatched
    }
    armed_ = true;
    if (hung_up_) on_hangup();
}

void ClientWatch::release_socket() {
    armed_ = false;
    registration_.end(conn_.client().socket().native_handle());
}

void ClientWatch::on_hangup() {
    hung_up_ = true;
    if (!armed_) return;  // between requests the next read sees the end; in an upload the pump does
    armed_ = false;
    conn_.client_left();
}

}  // namespace sluice::proxy
