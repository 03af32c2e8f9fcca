#include "tests/support/prometheus_text.h"

#include <cmath>
#include <regex>
#include <set>
#include <stdexcept>

namespace sluice::test {
namespace {

const std::regex kMetricName("[a-zA-Z_:][a-zA-Z0-9_:]*");
const std::regex kLabelName("[a-zA-Z_][a-zA-Z0-9_]*");

[[noreturn]] void fail(std::size_t line, const std::string& what) {
    throw std::runtime_error("exposition line " + std::to_string(line) + ": " + what);
}

double parse_value(const std::string& s, std::size_t line) {
    if (s == "+Inf") return INFINITY;
    if (s == "-Inf") return -INFINITY;
    if (s == "NaN") return NAN;
    std::size_t used = 0;
    double v = 0;
    try {
        v = std::stod(s, &used);
    } catch (const std::exception&) {
        fail(line, "\"" + s + "\" is not a number");
    }
    if (used != s.size()) fail(line, "\"" + s + "\" is not a number");
    return v;
}

// The family a sample belongs to, given the declared types.
std::string family_of(const std::string& name, const std::map<std::string, std::string>& types) {
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        std::string_view n(name), sfx(suffix);
        if (n.size() > sfx.size() && n.substr(n.size() - sfx.size()) == sfx) {
            std::string base(n.substr(0, n.size() - sfx.size()));
            auto it = types.find(base);
            if (it != types.end() && (it->second == "histogram" || it->second == "summary")) return base;
        }
    }
    return name;
}

}  // namespace

std::optional<double> Exposition::value(const std::string& name, const PromLabels& labels) const {
    std::optional<double> total;
    for (const auto& s : samples) {
        if (s.name != name) continue;
        bool match = true;
        for (const auto& [k, v] : labels) {
            auto it = s.labels.find(k);
            match = match && it != s.labels.end() && it->second == v;
        }
        if (match) total = total.value_or(0) + s.value;
    }
    return total;
}

Exposition parse_exposition(std::string_view text) {
    Exposition out;
    std::set<std::string> finished;  // families whose samples ended
    std::string current;             // family of the previous sample
    std::set<std::pair<std::string, PromLabels>> seen;
    std::size_t lineno = 0;
    if (!text.empty() && text.back() != '\n') fail(0, "the exposition must end with a newline");
    while (!text.empty()) {
        auto nl = text.find('\n');
        std::string line(text.substr(0, nl));
        text.remove_prefix(nl + 1);
        ++lineno;
        if (line.empty()) continue;
        if (line[0] == '#') {
            std::smatch m;
            static const std::regex meta("# (HELP|TYPE) (\\S+) ?(.*)");
            if (!std::regex_match(line, m, meta)) continue;  // a plain comment
            std::string name = m[2];
            if (!std::regex_match(name, kMetricName)) fail(lineno, "bad metric name \"" + name + "\"");
            if (m[1] == "TYPE") {
                static const std::set<std::string> kinds = {"counter", "gauge", "histogram", "summary", "untyped"};
                if (!kinds.count(m[3])) fail(lineno, "unknown type \"" + std::string(m[3]) + "\"");
                if (out.types.count(name)) fail(lineno, "second TYPE for " + name);
                if (finished.count(name) || current == name) fail(lineno, "TYPE for " + name + " after its samples");
                out.types[name] = m[3];
            } else {
                if (out.help.count(name)) fail(lineno, "second HELP for " + name);
                out.help[name] = m[3];
            }
            continue;
        }
        // name{label="value",...} value [timestamp]
        PromSample s;
        std::size_t i = 0;
        while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
        s.name = line.substr(0, i);
        if (!std::regex_match(s.name, kMetricName)) fail(lineno, "bad metric name \"" + s.name + "\"");
        if (i < line.size() && line[i] == '{') {
            ++i;
            while (i < line.size() && line[i] != '}') {
                std::size_t eq = line.find('=', i);
                if (eq == std::string::npos) fail(lineno, "label without '='");
                std::string key = line.substr(i, eq - i);
                if (!std::regex_match(key, kLabelName)) fail(lineno, "bad label name \"" + key + "\"");
                i = eq + 1;
                if (i >= line.size() || line[i] != '"') fail(lineno, "label value of " + key + " is not quoted");
                ++i;
                std::string value;
                for (;;) {
                    if (i >= line.size()) fail(lineno, "unterminated label value");
                    char c = line[i++];
                    if (c == '"') break;
                    if (c == '\\') {
                        if (i >= line.size()) fail(lineno, "dangling escape");
                        char e = line[i++];
                        if (e == 'n') value += '\n';
                        else if (e == '\\' || e == '"') value += e;
                        else fail(lineno, std::string("bad escape \\") + e);
                    } else {
                        value += c;
                    }
                }
                if (s.labels.count(key)) fail(lineno, "label " + key + " twice");
                s.labels[key] = value;
                if (i < line.size() && line[i] == ',') ++i;
            }
            if (i >= line.size()) fail(lineno, "unterminated label set");
            ++i;  // '}'
        }
        if (i >= line.size() || line[i] != ' ') fail(lineno, "no value");
        std::string rest = line.substr(i + 1);
        auto sp = rest.find(' ');
        s.value = parse_value(rest.substr(0, sp), lineno);
        if (sp != std::string::npos) {
            std::string ts = rest.substr(sp + 1);
            if (ts.empty() || ts.find_first_not_of("-0123456789") != std::string::npos)
                fail(lineno, "bad timestamp \"" + ts + "\"");
        }

        std::string fam = family_of(s.name, out.types);
        if (!out.types.count(fam)) fail(lineno, s.name + " has no TYPE line before it");
        if (fam != current) {
            if (finished.count(fam)) fail(lineno, "the samples of " + fam + " are split in two");
            if (!current.empty()) finished.insert(current);
            current = fam;
        }
        const std::string& type = out.types[fam];
        if (type == "counter" && (s.value < 0 || std::isnan(s.value))) fail(lineno, "counter " + s.name + " is negative");
        if (type == "histogram" && s.name == fam) fail(lineno, "histogram sample " + s.name + " without a suffix");
        if (type == "histogram" && s.name == fam + "_bucket" && !s.labels.count("le"))
            fail(lineno, "bucket without le");
        if (!seen.insert({s.name, s.labels}).second) fail(lineno, "duplicate series " + s.name);
        out.samples.push_back(std::move(s));
    }

    // Histograms: per series, buckets ascend and accumulate, +Inf equals _count.
    for (const auto& [fam, type] : out.types) {
        if (type != "histogram") continue;
        std::map<PromLabels, std::vector<std::pair<double, double>>> buckets;
        std::map<PromLabels, double> counts;
        for (const auto& s : out.samples) {
            PromLabels key = s.labels;
            if (s.name == fam + "_bucket") {
                double le = parse_value(key["le"], 0);
                key.erase("le");
                buckets[key].push_back({le, s.value});
            } else if (s.name == fam + "_count") {
                counts[key] = s.value;
            }
        }
        for (const auto& [key, list] : buckets) {
            for (std::size_t i = 1; i < list.size(); ++i) {
                if (!(list[i].first > list[i - 1].first)) fail(0, fam + ": bucket bounds do not ascend");
                if (list[i].second < list[i - 1].second) fail(0, fam + ": bucket counts are not cumulative");
            }
            if (list.empty() || !std::isinf(list.back().first)) fail(0, fam + ": no +Inf bucket");
            auto c = counts.find(key);
            if (c == counts.end() || c->second != list.back().second) fail(0, fam + ": +Inf bucket differs from _count");
        }
    }
    return out;
}

}  // namespace sluice::test
