#include "proxy/server/listener_set.h"

#include "config/duration.h"
#include "proxy/net/log.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace sluice::proxy {

bool ListenerSet::bind_all(const config::Config& cfg, std::string& error) {
    List bound;
    for (const auto& spec : cfg.listeners) {
        auto info = bind_listener(spec, workers_.size(), error);
        if (!info) return false;
        bound.push_back(std::move(info));
    }
    std::lock_guard lock(mu_);
    list_ = std::move(bound);
    return true;
}

void ListenerSet::hand_to_workers() {
    for (const auto& l : list()) hand_over(l);
}

void ListenerSet::print_all() const {
    for (const auto& l : list()) print_address(*l);
}

void ListenerSet::hand_over(const std::shared_ptr<ListenerInfo>& l) {
    for (std::size_t i = 0; i < workers_.size(); ++i) {
        workers_[i]->adopt_listener(l, l->fds[i]);
        l->fds[i] = -1;  // the worker's acceptor owns it now
    }
}

void ListenerSet::print_address(const ListenerInfo& l) const {
    if (print_addresses_) print_line("listening name=" + l.spec.name + " address=" + l.bound_text());
}

bool ListenerSet::bind_new(const config::Config& next, List& added, std::string& error) const {
    std::lock_guard lock(mu_);
    for (const auto& spec : next.listeners) {
        bool kept = false;
        for (const auto& l : list_) kept = kept || l->spec.same_socket(spec);  // new certificates keep the socket
        if (kept) continue;
        auto info = bind_listener(spec, workers_.size(), error);
        if (!info) return false;
        added.push_back(std::move(info));
    }
    return true;
}

void ListenerSet::swap(const config::Config& next, List added) {
    List removed;
    {
        std::lock_guard lock(mu_);
        List list;
        for (const auto& spec : next.listeners) {
            for (const auto& l : list_)
                if (l->spec.same_socket(spec)) list.push_back(l);
            for (const auto& l : added)
                if (l->spec.same_socket(spec)) list.push_back(l);
        }
        for (const auto& l : list_)
            if (std::find(list.begin(), list.end(), l) == list.end()) removed.push_back(l);
        list_ = std::move(list);
    }
    for (auto& l : added) {
        hand_over(l);
        print_address(*l);
    }
    for (auto& l : removed) {
        spdlog::info("listener \"{}\" on {} removed: no new connections; open ones get up to {} (timeouts.drain)",
                     l->spec.name, l->bound_text(), config::describe_duration(next.timeouts.drain));
        l->closing = true;
        for (auto& w : workers_) w->remove_listener(l, next.timeouts.drain);
    }
}

std::uint16_t ListenerSet::port(const std::string& name) const {
    std::lock_guard lock(mu_);
    for (const auto& l : list_)
        if (l->spec.name == name) return l->bound.port();
    return 0;
}

ListenerSet::List ListenerSet::list() const {
    std::lock_guard lock(mu_);
    return list_;
}

nlohmann::json ListenerSet::to_json() const {
    std::lock_guard lock(mu_);
    auto out = nlohmann::json::array();
    for (const auto& l : list_)
        out.push_back({{"name", l->spec.name}, {"address", l->bound_text()}, {"connections", l->connections.load()}});
    return out;
}

}  // namespace sluice::proxy
