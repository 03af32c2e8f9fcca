// The admin HTTP server (JSON API on localhost) and the probes server (only
// /healthz and /ready, for the kubelet). Both run on the control thread and
// never touch a worker directly: they read snapshots and post to workers.
#pragma once
#include "admin/backend.h"
#include "admin/handlers.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace sluice::admin {

class AdminServer {
public:
    using Mode = Handlers::Mode;  // the full API, or only the kubelet's probes

    AdminServer(boost::asio::io_context& io, Backend& backend, Mode mode, bool probes_metrics = false);
    ~AdminServer();

    // Binds and starts accepting; false with `error` set when the address cannot be used.
    bool listen(const std::string& address, std::uint16_t port, std::string& error);
    boost::asio::ip::tcp::endpoint local_endpoint() const;
    // Accepts that failed (out of descriptors, memory): each paused the loop.
    std::uint64_t accept_errors() const;
    void stop();

    struct Impl;

private:
    std::shared_ptr<Impl> impl_;
};

}  // namespace sluice::admin
