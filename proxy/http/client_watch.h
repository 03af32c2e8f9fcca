// Sees a client close or reset its connection while an exchange waits on
// something else (admission, a connect, the response head, a pause in a
// stream), so its upstream is closed at once and a model server stops
// generating for nobody.
//
// It costs nothing per request: the client socket is added once, on its first
// exchange, to the worker's edge-triggered readiness set for hang-ups only
// (EPOLLRDHUP, with EPOLLHUP and EPOLLERR that epoll always reports), not for
// data. A request arriving raises no event and no system call; only a close or
// a reset does. Bytes of a pipelined request stay in the kernel until their
// turn, so they can never be taken for a close. A read left pending through
// Asio instead would cost a speculative recv (EAGAIN) per request.
//
// Runs on the connection's worker thread.
#pragma once
#include "proxy/net/readiness.h"

namespace sluice::proxy {

class HttpConnection;

class ClientWatch {
public:
    explicit ClientWatch(HttpConnection& conn) : conn_(conn) {}
    ClientWatch(const ClientWatch&) = delete;
    ClientWatch& operator=(const ClientWatch&) = delete;

    // From now until disarm(): the client closing or resetting its connection
    // (also before now, unseen) calls HttpConnection::client_left().
    void arm();
    void disarm() { armed_ = false; }
    // The socket lives on elsewhere (a tunnel registers it itself): forget it.
    void release_socket();
    // The connection has closed its socket (which left the epoll set with it):
    // the registration goes (also when the watch does, if the set is still there).
    void forget() {
        armed_ = false;
        registration_.reset();
    }

private:
    struct Hangup;
    void on_hangup();

    HttpConnection& conn_;
    Readiness::Registration registration_;  // in the worker's readiness set, once added
    bool armed_ = false;
    bool hung_up_ = false;  // seen at any time, armed or not: edge-triggered events come once
};

}  // namespace sluice::proxy
