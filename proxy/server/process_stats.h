// What /proc says about this process: the standard process_* metrics
// (CPU seconds, start time, resident and virtual memory, open and maximum
// file descriptors) that /metrics serves beside sluice's own.
#pragma once

namespace sluice::proxy {

struct ProcessStats {
    double cpu_seconds = 0, start_time = 0, resident = 0, virtual_bytes = 0, open_fds = 0, max_fds = 0;
};

// Reads /proc/self and the descriptor limit; a field it cannot read stays 0.
ProcessStats read_process_stats();

}  // namespace sluice::proxy
