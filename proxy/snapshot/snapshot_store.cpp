#include "proxy/snapshot/snapshot_store.h"

namespace sluice::proxy {

SnapshotStore::SnapshotStore(std::shared_ptr<const Snapshot> initial) : snapshot_(std::move(initial)) {}

std::shared_ptr<const Snapshot> SnapshotStore::current() const {
    std::lock_guard lock(mu_);
    return snapshot_;
}

void SnapshotStore::publish(std::shared_ptr<const Snapshot> next) {
    {
        std::lock_guard lock(mu_);
        snapshot_ = std::move(next);
    }
    generation_.fetch_add(1, std::memory_order_release);
}

}  // namespace sluice::proxy
