#include "config/json_pointer.h"

namespace sluice::config {

std::string pointer_join(std::string_view base, std::string_view token) {
    std::string out(base);
    out.push_back('/');
    for (char c : token) {
        if (c == '~') out += "~0";
        else if (c == '/') out += "~1";
        else out.push_back(c);
    }
    return out;
}

std::string pointer_join(std::string_view base, std::size_t index) {
    return pointer_join(base, std::to_string(index));
}

}  // namespace sluice::config
