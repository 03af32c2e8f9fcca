// sluice: command line. `run`, `validate`, `drain`, `wait-ready` and `version`.
#include "admin/admin_client.h"
#include "admin/lifecycle_commands.h"
#include "config/load.h"
#include "config/state_file.h"
#include "proxy/net/log.h"
#include "proxy/server/server.h"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <sys/resource.h>

#include <charconv>
#include <filesystem>
#include <iostream>

namespace {

using namespace sluice;

void print_errors(const std::string& path, const config::ConfigErrors& errors) {
    for (const auto& e : errors)
        std::cerr << path << ": " << (e.pointer.empty() ? "/" : e.pointer) << ": " << e.message << "\n";
}

// Every connection and tunnel costs descriptors: take the hard limit the
// system grants instead of the soft default (often 1024), as nginx's
// worker_rlimit_nofile and Go's runtime do. What is left is logged.
void raise_descriptor_limit() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    if (rl.rlim_cur < rl.rlim_max) {
        rlimit want = rl;
        want.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
    }
    spdlog::info("open-file limit: {} descriptors (each client connection takes 1, each proxied one 2)", rl.rlim_cur);
}

struct RunFlags {
    std::string config_path, admin, log_level = "info", log_format = "text", state_dir;
    std::size_t workers = 0;
    bool resume = false, watch = false, no_splice = false;
};

int run(const RunFlags& f) {
    const std::string& config_path = f.config_path;
    const std::string& admin = f.admin;
    const std::string& log_level = f.log_level;
    auto format = proxy::parse_log_format(f.log_format);
    if (!format) {
        std::cerr << "sluice: --log-format \"" << f.log_format << "\" is not text or json\n";
        return 2;
    }
    if (!proxy::init_logging(log_level, *format)) {
        std::cerr << "sluice: --log-level \"" << log_level << "\" is not one of trace, debug, info, warn, error, off\n";
        return 2;
    }
    proxy::ServerOptions options;
    if (f.watch && config_path.empty()) {
        std::cerr << "sluice: --watch needs --config FILE to watch\n";
        return 2;
    }
    if (f.resume && f.state_dir.empty()) {
        std::cerr << "sluice: --resume needs --state-dir DIR to resume from\n";
        return 2;
    }
    if (!f.state_dir.empty()) {
        // Created if missing, as for an emptyDir mounted one level up.
        std::error_code ec;
        std::filesystem::create_directories(f.state_dir, ec);
        if (ec || !std::filesystem::is_directory(f.state_dir)) {
            std::cerr << "sluice: not started: --state-dir " << f.state_dir << " is not a directory sluice can create ("
                      << (ec ? ec.message() : std::string("a file of that name exists")) << ")\n";
            return 1;
        }
    }
    std::optional<config::StateFile> resumed;
    if (f.resume) {
        std::string error;
        resumed = config::read_state_file(f.state_dir, error);
        if (!error.empty()) {
            std::cerr << "sluice: not started: --resume: " << error << "\n";
            return 1;
        }
    }
    // The file layer: --config, or the built-in default.
    if (config_path.empty()) {
        options.config = config::default_config();
        options.builtin_default = true;
    } else {
        auto loaded = config::load_file(config_path);
        if (!loaded.config) {
            print_errors(config_path, loaded.errors);
            std::cerr << "sluice: not started: fix the " << loaded.errors.size() << " error(s) above\n";
            return 1;
        }
        options.config = std::move(*loaded.config);
    }
    if (resumed) {
        // The stored API overlay goes on top of the file just read.
        auto r = config::resume_layers(*resumed, options.config);
        if (r.refused.empty()) {
            spdlog::info("resuming from {}: version {}, the config file with the stored API overlay on top",
                         config::state_file_path(f.state_dir), r.version);
        } else {
            for (const auto& e : r.refused)
                spdlog::error("--resume: {}: {}", e.pointer.empty() ? "/" : e.pointer, e.message);
            spdlog::error("--resume: the config file with the stored API overlay on top is invalid, so the stored "
                          "config (version {}) serves; fix the file, or change the overlay (GET /config/overlay)",
                          r.version);
        }
        options.config = std::move(r.config);
        options.file_layer = std::move(r.file_layer);
        options.overlay = std::move(r.overlay);
        options.initial_version = r.version;
    }
    if (!admin.empty()) {
        std::string host;
        std::uint16_t port = 0;
        if (!admin::parse_host_port(admin, host, port)) {
            std::cerr << "sluice: --admin \"" << admin << "\" is not HOST:PORT, e.g. 127.0.0.1:9901\n";
            return 2;
        }
        options.admin_address = host;
        options.admin_port = port;
    }
    raise_descriptor_limit();
    options.workers = f.workers;
    options.splice = !f.no_splice;
    options.handle_signals = true;
    if (!config_path.empty()) options.config_path = config_path;
    options.watch = f.watch;
    if (!f.state_dir.empty()) options.state_dir = f.state_dir;
    std::string error;
    auto server = proxy::Server::start(std::move(options), error);
    if (!server) {
        std::cerr << "sluice: not started: " << error << "\n";
        return 1;
    }
    spdlog::info("sluice {} running with {} worker(s), config version {}", SLUICE_VERSION, server->worker_count(),
                 server->config_version());
    int status = server->wait();
    spdlog::info("sluice stopped");
    // The logging thread writes the queued lines and is joined before the
    // logger goes: deleting the logger while the thread still lived was safe
    // only by a reference count that TSan cannot see (its release code may be
    // another library's uninstrumented copy), which it reported as a race.
    auto logger = spdlog::default_logger();
    spdlog::shutdown();  // joins the logging thread after the last line
    logger.reset();
    return status;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"sluice: a reverse proxy for HTTP/1.1, WebSockets and streaming responses"};
    app.require_subcommand(1);

    RunFlags flags;
    auto* run_cmd = app.add_subcommand("run", "Run the proxy");
    run_cmd->add_option("--config", flags.config_path, "Config file (.json, .yaml or .yml); without it, the built-in default")
        ->check(CLI::ExistingFile);
    run_cmd->add_option("--admin", flags.admin, "Admin API address HOST:PORT (default from the config, 127.0.0.1:9901)");
    run_cmd->add_option("--state-dir", flags.state_dir, "Write every applied config to DIR/config.json (DIR is created if missing)");
    run_cmd->add_flag("--resume", flags.resume, "Start from DIR/config.json (with --state-dir) when it exists");
    run_cmd->add_option("--workers", flags.workers,
                        "Worker threads (default: the CPUs this process may use, from its affinity and cgroup quota)")
        ->check(CLI::Range(1, 256));
    run_cmd->add_option("--log-level", flags.log_level, "trace, debug, info, warn, error or off")->capture_default_str();
    run_cmd->add_option("--log-format", flags.log_format, "text, or json (one object per line: time, level, msg)")
        ->capture_default_str();
    run_cmd->add_flag("--watch", flags.watch, "Reload --config when the file changes (SIGHUP always reloads)");
    run_cmd->add_flag("--no-splice", flags.no_splice,
                      "WebSocket tunnels copy through user space instead of using splice(2) (diagnosis, benchmarks)");

    std::string validate_path;
    auto* validate_cmd = app.add_subcommand("validate", "Check a config file and list every error");
    validate_cmd->add_option("PATH", validate_path, "Config file (.json, .yaml or .yml)")->required();

    admin::DrainFlags drain_flags;
    auto* drain_cmd = app.add_subcommand("drain", "Ask a running sluice to drain gracefully, as SIGTERM does");
    drain_cmd->add_option("--admin", drain_flags.admin, "Its admin API address HOST:PORT")->capture_default_str();
    drain_cmd->add_option("--token-file", drain_flags.token_file, "The admin token file, when admin.token_file is set");
    drain_cmd->add_flag("--wait", drain_flags.wait, "Return when the drain has ended and sluice has exited");

    admin::WaitReadyFlags ready_flags;
    auto* ready_cmd = app.add_subcommand("wait-ready", "Wait until a sluice answers 200 on its readiness URL");
    ready_cmd->add_option("--url", ready_flags.url, "Readiness URL")->capture_default_str();
    ready_cmd->add_option("--timeout", ready_flags.timeout, "Give up (exit 1) after this long")->capture_default_str();

    app.add_subcommand("version", "Print the version");

    CLI11_PARSE(app, argc, argv);

    if (*drain_cmd) return admin::drain_command(drain_flags);
    if (*ready_cmd) return admin::wait_ready_command(ready_flags);

    if (*run_cmd) return run(flags);
    if (*validate_cmd) {
        auto loaded = config::load_file(validate_path);
        if (!loaded.config) {
            print_errors(validate_path, loaded.errors);
            return 1;
        }
        std::cout << "config OK\n";
        return 0;
    }
    std::cout << "sluice " << SLUICE_VERSION << "\n";
    return 0;
}
