// Access log lines are valid JSON whatever the client sent, the writer never
// blocks a worker (a full ring drops and counts), and a switch of output
// applies to lines written after it.
#include "proxy/worker/access_log.h"

#include "tests/support/deadline.h"
#include "tests/support/temp_dir.h"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

using sluice::proxy::AccessLog;
using sluice::proxy::AccessRecord;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::vector<json> read_lines(const fs::path& p) {
    std::ifstream in(p);
    std::vector<json> out;
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));  // throws on a bad line
    return out;
}

// Waits for the writer thread (it wakes on every write, or every 100ms).
std::vector<json> wait_for_lines(const fs::path& p, std::size_t n) {
    sluice::test::eventually([&] { return fs::exists(p) && read_lines(p).size() >= n; }, 3000);
    return read_lines(p);
}


}  // namespace

TEST(AccessLogFormat, EveryFieldAndValidJsonForHostileBytes) {
    AccessRecord r;
    r.start = std::chrono::system_clock::time_point(std::chrono::milliseconds(1795749687123));
    r.kind = "websocket";
    r.listener = "public";
    r.route = "chat";
    r.cluster = "chat";
    r.endpoint = "127.0.0.1:3000";
    r.client = "127.0.0.1:5555";
    r.method = "GET";
    std::string path = "/a\"b\\c\x01\xff\n";
    r.path = path;
    r.status = 101;
    r.bytes_received = 10;
    r.bytes_sent = 20;
    r.duration = 1.5;
    r.upstream_connect = 0.0002;
    r.error = "";
    r.close_reason = "client_closed";
    r.config_version = 3;
    std::string line;
    sluice::proxy::format_access_line(r, line);
    ASSERT_EQ(line.back(), '\n');
    EXPECT_EQ(line.find('\n'), line.size() - 1);  // one line
    auto j = json::parse(line);
    EXPECT_EQ(j["time"], "2026-11-27T03:21:27.123Z");
    EXPECT_EQ(j["kind"], "websocket");
    EXPECT_EQ(j["route"], "chat");
    EXPECT_EQ(j["endpoint"], "127.0.0.1:3000");
    EXPECT_EQ(j["path"], "/a\"b\\c\x01\u00ff\n");  // bytes outside ASCII come back as code points
    EXPECT_EQ(j["status"], 101);
    EXPECT_EQ(j["bytes_received"], 10);
    EXPECT_EQ(j["bytes_sent"], 20);
    EXPECT_DOUBLE_EQ(j["duration_ms"].get<double>(), 1500.0);
    EXPECT_DOUBLE_EQ(j["upstream_connect_ms"].get<double>(), 0.2);
    EXPECT_TRUE(j["upstream_first_byte_ms"].is_null());
    EXPECT_EQ(j["close_reason"], "client_closed");
    EXPECT_EQ(j["config_version"], 3);
}

TEST(AccessLogWriter, WritesToFileSwitchesAndOffStopsIt) {
    const sluice::test::TempDir tmp("sluice-access-");
    const fs::path dir = tmp.path;
    AccessLog log(2);
    std::string error;
    ASSERT_TRUE(log.configure({true, (dir / "a.log").string()}, error)) << error;
    AccessRecord r;
    r.method = "GET";
    r.path = "/one";
    log.write(0, r);
    r.path = "/two";
    log.write(1, r);
    auto a = wait_for_lines(dir / "a.log", 2);
    ASSERT_EQ(a.size(), 2u);

    ASSERT_TRUE(log.configure({true, (dir / "b.log").string()}, error)) << error;
    r.path = "/three";
    log.write(0, r);
    auto b = wait_for_lines(dir / "b.log", 1);
    ASSERT_EQ(b.size(), 1u);
    EXPECT_EQ(b[0]["path"], "/three");
    EXPECT_EQ(read_lines(dir / "a.log").size(), 2u);

    ASSERT_TRUE(log.configure({false, (dir / "b.log").string()}, error));
    EXPECT_FALSE(log.enabled());
    EXPECT_EQ(log.lines(), 3u);
    EXPECT_EQ(log.dropped(), 0u);
}

TEST(AccessLogWriter, AFileThatCannotBeOpenedChangesNothing) {
    const sluice::test::TempDir tmp("sluice-access-");
    const fs::path dir = tmp.path;
    AccessLog log(1);
    std::string error;
    ASSERT_TRUE(log.configure({true, (dir / "a.log").string()}, error));
    AccessLog::Target t;
    EXPECT_FALSE(log.prepare({true, (dir / "missing-dir" / "x.log").string()}, t, error));
    EXPECT_NE(error.find("missing-dir/x.log"), std::string::npos) << error;
    EXPECT_NE(error.find("No such file or directory"), std::string::npos) << error;
    AccessRecord r;
    log.write(0, r);
    EXPECT_EQ(wait_for_lines(dir / "a.log", 1).size(), 1u);
}

TEST(AccessLogWriter, AFullRingDropsAndCountsInsteadOfWaiting) {
    std::signal(SIGPIPE, SIG_IGN);  // as sluice itself does: the stuck pipe is closed at the end
    const sluice::test::TempDir tmp("sluice-access-");
    const fs::path dir = tmp.path;
    // A FIFO nobody reads: the writer thread blocks on it, the ring fills.
    auto fifo = dir / "stuck";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);  // lets the writer open it
    ASSERT_GE(reader, 0);
    {
        AccessLog log(1, 4096);
        std::string error;
        ASSERT_TRUE(log.configure({true, fifo.string()}, error)) << error;
        AccessRecord r;
        std::string path(200, 'x');
        r.path = path;
        for (int i = 0; i < 5000; ++i) log.write(0, r);  // ~1.5 MB: more than pipe + ring
        EXPECT_GT(log.dropped(), 0u);
        EXPECT_EQ(log.lines() + log.dropped(), 5000u);
    }  // the destructor gives up on the stuck pipe instead of hanging
    ::close(reader);
}
