#include "proxy/snapshot/tls_context.h"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/string.hpp>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace sluice::proxy {
namespace ssl = boost::asio::ssl;

namespace {

// Mozilla's "intermediate" TLS 1.2 suites; TLS 1.3 suites are OpenSSL's defaults.
constexpr const char* kCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// The reason of the last OpenSSL error, as words, and the queue cleared.
std::string openssl_reason() {
    unsigned long e = ERR_peek_last_error();
    std::string out;
    if (const char* r = ERR_reason_error_string(e)) out = r;
    else out = "unknown OpenSSL error";
    ERR_clear_error();
    return out;
}

bool readable(const std::string& path, std::string& why) {
    std::ifstream in(path, std::ios::binary);
    if (in) return true;
    why = std::strerror(errno);
    return false;
}

// `h2` (non-null): the listener speaks HTTP/2, which it prefers when the client offers it.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
                void* h2) {
    static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    static const unsigned char kH2Http11[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    unsigned char* chosen = nullptr;
    const unsigned char* ours = h2 ? kH2Http11 : kHttp11;
    const unsigned int ours_len = h2 ? sizeof kH2Http11 : sizeof kHttp11;
    if (SSL_select_next_proto(&chosen, outlen, ours, ours_len, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;  // the client offers only protocols we do not speak: no ALPN
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

}  // namespace

std::string describe_asn1_time(const ASN1_TIME* t) {
    BIO* b = BIO_new(BIO_s_mem());
    ASN1_TIME_print(b, t);
    char* data = nullptr;
    long n = BIO_get_mem_data(b, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(b);
    return out;
}

void harden(ssl::context& ctx) {
    SSL_CTX* c = ctx.native_handle();
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION);
    SSL_CTX_set_cipher_list(c, kCiphers);
    SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    // Idle connections give their TLS buffers back.
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
}

struct ServerTls::Entry {
    Entry() : ctx(ssl::context::tls_server) {}
    ssl::context ctx;
    std::string cert;                    // the file, for the expiry metric
    std::int64_t not_after = 0;          // the leaf's, Unix seconds
    std::vector<std::string> exact;      // lower case
    std::vector<std::string> wildcards;  // ".b.example.com" for "*.b.example.com"
};

ServerTls::~ServerTls() = default;

ssl::context& ServerTls::initial() { return entries_.front()->ctx; }

std::vector<ServerTls::Expiry> ServerTls::expiries() const {
    std::vector<Expiry> out;
    for (const auto& e : entries_) out.push_back({e->cert, e->not_after});
    return out;
}

std::size_t ServerTls::select(std::string_view server_name) const {
    const std::string name = lower(server_name);
    for (std::size_t i = 0; i < entries_.size(); ++i)
        for (const auto& n : entries_[i]->exact)
            if (n == name) return i;
    // A wildcard covers exactly one label: *.b.example.com matches x.b.example.com only.
    auto dot = name.find('.');
    if (dot != std::string::npos && dot > 0) {
        std::string_view suffix = std::string_view(name).substr(dot);
        for (std::size_t i = 0; i < entries_.size(); ++i)
            for (const auto& w : entries_[i]->wildcards)
                if (w == suffix) return i;
    }
    return 0;
}

int ServerTls::on_server_name(SSL* ssl, int*, void* arg) {
    auto* self = static_cast<ServerTls*>(arg);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name) return SSL_TLSEXT_ERR_OK;  // no SNI: the default certificate
    std::size_t i = self->select(name);
    if (i != 0) SSL_set_SSL_CTX(ssl, self->entries_[i]->ctx.native_handle());
    return SSL_TLSEXT_ERR_OK;
}

namespace {

// Loads a certificate (with its chain) and its key into `ctx`, checking that
// they match and that the certificate is valid at `now`. Errors go under
// `at` + "/cert" or "/key".
bool load_pair(SSL_CTX* ctx, const std::string& cert, const std::string& key, const std::string& at,
               config::ConfigErrors& errors, std::time_t now) {
    std::string why;
    if (!readable(cert, why)) {
        errors.push_back({at + "/cert", "cannot read the certificate file " + cert + ": " + why});
        return false;
    }
    if (!readable(key, why)) {
        errors.push_back({at + "/key", "cannot read the key file " + key + ": " + why});
        return false;
    }
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1) {
        errors.push_back(
            {at + "/cert", "the certificate file " + cert + " holds no usable PEM certificate (" + openssl_reason() + ")"});
        return false;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
            ERR_clear_error();
            errors.push_back({at + "/key", "the key " + key + " does not match the certificate " + cert});
        } else {
            errors.push_back(
                {at + "/key", "the key file " + key + " holds no usable PEM private key (" + openssl_reason() + ")"});
        }
        return false;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        errors.push_back({at + "/key", "the key " + key + " does not match the certificate " + cert});
        return false;
    }
    X509* leaf = SSL_CTX_get0_certificate(ctx);
    if (X509_cmp_time(X509_get0_notAfter(leaf), &now) < 0) {
        errors.push_back({at + "/cert", "the certificate " + cert + " expired on " +
                                            describe_asn1_time(X509_get0_notAfter(leaf)) + "; renew it"});
        return false;
    }
    if (X509_cmp_time(X509_get0_notBefore(leaf), &now) > 0) {
        errors.push_back({at + "/cert", "the certificate " + cert + " is not valid before " +
                                            describe_asn1_time(X509_get0_notBefore(leaf)) + " (check the clock, or wait)"});
        return false;
    }
    return true;
}

// FNV-1a over the paths and contents of `paths` (empty paths skipped), as
// snapshot.cpp's hash64 (kept local: this file does not depend on snapshots).
std::uint64_t hash_files(const std::vector<const std::string*>& paths, std::uint64_t h = 14695981039346656037ull) {
    auto mix = [&h](unsigned char ch) { h = (h ^ ch) * 1099511628211ull; };
    for (const auto* path : paths) {
        if (path->empty()) continue;
        for (unsigned char ch : *path) mix(ch);
        mix(0);
        std::ifstream in(*path, std::ios::binary);
        if (in)
            for (std::istreambuf_iterator<char> it(in), end; it != end; ++it) mix(static_cast<unsigned char>(*it));
        mix(0);
    }
    return h;
}

std::vector<const std::string*> files_of(const config::ListenerTls& spec) {
    std::vector<const std::string*> out;
    for (const auto& c : spec.certificates) {
        out.push_back(&c.cert);
        out.push_back(&c.key);
    }
    return out;
}

std::vector<const std::string*> files_of(const config::ClusterTls& spec) { return {&spec.ca, &spec.cert, &spec.key}; }

}  // namespace

namespace {

// Session ticket keys (name, HMAC and AES keys: 80 bytes for OpenSSL), random
// at start-up and kept in memory only: a restart makes every ticket a full handshake.
const std::array<unsigned char, 80>& ticket_keys() {
    static const std::array<unsigned char, 80> keys = [] {
        std::array<unsigned char, 80> k{};
        if (RAND_bytes(k.data(), static_cast<int>(k.size())) != 1) throw std::runtime_error("no randomness for TLS ticket keys");
        return k;
    }();
    return keys;
}

}  // namespace

std::shared_ptr<ServerTls> ServerTls::load(const config::ListenerTls& spec, bool http2, const std::string& pointer,
                                           config::ConfigErrors& errors, std::chrono::system_clock::time_point now) {
    std::shared_ptr<ServerTls> out(new ServerTls);
    out->spec_ = spec;
    out->http2_ = http2;
    out->files_ = hash_files(files_of(spec));
    const std::size_t errors_before = errors.size();
    const std::time_t now_t = std::chrono::system_clock::to_time_t(now);
    for (std::size_t i = 0; i < spec.certificates.size(); ++i) {
        const auto& c = spec.certificates[i];
        auto e = std::make_unique<Entry>();
        harden(e->ctx);
        SSL_CTX* ctx = e->ctx.native_handle();
        static int h2_on;
        SSL_CTX_set_alpn_select_cb(ctx, select_alpn, http2 ? &h2_on : nullptr);
        if (!load_pair(ctx, c.cert, c.key, pointer + "/certificates/" + std::to_string(i), errors, now_t)) continue;
        e->cert = c.cert;
        std::tm tm{};
        if (ASN1_TIME_to_tm(X509_get0_notAfter(SSL_CTX_get0_certificate(ctx)), &tm) == 1) e->not_after = timegm(&tm);
        for (const auto& n : c.server_names) {
            if (n.rfind("*.", 0) == 0) e->wildcards.push_back(lower(n.substr(1)));
            else e->exact.push_back(lower(n));
        }
        out->entries_.push_back(std::move(e));
    }
    if (errors.size() != errors_before) return nullptr;
    if (out->entries_.empty()) {
        errors.push_back({pointer + "/certificates", "a TLS listener needs at least one certificate"});
        return nullptr;
    }
    // Resumption by session tickets, encrypted with one key set for the whole
    // process, so a ticket stays good across config changes and SNI contexts.
    // No server-side session cache: nothing to fill per handshake, and no
    // sweep of it every 255 handshakes on the request path.
    for (auto& e : out->entries_) {
        SSL_CTX* ctx = e->ctx.native_handle();
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_tlsext_ticket_keys(ctx, const_cast<unsigned char*>(ticket_keys().data()), ticket_keys().size());
    }
    // Only the context a connection starts with is asked for the name.
    SSL_CTX_set_tlsext_servername_callback(out->initial().native_handle(), on_server_name);
    SSL_CTX_set_tlsext_servername_arg(out->initial().native_handle(), out.get());
    return out;
}

std::shared_ptr<UpstreamTls> UpstreamTls::load(const config::ClusterTls& spec, const std::string& pointer,
                                               config::ConfigErrors& errors, std::chrono::system_clock::time_point now) {
    std::shared_ptr<UpstreamTls> out(new UpstreamTls);
    out->spec_ = spec;
    out->files_ = hash_files(files_of(spec));
    std::uint64_t h = out->files_;  // covers the paths and contents; add what else sets a connection apart
    for (unsigned char ch : spec.sni.value_or("") + (spec.verify ? "|verify" : "|no-verify")) h = (h ^ ch) * 1099511628211ull;
    char id[24];
    std::snprintf(id, sizeof id, "tls/%016llx", static_cast<unsigned long long>(h));
    out->id_ = id;
    harden(out->ctx_);
    SSL_CTX* ctx = out->ctx_.native_handle();
    static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    SSL_CTX_set_alpn_protos(ctx, kHttp11, sizeof kHttp11);
    const std::size_t errors_before = errors.size();
    if (spec.verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
        ERR_clear_error();
        if (spec.ca.empty()) {
            SSL_CTX_set_default_verify_paths(ctx);
            ERR_clear_error();  // a system without a CA store fails at the handshake, with a hint
        } else if (std::string why; !readable(spec.ca, why)) {
            errors.push_back({pointer + "/ca", "cannot read the CA file " + spec.ca + ": " + why});
        } else if (SSL_CTX_load_verify_locations(ctx, spec.ca.c_str(), nullptr) != 1) {
            errors.push_back({pointer + "/ca", "the CA file " + spec.ca + " holds no usable PEM certificate (" +
                                                   openssl_reason() + ")"});
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    }
    if (!spec.cert.empty())
        load_pair(ctx, spec.cert, spec.key, pointer, errors, std::chrono::system_clock::to_time_t(now));
    if (errors.size() != errors_before) return nullptr;
    return out;
}

void UpstreamTls::prepare(SSL* ssl, const std::string& host, bool http2) const {
    static const unsigned char kH2[] = {2, 'h', '2'};
    if (http2) SSL_set_alpn_protos(ssl, kH2, sizeof kH2);
    const std::string name = server_name(host);
    boost::system::error_code ec;
    boost::asio::ip::make_address(name, ec);
    const bool ip = !ec;
    if (!ip) SSL_set_tlsext_host_name(ssl, name.c_str());  // SNI never carries an address (RFC 6066)
    if (!spec_.verify) return;
    if (ip) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
    else SSL_set1_host(ssl, name.c_str());
}

bool UpstreamTls::agreed_h2(SSL* ssl) {
    const unsigned char* p = nullptr;
    unsigned int n = 0;
    SSL_get0_alpn_selected(ssl, &p, &n);
    return n == 2 && p[0] == 'h' && p[1] == '2';
}

std::string UpstreamTls::describe_failure(SSL* ssl, const boost::system::error_code& ec, const std::string& host) const {
    const long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    const std::string name = server_name(host);
    if (spec_.verify && v != X509_V_OK) {
        const std::string why = X509_verify_cert_error_string(v);
        if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH)
            return "the certificate could not be verified: it is not valid for \"" + name +
                   "\"; set the cluster's tls.sni to a name the certificate holds";
        if (v == X509_V_ERR_CERT_HAS_EXPIRED || v == X509_V_ERR_CERT_NOT_YET_VALID)
            return "the certificate could not be verified (" + why + "); renew the upstream's certificate";
        return "the certificate could not be verified (" + why + "); " +
               (spec_.ca.empty() ? std::string("the system CA store does not trust it: set the cluster's tls.ca to "
                                               "the CA that signed it")
                                 : "set the cluster's tls.ca (now " + spec_.ca + ") to the CA that signed it");
    }
    if (ec == boost::asio::error::eof || ec == boost::asio::ssl::error::stream_truncated ||
        ec == boost::asio::error::connection_reset)
        return "the endpoint closed the connection during the TLS handshake; check that it speaks TLS on this port";
    return describe_tls_error(ec);
}

std::string UpstreamTls::describe_tls_error(const boost::system::error_code& ec) const {
    std::string reason;
    if (ec.category() == boost::asio::error::get_ssl_category()) {
        const char* r = ERR_reason_error_string(static_cast<unsigned long>(ec.value()));
        reason = r ? r : ec.message();
    } else {
        reason = lower(ec.message());
    }
    if (reason == "wrong version number" || reason == "packet length too long" || reason == "record layer failure")
        return "the TLS handshake failed (" + reason + "): the endpoint does not speak TLS on this port";
    if (reason.find("certificate required") != std::string::npos)
        return "the upstream requires a client certificate (" + reason + ")" +
               (spec_.cert.empty() ? "; set the cluster's tls.cert and tls.key" : "");
    if (reason.find("unknown ca") != std::string::npos || reason.find("bad certificate") != std::string::npos)
        return "the upstream refused sluice's client certificate " + spec_.cert + " (" + reason +
               "); use a certificate signed by a CA the upstream trusts";
    if (reason.find("handshake failure") != std::string::npos && spec_.cert.empty())
        return "the TLS handshake failed (" + reason + "); if the upstream wants a client certificate, set the cluster's "
               "tls.cert and tls.key";
    return "the TLS handshake failed (" + reason + ")";
}

std::uint64_t tls_files_fingerprint(const config::Config& cfg) {
    std::vector<const std::string*> paths;
    for (const auto& l : cfg.listeners)
        if (l.tls)
            for (const auto* p : files_of(*l.tls)) paths.push_back(p);
    for (const auto& c : cfg.clusters)
        if (c.tls)
            for (const auto* p : files_of(*c.tls)) paths.push_back(p);
    return hash_files(paths);
}

namespace {

// The object `previous` holds for `spec` when its files did not change either, else a fresh load.
template <class Tls, class Spec, class Load>
std::shared_ptr<Tls> reuse_or_load(const Spec& spec, const std::vector<std::shared_ptr<Tls>>* previous, Load load,
                                   bool http2 = false) {
    const std::uint64_t files = hash_files(files_of(spec));
    if (previous)
        for (const auto& p : *previous)
            if (p && p->spec() == spec && p->files() == files && p->http2() == http2) return p;
    return load();
}

}  // namespace

TlsMaterial load_tls(const config::Config& cfg, const TlsMaterial* previous, config::ConfigErrors& errors) {
    TlsMaterial out;
    out.fingerprint = tls_files_fingerprint(cfg);
    for (std::size_t i = 0; i < cfg.listeners.size(); ++i) {
        const auto& l = cfg.listeners[i];
        out.listeners.push_back(!l.tls ? nullptr : reuse_or_load(*l.tls, previous ? &previous->listeners : nullptr, [&] {
            return ServerTls::load(*l.tls, l.http2, "/listeners/" + std::to_string(i) + "/tls", errors);
        }, l.http2));
    }
    for (std::size_t i = 0; i < cfg.clusters.size(); ++i) {
        const auto& c = cfg.clusters[i];
        out.clusters.push_back(!c.tls ? nullptr : reuse_or_load(*c.tls, previous ? &previous->clusters : nullptr, [&] {
            return UpstreamTls::load(*c.tls, "/clusters/" + std::to_string(i) + "/tls", errors);
        }));
    }
    return out;
}

}  // namespace sluice::proxy
