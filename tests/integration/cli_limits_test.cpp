// Limits that hold under load, on the real binary: running out of file
// descriptors pauses accepting instead of spinning, and everything recovers
// once descriptors free up; thousands of slow clients never stop new ones
// from being served, and cost a bounded amount of memory each.
#include "tests/support/client.h"
#include "tests/support/deadline.h"
#include "tests/support/origin.h"
#include "tests/support/process.h"
#include "tests/support/prometheus_text.h"
#include "tests/support/proxy_fixture.h"
#include "tests/support/temp_dir.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

using namespace sluice::test;

namespace {

// A plain blocking TCP connection to 127.0.0.1:port, or -1. Completes from
// the listen backlog even when sluice cannot accept it yet.
int connect_to(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

std::string config_file(const TempDir& dir, const std::string& origin) {
    return dir.file("c.yaml", one_route(origin) + "timeouts: {drain_delay: 0s, drain: 1s}\n");
}

double metric(std::uint16_t admin, const std::string& name, const PromLabels& labels) {
    return parse_exposition(http_get(admin, "/metrics").body).value_or_zero(name, labels);
}

#ifdef __SANITIZE_ADDRESS__
constexpr bool kAsan = true;  // redzones and the free quarantine inflate resident memory
#else
constexpr bool kAsan = false;
#endif

// A GET that may fail while descriptors are still short: false, not a throw.
bool served(std::uint16_t port, const std::string& target, const std::string& body) {
    try {
        return http_get(port, target).body == body;
    } catch (const std::exception&) {
        return false;
    }
}

// How many descriptors the process holds now.
std::size_t open_descriptors(pid_t pid) {
    std::error_code ec;
    std::size_t n = 0;
    for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec), end; !ec && it != end;
         it.increment(ec))
        ++n;
    return n;
}

std::size_t count_of(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
    return n;
}

}  // namespace

// The admin and probes accept loops spun at 100% CPU when descriptors ran
// out (an accept error retried at once, forever).
TEST(Limits, AcceptLoopsPauseWhenDescriptorsRunOutAndRecover) {
    if (kAsan)
        GTEST_SKIP() << "UBSan's vptr check opens a pipe to test memory (IsAccessibleMemoryRange), so with no "
                        "descriptor left it reports valid objects as invalid and exits; the normal build runs this";
    TestOrigin origin(echo_handler("o"));
    const TempDir dir("sluice-limits-");
    auto cfg = config_file(dir, origin.address());
    RunningSluice s({"run", "--config", cfg, "--admin", "127.0.0.1:0", "--workers", "2"},
                    {"/usr/bin/prlimit", "--nofile=48:48", "--"});
    std::vector<int> held;
    for (int i = 0; i < 80; ++i)
        if (int fd = connect_to(s.port); fd >= 0) held.push_back(fd);
    // Only once the workers have taken every descriptor is the admin API's
    // accept sure to fail; on a busy machine the workers take a while.
    ASSERT_TRUE(eventually([&] { return open_descriptors(s.p.pid()) >= 48; }, 10000))
        << "sluice holds " << open_descriptors(s.p.pid()) << " descriptors";
    for (int i = 0; i < 5; ++i)
        if (int fd = connect_to(s.admin); fd >= 0) held.push_back(fd);
    // Hold the exhaustion for a while: a spinning loop fails accept() hundreds
    // of thousands of times in this time; a pausing one about ten times.
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    for (int fd : held) ::close(fd);

    // Recovered: a new client is served, and the admin API answers.
    ASSERT_TRUE(eventually([&] { return served(s.port, "/after", "o GET /after"); }, 10000));
    double data_plane = metric(s.admin, "sluice_accept_errors_total", {{"listener", "public"}});
    double admin = metric(s.admin, "sluice_admin_accept_errors_total", {{"server", "admin"}});
    EXPECT_GT(data_plane, 0) << "the test did not exhaust the descriptors";
    EXPECT_GT(admin, 0) << "the test did not exhaust the descriptors";
    EXPECT_LT(data_plane, 200) << "the data plane accept loop did not pause";
    EXPECT_LT(admin, 100) << "the admin accept loop did not pause";
    s.p.signal(SIGTERM);
    EXPECT_EQ(s.p.wait(), 0);
    // Warned once per interval per acceptor (two workers, the admin API), not per failure.
    auto err = s.p.stderr_text();
    EXPECT_LE(count_of(err, "cannot accept connections"), 3u) << err;
    EXPECT_NE(err.find("raise the open-file limit"), std::string::npos) << err;
    std::filesystem::remove(cfg);
}

// 5,000 clients that send half a request head and stop. They cost bounded
// memory each, are closed after timeouts.request_headers, and never stop a
// new client from being served meanwhile.
TEST(Limits, FiveThousandSlowClientsNeitherStarveNewOnesNorGrowMemoryWithoutBound) {
    constexpr int kSlow = 5000;
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max < 2 * kSlow + 512) GTEST_SKIP() << "needs an open-file hard limit of " << 2 * kSlow + 512;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    TestOrigin origin(echo_handler("o"));
    const TempDir dir("sluice-slow-");
    auto path = dir.file("c.yaml", one_route(origin.address()) + "timeouts: {request_headers: 5s, drain_delay: 0s, drain: 1s}\n");
    RunningSluice s({"run", "--config", path, "--admin", "127.0.0.1:0", "--workers", "2"});
    ASSERT_EQ(http_get(s.port, "/warm").status, 200u);
    const auto before = s.p.status_kib("VmRSS");

    std::vector<int> slow;
    const std::string half = "GET /slow HTTP/1.1\r\nHost: a\r\nX-Half: ";
    for (int i = 0; i < kSlow; ++i) {
        int fd = connect_to(s.port);
        ASSERT_GE(fd, 0) << "connect " << i;
        ASSERT_EQ(::send(fd, half.data(), half.size(), MSG_NOSIGNAL), static_cast<ssize_t>(half.size()));
        slow.push_back(fd);
    }
    // Every slow client is accepted and read: the connection gauge says so.
    ASSERT_TRUE(eventually([&] {
        return metric(s.admin, "sluice_downstream_connections_active", {{"listener", "public"}}) >= kSlow;
    }, 20000));
    const auto during = s.p.status_kib("VmRSS");
    // A new client is served at once, beside them.
    auto r = http_get(s.port, "/new");
    EXPECT_EQ(r.status, 200u);
    EXPECT_EQ(r.body, "o GET /new");
    const double per_client = double(during - before) / kSlow;
    std::printf("[ figures  ] %d slow clients: resident %llu KiB before, %llu KiB with them: %.2f KiB each\n", kSlow,
                static_cast<unsigned long long>(before), static_cast<unsigned long long>(during), per_client);
    if (!kAsan) {
        EXPECT_LT(per_client, 8.0) << "memory per slow client";
    }

    // After timeouts.request_headers every one of them is answered 408 and closed.
    ASSERT_TRUE(eventually([&] {
        return metric(s.admin, "sluice_downstream_connections_active", {{"listener", "public"}}) == 0;
    }, 20000));
    char buf[512];
    auto n = ::recv(slow.front(), buf, sizeof buf, 0);
    EXPECT_GT(n, 12);
    EXPECT_EQ(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0).rfind("HTTP/1.1 408 ", 0), 0u);
    for (int fd : slow) ::close(fd);
    s.p.signal(SIGTERM);
    EXPECT_EQ(s.p.wait(), 0);
}
