// What a worker knows of each client connection it owns, whether it is an HTTP
// session or an upgraded tunnel: enough to drain it and to close it.
#pragma once
#include <memory>

namespace sluice::proxy {

struct ListenerInfo;

// Why a tunnel ended (the reason label of sluice_tunnel_closes_total).
enum class CloseReason { client_closed, upstream_closed, idle_timeout, max_duration, drain, error };
const char* close_reason_name(CloseReason r);

class Downstream : public std::enable_shared_from_this<Downstream> {
public:
    virtual ~Downstream() = default;
    // Drain: end the connection now if it is between requests.
    virtual void close_if_idle() = 0;
    // Close everything now; `reason` is drain or error.
    virtual void abort(CloseReason reason) = 0;
    // The listener that accepted the connection.
    virtual const ListenerInfo* listener() const = 0;
};

}  // namespace sluice::proxy
