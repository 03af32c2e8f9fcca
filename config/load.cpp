#include "config/load.h"

#include "config/bounded_json.h"
#include "config/parse.h"
#include "config/validate.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace sluice::config {

using json = nlohmann::json;

namespace {

// A config file larger than this is refused before it is read (the admin
// API takes bodies of at most 8 MiB; a file may hold far more routes).
constexpr std::uintmax_t kMaxFileBytes = 64 * 1024 * 1024;

}  // namespace

LoadResult load_document(const json& doc) {
    LoadResult out;
    Config cfg = parse_document(doc, out.errors);
    if (out.errors.empty()) validate_config(cfg, out.errors);
    if (out.errors.empty()) out.config = std::move(cfg);
    return out;
}

LoadResult load_text(std::string_view text, Format format) {
    LoadResult out;
    if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
        out.errors.push_back({"", "the config is empty; see docs/config.md for the fields"});
        return out;
    }
    std::optional<json> doc;
    ConfigError problem;
    if (format == Format::json) {
        doc = parse_json_bounded(text, problem);
    } else {
        try {
            doc = parse_yaml_bounded(text, problem);
        } catch (const YAML::Exception& e) {
            out.errors.push_back({"", "not valid YAML at line " + std::to_string(e.mark.line + 1) + ", column " +
                                          std::to_string(e.mark.column + 1) + ": " + e.msg});
            return out;
        }
    }
    if (!doc) {
        out.errors.push_back(std::move(problem));
        return out;
    }
    return load_document(*doc);
}

LoadResult load_file(const std::string& path) {
    LoadResult out;
    auto dot = path.rfind('.');
    std::string ext = dot == std::string::npos ? "" : path.substr(dot);
    Format format;
    if (ext == ".json") format = Format::json;
    else if (ext == ".yaml" || ext == ".yml") format = Format::yaml;
    else {
        out.errors.push_back({"", "cannot tell the format from the file name: use a .json, .yaml or .yml extension"});
        return out;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        out.errors.push_back({"", std::string("cannot read the file: ") + std::strerror(errno)});
        return out;
    }
    std::error_code size_error;
    if (auto bytes = std::filesystem::file_size(path, size_error); !size_error && bytes > kMaxFileBytes) {
        out.errors.push_back({"", "the file is " + std::to_string(bytes / (1024 * 1024)) +
                                      " MiB; config files are at most 64 MiB"});
        return out;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return load_text(ss.str(), format);
}

Config default_config() {
    Config cfg;
    cfg.listeners.push_back({"default", "127.0.0.1", 8080});
    return cfg;
}

}  // namespace sluice::config
