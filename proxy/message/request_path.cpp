#include "proxy/message/request_path.h"

#include <vector>

namespace sluice::proxy {
namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// The byte a "%XY" at `i` stands for, or -1 when it is not an escape.
int escaped_byte(std::string_view s, std::size_t i) {
    if (s[i] != '%' || i + 2 >= s.size()) return -1;
    int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

bool is_dot_segment_start(std::string_view s, std::size_t i) {
    // s[i - 1] is '/' and s[i] is '.': "." or ".." as a whole segment?
    std::size_t n = s.size();
    if (i + 1 == n || s[i + 1] == '/') return true;
    return s[i + 1] == '.' && (i + 2 == n || s[i + 2] == '/');
}

// One pass: does the path need the slow path at all?
bool needs_work(std::string_view path, const config::Paths& rules) {
    for (std::size_t i = 0; i < path.size(); ++i) {
        char c = path[i];
        if (c == '%') {
            int b = escaped_byte(path, i);
            if (b == '.' || b == '/' || b == '\\') return true;
        } else if (c == '/' && i + 1 < path.size()) {
            char next = path[i + 1];
            if (next == '/' && rules.merge_slashes) return true;
            if (next == '.' && is_dot_segment_start(path, i + 1)) return true;
        }
    }
    return false;
}

}  // namespace

bool remove_dot_segments(std::string& path) {
    // Segments are what lies between slashes; `starts` remembers where each
    // kept segment's slash sits in `out`, so ".." can drop the last one.
    std::string out;
    out.reserve(path.size());
    std::vector<std::size_t> starts;
    std::size_t i = path.empty() || path[0] != '/' ? 0 : 1;
    for (;;) {
        std::size_t slash = path.find('/', i);
        bool last = slash == std::string::npos;
        std::string_view seg(path.data() + i, (last ? path.size() : slash) - i);
        if (seg == ".") {
            if (last) out += '/';
        } else if (seg == "..") {
            if (starts.empty()) return false;  // above "/"
            out.resize(starts.back());
            starts.pop_back();
            if (last) out += '/';
        } else {
            starts.push_back(out.size());
            out += '/';
            out += seg;
        }
        if (last) break;
        i = slash + 1;
    }
    if (out.empty()) out = "/";
    path.swap(out);
    return true;
}

PathResult normalize_path(std::string_view path, const config::Paths& rules, std::string& out) {
    PathResult r;
    if (!needs_work(path, rules)) return r;
    out.clear();
    out.reserve(path.size());
    for (std::size_t i = 0; i < path.size(); ++i) {
        int b = path[i] == '%' ? escaped_byte(path, i) : -1;
        if (b == '.') {
            out += '.';
            i += 2;
        } else if (b == '/' || b == '\\') {
            switch (rules.encoded_slash) {
            case config::Paths::EncodedSlash::keep: out.append(path.substr(i, 3)); break;
            // Both become '/': a raw backslash is refused in paths, and many
            // servers read one as a slash anyway.
            case config::Paths::EncodedSlash::decode: out += '/'; break;
            case config::Paths::EncodedSlash::reject:
                r.outcome = PathResult::Outcome::refused;
                r.problem = "the path holds an encoded slash (" + std::string(path.substr(i, 3)) +
                            "), which paths.encoded_slash: reject refuses";
                return r;
            }
            i += 2;
        } else if (path[i] == '/' && rules.merge_slashes && !out.empty() && out.back() == '/') {
            // a repeated slash: dropped
        } else {
            out += path[i];
        }
    }
    // Decoded slashes may have made new repeats.
    if (rules.merge_slashes) {
        std::size_t w = 0;
        for (std::size_t k = 0; k < out.size(); ++k)
            if (!(out[k] == '/' && w > 0 && out[w - 1] == '/')) out[w++] = out[k];
        out.resize(w);
    }
    if (!remove_dot_segments(out)) {
        r.outcome = PathResult::Outcome::refused;
        r.problem = "the path climbs above \"/\" with \"..\" segments";
        return r;
    }
    r.outcome = out == path ? PathResult::Outcome::unchanged : PathResult::Outcome::changed;
    return r;
}

bool rewrite_stays_within(std::string& rewritten, std::string_view prefix) {
    if (!remove_dot_segments(rewritten)) return false;
    return rewritten.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace sluice::proxy
