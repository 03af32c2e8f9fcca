// Runs the sluice binary as a child process: stdout is read line by line (the
// start-up lines carry the chosen ports), stderr is collected, and the child is
// killed at the end of the test if it is still running. Both pipes are drained
// all along (sluice's access log goes to stdout), so the child never blocks.
#pragma once
#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>
#include <string>
#include <vector>

namespace sluice::test {

class Process {
public:
    explicit Process(std::vector<std::string> args);
    ~Process();
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    pid_t pid() const { return pid_; }
    // The next stdout line, or nullopt at EOF or after `timeout_ms`.
    std::optional<std::string> read_line(int timeout_ms = 10000);
    // Reads stdout lines until one starts with `prefix`.
    std::optional<std::string> wait_for_line(const std::string& prefix, int timeout_ms = 10000);
    void signal(int sig);
    // Exit status (or 128+signal); waits up to `timeout_ms`, then kills.
    int wait(int timeout_ms = 20000);
    std::string stderr_text();  // what it wrote so far; all of it after wait()
    std::string stdout_rest();  // after wait()
    // From /proc/PID/status, in KiB.
    std::uint64_t status_kib(const std::string& field) const;

private:
    pid_t pid_ = -1;
    int out_fd_ = -1, err_fd_ = -1;
    std::mutex out_mu_;
    std::condition_variable out_cv_;
    std::string out_buf_;  // read but not yet returned by read_line
    bool out_eof_ = false;
    std::thread out_reader_;
    // Standard error is drained all along, so a chatty child never blocks on a full pipe.
    std::mutex err_mu_;
    std::string err_text_;
    std::thread err_reader_;
    bool exited_ = false;
    int status_ = 0;
};

// Path of the built sluice binary.
std::string sluice_binary();

// The port of a start-up line such as "listening name=public address=127.0.0.1:41234", or 0.
std::uint16_t port_of(const std::string& line);

// `sluice` started with `args` (e.g. {"run", "--config", ...}), optionally
// through `wrapper` (e.g. {"/usr/bin/prlimit", "--nofile=64", "--"}); the
// "public" listener's and the admin API's ports read from its start-up lines.
struct RunningSluice {
    explicit RunningSluice(std::vector<std::string> args, std::vector<std::string> wrapper = {});
    Process p;
    std::uint16_t port = 0, admin = 0;
};
// Runs to completion and returns {exit status, stdout, stderr}.
struct RunResult {
    int status;
    std::string out, err;
};
RunResult run_sluice(const std::vector<std::string>& args);

}  // namespace sluice::test
