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
    // `probes_metrics`: the probes address serves GET /metrics too (probes.metrics).
    Handlers(Backend& backend, Mode mode, bool probes_metrics = false)
        : backend_(backend), mode_(mode), probes_metrics_(probes_metrics) {}
    AdminReply handle(const AdminRequest& req);

private:
    Backend& backend_;
    Mode mode_;
    bool probes_metrics_;
};

}  // namespace sluice::admin
