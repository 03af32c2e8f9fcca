// Certificates made at test time with the OpenSSL API (no private key is ever
// committed): a test CA that issues leaf certificates for DNS names, valid,
// expired or not yet valid, and writes PEM files where sluice can read them.
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

// Writes `content` to `dir`/`name` and returns the path.
std::string write_file(const std::string& dir, const std::string& name, const std::string& content);
// A fresh directory under the system temp dir, removed by the caller.
std::string make_temp_dir(const std::string& prefix);

}  // namespace sluice::test
