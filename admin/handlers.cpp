#include "admin/handlers.h"

#include "config/bounded_json.h"

#include <charconv>
#include <functional>

namespace sluice::admin {
namespace {

using json = nlohmann::json;

// Strings from a request (names in paths, parse errors quoting the body) may
// hold invalid UTF-8: replaced, so the answer can always be written.
AdminReply reply_json(unsigned status, const json& body) {
    return {status, "application/json", body.dump(2, ' ', false, json::error_handler_t::replace) + "\n", {}};
}
AdminReply reply_text(unsigned status, std::string text) {
    return {status, "text/plain; charset=utf-8", std::move(text), {}};
}
AdminReply reply_error(unsigned status, const std::string& message) { return reply_json(status, {{"error", message}}); }

std::string percent_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            int v = 0;
            auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
            if (ec == std::errc{} && p == s.data() + i + 3) {
                out.push_back(static_cast<char>(v));
                i += 2;
                continue;
            }
        }
        out.push_back(s[i]);
    }
    return out;
}

// The answer to a change, from its outcome.
AdminReply change_reply(const ChangeResult& r, unsigned applied_status = 200) {
    using O = ChangeResult::Outcome;
    switch (r.outcome) {
    case O::applied: return reply_json(applied_status, {{"version", r.version}});
    case O::unchanged: return reply_json(200, {{"version", r.version}, {"unchanged", true}});
    case O::invalid: {
        json details = json::array();
        for (const auto& e : r.errors) details.push_back({{"path", e.pointer.empty() ? "/" : e.pointer}, {"message", e.message}});
        std::string first = r.errors.empty() ? "" : (r.errors[0].pointer.empty() ? "/" : r.errors[0].pointer) + ": " + r.errors[0].message;
        std::string summary = r.errors.size() == 1 ? "the change was refused: " + first
                                                   : "the change was refused: " + std::to_string(r.errors.size()) +
                                                         " problems, the first: " + first;
        return reply_json(400, {{"error", summary}, {"details", details}});
    }
    case O::precondition_failed: return reply_json(412, {{"error", r.message}, {"version", r.version}});
    case O::conflict: return reply_error(409, r.message);
    case O::failed: return reply_error(500, r.message);
    }
    return reply_error(500, "unknown outcome");
}

// Parses If-Match: "N" (an ETag of GET /config), N, or *.
bool parse_if_match(const std::optional<std::string>& header, std::optional<std::uint64_t>& out, std::string& error) {
    if (!header) return true;
    std::string v = *header;
    while (!v.empty() && v.back() == ' ') v.pop_back();
    while (!v.empty() && v.front() == ' ') v.erase(0, 1);
    if (v == "*") return true;
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    std::uint64_t n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec != std::errc{} || p != v.data() + v.size()) {
        error = "If-Match must be a config version as GET /config's ETag gives it, e.g. If-Match: \"3\"";
        return false;
    }
    out = n;
    return true;
}

// Parses a request body that must be one JSON object; `what` names it.
std::optional<json> parse_object(const std::string& body, const std::string& what, AdminReply& error) {
    if (body.find_first_not_of(" \t\r\n") == std::string::npos) {
        error = reply_error(400, "the request needs a body: " + what + " as a JSON object");
        return std::nullopt;
    }
    config::ConfigError problem;
    auto parsed = config::parse_json_bounded(body, problem);
    if (!parsed) {
        if (problem.pointer.empty() && problem.message.rfind("not valid JSON: ", 0) == 0) {
            error = reply_error(400, "the body is not JSON: " + problem.message.substr(16));
        } else {
            std::string pointer = problem.pointer.empty() ? "/" : problem.pointer;
            error = reply_json(400, {{"error", "the body was refused: " + pointer + ": " + problem.message},
                                     {"details", json::array({{{"path", pointer}, {"message", problem.message}}})}});
        }
        return std::nullopt;
    }
    json& doc = *parsed;
    if (!doc.is_object()) {
        error = reply_error(400, "the body must be a JSON object (" + what + "), not " +
                                     std::string(doc.is_array() ? "an array" : doc.type_name()));
        return std::nullopt;
    }
    return std::move(doc);
}

// The index of the element named `name` in doc[list], or -1.
long find_named(const json& doc, const char* list, const std::string& name) {
    if (!doc.contains(list)) return -1;
    const auto& arr = doc[list];
    for (std::size_t i = 0; i < arr.size(); ++i)
        if (arr[i].contains("name") && arr[i]["name"] == name) return static_cast<long>(i);
    return -1;
}

// ?kind=websocket|stream&route=NAME&limit=N (1 to 10000, default 100).
bool parse_connections_query(std::string_view target, ConnectionsQuery& q, std::string& error) {
    auto qm = target.find('?');
    if (qm == std::string_view::npos) return true;
    std::string_view rest = target.substr(qm + 1);
    while (!rest.empty()) {
        auto amp = rest.find('&');
        std::string_view pair = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        if (pair.empty()) continue;
        auto eq = pair.find('=');
        std::string key = percent_decode(pair.substr(0, eq));
        std::string value = eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1));
        if (key == "kind") {
            if (value != "websocket" && value != "stream") {
                error = "kind must be websocket or stream, got \"" + value + "\"";
                return false;
            }
            q.kind = value;
        } else if (key == "route") {
            q.route = value;
        } else if (key == "limit") {
            std::size_t n = 0;
            auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
            if (value.empty() || ec != std::errc{} || p != value.data() + value.size() || n < 1 || n > 10000) {
                error = "limit must be a whole number from 1 to 10000, got \"" + value + "\"";
                return false;
            }
            q.limit = n;
        } else {
            error = "unknown query parameter \"" + key + "\"; GET /connections takes kind, route and limit";
            return false;
        }
    }
    return true;
}

struct Call {
    const AdminRequest& req;
    std::string param;  // the {name} of the path, decoded
    std::optional<std::uint64_t> if_match;
};

struct Endpoint {
    const char* method;
    const char* pattern;  // "/routes/{}" takes one path segment
    bool probes;
    bool mutates;
    std::function<AdminReply(Backend&, const Call&)> run;
};

// Puts `item` (which names itself) into doc[list]: replaces the element of that
// name, or appends. Answers 400 when the body names something else.
std::optional<AdminReply> put_named(json& doc, const char* list, const char* kind, json item, const std::string& name) {
    if (!item.contains("name")) item["name"] = name;
    if (item["name"] != name)
        return reply_error(400, std::string("the ") + kind + "'s name " + item["name"].dump() +
                                    " differs from the name in the path \"" + name + "\"");
    if (!doc.contains(list) || !doc[list].is_array()) doc[list] = json::array();
    long i = find_named(doc, list, name);
    if (i >= 0) doc[list][static_cast<std::size_t>(i)] = std::move(item);
    else doc[list].push_back(std::move(item));
    return std::nullopt;
}

const std::vector<Endpoint>& endpoints() {
    static const std::vector<Endpoint> table = {
        {"GET", "/healthz", true, false, [](Backend&, const Call&) { return reply_text(200, "ok\n"); }},
        {"GET", "/ready", true, false,
         [](Backend& b, const Call&) {
             std::string why = b.not_ready();
             return why.empty() ? reply_text(200, "ready\n") : reply_text(503, "not ready: " + why + "\n");
         }},
        {"GET", "/config", false, false,
         [](Backend& b, const Call&) {
             auto r = reply_json(200, {{"version", b.config_version()},
                                       {"hash", b.config_hash()},
                                       {"config", b.config_json()},
                                       {"sources", b.config_sources()}});
             r.headers.emplace_back("ETag", "\"" + std::to_string(b.config_version()) + "\"");
             return r;
         }},
        {"GET", "/config/overlay", false, false,
         [](Backend& b, const Call&) {
             auto r = reply_json(200, {{"version", b.config_version()}, {"overlay", b.overlay_json()}});
             r.headers.emplace_back("ETag", "\"" + std::to_string(b.config_version()) + "\"");
             return r;
         }},
        {"DELETE", "/config/overlay", false, true,
         [](Backend& b, const Call& c) { return change_reply(b.drop_overlay(c.if_match)); }},
        {"PUT", "/config", false, true,
         [](Backend& b, const Call& c) {
             AdminReply err;
             auto doc = parse_object(c.req.body, "the whole config document", err);
             if (!doc) return err;
             return change_reply(b.change_config(*doc, c.if_match, "PUT /config", false, true));
         }},
        {"POST", "/config/validate", false, false,
         [](Backend& b, const Call& c) {
             AdminReply err;
             auto doc = parse_object(c.req.body, "the whole config document", err);
             if (!doc) return err;
             auto r = b.change_config(*doc, std::nullopt, "POST /config/validate", true, true);
             if (r.outcome == ChangeResult::Outcome::invalid) return change_reply(r);
             return reply_json(200, {{"valid", true}});
         }},
        {"GET", "/listeners", false, false, [](Backend& b, const Call&) { return reply_json(200, b.listeners_json()); }},
        {"GET", "/routes", false, false,
         [](Backend& b, const Call&) { return reply_json(200, b.config_json().value("routes", json::array())); }},
        {"GET", "/routes/{}", false, false,
         [](Backend& b, const Call& c) {
             auto doc = b.config_json();
             long i = find_named(doc, "routes", c.param);
             if (i < 0) return reply_error(404, "no route named \"" + c.param + "\"");
             return reply_json(200, doc["routes"][static_cast<std::size_t>(i)]);
         }},
        {"POST", "/routes", false, true,
         [](Backend& b, const Call& c) {
             AdminReply err;
             auto route = parse_object(c.req.body, "a route", err);
             if (!route) return err;
             auto doc = b.config_json();
             if (route->contains("name") && (*route)["name"].is_string() &&
                 find_named(doc, "routes", (*route)["name"].get<std::string>()) >= 0)
                 return reply_error(409, "a route named " + (*route)["name"].dump() +
                                             " exists already; PUT /routes/{name} replaces it");
             doc["routes"].push_back(*route);
             return change_reply(b.change_config(doc, c.if_match, "POST /routes"), 201);
         }},
        {"PUT", "/routes/{}", false, true,
         [](Backend& b, const Call& c) {
             AdminReply err;
             auto route = parse_object(c.req.body, "a route", err);
             if (!route) return err;
             auto doc = b.config_json();
             if (auto bad = put_named(doc, "routes", "route", *route, c.param)) return *bad;
             return change_reply(b.change_config(doc, c.if_match, "PUT /routes/" + c.param));
         }},
        {"DELETE", "/routes/{}", false, true,
         [](Backend& b, const Call& c) {
             auto doc = b.config_json();
             long i = find_named(doc, "routes", c.param);
             if (i < 0) return reply_error(404, "no route named \"" + c.param + "\"");
             doc["routes"].erase(static_cast<std::size_t>(i));
             return change_reply(b.change_config(doc, c.if_match, "DELETE /routes/" + c.param));
         }},
        {"GET", "/clusters", false, false, [](Backend& b, const Call&) { return reply_json(200, b.clusters_json()); }},
        {"GET", "/clusters/{}", false, false,
         [](Backend& b, const Call& c) {
             auto all = b.clusters_json();
             for (const auto& cl : all["clusters"])
                 if (cl["name"] == c.param) return reply_json(200, cl);
             return reply_error(404, "no cluster named \"" + c.param + "\"");
         }},
        {"PUT", "/clusters/{}", false, true,
         [](Backend& b, const Call& c) {
             AdminReply err;
             auto cluster = parse_object(c.req.body, "a cluster", err);
             if (!cluster) return err;
             auto doc = b.config_json();
             if (auto bad = put_named(doc, "clusters", "cluster", *cluster, c.param)) return *bad;
             return change_reply(b.change_config(doc, c.if_match, "PUT /clusters/" + c.param));
         }},
        {"DELETE", "/clusters/{}", false, true,
         [](Backend& b, const Call& c) {
             auto doc = b.config_json();
             long i = find_named(doc, "clusters", c.param);
             if (i < 0) return reply_error(404, "no cluster named \"" + c.param + "\"");
             std::string users;
             for (const auto& r : doc["routes"])
                 if (r["cluster"] == c.param) users += (users.empty() ? "" : ", ") + r["name"].get<std::string>();
             if (!users.empty())
                 return reply_error(409, "cluster \"" + c.param + "\" is used by route(s) " + users +
                                             "; point them elsewhere or delete them first");
             doc["clusters"].erase(static_cast<std::size_t>(i));
             return change_reply(b.change_config(doc, c.if_match, "DELETE /clusters/" + c.param));
         }},
        {"GET", "/timeouts", false, false,
         [](Backend& b, const Call&) { return reply_json(200, b.config_json()["timeouts"]); }},
        {"PUT", "/timeouts", false, true,
         [](Backend& b, const Call& c) {
             AdminReply err;
             auto timeouts = parse_object(c.req.body, "the global timeouts", err);
             if (!timeouts) return err;
             auto doc = b.config_json();
             doc["timeouts"] = *timeouts;  // replaces: fields left out take their defaults
             return change_reply(b.change_config(doc, c.if_match, "PUT /timeouts"));
         }},
        {"GET", "/metrics", false, false,
         [](Backend& b, const Call&) {
             return AdminReply{200, "text/plain; version=0.0.4; charset=utf-8", b.metrics_text(), {}};
         }},
        {"GET", "/connections", false, false,
         [](Backend& b, const Call& c) {
             ConnectionsQuery q;
             std::string error;
             if (!parse_connections_query(c.req.target, q, error)) return reply_error(400, error);
             return reply_json(200, b.connections_json(q));
         }},
        {"POST", "/drain", false, true,
         [](Backend& b, const Call&) {
             b.drain();
             return reply_json(202, {{"draining", true}});
         }},
    };
    return table;
}

// Matches "/routes/{}" against "/routes/chat"; `param` gets "chat".
bool path_matches(std::string_view pattern, std::string_view path, std::string& param) {
    auto brace = pattern.find("{}");
    if (brace == std::string_view::npos) return pattern == path;
    if (path.substr(0, brace) != pattern.substr(0, brace)) return false;
    std::string_view rest = path.substr(brace);
    if (rest.empty() || rest.find('/') != std::string_view::npos) return false;
    param = percent_decode(rest);
    return true;
}

}  // namespace

AdminReply Handlers::handle(const AdminRequest& req) {
    std::string_view target = req.target;
    std::string path(target.substr(0, target.find('?')));
    if (path.size() > 1 && path.back() == '/') path.pop_back();
    std::string allow;
    for (const auto& e : endpoints()) {
        if (mode_ == Mode::probes && !e.probes && !(probes_metrics_ && std::string_view(e.pattern) == "/metrics")) continue;
        std::string param;
        if (!path_matches(e.pattern, path, param)) continue;
        if (!config::valid_utf8(param)) return reply_error(400, "the name in the path is not valid UTF-8 once percent-decoded");
        if (req.method != e.method) {
            allow += (allow.empty() ? "" : ", ") + std::string(e.method);
            continue;
        }
        Call call{req, param, std::nullopt};
        if (e.mutates) {
            std::string error;
            if (!parse_if_match(req.if_match, call.if_match, error)) return reply_error(400, error);
        }
        return e.run(backend_, call);
    }
    if (!allow.empty()) {
        auto r = reply_error(405, req.method + " is not allowed on " + path + "; use " + allow);
        r.headers.emplace_back("Allow", allow);
        return r;
    }
    if (mode_ == Mode::probes)
        return reply_error(404, probes_metrics_ ? "the probes address serves only GET /healthz, GET /ready and GET /metrics"
                                                : "the probes address serves only GET /healthz and GET /ready");
    return reply_error(404, "no admin endpoint " + req.method + " " + path + "; see docs/admin-api.md for the list");
}

}  // namespace sluice::admin
