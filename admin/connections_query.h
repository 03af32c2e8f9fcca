// GET /connections?kind=websocket&route=chat&limit=100: what the admin API asks
// for, and what each worker answers from its own connections.
#pragma once
#include <cstddef>
#include <string>

namespace sluice::admin {

struct ConnectionsQuery {
    std::string kind;   // "", "websocket" or "stream"
    std::string route;  // "" for all
    std::size_t limit = 100;
};

}  // namespace sluice::admin
