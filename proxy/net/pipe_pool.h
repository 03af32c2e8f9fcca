// Pipes for splice(2), per worker. A tunnel holds one only while bytes sit in
// it, so thousands of idle tunnels hold none (descriptors are a budget: two per
// pipe). Single-threaded, like everything a worker owns.
#pragma once
#include <cstddef>
#include <vector>

namespace sluice::proxy {

struct Pipe {
    int read_fd = -1;
    int write_fd = -1;
    explicit operator bool() const { return read_fd >= 0; }
};

class PipePool {
public:
    static constexpr int kCapacity = 64 * 1024;  // the Linux default pipe size
    explicit PipePool(std::size_t max_free = 32) : max_free_(max_free) {}
    ~PipePool();
    PipePool(const PipePool&) = delete;
    PipePool& operator=(const PipePool&) = delete;

    // A pipe, or an empty one when pipe2() fails (out of descriptors): the
    // caller then copies through user space instead.
    Pipe take();
    // Back to the pool; the pipe must be empty.
    void give(Pipe p);
    // Closes a pipe whose bytes could not be delivered.
    void discard(Pipe p);

    std::size_t free_count() const { return free_.size(); }
    std::size_t in_use() const { return in_use_; }

private:
    std::size_t max_free_;
    std::size_t in_use_ = 0;
    std::vector<Pipe> free_;
};

}  // namespace sluice::proxy
