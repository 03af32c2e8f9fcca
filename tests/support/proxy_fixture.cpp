#include "tests/support/proxy_fixture.h"

namespace sluice::test {

std::string fill(std::string text, const std::vector<std::pair<std::string, std::string>>& values) {
    for (const auto& [k, v] : values) {
        std::string key = "{" + k + "}";
        for (auto pos = text.find(key); pos != std::string::npos; pos = text.find(key, pos + v.size()))
            text.replace(pos, key.size(), v);
    }
    return text;
}

std::string one_route(const std::string& origin, const std::string& extra_yaml) {
    return fill(R"(
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: o, endpoints: ["{o}"]}]
routes: [{name: all, match: {path_prefix: /}, cluster: o}]
)",
                {{"o", origin}}) +
           extra_yaml + "\n";
}

namespace {
config::Config parse_or_die(const std::string& yaml) {
    auto loaded = config::load_text(yaml, config::Format::yaml);
    std::string errors;
    for (const auto& e : loaded.errors) errors += e.pointer + ": " + e.message + "\n";
    if (!loaded.config) throw std::runtime_error("test config is invalid:\n" + errors + yaml);
    return *loaded.config;
}
}  // namespace

RunningProxy::RunningProxy(const std::string& yaml, std::size_t workers, bool builtin_default, bool splice)
    : RunningProxy(parse_or_die(yaml), workers, builtin_default, splice) {}

RunningProxy::RunningProxy(config::Config cfg, std::size_t workers, bool builtin_default, bool splice) {
    proxy::ServerOptions o;
    o.config = std::move(cfg);
    o.config.admin.port = 0;
    o.builtin_default = builtin_default;
    o.workers = workers;
    o.print_addresses = false;
    o.splice = splice;
    std::string error;
    server = proxy::Server::start(std::move(o), error);
    if (!server) throw std::runtime_error("sluice did not start: " + error);
}

RunningProxy::~RunningProxy() {
    server->stop();
    server->wait();
}

}  // namespace sluice::test
