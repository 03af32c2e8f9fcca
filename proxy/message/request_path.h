// Request paths as sluice routes and forwards them: one normal form, computed
// once per request, so the router and the upstream read the same path.
//
// Pure functions of their input; no allocation when a path is already normal
// (the common case: one pass over the bytes).
#pragma once
#include "config/spec.h"

#include <string>
#include <string_view>

namespace sluice::proxy {

struct PathResult {
    enum class Outcome { unchanged, changed, refused };
    Outcome outcome = Outcome::unchanged;
    std::string problem;  // why, when refused: a sentence for the 400
};

// Normalizes an origin-form path (starts with '/', no query): %2E is read as
// '.', encoded slashes (%2F, %5C) are kept, refused or decoded to '/' as
// `rules` says, repeated slashes are merged when asked, and dot segments are resolved
// (RFC 3986 5.2.4). A path that would climb above "/" is refused. When the
// outcome is `changed`, `out` holds the normal form.
PathResult normalize_path(std::string_view path, const config::Paths& rules, std::string& out);

// Resolves dot segments of `path` in place (no decoding). False when it would
// climb above "/".
bool remove_dot_segments(std::string& path);

// After a prefix rewrite: true when `rewritten`, with its dot segments
// resolved in place, still lies under `prefix`. A remainder such as ".."
// after a prefix without a trailing slash ("/rw.." rewritten to "/base/..")
// must never reach outside the replacement.
bool rewrite_stays_within(std::string& rewritten, std::string_view prefix);

}  // namespace sluice::proxy
