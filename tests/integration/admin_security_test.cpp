// The admin API's trust model: loopback, an optional bearer token, and no
// browsers; hostile bodies and paths get a 400 with a pointer, never a crash
// or a closed connection, and change nothing.
#include "tests/support/certs.h"
#include "tests/support/client.h"
#include "tests/support/origin.h"
#include "tests/support/proxy_fixture.h"
#include "tests/support/temp_dir.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>

using namespace sluice::test;
using json = nlohmann::json;

namespace {

const char* kConfig = R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: a, endpoints: ["{a}"]}]
routes: [{name: first, match: {path_prefix: /}, cluster: a}]
)";

class AdminSecurity : public ::testing::Test {
protected:
    void start(const std::string& extra = "") {
        origin = std::make_unique<TestOrigin>(echo_handler("a"));
        proxy = std::make_unique<RunningProxy>(fill(kConfig, {{"a", origin->address()}}) + extra);
    }
    Response raw(const std::string& request) {
        RawClient c(proxy->admin_port());
        c.send(request);
        return c.read_response();
    }
    Response call(const std::string& method, const std::string& path, const std::string& body = "",
                  const std::string& headers = "") {
        return http_request(proxy->admin_port(), method, path, body, headers);
    }
    std::uint64_t version(const std::string& auth = "") {
        return json::parse(call("GET", "/config", "", auth).body)["version"].get<std::uint64_t>();
    }

    std::unique_ptr<TestOrigin> origin;
    std::unique_ptr<RunningProxy> proxy;
};

const std::string kRoute = R"({"name": "x", "match": {"path": "/x"}, "cluster": "a"})";

std::string post(const std::string& headers, const std::string& body) {
    return "POST /routes HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + "Content-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
}

}  // namespace

// A page on any site can make a browser POST text/plain to 127.0.0.1 (a
// "simple" request: no preflight). It was applied with a 201.
TEST_F(AdminSecurity, ACrossSiteTextPlainPostIsRefusedAndChangesNothing) {
    start();
    auto r = raw(post("Origin: https://evil.example\r\nContent-Type: text/plain\r\n", kRoute));
    EXPECT_EQ(r.status, 403u);
    EXPECT_NE(r.body.find("Origin header"), std::string::npos) << r.body;
    EXPECT_EQ(version(), 1u);
    // Even with a JSON type: a browser always sends Origin with a cross-site write.
    EXPECT_EQ(raw(post("Origin: null\r\nContent-Type: application/json\r\n", kRoute)).status, 403u);
    EXPECT_EQ(version(), 1u);
}

TEST_F(AdminSecurity, AWriteWhoseBodyIsNotJsonTypedIs415) {
    start();
    auto plain = raw(post("Content-Type: text/plain\r\n", kRoute));
    EXPECT_EQ(plain.status, 415u);
    EXPECT_NE(plain.body.find("Content-Type: application/json"), std::string::npos) << plain.body;
    EXPECT_EQ(raw(post("Content-Type: application/x-www-form-urlencoded\r\n", kRoute)).status, 415u);  // curl -d
    EXPECT_EQ(raw(post("", kRoute)).status, 415u);
    EXPECT_EQ(version(), 1u);
    EXPECT_EQ(raw(post("Content-Type: Application/JSON; charset=utf-8\r\n", kRoute)).status, 201u);
    // Writes without a body need no type: DELETE, POST /drain.
    EXPECT_EQ(raw("DELETE /routes/x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").status, 200u);
}

TEST_F(AdminSecurity, ATokenFileGuardsEveryCallButHealthReadyAndMetrics) {
    const TempDir tmp("sluice-token-");
    const std::string& dir = tmp.path;
    std::string token = "0123456789abcdef0123456789abcdef";
    std::string path = write_file(dir, "token", token + "\n");
    start(fill("admin: {token_file: {p}}\n", {{"p", path}}));
    auto none = call("GET", "/config");
    EXPECT_EQ(none.status, 401u);
    EXPECT_EQ(none.header("WWW-Authenticate"), "Bearer realm=\"sluice admin\"");
    EXPECT_NE(none.body.find("Authorization: Bearer"), std::string::npos) << none.body;
    EXPECT_EQ(call("GET", "/config", "", "Authorization: Bearer wrong\r\n").status, 401u);
    EXPECT_EQ(call("POST", "/routes", kRoute).status, 401u);
    const std::string auth = "Authorization: Bearer " + token + "\r\n";
    EXPECT_EQ(version(auth), 1u);
    EXPECT_EQ(call("POST", "/routes", kRoute, auth).status, 201u);
    EXPECT_EQ(call("GET", "/healthz").status, 200u);
    EXPECT_EQ(call("GET", "/ready").status, 200u);
    EXPECT_EQ(call("GET", "/metrics").status, 200u);

    // Rotated the way a Secret volume does it: a new file renamed over the old.
    std::string next = "fedcba9876543210fedcba9876543210";
    write_file(dir, "token.new", next + "\n");
    std::filesystem::rename(dir + "/token.new", path);
    EXPECT_EQ(call("GET", "/config", "", auth).status, 401u);
    EXPECT_EQ(version("Authorization: Bearer " + next + "\r\n"), 2u);
    // A file that cannot be read refuses everything (it fails closed).
    std::filesystem::remove(path);
    auto gone = call("GET", "/config", "", "Authorization: Bearer " + next + "\r\n");
    EXPECT_EQ(gone.status, 401u);
    EXPECT_NE(gone.body.find("cannot be read"), std::string::npos) << gone.body;
    std::filesystem::remove_all(dir);
}

TEST(AdminSecurityStart, AnUnreadableTokenFileStopsTheStart) {
    TestOrigin o(echo_handler("a"));
    try {
        RunningProxy p(fill(kConfig, {{"a", o.address()}}) + "admin: {token_file: /nonexistent/token}\n");
        ADD_FAILURE() << "sluice started without its token file";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("admin.token_file /nonexistent/token cannot be read"), std::string::npos)
            << e.what();
    }
}

// A few hundred KB of '[' overflowed the stack in a recursive copy (SIGSEGV).
TEST_F(AdminSecurity, DeepNestingIs400WithAPointer) {
    start();
    auto r = call("POST", "/routes", R"({"name": "x", "match": )" + std::string(300000, '['));
    EXPECT_EQ(r.status, 400u);
    auto doc = json::parse(r.body);
    EXPECT_EQ(doc["details"][0]["path"].get<std::string>().rfind("/match/0/0/", 0), 0u) << r.body;
    EXPECT_NE(doc["error"].get<std::string>().find("nested deeper than 64"), std::string::npos) << r.body;
    EXPECT_EQ(version(), 1u);
}

// A 50,000-character path_prefix overflowed the stack inside std::regex.
TEST_F(AdminSecurity, LongStringsAre400WithAPointer) {
    start();
    auto r = call("PUT", "/routes/x", R"({"match": {"path_prefix": "/)" + std::string(50000, 'a') + R"("}, "cluster": "a"})");
    EXPECT_EQ(r.status, 400u);
    auto doc = json::parse(r.body);
    EXPECT_EQ(doc["details"][0]["path"], "/match/path_prefix") << r.body;
    EXPECT_EQ(version(), 1u);
}

// nlohmann::json refuses to write invalid UTF-8: the reply threw and the
// connection closed without an answer.
TEST_F(AdminSecurity, InvalidUtf8InPathsAndBodiesGetsA400) {
    start();
    auto path = call("GET", "/routes/%FF%FE");
    EXPECT_EQ(path.status, 400u);
    EXPECT_NE(path.body.find("UTF-8"), std::string::npos) << path.body;
    auto body = call("POST", "/routes", "{\"name\": \"\xff\xfe\"}");
    EXPECT_EQ(body.status, 400u);
    EXPECT_NO_THROW(json::parse(body.body)) << body.body;
    EXPECT_EQ(version(), 1u);
}

TEST_F(AdminSecurity, AMalformedRequestGetsA400) {
    start();
    auto r = raw("GET /config HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n");
    EXPECT_EQ(r.status, 400u);
    EXPECT_NE(r.body.find("malformed request"), std::string::npos) << r.body;
}
