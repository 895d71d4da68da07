#include "common/daemon/privileges.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace yubin::daemon {
namespace {

Error os_error(const std::string& what) {
    return Error{ErrorCode::Io, what + ": " + std::strerror(errno)};
}

}  // namespace

Result<DropResult> drop_privileges(const std::string& user, const std::string& group,
                                   bool allow_root) {
    if (::geteuid() != 0) {
        return DropResult{false, ::geteuid(), ::getegid()};
    }
    if (user == "root" && allow_root) {
        return DropResult{false, 0, ::getegid()};
    }
    if (user.empty() || user == "root") {
        return fail(ErrorCode::Invalid,
                    "refusing to run as root: set [server] user to an unprivileged account");
    }
    // getpwnam_r with a heap buffer: the static-buffer getpwnam is not reentrant.
    long size_hint = ::sysconf(_SC_GETPW_R_SIZE_MAX);
    std::vector<char> buf(size_hint > 0 ? static_cast<size_t>(size_hint) : 16384);
    passwd pw{};
    passwd* found = nullptr;
    if (::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
        return fail(ErrorCode::NotFound, "[server] user \"" + user + "\" does not exist");
    }
    gid_t gid = pw.pw_gid;
    if (!group.empty()) {
        std::vector<char> gbuf(16384);
        ::group gr{};
        ::group* gfound = nullptr;
        if (::getgrnam_r(group.c_str(), &gr, gbuf.data(), gbuf.size(), &gfound) != 0 ||
            gfound == nullptr) {
            return fail(ErrorCode::NotFound, "[server] group \"" + group + "\" does not exist");
        }
        gid = gfound->gr_gid;
    }
    if (::initgroups(pw.pw_name, gid) != 0) {
        return fail(os_error("initgroups"));
    }
    if (::setresgid(gid, gid, gid) != 0) {
        return fail(os_error("setresgid"));
    }
    if (::setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid) != 0) {
        return fail(os_error("setresuid"));
    }
    // Proof, not hope: if root can be regained, something is badly wrong.
    if (pw.pw_uid != 0 && (::setuid(0) == 0 || ::seteuid(0) == 0)) {
        return fail(ErrorCode::Internal, "root privileges could be regained after dropping them");
    }
    return DropResult{true, pw.pw_uid, gid};
}

}  // namespace yubin::daemon
