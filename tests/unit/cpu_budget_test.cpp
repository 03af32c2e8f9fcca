// Where the default worker count comes from: the cgroup CPU quota, read from
// the files a container runtime sets up (given here as a tree in memory).
#include "proxy/server/cpu_budget.h"

#include <gtest/gtest.h>

#include <map>

using sluice::proxy::cgroup_cpu_quota;

namespace {

struct Files {
    std::map<std::string, std::string> files;
    sluice::proxy::FileReader reader() const {
        return [this](const std::string& path) -> std::optional<std::string> {
            auto it = files.find(path);
            if (it == files.end()) return std::nullopt;
            return it->second;
        };
    }
};

// A pure cgroup v2 host (Kubernetes with containerd, cgroup namespace).
constexpr const char* v2_mountinfo =
    "27 1 254:0 / / rw,relatime - overlay overlay rw\n"
    "31 27 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate\n";

// A cgroup v1 host like the build machines: cpu alone, plus an unused v2 mount.
constexpr const char* v1_mountinfo =
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
    "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

}  // namespace

TEST(CpuBudget, CgroupV2QuotaOfTheContainer) {
    Files f;
    f.files["/sys/fs/cgroup/cpu.max"] = "50000 100000\n";
    auto q = cgroup_cpu_quota("0::/\n", v2_mountinfo, f.reader());
    ASSERT_TRUE(q);
    EXPECT_DOUBLE_EQ(q->cpus, 0.5);
    EXPECT_NE(q->describe.find("cpu.max 50000 100000"), std::string::npos) << q->describe;
}

TEST(CpuBudget, CgroupV2NoLimitIsNoQuota) {
    Files f;
    f.files["/sys/fs/cgroup/cpu.max"] = "max 100000\n";
    EXPECT_FALSE(cgroup_cpu_quota("0::/\n", v2_mountinfo, f.reader()));
}

TEST(CpuBudget, CgroupV2TheTightestAncestorWins) {
    // Without a cgroup namespace: the Pod's limit on a parent binds the container.
    Files f;
    f.files["/sys/fs/cgroup/kubepods/pod1/c1/cpu.max"] = "max 100000";
    f.files["/sys/fs/cgroup/kubepods/pod1/cpu.max"] = "150000 100000";
    f.files["/sys/fs/cgroup/kubepods/cpu.max"] = "400000 100000";
    auto q = cgroup_cpu_quota("0::/kubepods/pod1/c1\n", v2_mountinfo, f.reader());
    ASSERT_TRUE(q);
    EXPECT_DOUBLE_EQ(q->cpus, 1.5);
    EXPECT_NE(q->describe.find("/kubepods/pod1"), std::string::npos) << q->describe;
}

TEST(CpuBudget, CgroupV1QuotaWhereTheCpuControllerIs) {
    Files f;
    f.files["/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us"] = "250000\n";
    f.files["/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us"] = "100000\n";
    f.files["/sys/fs/cgroup/cpu,cpuacct/docker/cpu.cfs_quota_us"] = "-1\n";
    f.files["/sys/fs/cgroup/cpu,cpuacct/docker/cpu.cfs_period_us"] = "100000\n";
    // The hybrid host's v2 mount has no cpu.max: v1 holds the quota.
    auto q = cgroup_cpu_quota("4:cpuset:/\n3:cpu,cpuacct:/docker/abc\n0::/\n", v1_mountinfo, f.reader());
    ASSERT_TRUE(q);
    EXPECT_DOUBLE_EQ(q->cpus, 2.5);
    EXPECT_NE(q->describe.find("cgroup v1"), std::string::npos) << q->describe;
}

TEST(CpuBudget, CgroupV1InsideACgroupNamespace) {
    // The mount shows the container's own cgroup as its root.
    Files f;
    f.files["/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us"] = "50000";
    f.files["/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us"] = "100000";
    const char* mountinfo = "32 31 0:29 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct\n";
    auto q = cgroup_cpu_quota("3:cpu,cpuacct:/docker/abc\n", mountinfo, f.reader());
    ASSERT_TRUE(q);
    EXPECT_DOUBLE_EQ(q->cpus, 0.5);
}

TEST(CpuBudget, NoCpuControllerOrUnreadableFilesIsNoQuota) {
    Files none;
    EXPECT_FALSE(cgroup_cpu_quota("0::/\n", "27 1 254:0 / / rw - ext4 /dev/vda rw\n", none.reader()));
    EXPECT_FALSE(cgroup_cpu_quota("3:cpu,cpuacct:/x\n", v1_mountinfo, none.reader()));
    Files garbage;
    garbage.files["/sys/fs/cgroup/cpu.max"] = "fifty 100000";
    EXPECT_FALSE(cgroup_cpu_quota("0::/\n", v2_mountinfo, garbage.reader()));
    EXPECT_FALSE(cgroup_cpu_quota("", "", garbage.reader()));
    // A path without a leading slash ends the walk up, like any other.
    EXPECT_FALSE(cgroup_cpu_quota("0::docker\n", v2_mountinfo, garbage.reader()));
}
