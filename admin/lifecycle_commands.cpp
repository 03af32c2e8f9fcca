#include "admin/lifecycle_commands.h"

#include "admin/admin_client.h"
#include "admin/admin_token.h"
#include "config/duration.h"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <thread>

namespace sluice::admin {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string first_line(const std::string& body) {
    std::string line = body.substr(0, body.find('\n'));
    return line.size() > 200 ? line.substr(0, 200) + "..." : line;
}

}  // namespace

int drain_command(const DrainFlags& f) {
    HttpTarget target;
    if (!parse_host_port(f.admin, target.host, target.port)) {
        std::cerr << "sluice drain: --admin \"" << f.admin << "\" is not HOST:PORT, e.g. 127.0.0.1:9901\n";
        return 2;
    }
    target.path = "/drain";
    std::string token;
    if (!f.token_file.empty()) {
        // Read as the admin server reads admin.token_file: the first line, trimmed.
        AdminToken file(f.token_file);
        std::string error;
        if (!file.load(error)) {
            std::cerr << "sluice drain: --token-file: " << error << "\n";
            return 2;
        }
        token = file.token();
    }
    auto reply = http_call(target, "POST", "", token, 10s);
    if (reply.status == 0) {
        std::cerr << "sluice drain: no answer from the admin API at " << f.admin << " (" << reply.error
                  << "); is sluice running there? --admin names its admin address\n";
        return 1;
    }
    if (reply.status == 401) {
        std::cerr << "sluice drain: the admin API at " << f.admin << " needs its token (401: " << first_line(reply.body)
                  << "); pass --token-file with the file admin.token_file names\n";
        return 1;
    }
    if (reply.status != 202) {
        std::cerr << "sluice drain: the admin API at " << f.admin << " answered " << reply.status << ": "
                  << first_line(reply.body) << "\n";
        return 1;
    }
    std::cout << "sluice at " << f.admin << " is draining\n" << std::flush;
    if (!f.wait) return 0;
    // The drain ends with the process exiting: wait until nothing listens there.
    auto health = target;
    health.path = "/healthz";
    while (true) {
        auto r = http_call(health, "GET", "", token, 2s);
        if (r.refused) break;
        std::this_thread::sleep_for(100ms);
    }
    std::cout << "drain finished: sluice at " << f.admin << " has exited\n";
    return 0;
}

int wait_ready_command(const WaitReadyFlags& f) {
    std::string error;
    auto target = parse_http_url(f.url, error);
    if (!target) {
        std::cerr << "sluice wait-ready: --url " << error << "\n";
        return 2;
    }
    auto timeout = config::parse_duration(f.timeout);
    if (!timeout) {
        std::cerr << "sluice wait-ready: --timeout \"" << f.timeout << "\" is not a duration such as 30s, 2m or 500ms\n";
        return 2;
    }
    const auto give_up = Clock::now() + *timeout;
    std::string last = "no answer yet";
    while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(give_up - Clock::now());
        auto r = http_call(*target, "GET", "", "", std::clamp(left, 1ms, std::chrono::milliseconds(2s)));
        if (r.status == 200) {
            std::cout << "ready: " << f.url << " answered 200\n";
            return 0;
        }
        last = r.status ? std::to_string(r.status) + " " + first_line(r.body) : r.error;
        if (Clock::now() + 100ms >= give_up) break;
        std::this_thread::sleep_for(100ms);
    }
    std::cerr << "sluice wait-ready: " << f.url << " not ready after " << config::describe_duration(*timeout)
              << " (last: " << last << ")\n";
    return 1;
}

}  // namespace sluice::admin
