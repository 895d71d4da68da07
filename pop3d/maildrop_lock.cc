#include "pop3d/maildrop_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace yubin::pop3d {

MaildropLock::~MaildropLock() {
    if (fd_ >= 0) {
        ::close(fd_);  // releases the flock
    }
    held_->erase(user_);
}

MaildropLocks::MaildropLocks(std::string directory) : directory_(std::move(directory)) {}

std::string MaildropLocks::file_name(std::string_view user) {
    std::string out;
    for (char c : user) {
        bool plain = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '@' ||
                     c == '_' || c == '+' || c == '-';
        // A leading '.' would make "." or ".." possible.
        if (plain && !(out.empty() && c == '.')) {
            out.push_back(c);
        } else {
            out.append(fmt::format("%{:02X}", static_cast<unsigned char>(c)));
        }
    }
    return out + ".lock";
}

Result<std::shared_ptr<MaildropLock>> MaildropLocks::acquire(std::string_view user) {
    std::string key(user);
    if (held_->count(key) != 0) {
        return fail(ErrorCode::Exists, "maildrop locked by another session of this process");
    }
    if (::mkdir(directory_.c_str(), 0700) != 0 && errno != EEXIST) {
        return fail(ErrorCode::Io,
                    fmt::format("cannot create {}: {}", directory_, std::strerror(errno)));
    }
    std::string path = directory_ + "/" + file_name(user);
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        return fail(ErrorCode::Io, fmt::format("cannot open {}: {}", path, std::strerror(errno)));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        ::close(fd);
        if (e == EWOULDBLOCK) {
            return fail(ErrorCode::Exists, "maildrop locked by another process");
        }
        return fail(ErrorCode::Io, fmt::format("cannot lock {}: {}", path, std::strerror(e)));
    }
    held_->insert(key);
    return std::shared_ptr<MaildropLock>(new MaildropLock(held_, std::move(key), fd));
}

}  // namespace yubin::pop3d
