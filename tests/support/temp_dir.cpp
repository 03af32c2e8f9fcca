#include "tests/support/temp_dir.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace sluice::test {
namespace {

std::string make_temp_dir(const std::string& prefix) {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "XXXXXX")).string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
    return tmpl;
}

}  // namespace

TempDir::TempDir(const std::string& prefix) : path(make_temp_dir(prefix)) {}

TempDir::~TempDir() {
    std::error_code ec;  // a test that failed half-way must not throw from here
    std::filesystem::remove_all(path, ec);
}

std::string TempDir::file(const std::string& name, const std::string& content) const {
    return write_file(path, name, content);
}

std::string write_file(const std::string& dir, const std::string& name, const std::string& content) {
    std::string path = dir + "/" + name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out) throw std::runtime_error("cannot write " + path);
    return path;
}

}  // namespace sluice::test
