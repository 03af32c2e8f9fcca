#include "proxy/access_log.h"

#include <boost/lockfree/spsc_queue.hpp>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <thread>
#include <vector>

namespace sluice::proxy {
namespace {

void append_escaped(std::string& out, std::string_view s) {
    out += '"';
    for (unsigned char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20 || c >= 0x7f) {
                // Request paths are bytes, not always UTF-8: escape anything outside ASCII
                // so every line is valid JSON.
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
            } else {
                out += static_cast<char>(c);
            }
        }
    }
    out += '"';
}

void append_field(std::string& out, std::string_view key, std::string_view value) {
    out += ",\"";
    out += key;
    out += "\":";
    append_escaped(out, value);
}

void append_number(std::string& out, std::string_view key, std::uint64_t v) {
    out += ",\"";
    out += key;
    out += "\":";
    out += std::to_string(v);
}

void append_ms(std::string& out, std::string_view key, std::optional<double> seconds) {
    out += ",\"";
    out += key;
    out += "\":";
    if (!seconds) {
        out += "null";
        return;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", *seconds * 1000.0);
    out += buf;
}

// 2026-11-27T03:10:00.123Z
void append_time(std::string& out, std::chrono::system_clock::time_point t) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[96];
    std::snprintf(buf, sizeof buf, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
    out += buf;
}

bool write_all(int fd, const char* p, std::size_t n) {
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

}  // namespace

void format_access_line(const AccessRecord& r, std::string& out) {
    out += "{\"time\":";
    append_time(out, r.start);
    append_field(out, "kind", r.kind);
    append_field(out, "listener", r.listener);
    append_field(out, "route", r.route);
    append_field(out, "cluster", r.cluster);
    append_field(out, "endpoint", r.endpoint);
    append_field(out, "client", r.client);
    append_field(out, "method", r.method);
    append_field(out, "path", r.path);
    append_number(out, "status", static_cast<std::uint64_t>(r.status));
    append_number(out, "bytes_received", r.bytes_received);
    append_number(out, "bytes_sent", r.bytes_sent);
    append_ms(out, "duration_ms", r.duration);
    append_ms(out, "upstream_connect_ms", r.upstream_connect);
    append_ms(out, "upstream_first_byte_ms", r.upstream_first_byte);
    append_field(out, "error", r.error);
    if (!r.close_reason.empty()) append_field(out, "close_reason", r.close_reason);
    append_number(out, "config_version", r.config_version);
    out += "}\n";
}

struct AccessLog::State {
    struct Slot {
        explicit Slot(std::size_t bytes) : ring(bytes) {}
        boost::lockfree::spsc_queue<char> ring;
        std::string line;  // the producer's scratch
        // Written by the producer only (load + store), read by anyone.
        std::atomic<std::uint64_t> lines{0}, dropped{0};
    };
    std::vector<std::unique_ptr<Slot>> slots;

    std::mutex mu;  // guards the fields below and the wake-up
    std::condition_variable cv;
    std::atomic<bool> pending{false};
    bool stop = false;
    bool done = false;
    std::optional<std::pair<int, bool>> next;  // a new target: fd, and whether we close it

    // Writer thread only.
    int fd = -1;
    bool own = false;
    bool failing = false;

    void wake() {
        if (pending.load(std::memory_order_relaxed) || pending.exchange(true)) return;
        cv.notify_one();
    }

    void drain() {
        char buf[64 * 1024];
        for (auto& s : slots) {
            // Producers publish whole lines, so this many bytes end on a line boundary.
            std::size_t left = s->ring.read_available();
            while (left > 0) {
                std::size_t n = s->ring.pop(buf, std::min(left, sizeof buf));
                if (n == 0) break;
                left -= n;
                if (fd < 0) continue;
                if (!write_all(fd, buf, n)) {
                    if (!failing) spdlog::warn("cannot write the access log: {}; lines are lost until it works again",
                                               std::strerror(errno));
                    failing = true;
                } else {
                    failing = false;
                }
            }
        }
    }

    void run() {
        for (;;) {
            std::optional<std::pair<int, bool>> swap;
            bool stopping = false;
            {
                std::unique_lock lk(mu);
                // A wake-up lost to a race costs at most this long.
                cv.wait_for(lk, std::chrono::milliseconds(100), [&] { return pending.load() || stop || next; });
                pending.store(false);
                swap.swap(next);
                stopping = stop;
            }
            if (swap) {
                // Lines still queued go to the new target: at start-up there is no old one.
                if (own && fd >= 0) ::close(fd);
                fd = swap->first;
                own = swap->second;
            }
            drain();
            if (stopping) break;
        }
        drain();
        if (own && fd >= 0) ::close(fd);
        std::lock_guard lk(mu);
        done = true;
        cv.notify_all();
    }
};

AccessLog::AccessLog(std::size_t workers, std::size_t ring_bytes) : state_(std::make_shared<State>()) {
    for (std::size_t i = 0; i < workers; ++i) state_->slots.push_back(std::make_unique<State::Slot>(ring_bytes));
    std::thread([s = state_] { s->run(); }).detach();  // joined by waiting for `done` in the destructor
}

AccessLog::~AccessLog() {
    std::unique_lock lk(state_->mu);
    state_->stop = true;
    state_->cv.notify_all();
    // A full pipe on stdout must not hang the exit: give up after 2s (the
    // thread keeps the state alive and ends with the process).
    state_->cv.wait_for(lk, std::chrono::seconds(2), [&] { return state_->done; });
}

AccessLog::Target::~Target() {
    if (set_ && own_ && fd_ >= 0) ::close(fd_);
}

bool AccessLog::prepare(const config::AccessLogSpec& spec, Target& out, std::string& error) const {
    if ((configured_ && spec == spec_) || !spec.enabled) return true;  // nothing to open
    if (spec.path == "/dev/stdout") out.fd_ = STDOUT_FILENO;
    else if (spec.path == "/dev/stderr") out.fd_ = STDERR_FILENO;
    else {
        out.fd_ = ::open(spec.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (out.fd_ < 0) {
            error = "cannot open the access log file " + spec.path + ": " + std::strerror(errno) +
                    "; create its directory and make it writable, or set access_log.path to /dev/stdout";
            return false;
        }
        out.own_ = true;
    }
    out.set_ = true;
    return true;
}

void AccessLog::apply(const config::AccessLogSpec& spec, Target target) {
    if (configured_ && spec == spec_) return;
    spec_ = spec;
    configured_ = true;
    if (!spec.enabled) {
        enabled_.store(false, std::memory_order_relaxed);
        return;
    }
    if (target.set_) {
        std::lock_guard lk(state_->mu);
        if (state_->next && state_->next->second) ::close(state_->next->first);
        state_->next = std::make_pair(target.fd_, target.own_);
        target.set_ = false;  // the writer owns it now
        state_->cv.notify_one();
    }
    enabled_.store(true, std::memory_order_relaxed);
}

void AccessLog::write(std::size_t worker, const AccessRecord& record) {
    auto& slot = *state_->slots[worker];
    slot.line.clear();
    format_access_line(record, slot.line);
    if (slot.ring.write_available() < slot.line.size()) {
        slot.dropped.store(slot.dropped.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    } else {
        slot.ring.push(slot.line.data(), slot.line.size());
        slot.lines.store(slot.lines.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    state_->wake();
}

std::uint64_t AccessLog::lines() const {
    std::uint64_t n = 0;
    for (const auto& s : state_->slots) n += s->lines.load(std::memory_order_relaxed);
    return n;
}

std::uint64_t AccessLog::dropped() const {
    std::uint64_t n = 0;
    for (const auto& s : state_->slots) n += s->dropped.load(std::memory_order_relaxed);
    return n;
}

}  // namespace sluice::proxy
