// Starts an in-process sluice on 127.0.0.1:0 from a YAML config and stops it
// at the end of the test.
#pragma once
#include "config/load.h"
#include "proxy/server/server.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace sluice::test {

// Replaces every "{name}" in `text` with its value.
std::string fill(std::string text, const std::vector<std::pair<std::string, std::string>>& values);

// A config with one listener "public" on 127.0.0.1:0, one cluster "o" holding
// `origin` ("127.0.0.1:port"), and one route "all" for every path.
std::string one_route(const std::string& origin, const std::string& extra_yaml = "");

class RunningProxy {
public:
    // `yaml` must be a valid config; listeners should use port 0.
    explicit RunningProxy(const std::string& yaml, std::size_t workers = 2, bool builtin_default = false,
                          bool splice = true);
    explicit RunningProxy(config::Config cfg, std::size_t workers = 2, bool builtin_default = false,
                          bool splice = true);
    ~RunningProxy();

    std::uint16_t port(const std::string& listener = "public") const { return server->listener_port(listener); }
    std::uint16_t admin_port() const { return server->admin_endpoint().port(); }

    std::unique_ptr<proxy::Server> server;
};

}  // namespace sluice::test
