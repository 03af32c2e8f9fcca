#include "admin/admin_token.h"

#include <openssl/crypto.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace sluice::admin {
namespace {

bool same_file_state(const struct stat& a, const struct stat& b) {
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size &&
           a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec &&
           a.st_ctim.tv_sec == b.st_ctim.tv_sec && a.st_ctim.tv_nsec == b.st_ctim.tv_nsec;
}

}  // namespace

bool AdminToken::load(std::string& error) {
    have_seen_ = false;
    refresh();
    error = error_;
    return error_.empty();
}

void AdminToken::refresh() {
    struct stat now {};
    if (::stat(path_.c_str(), &now) != 0) {
        error_ = "admin.token_file " + path_ + " cannot be read: " + std::strerror(errno);
        token_.clear();
        have_seen_ = false;
        return;
    }
    if (have_seen_ && same_file_state(now, seen_)) return;
    std::ifstream in(path_, std::ios::binary);
    std::string line;
    if (!in || !std::getline(in, line)) {
        error_ = "admin.token_file " + path_ + " cannot be read or is empty";
        token_.clear();
        return;
    }
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.erase(0, 1);
    if (line.size() < 16) {
        error_ = "admin.token_file " + path_ + " holds a token shorter than 16 characters; write a long random one, "
                 "e.g. openssl rand -hex 32";
        token_.clear();
    } else {
        error_.clear();
        token_ = line;
    }
    seen_ = now;
    have_seen_ = true;
}

bool AdminToken::allows(std::string_view authorization, std::string& why) {
    refresh();
    if (!error_.empty()) {
        why = error_ + "; every request that needs the token is refused until it can be";
        return false;
    }
    constexpr std::string_view scheme = "Bearer ";
    if (authorization.size() < scheme.size() ||
        strncasecmp(authorization.data(), scheme.data(), scheme.size()) != 0) {
        why = "this request needs \"Authorization: Bearer <token>\" (admin.token_file)";
        return false;
    }
    std::string_view given = authorization.substr(scheme.size());
    while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
    if (given.size() != token_.size() || CRYPTO_memcmp(given.data(), token_.data(), token_.size()) != 0) {
        why = "the bearer token does not match admin.token_file";
        return false;
    }
    return true;
}

}  // namespace sluice::admin
