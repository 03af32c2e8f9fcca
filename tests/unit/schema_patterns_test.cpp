// The C++ parser and schemas/config.schema.json share their regular
// expressions; this keeps them from drifting apart.
#include "config/patterns.h"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <fstream>

using sluice::config::Pattern;

TEST(SchemaPatterns, SchemaUsesTheParsersRegularExpressions) {
    std::ifstream in(SLUICE_SOURCE_DIR "/schemas/config.schema.json");
    ASSERT_TRUE(in);
    auto schema = nlohmann::json::parse(in);
    const std::pair<const char*, Pattern> names[] = {
        {"name", Pattern::name},     {"duration", Pattern::duration}, {"size", Pattern::size},
        {"ip_address", Pattern::ip_address}, {"endpoint", Pattern::endpoint}, {"host", Pattern::host},
        {"method", Pattern::method}, {"header_name", Pattern::header_name}, {"path", Pattern::path},
        {"positive_duration", Pattern::positive_duration}, {"cookie_name", Pattern::cookie_name},
        {"file_path", Pattern::file_path},
    };
    for (const auto& [def, pattern] : names)
        EXPECT_EQ(schema["$defs"][def]["pattern"].get<std::string>(), sluice::config::pattern_text(pattern)) << def;
}

TEST(SchemaPatterns, SpotChecks) {
    using sluice::config::matches;
    EXPECT_TRUE(matches(Pattern::endpoint, "127.0.0.1:3000"));
    EXPECT_TRUE(matches(Pattern::endpoint, "app-1.default.svc:8080"));
    EXPECT_TRUE(matches(Pattern::endpoint, "[::1]:65535"));
    EXPECT_FALSE(matches(Pattern::endpoint, "127.0.0.1:65536"));
    EXPECT_FALSE(matches(Pattern::endpoint, "127.0.0.1:0"));
    EXPECT_FALSE(matches(Pattern::endpoint, "http://a:1"));
    EXPECT_TRUE(matches(Pattern::host, "*.example.com"));
    EXPECT_FALSE(matches(Pattern::host, "a.*.com"));
    EXPECT_TRUE(matches(Pattern::ip_address, "::"));
    EXPECT_TRUE(matches(Pattern::ip_address, "255.255.255.255"));
    EXPECT_FALSE(matches(Pattern::ip_address, "256.1.1.1"));
    EXPECT_FALSE(matches(Pattern::ip_address, "localhost"));
    EXPECT_TRUE(matches(Pattern::file_path, "/var/log/sluice/access.log"));
    EXPECT_FALSE(matches(Pattern::file_path, "access.log"));
    EXPECT_FALSE(matches(Pattern::file_path, "/tmp/a\nb"));
    EXPECT_TRUE(matches(Pattern::path, "/api/v1/%20x"));
    EXPECT_FALSE(matches(Pattern::path, "/a b"));
    EXPECT_FALSE(matches(Pattern::path, "/a?b"));
}
