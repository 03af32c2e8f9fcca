// Certificates made at test time with the OpenSSL API (no private key is ever
// committed): a test CA that issues leaf certificates for DNS names, valid,
// expired or not yet valid, as PEM text (TempDir::file writes it where sluice
// can read it).
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace sluice::test {

struct Pem {
    std::string cert;  // the leaf, then the CA (a chain, as servers send it)
    std::string key;
};

class TestCa {
public:
    explicit TestCa(const std::string& name = "sluice test CA");
    ~TestCa();
    TestCa(const TestCa&) = delete;
    TestCa& operator=(const TestCa&) = delete;

    // A leaf for `names` (the first is also the CN), valid from now + `from_days`
    // for `days` (from_days -30, days 1: expired 29 days ago).
    Pem issue(const std::vector<std::string>& names, int from_days = 0, int days = 30);
    std::string cert_pem() const;  // the CA certificate alone: what a client trusts

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::test
