#include "common/daemon/daemon.h"

#include <signal.h>
#include <unistd.h>

#include <iostream>

#include <CLI/CLI.hpp>

#include "common/daemon/privileges.h"
#include "common/log/log.h"

namespace yubin::daemon {

Result<std::shared_ptr<const io::TlsContext>> build_server_tls(const config::TlsConfig& tls) {
    io::TlsServerOptions options;
    options.certs.push_back({tls.cert, tls.key});
    for (const auto& pair : tls.sni) {
        options.certs.push_back({pair.cert, pair.key});
    }
    options.min_version = tls.min_version == config::TlsVersion::V1_3 ? io::TlsVersion::Tls13
                                                                      : io::TlsVersion::Tls12;
    if (!tls.ciphers.empty()) {
        options.cipher_list = tls.ciphers;
    }
    return io::TlsContext::server(options);
}

// Signal handling and the shutdown/reload sequences, kept out of run_daemon
// so that function reads as the start-up order.
class RuntimeDriver {
public:
    RuntimeDriver(Runtime& runtime, Service& service) : rt_(runtime), service_(service) {}

    Result<void> watch_signals() {
        for (int signum : {SIGTERM, SIGINT, SIGHUP}) {
            auto watcher = io::SignalWatcher::create(rt_.loop(), signum, [this](int s) {
                if (s == SIGHUP) {
                    reload();
                } else {
                    begin_shutdown(s);
                }
            });
            if (!watcher) {
                return fail(watcher.error());
            }
            watchers_.push_back(std::move(*watcher));
        }
        return {};
    }

    void begin_shutdown(int signum) {
        if (rt_.stopping_) {
            log::info({}, "shutdown_signal_again", {{"signal", strsignal(signum)}});
            return;
        }
        rt_.stopping_ = true;
        auto timeout = rt_.config_->server.shutdown_timeout;
        log::info({}, "shutdown", {{"signal", strsignal(signum)},
                                   {"timeout_s", static_cast<int64_t>(timeout.count())}});
        force_timer_ = std::make_unique<io::Timer>(rt_.loop(), [this] {
            log::warn({}, "shutdown_timeout", {{"note", "transactions still in flight were cut"}});
            finish();
        });
        force_timer_->start(static_cast<uint64_t>(timeout.count()) * 1000);
        service_.shutdown(rt_, [this] { finish(); });
    }

    void reload() {
        auto loaded = config::load_config_file(rt_.config_path_);
        if (!loaded) {
            log::error({}, "reload_failed", {{"config", rt_.config_path_},
                                             {"error", loaded.error().message}});
            return;
        }
        std::shared_ptr<const config::Config> next = *loaded;
        for (const auto& key : config::restart_required_changes(*rt_.config_, *next)) {
            log::warn({}, "reload_needs_restart", {{"key", key}});
        }
        if (auto r = log::reconfigure(next->log); !r) {
            log::error({}, "reload_log_failed", {{"error", r.error().message}});
        }
        if (auto r = log::reopen(); !r) {
            log::error({}, "log_reopen_failed", {{"error", r.error().message}});
        }
        auto tls = build_server_tls(next->tls);
        if (tls) {
            rt_.server_tls_ = *tls;
        } else {
            log::error({}, "reload_tls_failed", {{"error", tls.error().message},
                                                 {"note", "keeping the previous certificates"}});
        }
        rt_.config_ = std::move(next);
        service_.reload(rt_);
        log::info({}, "reloaded", {{"config", rt_.config_path_}});
    }

private:
    void finish() {
        if (finished_) {
            return;
        }
        finished_ = true;
        force_timer_.reset();
        watchers_.clear();
        rt_.loop().stop();
    }

    Runtime& rt_;
    Service& service_;
    std::vector<std::unique_ptr<io::SignalWatcher>> watchers_;
    std::unique_ptr<io::Timer> force_timer_;
    bool finished_ = false;
};

int run_daemon(int argc, char** argv, const std::string& name, Service& service) {
    CLI::App app{name + " — part of the yubin mail server suite"};
    std::string config_flag;
    bool check_only = false;
    bool allow_root = false;
    app.add_option("-c,--config", config_flag,
                   "Config file (default: conf/yubin.toml if present, else /etc/yubin/yubin.toml)");
    app.add_flag("--check-config", check_only, "Validate the config and exit");
    app.add_flag("--allow-root", allow_root,
                 "Keep running as root when [server] user is \"root\" (quick start on loopback only)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }

    Runtime rt;
    rt.name_ = name;
    rt.config_path_ = config::find_config_path(config_flag);
    auto loaded = config::load_config_file(rt.config_path_);
    if (!loaded) {
        std::cerr << name << ": " << loaded.error().message << "\n";
        return kExitConfig;
    }
    rt.config_ = *loaded;
    if (check_only) {
        std::cout << rt.config_path_ << ": ok\n";
        return 0;
    }
    if (auto r = log::init(name, rt.config_->log); !r) {
        std::cerr << name << ": " << r.error().message << "\n";
        return kExitConfig;
    }
    // Writes to a peer that went away must be an EPIPE error, not a signal
    // that kills the daemon.
    ::signal(SIGPIPE, SIG_IGN);

    auto tls = build_server_tls(rt.config_->tls);
    if (!tls) {
        log::error({}, "tls_config_failed", {{"error", tls.error().message}});
        std::cerr << name << ": [tls]: " << tls.error().message << "\n";
        return kExitConfig;
    }
    rt.server_tls_ = *tls;
    auto loop = io::Loop::create();
    if (!loop) {
        log::error({}, "loop_failed", {{"error", loop.error().message}});
        return 1;
    }
    rt.loop_ = std::move(*loop);

    // From bind() on, the service owns handles on the loop: it must release
    // them before the loop goes (Runtime's members are destroyed after this).
    struct Teardown {
        Service& service;
        Runtime& rt;
        ~Teardown() { service.teardown(rt); }
    } teardown{service, rt};
    if (auto r = service.bind(rt); !r) {
        log::error({}, "bind_failed", {{"error", r.error().message}});
        std::cerr << name << ": " << r.error().message << "\n";
        return 1;
    }
    auto dropped = drop_privileges(rt.config_->server.user, rt.config_->server.group, allow_root);
    if (!dropped) {
        log::error({}, "privilege_drop_failed", {{"error", dropped.error().message}});
        std::cerr << name << ": " << dropped.error().message << "\n";
        return 1;
    }
    if (allow_root && ::geteuid() == 0) {
        log::warn({}, "running_as_root", {{"reason", "--allow-root and [server] user = root"}});
    }
    log::info({}, "start", {{"config", rt.config_path_},
                            {"uid", static_cast<uint64_t>(dropped->uid)},
                            {"dropped_root", dropped->dropped}});

    RuntimeDriver driver(rt, service);
    if (auto r = driver.watch_signals(); !r) {
        log::error({}, "signals_failed", {{"error", r.error().message}});
        return 1;
    }
    if (auto r = service.start(rt); !r) {
        log::error({}, "start_failed", {{"error", r.error().message}});
        std::cerr << name << ": " << r.error().message << "\n";
        return 1;
    }
    rt.loop().run();
    log::info({}, "stopped", {});
    return 0;
}

}  // namespace yubin::daemon
