// Dropping root after the listening sockets are bound (ARCHITECTURE.md:
// "Daemons start as root only to bind privileged ports, then drop to the
// yubin user"). Called once, on the main thread, before any other thread
// exists (setuid affects only the calling thread's credentials in the kernel,
// and glibc propagates it to other threads with a signal we don't want to
// depend on).
#pragma once

#include <string>

#include "common/base/error.h"

namespace yubin::daemon {

struct DropResult {
    bool dropped = false;  // false when not running as root: nothing to drop
    unsigned uid = 0;
    unsigned gid = 0;
};

// As root: switches the real, effective and saved uid/gid to `user` (and
// `group`, or the user's primary group when empty), with the user's
// supplementary groups, then proves that root cannot be regained. Not root:
// does nothing. An unknown user or group is an error: a daemon must never
// keep running as root by accident. `user` "root" is refused unless
// allow_root (the daemons' --allow-root flag, which only the quick start's
// supervisor passes when its state directory is unreachable for an
// unprivileged user, e.g. a checkout under /root).
[[nodiscard]] Result<DropResult> drop_privileges(const std::string& user, const std::string& group,
                                                 bool allow_root = false);

}  // namespace yubin::daemon
