#include "config/patterns.h"

#include <array>
#include <regex>
#include <string>

namespace sluice::config {
namespace {

constexpr const char* kLabel = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";

constexpr std::size_t kCount = 12;

const std::array<std::string, kCount>& texts() {
    static const std::array<std::string, kCount> t = {
        "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
        "^[0-9]{1,9}(ms|s|m|h)$",
        "^[1-9][0-9]{0,8}(B|KiB|MiB)$",
        "^(((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
        "|[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7})$",
        std::string("^(") + kLabel + "(\\." + kLabel + ")*|\\[[0-9A-Fa-f:.]+\\])"
            ":(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})$",
        std::string("^(\\*\\.)?") + kLabel + "(\\." + kLabel + ")*$",
        "^[A-Z][A-Z-]{0,31}$",
        "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$",
        "^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$",
        "^(?!0+(ms|s|m|h)$)[0-9]{1,9}(ms|s|m|h)$",
        "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$",
        "^/[^\\x00-\\x1f]{0,4095}$",
    };
    return t;
}

}  // namespace

const char* pattern_text(Pattern p) { return texts()[static_cast<std::size_t>(p)].c_str(); }

bool matches(Pattern p, std::string_view s) {
    static const auto compiled = [] {
        std::array<std::regex, kCount> r;
        for (std::size_t i = 0; i < r.size(); ++i)
            r[i] = std::regex(texts()[i], std::regex::ECMAScript | std::regex::optimize);
        return r;
    }();
    return std::regex_match(s.begin(), s.end(), compiled[static_cast<std::size_t>(p)]);
}

}  // namespace sluice::config
