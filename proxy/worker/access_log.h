// The access log: one JSON object per line for each request or tunnel when it
// ends. Workers never wait for the disk: each has its own bounded byte ring
// (single producer, single consumer, no lock), a writer thread empties the
// rings to the file, and a line that does not fit is dropped and counted.
#pragma once
#include "config/spec.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::proxy {

// What one line says. Views must live until format_access_line returns.
struct AccessRecord {
    std::chrono::system_clock::time_point start;
    std::string_view kind = "http";  // "http", "stream" or "websocket"
    std::string_view listener, route, cluster, endpoint, client;
    std::string_view method, path;
    int status = 0;  // 0: the client left before a response head
    std::uint64_t bytes_received = 0;  // from the client: request body, or tunnel bytes
    std::uint64_t bytes_sent = 0;      // to the client: response body, or tunnel bytes
    double duration = 0;               // seconds
    std::optional<double> upstream_connect;      // seconds; absent for a pooled connection or none
    std::optional<double> upstream_first_byte;   // seconds from request sent to first response byte
    std::string_view error;            // x-sluice-error, when sluice answered itself
    std::string_view close_reason;     // tunnels: why it ended
    std::string_view client_cancel;    // the client left before the response ended: in which phase
    std::string_view grpc_status;      // gRPC responses: the grpc-status the upstream sent
    std::uint64_t config_version = 0;
};

// Appends one line (with "\n") to `out`.
void format_access_line(const AccessRecord& r, std::string& out);

class AccessLog {
public:
    // One ring of `ring_bytes` per worker.
    AccessLog(std::size_t workers, std::size_t ring_bytes = 1 << 20);
    ~AccessLog();  // writes what is queued (waits at most 2s for a stuck output)
    AccessLog(const AccessLog&) = delete;
    AccessLog& operator=(const AccessLog&) = delete;

    // An opened output, not yet in use (closed if never applied).
    class Target {
    public:
        Target() = default;
        Target(Target&& o) noexcept : fd_(o.fd_), own_(o.own_), set_(o.set_) { o.set_ = false; }
        Target& operator=(Target&&) = delete;
        ~Target();

    private:
        friend class AccessLog;
        int fd_ = -1;
        bool own_ = false;  // a file we opened (not stdout or stderr)
        bool set_ = false;
    };
    // Control thread. prepare() opens what `spec` names and changes nothing
    // (false, with `error` naming the file and the reason, when it cannot);
    // apply() switches to it.
    bool prepare(const config::AccessLogSpec& spec, Target& out, std::string& error) const;
    void apply(const config::AccessLogSpec& spec, Target target);
    bool configure(const config::AccessLogSpec& spec, std::string& error) {
        Target t;
        if (!prepare(spec, t, error)) return false;
        apply(spec, std::move(t));
        return true;
    }

    // Worker threads.
    bool enabled() const { return enabled_.load(std::memory_order_relaxed); }
    void write(std::size_t worker, const AccessRecord& record);

    // Any thread.
    std::uint64_t lines() const;
    std::uint64_t dropped() const;

private:
    struct State;
    std::shared_ptr<State> state_;  // shared with the writer thread, which may outlive us on a stuck pipe
    std::atomic<bool> enabled_{false};
    config::AccessLogSpec spec_;
    bool configured_ = false;
};

}  // namespace sluice::proxy
