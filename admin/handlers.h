// The admin API's endpoints, as plain functions of a request: the HTTP
// plumbing lives in admin_server.cpp. Edits of routes, clusters and timeouts
// are made on a copy of the applied config document and handed to the backend
// as a whole new config, so every change is validated and applied as one.
#pragma once
#include "admin/backend.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sluice::admin {

struct AdminRequest {
    std::string method;  // "GET", "PUT", ...
    std::string target;  // path and query
    std::string body;
    std::optional<std::string> if_match;
};

struct AdminReply {
    unsigned status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
};

class Handlers {
public:
    enum class Mode { admin, probes };
    Handlers(Backend& backend, Mode mode) : backend_(backend), mode_(mode) {}
    AdminReply handle(const AdminRequest& req);

private:
    Backend& backend_;
    Mode mode_;
};

}  // namespace sluice::admin
