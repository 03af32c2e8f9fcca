#include "config/state_file.h"

#include "config/bounded_json.h"
#include "config/layers.h"
#include "config/load.h"
#include "config/serialize.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace sluice::config {
namespace {

std::string os_error(const std::string& what, const std::string& path) {
    return what + " " + path + ": " + std::strerror(errno);
}

bool write_all(int fd, const std::string& data) {
    std::size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd, data.data() + off, data.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        off += static_cast<std::size_t>(n);
    }
    return true;
}

}  // namespace

std::string state_file_path(const std::string& dir) { return dir + "/config.json"; }

bool write_state_file(const std::string& dir, std::uint64_t version, const Config& cfg, const nlohmann::json& overlay,
                      const nlohmann::json& file_layer, std::string& error) {
    const std::string path = state_file_path(dir);
    const std::string tmp = path + ".tmp";
    nlohmann::json doc = {{"version", version}, {"config", to_json(cfg)}, {"overlay", overlay}, {"file", file_layer}};
    std::string text = doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";

    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        error = os_error("cannot create", tmp);
        return false;
    }
    if (!write_all(fd, text) || ::fsync(fd) != 0) {
        error = os_error("cannot write", tmp);
        ::close(fd);
        ::unlink(tmp.c_str());
        return false;
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        error = os_error("cannot rename onto", path);
        ::unlink(tmp.c_str());
        return false;
    }
    // The rename is durable only once the directory entry is.
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || ::fsync(dfd) != 0) {
        error = os_error("cannot sync the directory", dir);
        if (dfd >= 0) ::close(dfd);
        return false;
    }
    ::close(dfd);
    return true;
}

std::optional<StateFile> read_state_file(const std::string& dir, std::string& error) {
    const std::string path = state_file_path(dir);
    error.clear();
    std::ifstream in(path);
    if (!in) {
        if (errno != ENOENT) error = os_error("cannot read", path);
        return std::nullopt;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    ConfigError problem;
    auto parsed = parse_json_bounded(ss.str(), problem);
    if (!parsed) {
        error = path + ": " + (problem.pointer.empty() ? "" : problem.pointer + ": ") + problem.message;
        return std::nullopt;
    }
    nlohmann::json& doc = *parsed;
    if (!doc.is_object() || !doc.contains("version") || !doc["version"].is_number_unsigned() || !doc.contains("config")) {
        error = path + " is not a sluice state file: expected {\"version\": N, \"config\": {...}}";
        return std::nullopt;
    }
    auto loaded = load_document(doc["config"]);
    if (!loaded.config) {
        error = path + ": " + loaded.errors.front().pointer + ": " + loaded.errors.front().message;
        return std::nullopt;
    }
    StateFile state{doc["version"].get<std::uint64_t>(), std::move(*loaded.config), std::nullopt, std::nullopt};
    if (auto it = doc.find("overlay"); it != doc.end()) {
        ConfigErrors problems;
        if (!check_overlay_shape(*it, problems)) {
            error = path + ": /overlay" + problems.front().pointer + ": " + problems.front().message;
            return std::nullopt;
        }
        state.overlay = *it;
    }
    if (auto it = doc.find("file"); it != doc.end()) {
        auto file = load_document(*it);
        if (!file.config) {
            error = path + ": /file" + file.errors.front().pointer + ": " + file.errors.front().message;
            return std::nullopt;
        }
        state.file = to_json(*file.config);
    }
    return state;
}

Resumed resume_layers(const StateFile& state, const Config& file_cfg) {
    const nlohmann::json file = to_json(file_cfg);
    const nlohmann::json stored = to_json(state.config);
    // A state file from before layers: the overlay is what the stored config changed.
    const nlohmann::json overlay = state.overlay ? *state.overlay : overlay_between(file, stored);
    const nlohmann::json composed = compose_layers(file, overlay);
    auto loaded = load_document(composed);
    if (loaded.config) {
        // admin is a start-up setting (and --admin overrides it): not a change of the config served.
        Config compared = *loaded.config;
        compared.admin = state.config.admin;
        const bool same = compared == state.config;
        nlohmann::json applied = to_json(*loaded.config);
        return Resumed{std::move(*loaded.config), file, overlay_between(file, applied),
                       same ? state.version : state.version + 1, {}};
    }
    Resumed r{state.config, state.file ? *state.file : stored, state.file ? overlay : nlohmann::json::object(),
              state.version, std::move(loaded.errors)};
    for (auto& e : r.refused) e.message += " (this comes from " + layer_of(composed, overlay, e.pointer) + ")";
    return r;
}

}  // namespace sluice::config
