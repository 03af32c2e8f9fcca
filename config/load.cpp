#include "config/load.h"

#include "config/parse.h"
#include "config/validate.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

namespace sluice::config {
namespace {

using json = nlohmann::json;

json scalar_to_json(const YAML::Node& n) {
    const std::string& s = n.Scalar();
    if (n.Tag() == "!") return s;  // quoted: always a string
    if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
    std::size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
    bool digits = i < s.size();
    for (std::size_t k = i; k < s.size(); ++k) digits = digits && s[k] >= '0' && s[k] <= '9';
    if (digits) {
        std::int64_t v = 0;
        const char* begin = s.data() + (s[0] == '+' ? 1 : 0);
        auto [ptr, ec] = std::from_chars(begin, s.data() + s.size(), v);
        if (ec == std::errc{} && ptr == s.data() + s.size()) return v;
    }
    // Decimal fractions and exponents, as YAML 1.2's core schema reads them.
    bool number_like = i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.');
    for (std::size_t k = i; number_like && k < s.size(); ++k)
        number_like = std::isdigit(static_cast<unsigned char>(s[k])) || s[k] == '.' || s[k] == 'e' || s[k] == 'E' ||
                      s[k] == '-' || s[k] == '+';
    if (number_like) {
        char* end = nullptr;
        double d = std::strtod(s.c_str(), &end);
        if (end == s.c_str() + s.size()) return d;
    }
    return s;
}

json node_to_json(const YAML::Node& n) {
    switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Scalar: return scalar_to_json(n);
    case YAML::NodeType::Sequence: {
        json a = json::array();
        for (const auto& item : n) a.push_back(node_to_json(item));
        return a;
    }
    case YAML::NodeType::Map: {
        json o = json::object();
        for (const auto& kv : n) o[kv.first.Scalar()] = node_to_json(kv.second);
        return o;
    }
    }
    return nullptr;
}

}  // namespace

json yaml_to_json(std::string_view text) { return node_to_json(YAML::Load(std::string(text))); }

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
    json doc;
    if (format == Format::json) {
        try {
            doc = json::parse(text);
        } catch (const json::parse_error& e) {
            std::string what = e.what();
            auto pos = what.find("] ");
            out.errors.push_back({"", "not valid JSON: " + (pos == std::string::npos ? what : what.substr(pos + 2))});
            return out;
        }
    } else {
        try {
            doc = yaml_to_json(text);
        } catch (const YAML::Exception& e) {
            out.errors.push_back({"", "not valid YAML at line " + std::to_string(e.mark.line + 1) + ", column " +
                                          std::to_string(e.mark.column + 1) + ": " + e.msg});
            return out;
        }
    }
    return load_document(doc);
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
