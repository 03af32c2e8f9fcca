// Active health checks, once per process, on the control thread: one probe per
// endpoint of every cluster with a health_check. A probe sends GET path every
// interval (10% jitter, first one at a random point of the interval, so
// endpoints are not probed in lock-step); 2xx within the timeout passes.
// Results go to the endpoint's shared state, which workers read lock-free.
#pragma once
#include "proxy/snapshot/snapshot.h"

#include <boost/asio/io_context.hpp>

#include <map>
#include <memory>
#include <string>
#include <utility>

namespace sluice::proxy {

class HealthChecker {
public:
    explicit HealthChecker(boost::asio::io_context& io) : io_(io) {}
    ~HealthChecker() { stop(); }

    // Control thread: starts, keeps or stops probes to match `snap`. Probes of
    // endpoints whose cluster and check are unchanged keep running (and their counts).
    void update(const Snapshot& snap);
    void stop();

    struct Probe;

private:
    boost::asio::io_context& io_;
    std::map<std::pair<std::string, std::string>, std::shared_ptr<Probe>> probes_;
};

}  // namespace sluice::proxy
