// What a worker knows of each client connection it owns, whether it is an HTTP
// connection or an upgraded tunnel: enough to drain it and to close it.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sluice::proxy {

struct ListenerInfo;

// Why a tunnel ended (the reason label of sluice_tunnel_closes_total).
enum class CloseReason { client_closed, upstream_closed, idle_timeout, max_duration, drain, error };
const char* close_reason_name(CloseReason r);

// One live WebSocket tunnel or streaming response, for GET /connections.
struct ConnectionInfo {
    const char* kind = "";  // "websocket" or "stream"
    std::string listener, route, cluster, endpoint, client;
    std::chrono::steady_clock::time_point started;
    std::uint64_t bytes_from_client = 0, bytes_to_client = 0;
    std::uint64_t config_version = 0;  // the snapshot it holds
    std::size_t worker = 0;
};

class Downstream : public std::enable_shared_from_this<Downstream> {
public:
    virtual ~Downstream() = default;
    // Drain: end the connection now if it is between requests.
    virtual void close_if_idle() = 0;
    // Close everything now; `reason` is drain or error.
    virtual void abort(CloseReason reason) = 0;
    // The listener that accepted the connection.
    virtual const ListenerInfo* listener() const = 0;
    // Appends the live tunnel, or each streaming response the connection
    // relays (an HTTP/2 connection may relay many), to `out`.
    virtual void describe(std::vector<ConnectionInfo>& out) const = 0;
};

}  // namespace sluice::proxy
