#include "config/layers.h"

#include "config/json_pointer.h"

#include <algorithm>
#include <charconv>

namespace sluice::config {
namespace {

using json = nlohmann::json;

struct NamedList {
    const char* list;  // "routes"
    const char* one;   // "route"
};
constexpr NamedList kNamed[] = {{"listeners", "listener"}, {"clusters", "cluster"}, {"routes", "route"}};
// Sections whose fields the API replaces one by one.
constexpr const char* kSections[] = {"timeouts", "limits", "paths", "access_log", "probes"};

const json* find_named(const json& doc, const char* list, const std::string& name) {
    auto it = doc.find(list);
    if (it == doc.end() || !it->is_array()) return nullptr;
    for (const auto& e : *it)
        if (e.is_object() && e.contains("name") && e["name"] == name) return &e;
    return nullptr;
}

bool listed(const json& doc, const char* list, const std::string& name) {
    auto d = doc.find("deleted");
    if (d == doc.end()) return false;
    auto it = d->find(list);
    if (it == d->end()) return false;
    return std::find(it->begin(), it->end(), json(name)) != it->end();
}

json names(const json& doc, const char* list) {
    json out = json::array();
    if (auto it = doc.find(list); it != doc.end() && it->is_array())
        for (const auto& e : *it) out.push_back(e.value("name", ""));
    return out;
}

}  // namespace

json compose_layers(const json& file, const json& overlay) {
    json out = file;
    for (const auto& [list, one] : kNamed) {
        json entries = json::array();
        if (auto it = file.find(list); it != file.end() && it->is_array()) {
            for (const auto& e : *it) {
                const std::string name = e.value("name", "");
                if (listed(overlay, list, name)) continue;
                const json* replaced = find_named(overlay, list, name);
                entries.push_back(replaced ? *replaced : e);
            }
        }
        if (auto it = overlay.find(list); it != overlay.end())
            for (const auto& e : *it)
                if (!find_named(file, list, e.value("name", ""))) entries.push_back(e);
        out[list] = std::move(entries);
    }
    for (const char* section : kSections) {
        auto it = overlay.find(section);
        if (it == overlay.end()) continue;
        json& target = out[section];
        if (!target.is_object()) target = json::object();
        for (auto f = it->begin(); f != it->end(); ++f) target[f.key()] = f.value();
    }
    return out;
}

json overlay_between(const json& file, const json& applied) {
    json overlay = json::object();
    for (const auto& [list, one] : kNamed) {
        json set = json::array(), deleted = json::array();
        for (const auto& e : applied.value(list, json::array())) {
            const json* in_file = find_named(file, list, e.value("name", ""));
            if (!in_file || *in_file != e) set.push_back(e);
        }
        for (const auto& e : file.value(list, json::array()))
            if (!find_named(applied, list, e.value("name", ""))) deleted.push_back(e["name"]);
        if (!set.empty()) overlay[list] = std::move(set);
        if (!deleted.empty()) overlay["deleted"][list] = std::move(deleted);
    }
    for (const char* section : kSections) {
        auto a = applied.find(section);
        if (a == applied.end() || !a->is_object()) continue;
        const json base = file.value(section, json::object());
        json fields = json::object();
        for (auto f = a->begin(); f != a->end(); ++f)
            if (!base.contains(f.key()) || base[f.key()] != f.value()) fields[f.key()] = f.value();
        if (!fields.empty()) overlay[section] = std::move(fields);
    }
    return overlay;
}

std::optional<ConfigError> order_problem(const json& file, const json& overlay, const json& applied) {
    const json composed = compose_layers(file, overlay);
    for (const auto& [list, one] : kNamed) {
        const json want = names(composed, list), got = names(applied, list);
        for (std::size_t i = 0; i < got.size() && i < want.size(); ++i) {
            if (got[i] == want[i]) continue;
            return ConfigError{"/" + std::string(list) + "/" + std::to_string(i),
                               std::string(one) + " " + got[i].dump() + " is out of order: the " + list +
                                   " of the config file keep the file's order and those added through the API "
                                   "follow them, so " + want[i].dump() +
                                   " belongs here; change the order in the config file, or send the " + list +
                                   " in the order GET /config shows them"};
        }
    }
    return std::nullopt;
}

json layer_sources(const json& applied, const json& overlay) {
    json out = json::object();
    for (const auto& [list, one] : kNamed)
        for (const auto& e : applied.value(list, json::array())) {
            const std::string name = e.value("name", "");
            out[std::string(list) + "/" + name] = find_named(overlay, list, name) ? "api" : "file";
        }
    return out;
}

std::string layer_of(const json& applied, const json& overlay, std::string_view pointer) {
    // "/routes/3/cluster" -> "routes", "3"; "/timeouts/connect" -> "timeouts", "connect".
    auto token = [&](std::size_t n) {
        std::string_view rest = pointer;
        for (std::size_t i = 0; i <= n; ++i) {
            if (rest.empty() || rest.front() != '/') return std::string();
            rest.remove_prefix(1);
            auto slash = rest.find('/');
            if (i == n) return std::string(rest.substr(0, slash));
            rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
        }
        return std::string();
    };
    const std::string top = token(0), second = token(1);
    for (const auto& [list, one] : kNamed) {
        if (top != list) continue;
        std::size_t index = 0;
        auto [p, ec] = std::from_chars(second.data(), second.data() + second.size(), index);
        const json entries = applied.value(list, json::array());
        if (ec != std::errc{} || p != second.data() + second.size() || index >= entries.size()) break;
        const std::string name = entries[index].value("name", "");
        if (find_named(overlay, list, name))
            return "the API overlay: " + std::string(one) + " \"" + name + "\"";
        return "the config file: " + std::string(one) + " \"" + name + "\"";
    }
    for (const char* section : kSections)
        if (top == section && overlay.contains(section) && overlay[section].contains(second)) return "the API overlay";
    return "the config file";
}

bool check_overlay_shape(const json& overlay, ConfigErrors& errors) {
    const std::size_t before = errors.size();
    if (!overlay.is_object()) {
        errors.push_back({"", "the overlay must be an object"});
        return false;
    }
    for (auto it = overlay.begin(); it != overlay.end(); ++it) {
        const std::string& key = it.key();
        const std::string p = pointer_join("", key);
        bool named = false;
        for (const auto& [list, one] : kNamed) named = named || key == list;
        if (named) {
            if (!it->is_array()) errors.push_back({p, "must be an array of " + key});
            else
                for (std::size_t i = 0; i < it->size(); ++i)
                    if (!(*it)[i].is_object() || !(*it)[i].contains("name") || !(*it)[i]["name"].is_string())
                        errors.push_back({p + "/" + std::to_string(i), "must be an object with a name"});
            continue;
        }
        if (key == "deleted") {
            if (!it->is_object()) {
                errors.push_back({p, "must be an object of name lists"});
                continue;
            }
            for (auto d = it->begin(); d != it->end(); ++d) {
                bool known = false;
                for (const auto& [list, one] : kNamed) known = known || d.key() == list;
                bool strings = d->is_array() && std::all_of(d->begin(), d->end(), [](const json& n) { return n.is_string(); });
                if (!known || !strings) errors.push_back({pointer_join(p, d.key()), "must be a list of names of listeners, clusters or routes"});
            }
            continue;
        }
        bool section = false;
        for (const char* s : kSections) section = section || key == s;
        if (!section) errors.push_back({p, "unknown part \"" + key + "\" of an overlay"});
        else if (!it->is_object()) errors.push_back({p, "must be an object of fields"});
    }
    return errors.size() == before;
}

}  // namespace sluice::config
