// What an exchange needs of the client it answers, the same whether that is an
// HTTP/1.1 connection (one exchange at a time, HttpConnection) or one stream
// of an HTTP/2 connection (H2Stream): where the request came from, the
// deadlines of the exchange, and whether the client is still there.
//
// Every method runs on the worker thread of the connection.
#pragma once
#include "proxy/http/exchange_phase.h"
#include "proxy/net/watchdog.h"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/error.hpp>

#include <memory>
#include <string>
#include <tuple>

namespace sluice::proxy {

class WorkerContext;
struct ListenerInfo;

class ClientSide {
public:
    virtual WorkerContext& worker() const = 0;
    virtual const std::shared_ptr<ListenerInfo>& listener_info() const = 0;
    virtual const std::string& peer_ip() const = 0;
    virtual std::string client_address() const = 0;  // 10.0.0.1:51234, [::1]:51234
    // The server or the listener is draining: the client gets no further request in.
    virtual bool draining() const = 0;
    virtual boost::asio::any_io_executor executor() = 0;
    // Keeps the client side alive while a coroutine of the exchange runs.
    virtual std::shared_ptr<void> keep_alive() = 0;

    virtual Watchdog& watchdog() = 0;
    // A phase with a fixed deadline (time_point::max() for none) and no idle timeout.
    virtual void set_phase(Phase p, Watchdog::time_point deadline) = 0;
    // A phase with no fixed deadline that ends after `idle` without bytes moving.
    virtual void set_streaming(Phase p, Watchdog::Clock::duration idle) = 0;
    virtual Phase phase() const = 0;
    virtual Deadline timed_out() const = 0;
    // A deadline passed: what was pending was cancelled, and an operation
    // whose completion was already queued escaped the cancel, so every loop
    // checks this before its next read or write.
    bool deadline_passed() const { return timed_out() != Deadline::none; }
    // Forgets a passed deadline (an attempt that failed on one is being retried).
    virtual void clear_timeout() = 0;
    // The client is gone or the connection is being closed by sluice.
    virtual bool aborted() const = 0;
    // From now on the client leaving is seen at once (Exchange::client_left).
    virtual void watch_for_hangup() = 0;

protected:
    ~ClientSide() = default;
};

// What a read or write reports when a passed deadline kept it from starting.
inline std::tuple<boost::system::error_code, std::size_t> cancelled_io() {
    return {boost::asio::error::operation_aborted, 0};
}

}  // namespace sluice::proxy
