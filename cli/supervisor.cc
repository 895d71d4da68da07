#include "cli/supervisor.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>

extern char** environ;

namespace yubin::cli {
namespace {

struct Child {
    const DaemonSpec* spec = nullptr;
    pid_t pid = -1;
    time_t started = 0;
    int fast_restarts = 0;
    time_t restart_at = 0;  // when > 0: waiting to be restarted
    bool gave_up = false;
};

pid_t spawn(const DaemonSpec& spec, const sigset_t& default_mask) {
    std::vector<std::string> argv_store;
    argv_store.push_back(spec.binary);
    argv_store.insert(argv_store.end(), spec.args.begin(), spec.args.end());
    std::vector<char*> argv;
    for (auto& a : argv_store) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // The supervisor blocks its signals to sigtimedwait them; children must
    // start with the normal mask and default handlers.
    posix_spawnattr_setsigmask(&attr, &default_mask);
    sigset_t all;
    sigfillset(&all);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, spec.binary.c_str(), nullptr, &attr, argv.data(), environ);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        std::cerr << "yubin run: cannot start " << spec.name << ": " << std::strerror(rc) << "\n";
        return -1;
    }
    std::cerr << "yubin run: started " << spec.name << " (pid " << pid << ")\n";
    return pid;
}

std::string describe_status(int status) {
    if (WIFEXITED(status)) {
        return "exited with status " + std::to_string(WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
        return std::string("killed by signal ") + strsignal(WTERMSIG(status));
    }
    return "stopped";
}

}  // namespace

std::string find_daemon_binary(const std::string& daemon) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (ec) {
        return {};
    }
    fs::path dir = self.parent_path();
    std::string name = "yubin-" + daemon;
    std::vector<fs::path> candidates;
    // Packagers (and tests) may keep the daemons elsewhere, e.g. /usr/lib/yubin.
    if (const char* libexec = std::getenv("YUBIN_LIBEXEC_DIR"); libexec != nullptr && *libexec) {
        candidates.push_back(fs::path(libexec) / name);
    }
    candidates.push_back(dir.parent_path() / daemon / name);
    candidates.push_back(dir / name);
    for (const fs::path& candidate : candidates) {
        if (::access(candidate.c_str(), X_OK) == 0) {
            return candidate.string();
        }
    }
    return {};
}

int run_supervisor(const std::vector<DaemonSpec>& daemons, const SupervisorOptions& options) {
    sigset_t watched;
    sigemptyset(&watched);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) {
        sigaddset(&watched, s);
    }
    sigset_t previous;
    sigprocmask(SIG_BLOCK, &watched, &previous);
    // The caller may have blocked these already (to hold a Ctrl-C that comes
    // during start-up until here); children must get them unblocked.
    sigset_t child_mask = previous;
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) {
        sigdelset(&child_mask, s);
    }

    std::vector<Child> children(daemons.size());
    for (size_t i = 0; i < daemons.size(); ++i) {
        children[i].spec = &daemons[i];
        children[i].pid = spawn(daemons[i], child_mask);
        children[i].started = time(nullptr);
        if (children[i].pid < 0) {
            children[i].gave_up = true;
        }
    }
    if (daemons.empty()) {
        std::cerr << "yubin run: no daemon is built yet; waiting for Ctrl-C\n";
    }

    bool stopping = false;
    time_t kill_at = 0;
    for (;;) {
        bool any_running = false;
        bool any_alive_or_pending = false;
        for (auto& c : children) {
            any_running |= c.pid > 0;
            any_alive_or_pending |= c.pid > 0 || (!c.gave_up && c.restart_at > 0);
        }
        if (stopping && !any_running) {
            break;
        }
        if (!stopping && !daemons.empty() && !any_alive_or_pending) {
            std::cerr << "yubin run: every daemon has stopped; giving up\n";
            sigprocmask(SIG_SETMASK, &previous, nullptr);
            return 1;
        }
        timespec timeout{1, 0};
        siginfo_t info;
        int sig = sigtimedwait(&watched, &info, &timeout);
        time_t now = time(nullptr);
        if (sig == SIGINT || sig == SIGTERM) {
            if (!stopping) {
                std::cerr << "yubin run: stopping\n";
                stopping = true;
                kill_at = now + options.grace_seconds;
                for (auto& c : children) {
                    if (c.pid > 0) {
                        ::kill(c.pid, SIGTERM);
                    }
                }
            }
        } else if (sig == SIGHUP) {
            for (auto& c : children) {
                if (c.pid > 0) {
                    ::kill(c.pid, SIGHUP);
                }
            }
        }
        // Reap on every wake-up: SIGCHLD signals can coalesce.
        for (;;) {
            int status = 0;
            pid_t pid = ::waitpid(-1, &status, WNOHANG);
            if (pid <= 0) {
                break;
            }
            for (auto& c : children) {
                if (c.pid != pid) {
                    continue;
                }
                c.pid = -1;
                if (stopping) {
                    std::cerr << "yubin run: " << c.spec->name << " " << describe_status(status) << "\n";
                    break;
                }
                std::cerr << "yubin run: " << c.spec->name << " " << describe_status(status) << "\n";
                c.fast_restarts = (now - c.started < 60) ? c.fast_restarts + 1 : 0;
                if (c.fast_restarts > options.max_fast_restarts) {
                    std::cerr << "yubin run: " << c.spec->name << " keeps failing; not restarting\n";
                    c.gave_up = true;
                } else {
                    c.restart_at = now + (1 << std::min(c.fast_restarts, 5));
                }
            }
        }
        if (stopping) {
            if (now >= kill_at) {
                for (auto& c : children) {
                    if (c.pid > 0) {
                        std::cerr << "yubin run: " << c.spec->name << " did not stop; killing\n";
                        ::kill(c.pid, SIGKILL);
                    }
                }
                kill_at = now + 3600;
            }
            continue;
        }
        for (auto& c : children) {
            if (c.pid < 0 && !c.gave_up && c.restart_at > 0 && now >= c.restart_at) {
                c.restart_at = 0;
                c.pid = spawn(*c.spec, child_mask);
                c.started = now;
                if (c.pid < 0) {
                    c.gave_up = true;
                }
            }
        }
    }
    sigprocmask(SIG_SETMASK, &previous, nullptr);
    std::cerr << "yubin run: stopped\n";
    return 0;
}

}  // namespace yubin::cli
