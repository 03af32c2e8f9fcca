// TLS to upstreams: clusters whose endpoints speak TLS, verified against a CA
// (or not at all), with SNI, a client certificate for mTLS, health checks over
// the same TLS, streams and WebSocket tunnels through it, and errors that say
// why a handshake failed. The upstream is a real TLS server (TlsOrigin) in
// front of a real origin, with certificates made at test time.
#include "tests/support/certs.h"
#include "tests/support/client.h"
#include "tests/support/origin.h"
#include "tests/support/prometheus_text.h"
#include "tests/support/proxy_fixture.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tls_client.h"
#include "tests/support/tls_origin.h"
#include "tests/support/websocket.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>

using namespace sluice::test;
using json = nlohmann::json;

namespace {

class TlsUpstream : public ::testing::Test {
protected:
    void SetUp() override {
        write_file(dir, "ca.pem", ca.cert_pem());
        write_file(dir, "other-ca.pem", other_ca.cert_pem());
        const Pem client = client_ca.issue({"sluice-client"});
        write_file(dir, "client.crt", client.cert);
        write_file(dir, "client.key", client.key);
        origin = std::make_unique<TestOrigin>([this](OriginExchange& ex) {
            std::string t = ex.target();
            if (t == "/ws") return websocket_echo_handler()(ex);
            if (t == "/stream") {
                ex.begin_chunked(200, "application/x-ndjson");
                ex.chunk("{\"token\":\"one\"}\n");
                gate.wait(10000);
                ex.chunk("{\"token\":\"two\"}\n");
                return ex.end_chunked();
            }
            if (t == "/healthz") return ex.respond(200, "ok");
            ex.respond(200, "tls origin " + t + " host=" + ex.header("Host"));
        });
        // The upstream's certificate names ai.internal and 127.0.0.1.
        upstream = std::make_unique<TlsOrigin>(origin->port(), ca.issue({"ai.internal", "127.0.0.1"}));
    }
    void TearDown() override {
        gate.open();
        proxy.reset();
        upstream.reset();
        origin.reset();
    }

    // A proxy with one route to cluster "ai" on `endpoint`, whose `tls` is the given YAML flow mapping.
    void start(const std::string& tls, const std::string& endpoint = "", const std::string& extra = "") {
        proxy = std::make_unique<RunningProxy>(fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters:
  - name: ai
    endpoints: ["{e}"]
    tls: {tls}
{extra}
routes: [{name: all, match: {path_prefix: /}, cluster: ai}]
)",
                                                    {{"e", endpoint.empty() ? upstream->address() : endpoint},
                                                     {"tls", fill(tls, {{"dir", dir}})},
                                                     {"extra", extra}}));
    }
    Response admin(const std::string& method, const std::string& path, const std::string& body = "") {
        return http_request(proxy->admin_port(), method, path, body);
    }

    TestCa ca{"upstream CA"}, other_ca{"some other CA"}, client_ca{"client CA"};
    TempDir tmp{"sluice-tls-up-"};
    const std::string dir = tmp.path;
    Gate gate;
    std::unique_ptr<TestOrigin> origin;
    std::unique_ptr<TlsOrigin> upstream;
    std::unique_ptr<RunningProxy> proxy;
};

}  // namespace

TEST_F(TlsUpstream, VerifiedWithItsCaAndSniAndReusedAcrossRequests) {
    start("{sni: ai.internal, ca: \"{dir}/ca.pem\"}");
    RawClient c(proxy->port());
    for (int i = 0; i < 3; ++i) {
        auto r = c.get("/v1/models");
        EXPECT_EQ(r.status, 200u) << r.body;
        EXPECT_EQ(r.body, "tls origin /v1/models host=test.local");  // Host passes through
    }
    auto hs = upstream->handshakes();
    ASSERT_EQ(hs.size(), 1u);  // one TLS connection, kept alive in the pool
    EXPECT_EQ(hs[0].server_name, "ai.internal");
    EXPECT_EQ(hs[0].client_name, "");
}

TEST_F(TlsUpstream, AnIpEndpointIsVerifiedByItsAddressAndSendsNoSni) {
    start("{ca: \"{dir}/ca.pem\"}");
    EXPECT_EQ(http_get(proxy->port(), "/x").status, 200u);
    auto hs = upstream->handshakes();
    ASSERT_EQ(hs.size(), 1u);
    EXPECT_EQ(hs[0].server_name, "");  // RFC 6066: SNI never carries an address
}

TEST_F(TlsUpstream, AWrongCaIsA502SayingTheCertificateCouldNotBeVerified) {
    start("{sni: ai.internal, ca: \"{dir}/other-ca.pem\"}");
    auto r = http_get(proxy->port(), "/x");
    EXPECT_EQ(r.status, 502u);
    EXPECT_EQ(r.header("x-sluice-error"), "upstream_tls_failed");
    EXPECT_NE(r.body.find("upstream TLS handshake failed: cluster \"ai\" endpoint " + upstream->address() +
                          ": the certificate could not be verified"),
              std::string::npos)
        << r.body;
    EXPECT_NE(r.body.find("set the cluster's tls.ca (now " + dir + "/other-ca.pem) to the CA that signed it"),
              std::string::npos)
        << r.body;
    EXPECT_EQ(origin->requests(), 0);
    ASSERT_TRUE(eventually([&] {
        auto m = parse_exposition(admin("GET", "/metrics").body);
        return m.value("sluice_proxy_errors_total", {{"error", "upstream_tls_failed"}, {"route", "all"}}) == 1;
    }));
    auto m = parse_exposition(admin("GET", "/metrics").body);
    EXPECT_EQ(m.value("sluice_upstream_connect_failures_total", {{"cluster", "ai"}}), 1);
}

TEST_F(TlsUpstream, ANameTheCertificateDoesNotHoldIsRefused) {
    start("{sni: other.internal, ca: \"{dir}/ca.pem\"}");
    auto r = http_get(proxy->port(), "/x");
    EXPECT_EQ(r.status, 502u);
    EXPECT_NE(r.body.find("the certificate could not be verified: it is not valid for \"other.internal\"; set the "
                          "cluster's tls.sni to a name the certificate holds"),
              std::string::npos)
        << r.body;
}

TEST_F(TlsUpstream, VerifyFalseAcceptsAnyCertificate) {
    start("{verify: false}");
    auto r = http_get(proxy->port(), "/x");
    EXPECT_EQ(r.status, 200u) << r.body;
}

TEST_F(TlsUpstream, TheSystemStoreDoesNotTrustAPrivateCa) {
    start("{sni: ai.internal}");
    auto r = http_get(proxy->port(), "/x");
    EXPECT_EQ(r.status, 502u);
    EXPECT_NE(r.body.find("the system CA store does not trust it"), std::string::npos) << r.body;
}

TEST_F(TlsUpstream, APlaintextEndpointIsNamedAsNotSpeakingTls) {
    start("{verify: false}", origin->address());
    auto r = http_get(proxy->port(), "/x");
    EXPECT_EQ(r.status, 502u);
    EXPECT_EQ(r.header("x-sluice-error"), "upstream_tls_failed");
    EXPECT_NE(r.body.find("upstream TLS handshake failed: cluster \"ai\" endpoint " + origin->address() +
                          ": the endpoint closed the connection during the TLS handshake; check that it speaks TLS "
                          "on this port"),
              std::string::npos)
        << r.body;
}

TEST_F(TlsUpstream, MutualTlsPresentsTheClientCertificate) {
    upstream = std::make_unique<TlsOrigin>(origin->port(), ca.issue({"ai.internal"}), client_ca.cert_pem());
    start("{sni: ai.internal, ca: \"{dir}/ca.pem\", cert: \"{dir}/client.crt\", key: \"{dir}/client.key\"}");
    auto r = http_get(proxy->port(), "/x");
    EXPECT_EQ(r.status, 200u) << r.body;
    auto hs = upstream->handshakes();
    ASSERT_EQ(hs.size(), 1u);
    EXPECT_EQ(hs[0].client_name, "sluice-client");
}

TEST_F(TlsUpstream, WithoutAClientCertificateAnMtlsUpstreamIsA502ThatSaysSo) {
    upstream = std::make_unique<TlsOrigin>(origin->port(), ca.issue({"ai.internal"}), client_ca.cert_pem());
    start("{sni: ai.internal, ca: \"{dir}/ca.pem\"}");
    auto r = http_get(proxy->port(), "/x");
    EXPECT_EQ(r.status, 502u);
    EXPECT_EQ(r.header("x-sluice-error"), "upstream_tls_failed");
    // TLS 1.3 refuses the missing certificate after the handshake, when the request is sent.
    EXPECT_NE(r.body.find("the upstream requires a client certificate (tlsv13 alert certificate required); set the "
                          "cluster's tls.cert and tls.key"),
              std::string::npos)
        << r.body;
    EXPECT_EQ(origin->requests(), 0);
}

TEST_F(TlsUpstream, AStreamArrivesChunkByChunkFromATlsUpstream) {
    start("{sni: ai.internal, ca: \"{dir}/ca.pem\"}");
    RawClient c(proxy->port());
    c.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(c.read_head().status, 200u);
    EXPECT_EQ(c.read_body_some(), "{\"token\":\"one\"}\n");  // before the origin writes the second chunk
    gate.open();
    std::string rest;
    while (!c.body_done()) rest += c.read_body_some();
    EXPECT_EQ(rest, "{\"token\":\"two\"}\n");
}

TEST_F(TlsUpstream, AWebSocketUpgradesToATlsUpstream) {
    start("{sni: ai.internal, ca: \"{dir}/ca.pem\"}");
    WsClient ws(proxy->port());
    for (std::size_t size : {1u, 126u, 65536u, 300000u}) {
        std::string text(size, 'y');
        ws.send(text);
        EXPECT_EQ(ws.receive(), text) << size;
    }
    EXPECT_EQ(json::parse(admin("GET", "/connections").body)["websockets"], 1);
    ws.close();
    ASSERT_TRUE(eventually([&] { return proxy->server->tunnel_stats()["all"].active == 0; }));
    auto stats = proxy->server->tunnel_stats()["all"];
    EXPECT_EQ(stats.opened, 1u);
    EXPECT_GT(stats.bytes_upstream, 300000u);
    EXPECT_GT(stats.bytes_downstream, 300000u);
    EXPECT_EQ(stats.closes[static_cast<std::size_t>(sluice::proxy::CloseReason::error)], 0u);
}

TEST_F(TlsUpstream, WssToATlsUpstreamIsTlsOnBothSides) {
    const Pem local = ca.issue({"localhost", "127.0.0.1"});
    write_file(dir, "local.crt", local.cert);
    write_file(dir, "local.key", local.key);
    proxy = std::make_unique<RunningProxy>(fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0, tls: {cert: "{dir}/local.crt", key: "{dir}/local.key"}}]
clusters: [{name: ai, endpoints: ["{e}"], tls: {sni: ai.internal, ca: "{dir}/ca.pem"}}]
routes: [{name: all, match: {path_prefix: /}, cluster: ai}]
)",
                                                {{"e", upstream->address()}, {"dir", dir}}));
    WssClient ws(proxy->port(), ca.cert_pem());
    for (int i = 0; i < 20; ++i) {
        ws.send("message " + std::to_string(i));
        EXPECT_EQ(ws.receive(), "message " + std::to_string(i));
    }
    ws.close();
    ASSERT_TRUE(eventually([&] { return proxy->server->tunnel_stats()["all"].active == 0; }));
    EXPECT_EQ(proxy->server->tunnel_stats()["all"].closes[static_cast<std::size_t>(sluice::proxy::CloseReason::error)],
              0u);
}

TEST_F(TlsUpstream, HealthChecksUseTheClusterTls) {
    start("{sni: ai.internal, ca: \"{dir}/ca.pem\"}", "",
          "    health_check: {path: /healthz, interval: 200ms, timeout: 200ms, healthy_threshold: 1, unhealthy_threshold: 1}");
    auto healthy = [&] { return json::parse(admin("GET", "/clusters").body)["clusters"][0]["endpoints"][0]["healthy"]; };
    ASSERT_TRUE(eventually([&] { return upstream->handshakes().size() >= 2; }));  // checks, over TLS
    EXPECT_TRUE(healthy());
    EXPECT_EQ(upstream->handshakes()[0].server_name, "ai.internal");

    // The same checks with a CA that does not sign the upstream fail, and take it out of rotation.
    auto cfg = json::parse(admin("GET", "/config").body)["config"];
    cfg["clusters"][0]["tls"]["ca"] = dir + "/other-ca.pem";
    ASSERT_EQ(admin("PUT", "/config", cfg.dump()).status, 200u);
    ASSERT_TRUE(eventually([&] { return !healthy(); }));
    auto r = http_get(proxy->port(), "/x");
    EXPECT_EQ(r.status, 503u);
    EXPECT_EQ(r.header("x-sluice-error"), "no_healthy_endpoint");
}

TEST_F(TlsUpstream, AChangedCaTakesEffectForNewConnections) {
    start("{sni: ai.internal, ca: \"{dir}/other-ca.pem\"}");
    EXPECT_EQ(http_get(proxy->port(), "/x").status, 502u);
    auto cfg = json::parse(admin("GET", "/config").body)["config"];
    cfg["clusters"][0]["tls"]["ca"] = dir + "/ca.pem";
    auto put = admin("PUT", "/config", cfg.dump());
    ASSERT_EQ(put.status, 200u) << put.body;
    EXPECT_EQ(http_get(proxy->port(), "/x").status, 200u);

    // A renewal that rewrites the CA file under the same path is a change too.
    write_file(dir, "ca.pem", other_ca.cert_pem());
    put = admin("PUT", "/config", cfg.dump());
    ASSERT_EQ(put.status, 200u) << put.body;
    EXPECT_EQ(json::parse(put.body)["version"], 3) << put.body;
    EXPECT_EQ(http_get(proxy->port(), "/fresh", "Connection: close\r\n").status, 502u);
}

TEST_F(TlsUpstream, BadTlsFilesAreRefusedNamingTheFileAndChangeNothing) {
    start("{sni: ai.internal, ca: \"{dir}/ca.pem\"}");
    auto cfg = json::parse(admin("GET", "/config").body)["config"];
    auto bad = cfg;
    bad["clusters"][0]["tls"]["ca"] = dir + "/missing.pem";
    auto r = admin("PUT", "/config", bad.dump());
    EXPECT_EQ(r.status, 400u);
    auto details = json::parse(r.body)["details"];
    EXPECT_EQ(details[0]["path"], "/clusters/0/tls/ca");
    EXPECT_NE(details[0]["message"].get<std::string>().find("cannot read the CA file " + dir + "/missing.pem"),
              std::string::npos)
        << r.body;

    write_file(dir, "other.key", other_ca.issue({"x"}).key);
    bad = cfg;
    bad["clusters"][0]["tls"]["cert"] = dir + "/client.crt";
    bad["clusters"][0]["tls"]["key"] = dir + "/other.key";
    r = admin("PUT", "/config", bad.dump());
    EXPECT_EQ(r.status, 400u);
    EXPECT_EQ(json::parse(r.body)["details"][0]["path"], "/clusters/0/tls/key");
    EXPECT_NE(r.body.find("does not match the certificate"), std::string::npos) << r.body;

    write_file(dir, "garbage.pem", "not a certificate\n");
    bad = cfg;
    bad["clusters"][0]["tls"]["ca"] = dir + "/garbage.pem";
    r = admin("POST", "/config/validate", bad.dump());  // a dry run loads the files too
    EXPECT_EQ(r.status, 400u);
    EXPECT_NE(r.body.find("holds no usable PEM certificate"), std::string::npos) << r.body;

    EXPECT_EQ(json::parse(admin("GET", "/config").body)["version"], 1);
    EXPECT_EQ(http_get(proxy->port(), "/x").status, 200u);
}
