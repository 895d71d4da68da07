// The daemon skeleton every yubin daemon's main() hands itself to:
//
//   int main(int argc, char** argv) {
//       SmtpService service;
//       return yubin::daemon::run_daemon(argc, argv, "yubin-smtpd", service);
//   }
//
// run_daemon parses --config, loads and validates the config (a bad config:
// the `file:line: key: problem` lines on stderr, exit 78), starts logging,
// builds the loop and the server TLS context, lets the service bind its
// listeners (as root if started as root), drops privileges to [server] user,
// lets the service start, then runs the loop:
// - SIGTERM / SIGINT: Service::shutdown() stops accepting and finishes the
//   transactions in flight, then calls done(); after [server]
//   shutdown_timeout the loop stops anyway. Exit status 0.
// - SIGHUP: the config file is loaded again. If it is valid, logging is
//   reconfigured and the log file reopened, the TLS context is rebuilt (new
//   certificates for NEW connections; sessions in progress keep theirs), and
//   Service::reload() applies new limits. Keys that need a restart are logged
//   and keep their running value. An invalid file is logged and ignored.
// Threads: everything runs on the main thread's loop.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/base/error.h"
#include "common/config/config.h"
#include "common/io/loop.h"
#include "common/io/tls_context.h"

namespace yubin::daemon {

class Runtime;

// What a daemon plugs into the skeleton. All calls come on the loop thread.
class Service {
public:
    virtual ~Service() = default;
    // Creates listening sockets (still root if started as root). Nothing else.
    [[nodiscard]] virtual Result<void> bind(Runtime& runtime) = 0;
    // After the privilege drop: open the store, start accepting.
    [[nodiscard]] virtual Result<void> start(Runtime& runtime) = 0;
    // A valid reloaded config is now runtime.config(); apply what can change
    // (limits, timeouts). runtime.server_tls() already holds the new context.
    virtual void reload(Runtime& runtime) = 0;
    // Stop accepting, let transactions in flight finish, then call done()
    // (once). Sessions idle between transactions may be closed at once.
    virtual void shutdown(Runtime& runtime, std::function<void()> done) = 0;
    // Last call, on every exit path after bind() (a failed start, the end of
    // shutdown, the shutdown timeout): destroy listeners, connections,
    // timers and the store now, while the loop still exists to close their
    // handles. Nothing is called after it.
    virtual void teardown(Runtime& runtime) = 0;
};

class Runtime {
public:
    io::Loop& loop() { return *loop_; }
    const std::string& name() const { return name_; }
    const std::string& config_path() const { return config_path_; }
    std::shared_ptr<const config::Config> config() const { return config_; }
    // Null when the [tls] files could not be loaded at start (the daemon
    // refuses to start then) — so never null inside Service calls.
    std::shared_ptr<const io::TlsContext> server_tls() const { return server_tls_; }
    bool stopping() const { return stopping_; }

private:
    friend int run_daemon(int, char**, const std::string&, Service&);
    friend class RuntimeDriver;
    std::string name_;
    std::string config_path_;
    std::unique_ptr<io::Loop> loop_;
    std::shared_ptr<const config::Config> config_;
    std::shared_ptr<const io::TlsContext> server_tls_;
    bool stopping_ = false;
};

// Builds the server TLS context from [tls]: the default pair plus the
// [[tls.sni]] pairs, minimum version and TLS 1.2 ciphers.
[[nodiscard]] Result<std::shared_ptr<const io::TlsContext>> build_server_tls(
    const config::TlsConfig& tls);

// Runs the daemon; returns the process exit status.
int run_daemon(int argc, char** argv, const std::string& name, Service& service);

// sysexits.h EX_CONFIG: what a daemon returns for a bad config.
inline constexpr int kExitConfig = 78;

}  // namespace yubin::daemon
