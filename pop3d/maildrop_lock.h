// The exclusive maildrop lock of a POP3 session (RFC 1939 §4: "the POP3
// server then acquires an exclusive-access lock on the maildrop"), held from
// login to the end of the session, UPDATE included.
//
// Two layers, because several yubin-pop3d processes may serve one store
// (SO_REUSEPORT): an in-process set of locked users (cheap, and clear in
// logs) and an flock(2) on <state_dir>/pop3-locks/<user>.lock, which the
// kernel releases when the process dies, so a crashed daemon never leaves a
// maildrop locked. The lock file itself is left in place (removing it would
// race with a process that just opened it).
//
// Ownership: MaildropLocks is owned by the service; each acquired lock is a
// shared_ptr so that an expunge still in flight can keep it alive after its
// connection is gone. Threads: the loop thread only.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "common/base/error.h"

namespace yubin::pop3d {

class MaildropLocks;

class MaildropLock {
public:
    ~MaildropLock();
    MaildropLock(const MaildropLock&) = delete;
    MaildropLock& operator=(const MaildropLock&) = delete;
    const std::string& user() const { return user_; }

private:
    friend class MaildropLocks;
    MaildropLock(std::shared_ptr<std::set<std::string>> held, std::string user, int fd)
        : held_(std::move(held)), user_(std::move(user)), fd_(fd) {}
    std::shared_ptr<std::set<std::string>> held_;
    std::string user_;
    int fd_;
};

class MaildropLocks {
public:
    // directory: where the lock files live (created with mode 0700 if missing).
    explicit MaildropLocks(std::string directory);

    // ErrorCode::Exists when another session (here or in another process)
    // holds the user's maildrop; Io when the lock file cannot be used.
    [[nodiscard]] Result<std::shared_ptr<MaildropLock>> acquire(std::string_view user);

    // The file name used for a user (exposed for tests): the canonical
    // address with every byte outside [a-z0-9.@_+-] written as %XX, so no
    // address can escape the directory or collide with another.
    static std::string file_name(std::string_view user);

private:
    std::string directory_;
    std::shared_ptr<std::set<std::string>> held_ = std::make_shared<std::set<std::string>>();
};

}  // namespace yubin::pop3d
