// How many workers this process should run by default: the CPUs it may really
// use, which in a container is less than the node has. The smaller of the CPU
// affinity set and the cgroup CPU quota rounded up (cgroup v2 cpu.max, v1
// cpu.cfs_quota_us / cpu.cfs_period_us, the tightest along the cgroup's
// ancestors), at least 1. A 500m sidecar on a 64-core node gets 1, not 64.
#pragma once
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::proxy {

struct CpuBudget {
    std::size_t cpus = 1;
    std::string reason;  // for the start-up log: where the number comes from
};

// A CPU quota found in the cgroup files.
struct CgroupQuota {
    double cpus = 0;        // quota / period
    std::string describe;   // e.g. "cgroup v2 cpu.max 50000 100000 at /sys/fs/cgroup/x"
};

// Reads a file's text, or nullopt when it cannot be read.
using FileReader = std::function<std::optional<std::string>(const std::string& path)>;

// The quota from the texts of /proc/self/cgroup and /proc/self/mountinfo;
// nullopt when there is none (no limit, or no cpu controller mounted).
// `read` opens the cgroup files, so tests can give a tree of their own.
std::optional<CgroupQuota> cgroup_cpu_quota(std::string_view proc_cgroup, std::string_view mountinfo,
                                            const FileReader& read);

// The real process: its affinity set and its cgroup quota.
CpuBudget usable_cpus();

}  // namespace sluice::proxy
