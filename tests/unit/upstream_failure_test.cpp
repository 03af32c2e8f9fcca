// Every upstream cause maps to one status kind, one message and one retry
// class: the attempt loop trusts these, so a wrong class would either repeat a
// POST on another origin or give up on a request that was never sent.
#include "config/load.h"
#include "proxy/http/upstream_failure.h"
#include "proxy/snapshot/endpoint_state.h"
#include "proxy/snapshot/snapshot.h"

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <gtest/gtest.h>

namespace sluice::proxy {
namespace {

namespace asio = boost::asio;
using Retry = UpstreamFailure::Retry;

class UpstreamFailureTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto r = config::load_text(R"(
clusters: [{name: chat, endpoints: ["127.0.0.1:3000"]}]
routes: [{name: live, match: {path_prefix: /}, cluster: chat, timeouts: {connect: 2s, upstream_response: 7s}}]
)",
                                   config::Format::yaml);
        ASSERT_TRUE(r.config);
        snap_ = build_snapshot(*r.config, 1, registry_);
    }
    AttemptPlace at() const { return {*snap_, 0, 0, 0}; }

    EndpointRegistry registry_;
    std::shared_ptr<const Snapshot> snap_;
};

TEST_F(UpstreamFailureTest, ConnectFailuresAreUnsentAndBlameTheEndpoint) {
    auto refused = connect_failure(at(), Deadline::none, asio::error::connection_refused, false, "");
    EXPECT_EQ(refused.kind, ErrorKind::upstream_connect_failed);
    EXPECT_EQ(refused.retry, Retry::unsent);
    EXPECT_TRUE(refused.endpoint_at_fault);
    EXPECT_EQ(refused.message, "upstream connect failed: cluster \"chat\" endpoint 127.0.0.1:3000: connection refused");

    auto slow = connect_failure(at(), Deadline::connect, asio::error::operation_aborted, false, "");
    EXPECT_EQ(slow.kind, ErrorKind::upstream_connect_timeout);
    EXPECT_EQ(slow.retry, Retry::unsent);
    EXPECT_EQ(slow.message,
              "upstream connect timed out after 2s: cluster \"chat\" endpoint 127.0.0.1:3000 (timeouts.connect)");

    auto dns = connect_failure(at(), Deadline::none, asio::error::host_not_found, true, "");
    EXPECT_EQ(dns.message.rfind("upstream connect failed: cluster \"chat\" endpoint 127.0.0.1:3000: cannot resolve "
                                "\"127.0.0.1\": host not found",
                                0),
              0u)
        << dns.message;
}

TEST_F(UpstreamFailureTest, TheWholeExchangeDeadlineIsNeverRetriedNorBlamed) {
    auto f = connect_failure(at(), Deadline::max_duration, asio::error::operation_aborted, false, "");
    EXPECT_EQ(f.kind, ErrorKind::max_duration);
    EXPECT_EQ(f.retry, Retry::no);
    EXPECT_FALSE(f.endpoint_at_fault);
    auto g = io_failure(at(), Deadline::max_duration, false, asio::error::operation_aborted, "x", Retry::unsent);
    EXPECT_EQ(g.retry, Retry::no);
}

TEST_F(UpstreamFailureTest, ACloseBeforeTheAnswerKeepsTheRetryClassItWasGiven) {
    for (auto ec : {boost::system::error_code(asio::error::eof), boost::system::error_code(asio::error::connection_reset),
                    boost::system::error_code(asio::ssl::error::stream_truncated)}) {
        auto f = io_failure(at(), Deadline::none, false, ec, "before sending response headers", Retry::if_idempotent);
        EXPECT_EQ(f.kind, ErrorKind::upstream_reset) << ec.message();
        EXPECT_EQ(f.retry, Retry::if_idempotent) << ec.message();
    }
    auto closed = io_failure(at(), Deadline::none, false, asio::error::eof, "before sending response headers",
                             Retry::if_idempotent);
    EXPECT_EQ(closed.message,
              "upstream closed the connection before sending response headers: cluster \"chat\" endpoint 127.0.0.1:3000");
}

TEST_F(UpstreamFailureTest, AnErrorThatIsNotACloseDoesNotRepeatARequestTheUpstreamMayHaveRead) {
    auto f = io_failure(at(), Deadline::none, false, asio::error::no_buffer_space, "before sending response headers",
                        Retry::if_idempotent);
    EXPECT_EQ(f.retry, Retry::no);
    // A head that never went out may go again whatever the error.
    auto g = io_failure(at(), Deadline::none, false, asio::error::no_buffer_space, "while sending the request",
                        Retry::unsent);
    EXPECT_EQ(g.retry, Retry::unsent);
}

TEST_F(UpstreamFailureTest, DeadlinesSayWhichTimeoutAndWhichSideStalled) {
    auto head = io_failure(at(), Deadline::upstream_response, false, asio::error::operation_aborted, "x",
                           Retry::if_idempotent);
    EXPECT_EQ(head.kind, ErrorKind::upstream_timeout);
    EXPECT_EQ(head.retry, Retry::no);
    EXPECT_EQ(head.message, "upstream sent no response headers within 7s (route \"live\")");

    auto client = io_failure(at(), Deadline::stream_idle, true, asio::error::operation_aborted, "x", Retry::no);
    EXPECT_EQ(client.kind, ErrorKind::request_timeout);
    auto upstream = io_failure(at(), Deadline::stream_idle, false, asio::error::operation_aborted, "x", Retry::no);
    EXPECT_EQ(upstream.kind, ErrorKind::upstream_timeout);
}

TEST_F(UpstreamFailureTest, BadAnswersAndEmptyClustersAreFinal) {
    auto bad = bad_response(at(), "upstream response headers are larger than 64KiB");
    EXPECT_EQ(bad.kind, ErrorKind::upstream_bad_response);
    EXPECT_EQ(bad.retry, Retry::no);
    EXPECT_EQ(bad.message, "upstream response headers are larger than 64KiB: cluster \"chat\" endpoint 127.0.0.1:3000");
    auto none = no_healthy_endpoint(at(), 0);
    EXPECT_EQ(none.kind, ErrorKind::no_healthy_endpoint);
    EXPECT_EQ(none.message, "no healthy endpoint in cluster \"chat\" (0 of 1 healthy)");
}

}  // namespace
}  // namespace sluice::proxy
