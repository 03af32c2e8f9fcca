// What a fuzz target asserts: a failed check prints why and aborts, which
// libFuzzer reports as a crash with the input that caused it.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#define CHECK(cond) CHECK_MSG(cond, "")
#define CHECK_MSG(cond, msg)                                                                        \
    do {                                                                                            \
        if (!(cond)) {                                                                              \
            std::fprintf(stderr, "%s:%d: check failed: %s %s\n", __FILE__, __LINE__, #cond,         \
                         std::string(msg).c_str());                                                 \
            std::abort();                                                                           \
        }                                                                                           \
    } while (0)

// Whether `view` lies within `owner`'s bytes (an empty view anywhere is fine).
inline bool inside(std::string_view view, std::string_view owner) {
    return view.empty() || (view.data() >= owner.data() && view.data() + view.size() <= owner.data() + owner.size());
}
