#include "proxy/net/pipe_pool.h"

#include <fcntl.h>
#include <unistd.h>

namespace sluice::proxy {

PipePool::~PipePool() {
    for (auto& p : free_) {
        ::close(p.read_fd);
        ::close(p.write_fd);
    }
}

Pipe PipePool::take() {
    Pipe p;
    if (!free_.empty()) {
        p = free_.back();
        free_.pop_back();
    } else {
        int fds[2];
        if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return {};
        p = {fds[0], fds[1]};
    }
    ++in_use_;
    return p;
}

void PipePool::give(Pipe p) {
    --in_use_;
    if (free_.size() < max_free_) {
        free_.push_back(p);
        return;
    }
    ::close(p.read_fd);
    ::close(p.write_fd);
}

void PipePool::discard(Pipe p) {
    --in_use_;
    ::close(p.read_fd);
    ::close(p.write_fd);
}

}  // namespace sluice::proxy
