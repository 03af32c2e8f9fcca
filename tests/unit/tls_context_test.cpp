// Listener certificates: loading with errors that name the file and the
// reason, and SNI selection (exact, wildcard, default) checked with real
// handshakes over loopback.
#include "proxy/snapshot/tls_context.h"
#include "tests/support/certs.h"
#include "tests/support/temp_dir.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

using namespace sluice::test;
using sluice::proxy::ServerTls;
namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

class TlsContext : public ::testing::Test {
protected:

    sluice::config::TlsCertificate write(const std::string& name, const Pem& pem,
                                         std::vector<std::string> server_names = {}) {
        return {write_file(dir, name + ".crt", pem.cert), write_file(dir, name + ".key", pem.key),
                std::move(server_names)};
    }
    std::shared_ptr<ServerTls> load(sluice::config::ListenerTls spec, sluice::config::ConfigErrors& errors,
                                    bool http2 = true) {
        return ServerTls::load(spec, http2, "/listeners/0/tls", errors);
    }
    // Handshakes with `sni` (none when empty) and returns the CN the server showed.
    std::string handshake(ServerTls& tls, const std::string& sni, std::string* alpn = nullptr) {
        asio::io_context io;
        tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        std::thread server([&] {
            tcp::socket s(io);
            acceptor.accept(s);
            ssl::stream<tcp::socket> stream(std::move(s), tls.initial());
            boost::system::error_code ec;
            stream.handshake(ssl::stream_base::server, ec);
            if (!ec) stream.shutdown(ec);
        });
        ssl::context client_ctx(ssl::context::tls_client);
        client_ctx.add_certificate_authority(asio::buffer(ca.cert_pem()));
        client_ctx.set_verify_mode(ssl::verify_peer);
        ssl::stream<tcp::socket> client(io, client_ctx);
        if (!sni.empty()) SSL_set_tlsext_host_name(client.native_handle(), sni.c_str());
        static const unsigned char protos[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
        SSL_set_alpn_protos(client.native_handle(), protos, sizeof protos);
        client.lowest_layer().connect(acceptor.local_endpoint());
        client.handshake(ssl::stream_base::client);
        X509* peer = SSL_get1_peer_certificate(client.native_handle());
        char cn[256] = {};
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof cn);
        X509_free(peer);
        if (alpn) {
            const unsigned char* p = nullptr;
            unsigned int n = 0;
            SSL_get0_alpn_selected(client.native_handle(), &p, &n);
            alpn->assign(reinterpret_cast<const char*>(p), n);
        }
        boost::system::error_code ec;
        client.shutdown(ec);
        server.join();
        return cn;
    }

    TempDir tmp{"sluice-tls-"};
    const std::string dir = tmp.path;
    TestCa ca;
};

}  // namespace

TEST_F(TlsContext, PicksByServerNameExactThenWildcardThenTheFirst) {
    sluice::config::ConfigErrors errors;
    auto tls = load({{write("default", ca.issue({"default.example.com"})),
                      write("a", ca.issue({"a.example.com"}), {"a.example.com"}),
                      write("b", ca.issue({"wild.b.example.com"}), {"*.b.example.com"})}},
                    errors);
    ASSERT_TRUE(tls) << errors[0].message;
    EXPECT_EQ(tls->select("a.example.com"), 1u);
    EXPECT_EQ(tls->select("A.Example.COM"), 1u);
    EXPECT_EQ(tls->select("x.b.example.com"), 2u);
    EXPECT_EQ(tls->select("b.example.com"), 0u);      // a wildcard needs a label in front
    EXPECT_EQ(tls->select("y.x.b.example.com"), 0u);  // and covers exactly one
    EXPECT_EQ(tls->select("other.example.com"), 0u);

    std::string alpn;
    EXPECT_EQ(handshake(*tls, "a.example.com", &alpn), "a.example.com");
    EXPECT_EQ(alpn, "h2");  // offered h2 and http/1.1: sluice prefers HTTP/2
    auto h1only = load({{write("h1", ca.issue({"a.example.com"}))}}, errors, false);
    ASSERT_TRUE(h1only);
    EXPECT_EQ(handshake(*h1only, "a.example.com", &alpn), "a.example.com");
    EXPECT_EQ(alpn, "http/1.1");  // http2: false
    EXPECT_EQ(handshake(*tls, "chat.b.example.com"), "wild.b.example.com");
    EXPECT_EQ(handshake(*tls, "unknown.example.com"), "default.example.com");
    EXPECT_EQ(handshake(*tls, ""), "default.example.com");
}

TEST_F(TlsContext, EveryBadCertificateIsNamedWithItsReason) {
    auto good = ca.issue({"ok.example.com"});
    auto other = ca.issue({"other.example.com"});
    sluice::config::ConfigErrors errors;
    auto tls = load({{
                        {dir + "/missing.crt", dir + "/missing.key", {}},
                        {write_file(dir, "garbage.crt", "not a certificate\n"), write_file(dir, "g.key", good.key), {}},
                        {write_file(dir, "mismatch.crt", good.cert), write_file(dir, "mismatch.key", other.key), {}},
                        write("expired", ca.issue({"old.example.com"}, -30, 1)),
                        write("future", ca.issue({"new.example.com"}, 10, 30)),
                        write("fine", good),
                    }},
                    errors);
    EXPECT_FALSE(tls);
    ASSERT_EQ(errors.size(), 5u);
    EXPECT_EQ(errors[0].pointer, "/listeners/0/tls/certificates/0/cert");
    EXPECT_NE(errors[0].message.find(dir + "/missing.crt: No such file or directory"), std::string::npos)
        << errors[0].message;
    EXPECT_EQ(errors[1].pointer, "/listeners/0/tls/certificates/1/cert");
    EXPECT_NE(errors[1].message.find("garbage.crt holds no usable PEM certificate"), std::string::npos)
        << errors[1].message;
    EXPECT_EQ(errors[2].pointer, "/listeners/0/tls/certificates/2/key");
    EXPECT_NE(errors[2].message.find("mismatch.key does not match the certificate"), std::string::npos)
        << errors[2].message;
    EXPECT_EQ(errors[3].pointer, "/listeners/0/tls/certificates/3/cert");
    EXPECT_NE(errors[3].message.find("expired.crt expired on"), std::string::npos) << errors[3].message;
    EXPECT_NE(errors[4].message.find("future.crt is not valid before"), std::string::npos) << errors[4].message;
}

TEST_F(TlsContext, NoCertificateIsAnError) {
    sluice::config::ConfigErrors errors;
    EXPECT_FALSE(load({}, errors));
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].pointer, "/listeners/0/tls/certificates");
}

TEST_F(TlsContext, UpstreamTlsFilesAreCheckedAndNamed) {
    using sluice::proxy::UpstreamTls;
    sluice::config::ClusterTls spec;
    spec.ca = dir + "/missing-ca.pem";
    sluice::config::ConfigErrors errors;
    EXPECT_FALSE(UpstreamTls::load(spec, "/clusters/2/tls", errors));
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].pointer, "/clusters/2/tls/ca");
    EXPECT_EQ(errors[0].message, "cannot read the CA file " + dir + "/missing-ca.pem: No such file or directory");

    spec.ca = write_file(dir, "ca.pem", ca.cert_pem());
    auto expired = write("client", ca.issue({"sluice-client"}, -30, 1));
    spec.cert = expired.cert;
    spec.key = expired.key;
    errors.clear();
    EXPECT_FALSE(UpstreamTls::load(spec, "/clusters/2/tls", errors));
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].pointer, "/clusters/2/tls/cert");
    EXPECT_NE(errors[0].message.find(expired.cert + " expired on"), std::string::npos) << errors[0].message;

    auto good = write("client", ca.issue({"sluice-client"}));
    errors.clear();
    auto tls = UpstreamTls::load(spec, "/clusters/2/tls", errors);
    ASSERT_TRUE(tls) << errors[0].message;
    EXPECT_EQ(tls->server_name("ai.internal"), "ai.internal");
    spec.sni = "other.internal";
    EXPECT_EQ(UpstreamTls::load(spec, "/clusters/2/tls", errors)->server_name("ai.internal"), "other.internal");
}

TEST_F(TlsContext, UnchangedMaterialIsReusedAndRewrittenFilesAreReloaded) {
    sluice::config::Config cfg;
    sluice::config::ListenerSpec l;
    l.name = "public";
    l.tls = sluice::config::ListenerTls{{write("local", ca.issue({"localhost"}))}};
    cfg.listeners.push_back(l);
    sluice::config::ClusterSpec c;
    c.name = "ai";
    c.tls = sluice::config::ClusterTls{};
    c.tls->ca = write_file(dir, "ca.pem", ca.cert_pem());
    cfg.clusters.push_back(c);
    cfg.clusters.push_back(sluice::config::ClusterSpec{});  // plain

    sluice::config::ConfigErrors errors;
    auto first = sluice::proxy::load_tls(cfg, nullptr, errors);
    ASSERT_TRUE(errors.empty()) << errors[0].message;
    ASSERT_TRUE(first.listeners[0] && first.clusters[0]);
    EXPECT_FALSE(first.clusters[1]);
    auto again = sluice::proxy::load_tls(cfg, &first, errors);
    EXPECT_EQ(again.listeners[0], first.listeners[0]);  // the same objects: session caches and pools survive
    EXPECT_EQ(again.clusters[0], first.clusters[0]);
    EXPECT_EQ(again.fingerprint, first.fingerprint);

    TestCa renewed("renewed CA");
    write_file(dir, "ca.pem", renewed.cert_pem());  // rotated under the same path
    auto rotated = sluice::proxy::load_tls(cfg, &first, errors);
    EXPECT_NE(rotated.fingerprint, first.fingerprint);
    EXPECT_EQ(rotated.listeners[0], first.listeners[0]);
    EXPECT_NE(rotated.clusters[0], first.clusters[0]);
    EXPECT_NE(rotated.clusters[0]->id(), first.clusters[0]->id());  // its connections pool apart
}
