// Where the current config snapshot lives: the control thread publishes a new
// one, each worker notices by one atomic load of the generation and takes the
// pointer only after a publish, so the request path never takes the lock.
#pragma once
#include "proxy/snapshot/snapshot.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

namespace sluice::proxy {

class SnapshotStore {
public:
    explicit SnapshotStore(std::shared_ptr<const Snapshot> initial);

    // Any thread. Takes a short lock; workers call it only when generation() moved.
    std::shared_ptr<const Snapshot> current() const;
    // Lock-free: bumps on every publish.
    std::uint64_t generation() const noexcept { return generation_.load(std::memory_order_acquire); }
    // Control thread: new requests see `next` once this returns.
    void publish(std::shared_ptr<const Snapshot> next);

private:
    mutable std::mutex mu_;
    std::shared_ptr<const Snapshot> snapshot_;
    std::atomic<std::uint64_t> generation_{1};
};

}  // namespace sluice::proxy
