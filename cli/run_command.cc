#include "cli/run_command.h"

#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <vector>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/password_input.h"
#include "cli/self_signed.h"
#include "cli/supervisor.h"
#include "common/auth/password.h"
#include "common/daemon/privileges.h"

extern char** environ;

namespace yubin::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kDemoDomain = "example.test";
constexpr const char* kDemoUser = "demo@example.test";
// Started as root, the quick start runs the daemons as this system user (created
// if missing), as production does.
constexpr const char* kQuickStartUser = "yubin";

struct RunArgs {
    std::string state = "var";
};

std::string current_user_name() {
    if (passwd* pw = ::getpwuid(::geteuid()); pw != nullptr) {
        return pw->pw_name;
    }
    return "root";
}

Result<void> write_text_file(const fs::path& path, const std::string& text, fs::perms perms) {
    fs::path tmp = path;
    tmp += ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        if (!out) {
            return fail(ErrorCode::Io, "cannot write " + tmp.string());
        }
        out << text;
        if (!out.flush()) {
            return fail(ErrorCode::Io, "cannot write " + tmp.string());
        }
    }
    std::error_code ec;
    fs::permissions(tmp, perms, ec);
    fs::rename(tmp, path, ec);
    if (ec) {
        return fail(ErrorCode::Io, "cannot rename to " + path.string() + ": " + ec.message());
    }
    return {};
}

std::optional<passwd> lookup_user(const std::string& name, std::vector<char>& buf) {
    buf.assign(16384, 0);
    passwd pw{};
    passwd* found = nullptr;
    if (::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
        return std::nullopt;
    }
    return pw;
}

// Root only: creates the system user the daemons drop to, as a package would.
Result<void> ensure_system_user(const std::string& name) {
    std::vector<char> buf;
    if (lookup_user(name, buf)) {
        return {};
    }
    std::vector<std::string> args = {"useradd", "--system", "--user-group", "--no-create-home",
                                     "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                                     name};
    std::vector<char*> argv;
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    pid_t pid = -1;
    if (posix_spawnp(&pid, "useradd", nullptr, nullptr, argv.data(), environ) != 0) {
        return fail(ErrorCode::Io, "cannot run useradd to create the user " + name);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !lookup_user(name, buf)) {
        return fail(ErrorCode::Io, "useradd could not create the user " + name);
    }
    std::cout << "yubin run: created the system user " << name << "\n";
    return {};
}

// Whether `user` can reach and write `dir`: tried for real in a child that
// drops to the user (a path under /root, mode 0700, is not reachable).
bool reachable_by(const std::string& user, const fs::path& dir) {
    pid_t pid = ::fork();
    if (pid < 0) {
        return false;
    }
    if (pid == 0) {
        auto dropped = daemon::drop_privileges(user, "");
        bool ok = dropped && ::access(dir.c_str(), R_OK | W_OK | X_OK) == 0;
        ::_exit(ok ? 0 : 1);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Gives the whole state tree to the daemons' user.
Result<void> chown_tree(const fs::path& root, const std::string& user) {
    std::vector<char> buf;
    auto pw = lookup_user(user, buf);
    if (!pw) {
        return fail(ErrorCode::NotFound, "no user " + user);
    }
    std::error_code ec;
    if (::lchown(root.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        return fail(ErrorCode::Io, "cannot chown " + root.string());
    }
    for (auto it = fs::recursive_directory_iterator(root, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (::lchown(it->path().c_str(), pw->pw_uid, pw->pw_gid) != 0) {
            return fail(ErrorCode::Io, "cannot chown " + it->path().string());
        }
    }
    if (ec) {
        return fail(ErrorCode::Io, "cannot walk " + root.string() + ": " + ec.message());
    }
    return {};
}

std::string read_credentials_password(const fs::path& path) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("password=", 0) == 0) {
            return line.substr(9);
        }
    }
    return {};
}

// Ensures the demo domain and user exist and that var/demo-credentials holds
// a password that works. Returns the password.
Result<std::string> ensure_demo_account(store::Store& s, const fs::path& credentials_file) {
    if (auto local = s.is_local_domain(kDemoDomain); !local) {
        return fail(local.error());
    } else if (!*local) {
        if (auto r = s.add_domain(kDemoDomain); !r) {
            return fail(r.error());
        }
    }
    std::string password = read_credentials_password(credentials_file);
    auto user = s.get_user(kDemoUser);
    bool exists = user.has_value();
    if (!exists && user.error().code != ErrorCode::NotFound) {
        return fail(user.error());
    }
    if (exists && !password.empty() && auth::verify_password(password, user->password_hash)) {
        return password;
    }
    password = random_password();
    auto hash = auth::hash_password(password);
    if (!hash) {
        return fail(hash.error());
    }
    if (exists) {
        if (auto r = s.set_password_hash(kDemoUser, *hash); !r) {
            return fail(r.error());
        }
    } else if (auto added = s.add_user(kDemoUser, *hash, 0); !added) {
        return fail(added.error());
    }
    auto written = write_text_file(
        credentials_file, std::string("user=") + kDemoUser + "\npassword=" + password + "\n",
        fs::perms::owner_read | fs::perms::owner_write);
    if (!written) {
        return fail(written.error());
    }
    return password;
}

std::string join_addresses(const std::vector<config::SocketAddress>& addresses) {
    std::string out;
    for (const auto& a : addresses) {
        out += (out.empty() ? "" : ", ") + a.to_string();
    }
    return out.empty() ? "(none)" : out;
}

int run_quickstart(Context& context, const RunArgs& args) {
    // Hold SIGINT/SIGTERM/SIGHUP from here on: one that arrives while the
    // state is prepared stays pending and the supervisor acts on it at once,
    // so a stop request is never lost and never kills us half-way.
    sigset_t held;
    sigemptyset(&held);
    for (int s : {SIGINT, SIGTERM, SIGHUP}) {
        sigaddset(&held, s);
    }
    sigprocmask(SIG_BLOCK, &held, nullptr);
    std::error_code ec;
    fs::path state = fs::absolute(args.state, ec);
    fs::create_directories(state / "tls", ec);
    if (ec) {
        return report_error({ErrorCode::Io, "cannot create " + state.string() + ": " + ec.message()});
    }
    fs::path config_file = state / "yubin.toml";
    const bool as_root = ::geteuid() == 0;
    std::string run_user = current_user_name();
    if (as_root) {
        // Production's path: daemons start as root, bind, then drop to an
        // unprivileged user that owns the state. A state directory that user
        // cannot reach (a checkout under /root) leaves root as the only
        // choice for this loopback-only demo, said loudly.
        run_user = "root";
        if (auto r = ensure_system_user(kQuickStartUser); !r) {
            std::cerr << "yubin run: " << r.error().message << "\n";
        } else if (chown_tree(state, kQuickStartUser) && reachable_by(kQuickStartUser, state)) {
            run_user = kQuickStartUser;
        }
    }
    if (!fs::exists(config_file)) {
        auto r = write_text_file(config_file, config::quickstart_config_toml(state.string(), run_user),
                                 fs::perms::owner_read | fs::perms::owner_write |
                                     fs::perms::group_read | fs::perms::others_read);
        if (!r) {
            return report_error(r.error());
        }
        std::cout << "yubin run: wrote " << config_file.string() << "\n";
    }
    context.config_path = config_file.string();
    auto cfg = context.config();
    if (!cfg) {
        return report_error(cfg.error());
    }
    const config::Config& c = **cfg;

    if (!fs::exists(c.tls.cert) || !fs::exists(c.tls.key)) {
        SelfSignedRequest request;
        request.common_name = c.server.hostname;
        request.dns_names = {c.server.hostname, "mail.example.test", "localhost"};
        request.ip_addresses = {"127.0.0.1", "::1"};
        if (auto r = write_self_signed(request, c.tls.cert, c.tls.key); !r) {
            return report_error(r.error());
        }
        std::cout << "yubin run: generated a self-signed certificate in " << c.tls.cert << "\n";
    }

    std::string password;
    {
        auto s = context.store();
        if (!s) {
            return report_error(s.error());
        }
        auto demo = ensure_demo_account(**s, state / "demo-credentials");
        if (!demo) {
            return report_error(demo.error());
        }
        password = *demo;
    }

    bool allow_root = false;
    if (as_root && c.server.user == "root") {
        allow_root = true;
        std::cout << "yubin run: WARNING: " << state.string() << " is not reachable for an "
                  << "unprivileged user, so the daemons run as root (loopback ports only). Put "
                  << "the checkout elsewhere (e.g. /srv or /opt) to run them as " << kQuickStartUser
                  << ".\n";
    } else if (as_root) {
        if (auto r = chown_tree(state, c.server.user); !r) {
            return report_error(r.error());
        }
    }
    std::vector<std::string> daemon_args;
    if (allow_root) {
        daemon_args.push_back("--allow-root");
    }
    daemon_args.push_back("--config");
    daemon_args.push_back(config_file.string());

    std::vector<DaemonSpec> daemons;
    std::vector<std::string> missing;
    for (const char* name : {"smtpd", "queue", "imapd", "pop3d"}) {
        std::string binary = find_daemon_binary(name);
        if (binary.empty()) {
            missing.push_back(std::string("yubin-") + name);
            continue;
        }
        daemons.push_back({std::string("yubin-") + name, binary, daemon_args});
    }

    std::ostringstream banner;
    banner << "\n"
           << "yubin quick start — state in " << state.string() << "\n"
           << "  SMTP (MX)           " << join_addresses(c.smtpd.mx) << "\n"
           << "  Submission          " << join_addresses(c.smtpd.submission) << " (STARTTLS)\n"
           << "  Submissions         " << join_addresses(c.smtpd.submissions) << " (TLS)\n"
           << "  IMAP                " << join_addresses(c.imapd.imap) << " (STARTTLS)\n"
           << "  IMAPS               " << join_addresses(c.imapd.imaps) << "\n"
           << "  POP3                " << join_addresses(c.pop3d.pop3) << " (STLS)\n"
           << "  POP3S               " << join_addresses(c.pop3d.pop3s) << "\n"
           << "  demo user           " << kDemoUser << "\n"
           << "  demo password       " << password << "   (also in "
           << (state / "demo-credentials").string() << ")\n"
           << "  certificate         " << c.tls.cert << " (self-signed)\n"
           << "  daemons run as      " << (as_root ? c.server.user : current_user_name()) << "\n";
    if (!missing.empty()) {
        banner << "  not built yet       ";
        for (size_t i = 0; i < missing.size(); ++i) {
            banner << (i ? ", " : "") << missing[i];
        }
        banner << "\n";
    }
    banner << "Press Ctrl-C to stop.\n";
    std::cout << banner.str() << std::flush;

    SupervisorOptions options;
    options.grace_seconds = static_cast<int>(c.server.shutdown_timeout.count()) + 5;
    return run_supervisor(daemons, options);
}

}  // namespace

void add_run_command(CLI::App& app, Context& context, Action& action) {
    static RunArgs args;
    auto* run = app.add_subcommand(
        "run", "Quick start: prepare STATE (config, certificate, store, demo user) and run the suite");
    run->add_option("--state", args.state, "State directory")->capture_default_str();
    run->callback([&] { action = [&] { return run_quickstart(context, args); }; });
}

void add_config_commands(CLI::App& app, Context& context, Action& action) {
    auto* cfg = app.add_subcommand("config", "Configuration tools")->require_subcommand(1);
    auto* check = cfg->add_subcommand("check", "Validate the configuration file");
    check->callback([&] {
        action = [&] {
            auto loaded = context.config();
            if (!loaded) {
                std::cerr << loaded.error().message << "\n";
                return 1;
            }
            std::cout << (*loaded)->source << ": ok\n";
            return 0;
        };
    });
    auto* show = cfg->add_subcommand("show", "Print the effective configuration with every default");
    show->callback([&] {
        action = [&] {
            auto loaded = context.config();
            if (!loaded) {
                std::cerr << loaded.error().message << "\n";
                return 1;
            }
            std::cout << config::render_config_toml(**loaded);
            return 0;
        };
    });
}

}  // namespace yubin::cli
