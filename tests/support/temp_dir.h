// A fresh directory under the system temp dir for one test, removed with
// everything in it when the test is done.
#pragma once
#include <string>

namespace sluice::test {

class TempDir {
public:
    explicit TempDir(const std::string& prefix = "sluice-test-");
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    // Writes `content` to `name` in the directory and returns its path.
    std::string file(const std::string& name, const std::string& content) const;
    std::string operator/(const std::string& name) const { return path + "/" + name; }

    const std::string path;
};

// Writes `content` to `dir`/`name` and returns the path.
std::string write_file(const std::string& dir, const std::string& name, const std::string& content);

}  // namespace sluice::test
