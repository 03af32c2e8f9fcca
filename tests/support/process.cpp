#include "tests/support/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace sluice::test {

std::string sluice_binary() { return SLUICE_BINARY; }

std::uint16_t port_of(const std::string& line) {
    auto colon = line.rfind(':');
    if (colon == std::string::npos || line.find("address=") == std::string::npos) return 0;
    try {
        return static_cast<std::uint16_t>(std::stoi(line.substr(colon + 1)));
    } catch (const std::exception&) {
        return 0;
    }
}

namespace {
std::vector<std::string> command(std::vector<std::string> args, std::vector<std::string> wrapper) {
    wrapper.push_back(sluice_binary());
    wrapper.insert(wrapper.end(), args.begin(), args.end());
    return wrapper;
}
}  // namespace

RunningSluice::RunningSluice(std::vector<std::string> args, std::vector<std::string> wrapper)
    : p(command(std::move(args), std::move(wrapper))) {
    auto l = p.wait_for_line("listening name=public");
    auto a = p.wait_for_line("admin listening");
    if (!l || !a) throw std::runtime_error("sluice did not start: " + p.stderr_text());
    port = port_of(*l);
    admin = port_of(*a);
}

Process::Process(std::vector<std::string> args) {
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        execv(argv[0], argv.data());
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    out_fd_ = out[0];
    err_fd_ = err[0];
    out_reader_ = std::thread([this] {
        char buf[4096];
        for (;;) {
            ssize_t n = ::read(out_fd_, buf, sizeof buf);
            std::lock_guard lock(out_mu_);
            if (n <= 0) {
                out_eof_ = true;  // the child closed it (exited)
                out_cv_.notify_all();
                return;
            }
            out_buf_.append(buf, static_cast<std::size_t>(n));
            out_cv_.notify_all();
        }
    });
    err_reader_ = std::thread([this] {
        char buf[4096];
        for (;;) {
            ssize_t n = ::read(err_fd_, buf, sizeof buf);
            if (n <= 0) return;  // the child closed it (exited)
            std::lock_guard lock(err_mu_);
            err_text_.append(buf, static_cast<std::size_t>(n));
        }
    });
}

Process::~Process() {
    if (!exited_) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
    }
    if (err_reader_.joinable()) err_reader_.join();  // ends at EOF: the child is gone
    if (out_reader_.joinable()) out_reader_.join();
    close(out_fd_);
    close(err_fd_);
}

std::optional<std::string> Process::read_line(int timeout_ms) {
    std::unique_lock lock(out_mu_);
    out_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                     [this] { return out_buf_.find('\n') != std::string::npos || out_eof_; });
    auto nl = out_buf_.find('\n');
    if (nl == std::string::npos) return std::nullopt;
    std::string line = out_buf_.substr(0, nl);
    out_buf_.erase(0, nl + 1);
    return line;
}

std::optional<std::string> Process::wait_for_line(const std::string& prefix, int timeout_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        auto line = read_line(static_cast<int>(left.count()));
        if (!line) return std::nullopt;
        if (line->rfind(prefix, 0) == 0) return line;
    }
    return std::nullopt;
}

void Process::signal(int sig) { kill(pid_, sig); }

int Process::wait(int timeout_ms) {
    if (exited_) return status_;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid_, &st, WNOHANG);
        if (r == pid_) break;
        if (std::chrono::steady_clock::now() >= deadline) {
            kill(pid_, SIGKILL);
            waitpid(pid_, &st, 0);
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    exited_ = true;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return status_;
}

std::string Process::stderr_text() {
    if (exited_ && err_reader_.joinable()) err_reader_.join();  // all of it, once the child is gone
    std::lock_guard lock(err_mu_);
    return err_text_;
}

std::string Process::stdout_rest() {
    if (exited_ && out_reader_.joinable()) out_reader_.join();  // all of it, once the child is gone
    std::lock_guard lock(out_mu_);
    return out_buf_;
}

std::uint64_t Process::status_kib(const std::string& field) const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1));
    return 0;
}

RunResult run_sluice(const std::vector<std::string>& args) {
    std::vector<std::string> full{sluice_binary()};
    full.insert(full.end(), args.begin(), args.end());
    Process p(full);
    int status = p.wait();
    return {status, p.stdout_rest(), p.stderr_text()};
}

}  // namespace sluice::test
