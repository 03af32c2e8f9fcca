// The certificates of one TLS listener, loaded and checked before a config
// that names them is accepted: one OpenSSL context per certificate, picked
// during the handshake by the name the client asked for (SNI): an exact name,
// then a wildcard, then the first certificate.
//
// Immutable once loaded. A handshake in progress keeps its ServerTls alive
// (the SNI callback points to it); a config change loads a new one, so live
// connections keep the certificate they were given.
#pragma once
#include "config/spec.h"

#include <boost/asio/ssl/context.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::proxy {

class ServerTls {
public:
    // Loads every certificate of `spec`. On any problem returns null and appends
    // one error per problem, located under `pointer` (".../tls/certificates/N/cert"),
    // naming the file and the reason: unreadable, not PEM, key not matching,
    // expired or not yet valid at `now`.
    static std::shared_ptr<ServerTls> load(const config::ListenerTls& spec, const std::string& pointer,
                                           config::ConfigErrors& errors,
                                           std::chrono::system_clock::time_point now = std::chrono::system_clock::now());
    ~ServerTls();

    // The context new connections start with; its SNI callback switches to the
    // right one during the handshake.
    boost::asio::ssl::context& initial();
    // Which certificate serves `server_name` (exact, then wildcard, then 0).
    std::size_t select(std::string_view server_name) const;
    std::size_t size() const { return entries_.size(); }

private:
    struct Entry;
    ServerTls() = default;
    static int on_server_name(SSL* ssl, int* alert, void* arg);
    std::vector<std::unique_ptr<Entry>> entries_;
};

// Loads the certificates of every TLS listener of `cfg` (parallel to
// cfg.listeners; null for plain ones). Problems go to `errors`.
std::vector<std::shared_ptr<ServerTls>> load_listener_tls(const config::Config& cfg, config::ConfigErrors& errors);

// A hash of the contents of every certificate and key file `cfg` names: a
// renewal that rewrites the files under the same paths changes it.
std::uint64_t tls_files_fingerprint(const config::Config& cfg);

// TLS 1.2 and 1.3 only, a modern cipher list, ALPN http/1.1, no
// renegotiation or compression: what every sluice TLS context starts from.
void harden(boost::asio::ssl::context& ctx);

// "Nov 27 03:00:00 2026 GMT" (for messages).
std::string describe_asn1_time(const ASN1_TIME* t);

}  // namespace sluice::proxy
