#include "proxy/worker/access_log.h"

#include <boost/lockfree/spsc_queue.hpp>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace sluice::proxy {
namespace {

void append_escaped(std::string& out, std::string_view s) {
    out += '"';
    // Most values need no escaping: copy them whole.
    bool plain = true;
    for (unsigned char c : s) plain = plain && c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
    if (plain) {
        out += s;
        out += '"';
        return;
    }
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
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, end);
}

void append_ms(std::string& out, std::string_view key, std::optional<double> seconds) {
    out += ",\"";
    out += key;
    out += "\":";
    if (!seconds) {
        out += "null";
        return;
    }
    // Milliseconds with three decimals, from whole microseconds (integer formatting is cheap).
    const double us = *seconds * 1e6;
    const auto whole = static_cast<std::uint64_t>(us > 0 ? us + 0.5 : 0);
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, whole / 1000);
    const auto frac = whole % 1000;
    *end++ = '.';
    *end++ = static_cast<char>('0' + frac / 100);
    *end++ = static_cast<char>('0' + frac / 10 % 10);
    *end++ = static_cast<char>('0' + frac % 10);
    out.append(buf, end);
}

// 2026-11-27T03:10:00.123Z. Calendar arithmetic only: gmtime_r takes glibc's
// time zone lock, which every worker would share.
void append_time(std::string& out, std::chrono::system_clock::time_point t) {
    using namespace std::chrono;
    const auto ms = floor<milliseconds>(t);
    const auto day = floor<days>(ms);
    const year_month_day ymd{day};
    const hh_mm_ss<milliseconds> hms{ms - day};
    // Fixed width, written digit by digit: snprintf costs more than the rest of the line.
    char buf[] = "\"0000-00-00T00:00:00.000Z\"";
    auto put = [&](int at, int width, long v) {
        for (int i = at + width - 1; i >= at; --i, v /= 10) buf[i] = static_cast<char>('0' + v % 10);
    };
    put(1, 4, static_cast<int>(ymd.year()));
    put(6, 2, static_cast<unsigned>(ymd.month()));
    put(9, 2, static_cast<unsigned>(ymd.day()));
    put(12, 2, hms.hours().count());
    put(15, 2, hms.minutes().count());
    put(18, 2, static_cast<long>(hms.seconds().count()));
    put(21, 3, static_cast<long>(hms.subseconds().count()));
    out.append(buf, sizeof buf - 1);
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
    if (!r.client_cancel.empty()) append_field(out, "client_cancel", r.client_cancel);
    if (!r.grpc_status.empty()) append_field(out, "grpc_status", r.grpc_status);
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

    // Workers: one load per line while the writer is busy or resting; only the
    // first line after the writer went to sleep pays for a wake-up.
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
            // Rest a little: lines gather into bigger writes, and workers find
            // `pending` already set instead of waking this thread for every line.
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
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
