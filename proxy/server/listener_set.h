// The listeners in force, for the control thread that binds and swaps them and
// for any thread that asks about them (tests, /metrics, GET /listeners).
// Workers never touch the set: each holds its own acceptors.
#pragma once
#include "config/spec.h"
#include "proxy/net/listener.h"
#include "proxy/server/worker.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace sluice::proxy {

class ListenerSet {
public:
    using Workers = std::vector<std::unique_ptr<Worker>>;
    using List = std::vector<std::shared_ptr<ListenerInfo>>;

    ListenerSet(Workers& workers, bool print_addresses) : workers_(workers), print_addresses_(print_addresses) {}

    // Start-up: binds every listener of `cfg`; false with `error` on the first
    // that cannot be bound (nothing is handed to the workers yet).
    bool bind_all(const config::Config& cfg, std::string& error);
    // Start-up: each worker takes its socket of every listener.
    void hand_to_workers();
    // "listening name=... address=..." for each (when printing addresses).
    void print_all() const;

    // A change, step one: binds the listeners of `next` that are not bound yet
    // (a listener whose address stays keeps its socket). On failure the new
    // sockets close with `added` and nothing else changed.
    bool bind_new(const config::Config& next, List& added, std::string& error) const;
    // A change, step two (after the snapshot is published): the new listeners
    // start accepting, and removed ones stop and drain their connections.
    void swap(const config::Config& next, List added);

    std::uint16_t port(const std::string& name) const;  // 0 when there is none
    List list() const;
    nlohmann::json to_json() const;  // GET /listeners

private:
    void hand_over(const std::shared_ptr<ListenerInfo>& l);
    void print_address(const ListenerInfo& l) const;

    Workers& workers_;
    const bool print_addresses_;
    mutable std::mutex mu_;  // written on the control thread; read from any
    List list_;
};

}  // namespace sluice::proxy
