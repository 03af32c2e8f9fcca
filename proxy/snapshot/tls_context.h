// TLS material, loaded and checked before a config that names it is accepted:
// the certificates of each TLS listener (ServerTls) and the client side of
// each TLS cluster (UpstreamTls).
//
// Immutable once loaded. A handshake in progress keeps its object alive (the
// SNI callback points to it). A config change reuses an object whose spec and
// files did not change (so TLS session caches survive), and loads a new one
// otherwise: live connections keep what they were given.
#pragma once
#include "config/spec.h"

#include <boost/asio/ssl/context.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::proxy {

// A listener's certificates: one OpenSSL context per certificate, picked during
// the handshake by the name the client asked for (SNI): an exact name, then a
// wildcard, then the first certificate.
class ServerTls {
public:
    // Loads every certificate of `spec`. On any problem returns null and appends
    // one error per problem, located under `pointer` (".../tls/certificates/N/cert"),
    // naming the file and the reason: unreadable, not PEM, key not matching,
    // expired or not yet valid at `now`.
    // `http2`: ALPN offers h2 before http/1.1.
    static std::shared_ptr<ServerTls> load(const config::ListenerTls& spec, bool http2, const std::string& pointer,
                                           config::ConfigErrors& errors,
                                           std::chrono::system_clock::time_point now = std::chrono::system_clock::now());
    ~ServerTls();

    // The context new connections start with; its SNI callback switches to the
    // right one during the handshake.
    boost::asio::ssl::context& initial();
    // Which certificate serves `server_name` (exact, then wildcard, then 0).
    std::size_t select(std::string_view server_name) const;
    std::size_t size() const { return entries_.size(); }

    const config::ListenerTls& spec() const { return spec_; }
    bool http2() const { return http2_; }
    std::uint64_t files() const { return files_; }  // fingerprint of its files when loaded

    // Each certificate file with its leaf's notAfter (Unix seconds), in spec order.
    struct Expiry {
        std::string cert;
        std::int64_t not_after = 0;
    };
    std::vector<Expiry> expiries() const;

private:
    struct Entry;
    ServerTls() = default;
    static int on_server_name(SSL* ssl, int* alert, void* arg);
    std::vector<std::unique_ptr<Entry>> entries_;
    config::ListenerTls spec_;
    bool http2_ = false;
    std::uint64_t files_ = 0;
};

// The client side of TLS to one cluster's endpoints: verification (the
// system store, or `ca`), SNI, ALPN http/1.1, and a client certificate for mTLS.
class UpstreamTls {
public:
    // Loads and checks `spec`'s files; on any problem returns null and appends
    // one error per problem under `pointer` (".../tls/ca"), naming the file and
    // the reason.
    static std::shared_ptr<UpstreamTls> load(const config::ClusterTls& spec, const std::string& pointer,
                                             config::ConfigErrors& errors,
                                             std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

    boost::asio::ssl::context& context() { return ctx_; }
    const config::ClusterTls& spec() const { return spec_; }
    // ALPN is set per connection (prepare()), so one material serves both protocols.
    bool http2() const { return false; }
    std::uint64_t files() const { return files_; }
    // Tells pooled connections made with this material from any other: "tls/<hex>".
    const std::string& id() const { return id_; }

    // The name a connection to `host` sends as SNI and verifies: tls.sni, else the host.
    std::string server_name(const std::string& host) const { return spec_.sni ? *spec_.sni : host; }
    // Sets SNI (for a host name, never an IP) and the name or address to verify;
    // `http2`: ALPN offers h2 alone (a protocol: http2 cluster), else http/1.1.
    void prepare(SSL* ssl, const std::string& host, bool http2 = false) const;
    // After the handshake: the server chose h2 by ALPN.
    static bool agreed_h2(SSL* ssl);
    // Why a handshake with `host` failed, in words, with what to do about it.
    std::string describe_failure(SSL* ssl, const boost::system::error_code& ec, const std::string& host) const;
    // A TLS error after the handshake (e.g. TLS 1.3 refuses a client certificate then), in words.
    std::string describe_tls_error(const boost::system::error_code& ec) const;

private:
    UpstreamTls() : ctx_(boost::asio::ssl::context::tls_client) {}
    boost::asio::ssl::context ctx_;
    config::ClusterTls spec_;
    std::uint64_t files_ = 0;
    std::string id_;
};

// Everything TLS a config needs, loaded.
struct TlsMaterial {
    std::vector<std::shared_ptr<ServerTls>> listeners;  // parallel to config.listeners; null: plain
    std::vector<std::shared_ptr<UpstreamTls>> clusters;  // parallel to config.clusters; null: plain
    std::uint64_t fingerprint = 0;                       // tls_files_fingerprint when loaded
};

// Loads the TLS material of `cfg`, reusing what `previous` holds for a spec
// whose files did not change. Problems go to `errors`, located by JSON pointer.
TlsMaterial load_tls(const config::Config& cfg, const TlsMaterial* previous, config::ConfigErrors& errors);

// A hash of the contents of every certificate, key and CA file `cfg` names: a
// renewal that rewrites the files under the same paths changes it.
std::uint64_t tls_files_fingerprint(const config::Config& cfg);

// TLS 1.2 and 1.3 only, a modern cipher list, ALPN http/1.1, no
// renegotiation or compression: what every sluice TLS context starts from.
void harden(boost::asio::ssl::context& ctx);

// "Nov 27 03:00:00 2026 GMT" (for messages).
std::string describe_asn1_time(const ASN1_TIME* t);

}  // namespace sluice::proxy
