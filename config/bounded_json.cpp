#include "config/bounded_json.h"

#include "config/json_pointer.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <vector>

namespace sluice::config {
namespace {

using json = nlohmann::json;

// Where the parser is, for pointers in errors: one frame per open array or object.
class PointerStack {
public:
    std::size_t depth() const { return frames_.size(); }
    void push(bool array) { frames_.push_back({array, 0, {}}); }
    void pop() { frames_.pop_back(); }
    // A value starts: in an array it is the next element.
    void value() {
        if (!frames_.empty() && frames_.back().array) ++frames_.back().count;
    }
    void key(const std::string& k) { frames_.back().key = k; }
    // The value being read; `parent` true: the array or object that holds it.
    std::string pointer(bool parent = false) const {
        std::string p;
        for (std::size_t i = 0; i + (parent ? 1 : 0) < frames_.size(); ++i) {
            const auto& f = frames_[i];
            p = f.array ? pointer_join(p, f.count - 1) : pointer_join(p, f.key);
        }
        return p;
    }

private:
    struct Frame {
        bool array;
        std::size_t count;
        std::string key;
    };
    std::vector<Frame> frames_;
};

std::string too_deep() {
    return "nested deeper than " + std::to_string(kMaxDocumentDepth) + " levels of arrays and objects";
}

std::string too_long(const char* what, std::size_t n) {
    return std::string(what) + " is " + std::to_string(n) + " bytes long; the limit is " +
           std::to_string(kMaxStringBytes) + " bytes";
}

// Builds the document with nlohmann's own DOM builder (iterative), checking
// each event first; returning false stops the parse at once.
class BoundedSax {
public:
    explicit BoundedSax(json& out) : dom_(out, false) {}

    bool null() { return scalar() && dom_.null(); }
    bool boolean(bool v) { return scalar() && dom_.boolean(v); }
    bool number_integer(json::number_integer_t v) { return scalar() && dom_.number_integer(v); }
    bool number_unsigned(json::number_unsigned_t v) { return scalar() && dom_.number_unsigned(v); }
    bool number_float(json::number_float_t v, const json::string_t& s) { return scalar() && dom_.number_float(v, s); }
    bool string(json::string_t& s) {
        where_.value();
        if (s.size() > kMaxStringBytes) return fail(where_.pointer(), too_long("this string", s.size()));
        return dom_.string(s);
    }
    bool binary(json::binary_t& b) { return scalar() && dom_.binary(b); }
    bool start_object(std::size_t n) { return open(false) && dom_.start_object(n); }
    bool key(json::string_t& k) {
        if (k.size() > kMaxStringBytes)
            return fail(where_.pointer(true), too_long("an object key here", k.size()));
        where_.key(k);
        return dom_.key(k);
    }
    bool end_object() {
        where_.pop();
        return dom_.end_object();
    }
    bool start_array(std::size_t n) { return open(true) && dom_.start_array(n); }
    bool end_array() {
        where_.pop();
        return dom_.end_array();
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
        std::string what = e.what();
        auto pos = what.find("] ");
        problem_ = {"", "not valid JSON: " + (pos == std::string::npos ? what : what.substr(pos + 2))};
        return false;
    }

    const std::optional<ConfigError>& problem() const { return problem_; }

private:
    bool scalar() {
        where_.value();
        return true;
    }
    bool open(bool array) {
        where_.value();
        if (where_.depth() >= kMaxDocumentDepth) return fail(where_.pointer(), too_deep());
        where_.push(array);
        return true;
    }
    bool fail(std::string pointer, std::string message) {
        problem_ = ConfigError{std::move(pointer), std::move(message)};
        return false;
    }

    nlohmann::detail::json_sax_dom_parser<json> dom_;
    PointerStack where_;
    std::optional<ConfigError> problem_;
};

json yaml_scalar(const YAML::Node& n) {
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

// YAML nodes to JSON. Recursion is bounded by kMaxDocumentDepth, and the
// value count by kMaxYamlValues: aliases let a small file name a huge tree.
class YamlConverter {
public:
    std::optional<ConfigError> problem;

    json convert(const YAML::Node& n, const std::string& pointer, std::size_t depth) {
        if (problem) return nullptr;
        if (++values_ > kMaxYamlValues) {
            fail(pointer, "the document expands to more than " + std::to_string(kMaxYamlValues) +
                              " values (YAML aliases repeat what they name); write it out with fewer repeats");
            return nullptr;
        }
        switch (n.Type()) {
        case YAML::NodeType::Null:
        case YAML::NodeType::Undefined: return nullptr;
        case YAML::NodeType::Scalar:
            if (n.Scalar().size() > kMaxStringBytes) fail(pointer, too_long("this string", n.Scalar().size()));
            if (!valid_utf8(n.Scalar())) fail(pointer, "this value is not valid UTF-8");
            return yaml_scalar(n);
        case YAML::NodeType::Sequence: {
            if (depth >= kMaxDocumentDepth) return fail(pointer, too_deep());
            json a = json::array();
            std::size_t i = 0;
            for (const auto& item : n) a.push_back(convert(item, pointer_join(pointer, i++), depth + 1));
            return a;
        }
        case YAML::NodeType::Map: {
            if (depth >= kMaxDocumentDepth) return fail(pointer, too_deep());
            json o = json::object();
            for (const auto& kv : n) {
                const std::string& key = kv.first.Scalar();
                if (key.size() > kMaxStringBytes) return fail(pointer, too_long("an object key here", key.size()));
                if (!valid_utf8(key)) return fail(pointer, "an object key here is not valid UTF-8");
                o[key] = convert(kv.second, pointer_join(pointer, key), depth + 1);
            }
            return o;
        }
        }
        return nullptr;
    }

private:
    json fail(const std::string& pointer, std::string message) {
        if (!problem) problem = ConfigError{pointer, std::move(message)};
        return nullptr;
    }
    std::size_t values_ = 0;
};

}  // namespace

bool valid_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
        if (n == 0 || i + n > s.size()) return false;
        for (std::size_t k = 1; k < n; ++k)
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
        i += n;
    }
    return true;
}

std::optional<json> parse_json_bounded(std::string_view text, ConfigError& error) {
    json out;
    BoundedSax sax(out);
    bool ok = json::sax_parse(text, &sax, json::input_format_t::json, true, false);
    if (ok && !sax.problem()) return out;
    error = sax.problem() ? *sax.problem() : ConfigError{"", "not valid JSON"};
    return std::nullopt;
}

std::optional<json> parse_yaml_bounded(std::string_view text, ConfigError& error) {
    YamlConverter c;
    json out = c.convert(YAML::Load(std::string(text)), "", 0);
    if (!c.problem) return out;
    error = *c.problem;
    return std::nullopt;
}

}  // namespace sluice::config
