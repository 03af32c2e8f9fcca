// A strict reader of the Prometheus text exposition format (version 0.0.4),
// written here so every build checks /metrics, with or without promtool: it
// throws on anything Prometheus would reject or misread (bad names, escapes or
// values, a sample before its TYPE, a family split in two, a duplicate series,
// histogram buckets that are not cumulative or lack +Inf).
#pragma once
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::test {

using PromLabels = std::map<std::string, std::string>;

struct PromSample {
    std::string name;
    PromLabels labels;
    double value = 0;
};

struct Exposition {
    std::vector<PromSample> samples;
    std::map<std::string, std::string> types;  // family name -> counter, gauge, histogram, ...
    std::map<std::string, std::string> help;

    // The sum of every series of `name` whose labels include `labels`; nullopt when none does.
    std::optional<double> value(const std::string& name, const PromLabels& labels = {}) const;
    // value(), or 0 when absent: counters not yet touched.
    double value_or_zero(const std::string& name, const PromLabels& labels = {}) const {
        return value(name, labels).value_or(0);
    }
};

// Throws std::runtime_error naming the line and the problem.
Exposition parse_exposition(std::string_view text);

}  // namespace sluice::test
