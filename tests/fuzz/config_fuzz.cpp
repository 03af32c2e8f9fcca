// Fuzz target: a config document (JSON when it starts with '{', otherwise
// YAML) as `sluice validate`, --config and --watch read it. Never a crash or
// an exception; every error names a pointer and says something; and a config
// that loads serializes back to one that loads equal (GET /config's output
// can always be sent back).
#include "config/load.h"
#include "config/serialize.h"
#include "fuzz_check.h"

#include <string>

using namespace sluice::config;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    auto first = text.find_first_not_of(" \t\r\n");
    Format format = first != std::string::npos && text[first] == '{' ? Format::json : Format::yaml;
    LoadResult r = load_text(text, format);
    if (!r.config) {
        CHECK(!r.errors.empty());
        for (const auto& e : r.errors) {
            CHECK(!e.message.empty());
            CHECK(e.pointer.empty() || e.pointer[0] == '/');
        }
        return 0;
    }
    auto doc = to_json(*r.config);
    LoadResult back = load_document(doc);
    CHECK_MSG(back.config.has_value(), back.errors.empty() ? "" : back.errors[0].pointer + ": " + back.errors[0].message);
    CHECK(*back.config == *r.config);
    return 0;
}
