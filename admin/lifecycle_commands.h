// `sluice drain` and `sluice wait-ready`: what a Kubernetes exec hook or an app
// container runs against a sluice in the same Pod. Each returns the exit status
// and prints what happened (standard output) or what went wrong and what to do
// (standard error).
#pragma once
#include <string>

namespace sluice::admin {

struct DrainFlags {
    std::string admin = "127.0.0.1:9901";  // HOST:PORT of the admin API
    std::string token_file;                // admin.token_file, when the API needs a token
    bool wait = false;                     // return when the drain has ended (the process exited)
};
int drain_command(const DrainFlags& flags);

struct WaitReadyFlags {
    std::string url = "http://127.0.0.1:9901/ready";
    std::string timeout = "60s";
};
int wait_ready_command(const WaitReadyFlags& flags);

}  // namespace sluice::admin
