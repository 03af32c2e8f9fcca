#include "proxy/server/cpu_budget.h"

#include <sched.h>

#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>
#include <vector>

namespace sluice::proxy {

namespace {

std::vector<std::string_view> split(std::string_view text, char sep) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    while (true) {
        auto end = text.find(sep, start);
        out.push_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
        if (end == std::string_view::npos) return out;
        start = end + 1;
    }
}

std::optional<long long> to_number(std::string_view text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
    long long v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc{} || p != text.data() + text.size()) return std::nullopt;
    return v;
}

struct Mount {
    std::string root, point;
};

// The cgroup v2 mount, or the v1 mount whose super options include `cpu`.
std::optional<Mount> find_mount(std::string_view mountinfo, bool v2) {
    for (auto line : split(mountinfo, '\n')) {
        // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
        auto dash = line.find(" - ");
        if (dash == std::string_view::npos) continue;
        auto left = split(line.substr(0, dash), ' ');
        auto right = split(line.substr(dash + 3), ' ');
        if (left.size() < 5 || right.size() < 3) continue;
        if (v2 ? right[0] != "cgroup2" : right[0] != "cgroup") continue;
        if (!v2) {
            bool cpu = false;
            for (auto opt : split(right[2], ','))
                if (opt == "cpu") cpu = true;
            if (!cpu) continue;
        }
        return Mount{std::string(left[3]), std::string(left[4])};
    }
    return std::nullopt;
}

// The process's cgroup path in the v2 hierarchy ("0::/path") or in the v1
// hierarchy that holds the cpu controller ("3:cpu,cpuacct:/path").
std::optional<std::string> cgroup_path(std::string_view proc_cgroup, bool v2) {
    for (auto line : split(proc_cgroup, '\n')) {
        auto first = line.find(':');
        auto second = line.find(':', first == std::string_view::npos ? first : first + 1);
        if (first == std::string_view::npos || second == std::string_view::npos) continue;
        auto id = line.substr(0, first);
        auto controllers = line.substr(first + 1, second - first - 1);
        auto path = line.substr(second + 1);
        if (v2) {
            if (id == "0" && controllers.empty()) return std::string(path);
            continue;
        }
        for (auto c : split(controllers, ','))
            if (c == "cpu") return std::string(path);
    }
    return std::nullopt;
}

// The directories from the process's cgroup up to the mount point: a limit
// set on a parent (the Pod's cgroup, say) binds its children too.
std::vector<std::string> cgroup_dirs(const Mount& m, const std::string& path) {
    std::string rel = path;
    // Without a cgroup namespace the path is from the hierarchy's root and the
    // mount shows a subtree of it; with one both are "/".
    if (m.root != "/" && rel.starts_with(m.root)) rel = rel.substr(m.root.size());
    else if (m.root != "/") rel = "/";
    std::vector<std::string> dirs;
    while (!rel.empty() && rel != "/") {
        dirs.push_back(m.point + rel);
        auto slash = rel.rfind('/');
        rel = slash == std::string::npos ? "" : rel.substr(0, slash);  // "/a/b" -> "/a" -> ""
    }
    dirs.push_back(m.point);
    return dirs;
}

struct Limit {
    long long quota = 0, period = 0;
    std::string describe;
};

// The tightest limit `read_limit` finds in the process's cgroup and its
// ancestors, in the v2 or the v1 hierarchy.
std::optional<CgroupQuota> tightest(std::string_view proc_cgroup, std::string_view mountinfo, bool v2,
                                    const std::function<std::optional<Limit>(const std::string& dir)>& read_limit) {
    auto m = find_mount(mountinfo, v2);
    auto path = cgroup_path(proc_cgroup, v2);
    if (!m || !path) return std::nullopt;
    std::optional<CgroupQuota> best;
    for (const auto& dir : cgroup_dirs(*m, *path)) {
        auto limit = read_limit(dir);
        if (!limit || limit->quota <= 0 || limit->period <= 0) continue;  // v1 writes -1 for no limit
        double cpus = static_cast<double>(limit->quota) / static_cast<double>(limit->period);
        if (!best || cpus < best->cpus) best = CgroupQuota{cpus, limit->describe + " in " + dir};
    }
    return best;
}

std::optional<CgroupQuota> v2_quota(std::string_view proc_cgroup, std::string_view mountinfo, const FileReader& read) {
    return tightest(proc_cgroup, mountinfo, true, [&](const std::string& dir) -> std::optional<Limit> {
        auto text = read(dir + "/cpu.max");  // absent where the cpu controller is not enabled
        if (!text) return std::nullopt;
        auto fields = split(*text, ' ');
        if (fields.size() != 2 || fields[0] == "max") return std::nullopt;
        auto quota = to_number(fields[0]), period = to_number(fields[1]);
        if (!quota || !period) return std::nullopt;
        return Limit{*quota, *period, "cgroup v2 cpu.max " + std::to_string(*quota) + " " + std::to_string(*period)};
    });
}

std::optional<CgroupQuota> v1_quota(std::string_view proc_cgroup, std::string_view mountinfo, const FileReader& read) {
    return tightest(proc_cgroup, mountinfo, false, [&](const std::string& dir) -> std::optional<Limit> {
        auto q = read(dir + "/cpu.cfs_quota_us");
        auto p = read(dir + "/cpu.cfs_period_us");
        if (!q || !p) return std::nullopt;
        auto quota = to_number(*q), period = to_number(*p);
        if (!quota || !period) return std::nullopt;
        return Limit{*quota, *period,
                     "cgroup v1 cpu.cfs_quota_us " + std::to_string(*quota) + " / cpu.cfs_period_us " +
                         std::to_string(*period)};
    });
}

std::optional<std::string> read_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    std::stringstream ss;
    ss << in.rdbuf();
    if (in.bad()) return std::nullopt;
    return ss.str();
}

std::size_t affinity_cpus() {
    // Sized for hosts with more CPUs than a cpu_set_t holds.
    constexpr int max_cpus = 8192;
    cpu_set_t* set = CPU_ALLOC(max_cpus);
    if (!set) return 0;
    std::size_t size = CPU_ALLOC_SIZE(max_cpus);
    std::size_t n = 0;
    if (sched_getaffinity(0, size, set) == 0) n = static_cast<std::size_t>(CPU_COUNT_S(size, set));
    CPU_FREE(set);
    return n;
}

}  // namespace

std::optional<CgroupQuota> cgroup_cpu_quota(std::string_view proc_cgroup, std::string_view mountinfo,
                                            const FileReader& read) {
    // A hybrid host mounts both; the quota lives where the cpu controller is.
    if (auto q = v2_quota(proc_cgroup, mountinfo, read)) return q;
    return v1_quota(proc_cgroup, mountinfo, read);
}

CpuBudget usable_cpus() {
    CpuBudget out;
    std::size_t affinity = affinity_cpus();
    auto cgroup = read_file("/proc/self/cgroup");
    auto mountinfo = read_file("/proc/self/mountinfo");
    std::optional<CgroupQuota> quota;
    if (cgroup && mountinfo) quota = cgroup_cpu_quota(*cgroup, *mountinfo, read_file);
    std::string affinity_text =
        affinity ? std::to_string(affinity) + " CPU(s) in the affinity set" : "the affinity set unreadable";
    if (quota) {
        auto rounded = static_cast<std::size_t>(std::ceil(quota->cpus - 1e-9));
        if (affinity == 0 || rounded < affinity) {
            out.cpus = std::max<std::size_t>(1, rounded);
            char cpus[32];
            std::snprintf(cpus, sizeof cpus, "%.2f", quota->cpus);
            out.reason = "CPU quota " + std::string(cpus) + " rounded up (" + quota->describe + "; " + affinity_text + ")";
            return out;
        }
        out.cpus = affinity;
        out.reason = affinity_text + " (" + quota->describe + " allows as many or more)";
        return out;
    }
    out.cpus = std::max<std::size_t>(1, affinity);
    out.reason = affinity_text + ", no cgroup CPU quota";
    return out;
}

}  // namespace sluice::proxy
