// Listening sockets: one per worker per listener, bound with SO_REUSEPORT so the
// kernel spreads connections across workers and no accept lock is shared.
// Sockets are bound on the control thread (a bind failure is an error before
// anything changes) and then handed to workers as plain descriptors.
#pragma once
#include "config/spec.h"

#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sluice::proxy {

// What every worker's acceptor of one listener shares.
struct ListenerInfo {
    config::ListenerSpec spec;
    std::string scheme = "http";
    boost::asio::ip::tcp::endpoint bound;     // the address actually bound (port 0 resolved)
    std::atomic<std::int64_t> connections{0}; // open downstream connections, all workers
    std::atomic<bool> closing{false};         // removed by a config change: drain its connections
    std::vector<int> fds;                     // one per worker until handed over

    ~ListenerInfo();
    std::string bound_text() const;
};

// "127.0.0.1:8080", "[::1]:8080"
std::string endpoint_text(const boost::asio::ip::tcp::endpoint& ep);

// Opens `count` listening sockets on the listener's address and port. With port
// 0 the first picks a free port and the others join it. On failure returns null
// and sets `error` to a sentence naming the listener, address and reason.
std::shared_ptr<ListenerInfo> bind_listener(const config::ListenerSpec& spec, std::size_t count, std::string& error);

}  // namespace sluice::proxy
