// The C++ parser and schemas/config.schema.json share their regular
// expressions; this keeps them from drifting apart.
#include "config/patterns.h"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <regex>
#include <string>
#include <vector>

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

// The product matches formats with small loops (std::regex recursed per
// character and overflowed the stack on long values); here, on short strings
// only, std::regex checks that each loop accepts exactly what the schema's
// regular expression accepts.
TEST(SchemaPatterns, MatchersAgreeWithTheSchemasRegularExpressions) {
    using sluice::config::matches;
    using sluice::config::pattern_text;
    struct Case {
        Pattern p;
        std::string alphabet;  // what random strings are made of
        std::vector<std::string> examples;
    };
    const std::vector<Case> cases = {
        {Pattern::name, "aZ09_.-/ ", {"a", "-a", "a-", std::string(63, 'a'), std::string(64, 'a'), "a.b_c-d", ""}},
        {Pattern::duration, "0159msh ", {"0s", "10ms", "1234567890s", "123456789h", "5", "s", "5 s", "05m"}},
        {Pattern::positive_duration, "0159msh", {"0s", "00ms", "01s", "10ms", "0", "000000000h", "100000000h"}},
        {Pattern::size, "0159BKiM", {"1B", "0B", "64KiB", "1MiB", "999999999B", "1234567890B", "1GiB", "01B"}},
        {Pattern::ip_address, "0129a:.f", {"::", "0.0.0.0", "255.255.255.255", "256.0.0.0", "01.2.3.4", "1.2.3",
                                           "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "::ffff:1.2.3.4", "12345::", ":"}},
        {Pattern::endpoint, "ab0-.:[]9", {"a:1", "[::1]:80", "[]:80", "a:0", "a:65535", "a:65536", "-a:1", "a.b.c:08",
                                          "a..b:1", "[1]:2]:3", "a:b:1", "[:]:1"}},
        {Pattern::host, "ab0-.*", {"*.a", "*.*.a", "a.*", "a-b.c", "a..b", "-a", "a-", "*", "*.", ".a"}},
        {Pattern::method, "AZ-a", {"GET", "M-SEARCH", "-GET", "get", std::string(32, 'A'), std::string(33, 'A')}},
        {Pattern::header_name, "aZ0-_!:~ ", {"x-user", "a b", "", std::string(128, 'a'), std::string(129, 'a')}},
        {Pattern::cookie_name, "aZ0-_!;=", {"session", "a;b", "a=b"}},
        {Pattern::path, "/a%. ?#~@", {"/", "", "a", "/a b", "/a?b", "/%2e%2e/", "//", "/a#b"}},
        {Pattern::file_path, "/a\t\n .", {"/", "a", "/a\nb", "/a b", "/tmp/x"}},
    };
    std::mt19937 rng(42);
    for (const auto& c : cases) {
        const std::regex re(pattern_text(c.p), std::regex::ECMAScript);
        auto agree = [&](const std::string& s) {
            EXPECT_EQ(matches(c.p, s), std::regex_match(s, re)) << pattern_text(c.p) << " on \"" << s << "\"";
        };
        for (const auto& s : c.examples) agree(s);
        std::uniform_int_distribution<std::size_t> len(0, 14), pick(0, c.alphabet.size() - 1);
        for (int i = 0; i < 20000; ++i) {
            std::string s(len(rng), ' ');
            for (auto& ch : s) ch = c.alphabet[pick(rng)];
            agree(s);
        }
    }
}

TEST(SchemaPatterns, LongValuesAreMatchedWithoutRecursion) {
    using sluice::config::matches;
    // 50,000 bytes crashed std::regex with a stack overflow.
    EXPECT_TRUE(matches(Pattern::path, "/" + std::string(50000, 'a')));
    EXPECT_FALSE(matches(Pattern::host, std::string(1000000, 'a').replace(50, 1, ".")));
    std::string many_labels;
    for (int i = 0; i < 100000; ++i) many_labels += "a.";
    many_labels += "a";
    EXPECT_TRUE(matches(Pattern::host, many_labels));
    EXPECT_FALSE(matches(Pattern::file_path, "/" + std::string(5000, 'a')));
}
