#include "tests/support/certs.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace sluice::test {
namespace {

std::string to_pem(X509* x) {
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char* data = nullptr;
    long n = BIO_get_mem_data(b, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(b);
    return out;
}

std::string to_pem(EVP_PKEY* k) {
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    long n = BIO_get_mem_data(b, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(b);
    return out;
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (!ext) throw std::runtime_error("cannot make extension " + value);
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

X509* make_cert(EVP_PKEY* key, const std::string& cn, X509* issuer, long serial, int from_days,
                int days) {
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), static_cast<long>(from_days) * 86400);
    X509_gmtime_adj(X509_getm_notAfter(x), static_cast<long>(from_days + days) * 86400);
    X509_set_pubkey(x, key);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    return x;
}

}  // namespace

struct TestCa::Impl {
    EVP_PKEY* key = nullptr;
    X509* cert = nullptr;
    long serial = 1;
};

TestCa::TestCa(const std::string& name) : impl_(std::make_unique<Impl>()) {
    impl_->key = EVP_EC_gen("P-256");
    if (!impl_->key) throw std::runtime_error("EC key generation failed");
    impl_->cert = make_cert(impl_->key, name, nullptr, impl_->serial++, -1, 3650);
    add_ext(impl_->cert, impl_->cert, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(impl_->cert, impl_->cert, NID_key_usage, "critical,keyCertSign,cRLSign");
    add_ext(impl_->cert, impl_->cert, NID_subject_key_identifier, "hash");
    X509_sign(impl_->cert, impl_->key, EVP_sha256());
}

TestCa::~TestCa() {
    X509_free(impl_->cert);
    EVP_PKEY_free(impl_->key);
}

std::string TestCa::cert_pem() const { return to_pem(impl_->cert); }

Pem TestCa::issue(const std::vector<std::string>& names, int from_days, int days) {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* x = make_cert(key, names.empty() ? "localhost" : names[0], impl_->cert, impl_->serial++,
                        from_days, days);
    std::string san;
    for (const auto& n : names) {
        bool ip = n.find_first_not_of("0123456789.") == std::string::npos || n.find(':') != std::string::npos;
        san += (san.empty() ? "" : ",") + std::string(ip ? "IP:" : "DNS:") + n;
    }
    if (!san.empty()) add_ext(x, impl_->cert, NID_subject_alt_name, san);
    add_ext(x, impl_->cert, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(x, impl_->cert, NID_ext_key_usage, "serverAuth,clientAuth");
    add_ext(x, impl_->cert, NID_authority_key_identifier, "keyid");
    X509_sign(x, impl_->key, EVP_sha256());
    Pem out{to_pem(x) + to_pem(impl_->cert), to_pem(key)};
    X509_free(x);
    EVP_PKEY_free(key);
    return out;
}

}  // namespace sluice::test
