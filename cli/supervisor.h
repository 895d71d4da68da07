// The quick start's small supervisor (`yubin run`): starts every yubin daemon
// whose binary exists, forwards SIGHUP, restarts a daemon that dies (with a
// growing delay, giving up after repeated fast crashes), and on SIGINT or
// SIGTERM stops them all with SIGTERM, then SIGKILL after the grace period.
// Production uses the systemd units in contrib/systemd instead.
// Single-threaded; uses sigtimedwait rather than an event loop because it
// only waits for signals.
#pragma once

#include <string>
#include <vector>

namespace yubin::cli {

struct DaemonSpec {
    std::string name;                // "yubin-smtpd"
    std::string binary;              // absolute path
    std::vector<std::string> args;   // without argv[0]
};

struct SupervisorOptions {
    int grace_seconds = 30;       // SIGTERM → SIGKILL
    int max_fast_restarts = 5;    // crashes within 60 s of start before giving up
};

// Runs until SIGINT/SIGTERM (returns 0 after a clean stop) or until every
// daemon has given up (returns 1). With no daemons, it waits for the signal.
int run_supervisor(const std::vector<DaemonSpec>& daemons, const SupervisorOptions& options);

// Finds the binary of `daemon` ("smtpd") next to the running `yubin`: in the
// build tree (<exe dir>/../smtpd/yubin-smtpd) or installed alongside it;
// $YUBIN_LIBEXEC_DIR, when set, is searched first.
std::string find_daemon_binary(const std::string& daemon);

}  // namespace yubin::cli
