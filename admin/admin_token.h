// The admin API's bearer token (admin.token_file): the file's first line,
// read again whenever the file changes (a Kubernetes Secret update swaps it
// under the same path), compared in constant time.
//
// Control thread only, like everything in the admin server.
#pragma once
#include <sys/stat.h>

#include <string>
#include <string_view>

namespace sluice::admin {

class AdminToken {
public:
    explicit AdminToken(std::string path) : path_(std::move(path)) {}

    // Reads the file now; false with `error` set when it cannot be used.
    bool load(std::string& error);
    // Whether `authorization` (the header's value, or empty) carries the
    // token. When not, `why` says what was wrong, without the token.
    bool allows(std::string_view authorization, std::string& why);
    const std::string& path() const { return path_; }
    // The token as last read (empty while the file cannot be used).
    const std::string& token() const { return token_; }

private:
    // Re-reads the file when its identity, size or change time moved.
    void refresh();

    std::string path_;
    std::string token_;
    std::string error_;  // why the file cannot be used now; requests are refused meanwhile
    struct stat seen_ {};
    bool have_seen_ = false;
};

}  // namespace sluice::admin
