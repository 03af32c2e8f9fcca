#include "proxy/http/client_watch.h"

#include "proxy/http/http_connection.h"
#include "proxy/worker/worker_context.h"

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

void ClientWatch::forget() {
    armed_ = false;
    if (key_) conn_.worker().readiness().drop(key_);
    key_ = 0;
}

void ClientWatch::arm() {
    if (!key_) {
        key_ = conn_.worker().readiness().add_hangup(std::make_shared<Hangup>(conn_.self()),
                                                    conn_.client().socket().native_handle());
        if (!key_) return;  // out of memory for epoll: the exchange goes on unwatched
    }
    armed_ = true;
    if (hung_up_) on_hangup();
}

void ClientWatch::release_socket() {
    armed_ = false;
    if (!key_) return;
    conn_.worker().readiness().remove(key_, conn_.client().socket().native_handle());
    key_ = 0;
}

void ClientWatch::on_hangup() {
    hung_up_ = true;
    if (!armed_) return;  // between requests the next read sees the end; in an upload the pump does
    armed_ = false;
    conn_.client_left();
}

}  // namespace sluice::proxy
