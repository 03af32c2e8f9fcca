#include "config/patterns.h"

#include <string>

// The formats are matched by the small loops below, not by std::regex: GCC's
// std::regex recurses once per character, so a long value (a 50,000-byte
// path_prefix) overflowed the stack. Each loop reads its input once, left to
// right; a unit test checks that every loop accepts exactly what the schema's
// regular expression accepts.
namespace sluice::config {
namespace {

// One DNS label, spliced into two patterns at compile time.
#define SLUICE_LABEL "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"

constexpr const char* kTexts[] = {
    "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
    "^[0-9]{1,9}(ms|s|m|h)$",
    "^[1-9][0-9]{0,8}(B|KiB|MiB)$",
    "^(((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
    "|[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7})$",
    "^(" SLUICE_LABEL "(\\." SLUICE_LABEL ")*|\\[[0-9A-Fa-f:.]+\\])"
    ":(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})$",
    "^(\\*\\.)?" SLUICE_LABEL "(\\." SLUICE_LABEL ")*$",
    "^[A-Z][A-Z-]{0,31}$",
    "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$",
    "^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$",
    "^(?!0+(ms|s|m|h)$)[0-9]{1,9}(ms|s|m|h)$",
    "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$",
    "^/[^\\x00-\\x1f]{0,4095}$",
};
#undef SLUICE_LABEL

bool digit(char c) { return c >= '0' && c <= '9'; }
bool alpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
bool alnum(char c) { return digit(c) || alpha(c); }
bool hexdigit(char c) { return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool tchar(char c) { return alnum(c) || std::string_view("!#$%&'*+.^_`|~-").find(c) != std::string_view::npos; }
bool pchar(char c) { return alnum(c) || std::string_view("._~!$&'()*+,;=:@%/-").find(c) != std::string_view::npos; }

bool all_of(std::string_view s, bool (*pred)(char)) {
    for (char c : s)
        if (!pred(c)) return false;
    return true;
}

bool name(std::string_view s) {
    if (s.empty() || s.size() > 63 || !alnum(s[0])) return false;
    for (char c : s.substr(1))
        if (!alnum(c) && c != '_' && c != '.' && c != '-') return false;
    return true;
}

// digits{1,9} then one of the units; `zero_ok` false refuses an all-zero number.
bool duration(std::string_view s, bool zero_ok) {
    std::size_t n = 0;
    while (n < s.size() && digit(s[n])) ++n;
    if (n < 1 || n > 9) return false;
    std::string_view unit = s.substr(n);
    if (unit != "ms" && unit != "s" && unit != "m" && unit != "h") return false;
    return zero_ok || s.substr(0, n).find_first_not_of('0') != std::string_view::npos;
}

bool size(std::string_view s) {
    std::size_t n = 0;
    while (n < s.size() && digit(s[n])) ++n;
    if (n < 1 || n > 9 || s[0] == '0') return false;
    std::string_view unit = s.substr(n);
    return unit == "B" || unit == "KiB" || unit == "MiB";
}

bool octet(std::string_view s) {
    if (s.empty() || s.size() > 3 || !all_of(s, digit)) return false;
    if (s.size() > 1 && s[0] == '0') return false;
    return std::stoi(std::string(s)) <= 255;
}

bool ipv4(std::string_view s) {
    for (int i = 0; i < 4; ++i) {
        auto dot = s.find('.');
        if ((i < 3) == (dot == std::string_view::npos)) return false;
        if (!octet(s.substr(0, dot))) return false;
        s = i < 3 ? s.substr(dot + 1) : std::string_view{};
    }
    return true;
}

// 3 to 8 groups of 0 to 4 hex digits, separated by ':' (the schema's loose IPv6 shape).
bool ipv6_shape(std::string_view s) {
    int groups = 0;
    for (;;) {
        auto colon = s.find(':');
        std::string_view g = s.substr(0, colon);
        if (g.size() > 4 || !all_of(g, hexdigit)) return false;
        ++groups;
        if (colon == std::string_view::npos) break;
        s = s.substr(colon + 1);
    }
    return groups >= 3 && groups <= 8;
}

bool label(std::string_view s) {
    if (s.empty() || s.size() > 63 || !alnum(s.front()) || !alnum(s.back())) return false;
    for (char c : s)
        if (!alnum(c) && c != '-') return false;
    return true;
}

bool dotted_labels(std::string_view s) {
    for (;;) {
        auto dot = s.find('.');
        if (!label(s.substr(0, dot))) return false;
        if (dot == std::string_view::npos) return true;
        s = s.substr(dot + 1);
    }
}

bool port(std::string_view s) {
    if (s.empty() || s.size() > 5 || s[0] == '0' || !all_of(s, digit)) return false;
    return std::stoi(std::string(s)) <= 65535;
}

bool endpoint(std::string_view s) {
    std::string_view host;
    if (!s.empty() && s[0] == '[') {
        auto close = s.find(']');
        if (close == std::string_view::npos || close < 2) return false;
        for (char c : s.substr(1, close - 1))
            if (!hexdigit(c) && c != ':' && c != '.') return false;
        s = s.substr(close + 1);
        if (s.empty() || s[0] != ':') return false;
        return port(s.substr(1));
    }
    auto colon = s.find(':');
    if (colon == std::string_view::npos) return false;
    host = s.substr(0, colon);
    return dotted_labels(host) && port(s.substr(colon + 1));
}

bool host(std::string_view s) {
    if (s.size() >= 2 && s[0] == '*' && s[1] == '.') s.remove_prefix(2);
    return dotted_labels(s);
}

bool method(std::string_view s) {
    if (s.empty() || s.size() > 32 || s[0] < 'A' || s[0] > 'Z') return false;
    for (char c : s)
        if (!(c >= 'A' && c <= 'Z') && c != '-') return false;
    return true;
}

bool token(std::string_view s) { return !s.empty() && s.size() <= 128 && all_of(s, tchar); }

bool path(std::string_view s) { return !s.empty() && s[0] == '/' && all_of(s.substr(1), pchar); }

bool file_path(std::string_view s) {
    if (s.empty() || s[0] != '/') return false;
    // [^\x00-\x1f] counts characters, not bytes: a UTF-8 sequence is one.
    std::size_t chars = 0;
    for (char c : s.substr(1)) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20) return false;
        if ((u & 0xC0) != 0x80) ++chars;
    }
    return chars <= 4095;
}

}  // namespace

const char* pattern_text(Pattern p) { return kTexts[static_cast<std::size_t>(p)]; }

bool matches(Pattern p, std::string_view s) {
    switch (p) {
    case Pattern::name: return name(s);
    case Pattern::duration: return duration(s, true);
    case Pattern::size: return size(s);
    case Pattern::ip_address: return ipv4(s) || ipv6_shape(s);
    case Pattern::endpoint: return endpoint(s);
    case Pattern::host: return host(s);
    case Pattern::method: return method(s);
    case Pattern::header_name: return token(s);
    case Pattern::path: return path(s);
    case Pattern::positive_duration: return duration(s, false);
    case Pattern::cookie_name: return token(s);
    case Pattern::file_path: return file_path(s);
    }
    return false;
}

}  // namespace sluice::config
