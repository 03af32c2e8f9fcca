#include "proxy/tls_context.h"

#include <boost/beast/core/string.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>

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

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
                void*) {
    static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    unsigned char* chosen = nullptr;
    if (SSL_select_next_proto(&chosen, outlen, kHttp11, sizeof kHttp11, in, inlen) != OPENSSL_NPN_NEGOTIATED)
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
    std::vector<std::string> exact;      // lower case
    std::vector<std::string> wildcards;  // ".b.example.com" for "*.b.example.com"
};

ServerTls::~ServerTls() = default;

ssl::context& ServerTls::initial() { return entries_.front()->ctx; }

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

std::shared_ptr<ServerTls> ServerTls::load(const config::ListenerTls& spec, const std::string& pointer,
                                           config::ConfigErrors& errors, std::chrono::system_clock::time_point now) {
    std::shared_ptr<ServerTls> out(new ServerTls);
    const std::size_t errors_before = errors.size();
    const std::time_t now_t = std::chrono::system_clock::to_time_t(now);
    for (std::size_t i = 0; i < spec.certificates.size(); ++i) {
        const auto& c = spec.certificates[i];
        const std::string at = pointer + "/certificates/" + std::to_string(i);
        auto e = std::make_unique<Entry>();
        harden(e->ctx);
        SSL_CTX* ctx = e->ctx.native_handle();
        SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);
        std::string why;
        if (!readable(c.cert, why)) {
            errors.push_back({at + "/cert", "cannot read the certificate file " + c.cert + ": " + why});
            continue;
        }
        if (!readable(c.key, why)) {
            errors.push_back({at + "/key", "cannot read the key file " + c.key + ": " + why});
            continue;
        }
        ERR_clear_error();
        if (SSL_CTX_use_certificate_chain_file(ctx, c.cert.c_str()) != 1) {
            errors.push_back({at + "/cert", "the certificate file " + c.cert + " holds no usable PEM certificate (" +
                                                openssl_reason() + ")"});
            continue;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, c.key.c_str(), SSL_FILETYPE_PEM) != 1) {
            if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
                ERR_clear_error();
                errors.push_back({at + "/key", "the key " + c.key + " does not match the certificate " + c.cert});
            } else {
                errors.push_back({at + "/key", "the key file " + c.key + " holds no usable PEM private key (" +
                                                   openssl_reason() + ")"});
            }
            continue;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            ERR_clear_error();
            errors.push_back({at + "/key", "the key " + c.key + " does not match the certificate " + c.cert});
            continue;
        }
        X509* leaf = SSL_CTX_get0_certificate(ctx);
        std::time_t t = now_t;
        if (X509_cmp_time(X509_get0_notAfter(leaf), &t) < 0) {
            errors.push_back({at + "/cert", "the certificate " + c.cert + " expired on " +
                                                describe_asn1_time(X509_get0_notAfter(leaf)) + "; renew it"});
            continue;
        }
        if (X509_cmp_time(X509_get0_notBefore(leaf), &t) > 0) {
            errors.push_back({at + "/cert", "the certificate " + c.cert + " is not valid before " +
                                                describe_asn1_time(X509_get0_notBefore(leaf)) +
                                                " (check the clock, or wait)"});
            continue;
        }
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
    // Only the context a connection starts with is asked for the name.
    SSL_CTX_set_tlsext_servername_callback(out->initial().native_handle(), on_server_name);
    SSL_CTX_set_tlsext_servername_arg(out->initial().native_handle(), out.get());
    return out;
}

std::uint64_t tls_files_fingerprint(const config::Config& cfg) {
    std::string all;
    for (const auto& l : cfg.listeners) {
        if (!l.tls) continue;
        for (const auto& c : l.tls->certificates)
            for (const auto* path : {&c.cert, &c.key}) {
                std::ifstream in(*path, std::ios::binary);
                all += *path;
                all += '\0';
                if (in) all.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
                all += '\0';
            }
    }
    // FNV-1a, as snapshot.cpp's hash64 (kept local: this file does not depend on snapshots).
    std::uint64_t h = 14695981039346656037ull;
    for (unsigned char ch : all) h = (h ^ ch) * 1099511628211ull;
    return h;
}

std::vector<std::shared_ptr<ServerTls>> load_listener_tls(const config::Config& cfg, config::ConfigErrors& errors) {
    std::vector<std::shared_ptr<ServerTls>> out;
    for (std::size_t i = 0; i < cfg.listeners.size(); ++i) {
        const auto& l = cfg.listeners[i];
        out.push_back(l.tls ? ServerTls::load(*l.tls, "/listeners/" + std::to_string(i) + "/tls", errors) : nullptr);
    }
    return out;
}

}  // namespace sluice::proxy
