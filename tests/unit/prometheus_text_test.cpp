// The exposition reader the metrics tests rely on must itself refuse bad input,
// or those tests could not fail.
#include "tests/support/prometheus_text.h"

#include <gtest/gtest.h>

using sluice::test::parse_exposition;

namespace {

const char* kGood = R"(# HELP sluice_requests_total Responses.
# TYPE sluice_requests_total counter
sluice_requests_total{listener="public",route="chat",code="200"} 3
sluice_requests_total{listener="public",route="",code="404"} 1
# TYPE sluice_config_version gauge
sluice_config_version 7
# TYPE lat histogram
lat_bucket{route="a",le="0.1"} 1
lat_bucket{route="a",le="1"} 2
lat_bucket{route="a",le="+Inf"} 3
lat_sum{route="a"} 4.5
lat_count{route="a"} 3
# TYPE esc gauge
esc{v="a\"b\\c\nd"} 1 1700000000000
)";

}  // namespace

TEST(PrometheusText, ReadsValuesAndLabels) {
    auto e = parse_exposition(kGood);
    EXPECT_EQ(e.types["lat"], "histogram");
    EXPECT_EQ(e.value("sluice_requests_total"), 4);
    EXPECT_EQ(e.value("sluice_requests_total", {{"route", "chat"}}), 3);
    EXPECT_EQ(e.value("sluice_requests_total", {{"code", "404"}, {"route", ""}}), 1);
    EXPECT_FALSE(e.value("sluice_requests_total", {{"route", "nope"}}).has_value());
    EXPECT_EQ(e.value("sluice_config_version"), 7);
    EXPECT_EQ(e.value("lat_bucket", {{"le", "1"}}), 2);
    EXPECT_EQ(e.value("esc", {{"v", "a\"b\\c\nd"}}), 1);
}

TEST(PrometheusText, RefusesWhatPrometheusWouldRefuse) {
    const char* bad[] = {
        "# TYPE a counter\na 1",                                   // no final newline
        "a 1\n",                                                   // no TYPE
        "# TYPE a counter\na{x=\"1\"} one\n",                      // not a number
        "# TYPE a counter\na{x=1} 1\n",                            // unquoted label
        "# TYPE a counter\na{x=\"\\t\"} 1\n",                      // bad escape
        "# TYPE a counter\na{1x=\"1\"} 1\n",                       // bad label name
        "# TYPE 1a counter\n",                                     // bad metric name
        "# TYPE a counter\na -1\n",                                // negative counter
        "# TYPE a counter\na{x=\"1\"} 1\na{x=\"1\"} 2\n",          // duplicate series
        "# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x=\"2\"} 1\n",  // family split in two
        "# TYPE a wat\n",                                          // unknown type
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",  // not cumulative
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\n",   // no +Inf
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 1\n",  // +Inf differs from count
        "# TYPE a gauge\na{x=\"1\" 1\n",                           // unterminated label set
    };
    for (const char* text : bad) EXPECT_THROW(parse_exposition(text), std::runtime_error) << text;
}
