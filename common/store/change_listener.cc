#include "common/store/change_listener.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "common/store/codec.h"

namespace yubin::store {

namespace {

constexpr size_t kEntrySize = 9;
// Well under the default datagram limits; more changes than this collapse into
// Kind::All and the listener re-reads everything it watches.
constexpr size_t kMaxDatagram = 4096;

bool fill_sockaddr(const std::string& path, sockaddr_un& addr) {
    std::memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path)) {
        return false;
    }
    std::memcpy(addr.sun_path, path.data(), path.size());
    return true;
}

}  // namespace

std::string encode_changes(const std::vector<Change>& changes) {
    std::string out;
    if (changes.size() * kEntrySize > kMaxDatagram) {
        out.push_back(static_cast<char>(Change::Kind::All));
        codec::put_be64(out, 0);
        return out;
    }
    for (const auto& c : changes) {
        out.push_back(static_cast<char>(c.kind));
        codec::put_be64(out, c.id);
    }
    return out;
}

std::vector<Change> decode_changes(std::string_view datagram) {
    std::vector<Change> out;
    for (size_t pos = 0; pos + kEntrySize <= datagram.size(); pos += kEntrySize) {
        auto kind = static_cast<uint8_t>(datagram[pos]);
        if (kind < 1 || kind > 4) {
            continue;
        }
        out.push_back(Change{static_cast<Change::Kind>(kind), codec::get_be64(datagram, pos + 1)});
    }
    return out;
}

Result<std::unique_ptr<ChangeListener>> ChangeListener::open(std::string_view store_path,
                                                             std::string_view role) {
    std::string dir = fmt::format("{}/notify", store_path);
    if (::mkdir(dir.c_str(), 0770) != 0 && errno != EEXIST) {
        return fail(ErrorCode::Io, fmt::format("mkdir {}: {}", dir, std::strerror(errno)));
    }
    std::string path = fmt::format("{}/{}-{}.sock", dir, role, ::getpid());
    sockaddr_un addr{};
    if (!fill_sockaddr(path, addr)) {
        return fail(ErrorCode::Invalid, fmt::format("socket path too long: {}", path));
    }
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return fail(ErrorCode::Io, fmt::format("socket: {}", std::strerror(errno)));
    }
    // A previous process with the same pid left its socket behind.
    ::unlink(path.c_str());
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        int err = errno;
        ::close(fd);
        return fail(ErrorCode::Io, fmt::format("bind {}: {}", path, std::strerror(err)));
    }
    return std::unique_ptr<ChangeListener>(new ChangeListener(fd, std::move(path)));
}

ChangeListener::~ChangeListener() {
    if (fd_ >= 0) {
        ::close(fd_);
        ::unlink(path_.c_str());
    }
}

std::vector<Change> ChangeListener::drain() {
    std::vector<Change> out;
    char buf[kMaxDatagram + 64];
    for (;;) {
        ssize_t n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;  // EAGAIN: drained
        }
        for (const auto& c : decode_changes(std::string_view(buf, static_cast<size_t>(n)))) {
            if (std::find(out.begin(), out.end(), c) == out.end()) {
                out.push_back(c);
            }
        }
    }
    return out;
}

Notifier::Notifier(std::string notify_dir) : dir_(std::move(notify_dir)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

Notifier::~Notifier() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

void Notifier::refresh_targets() {
    // Re-list only when the directory changed: a stat per commit is cheap, a
    // readdir per commit at thousands of commits/s is not.
    struct stat st {};
    if (::stat(dir_.c_str(), &st) != 0) {
        targets_.clear();
        return;
    }
    int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
    if (mtime == dir_mtime_ns_) {
        return;
    }
    dir_mtime_ns_ = mtime;
    targets_.clear();
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir_.c_str()), ::closedir);
    if (!d) {
        return;
    }
    while (dirent* e = ::readdir(d.get())) {
        std::string_view name = e->d_name;
        if (name.size() > 5 && name.substr(name.size() - 5) == ".sock") {
            targets_.push_back(dir_ + "/" + std::string(name));
        }
    }
}

void Notifier::send(const std::vector<Change>& changes) {
    if (fd_ < 0 || changes.empty()) {
        return;
    }
    refresh_targets();
    std::string msg = encode_changes(changes);
    bool removed = false;
    for (const auto& target : targets_) {
        sockaddr_un addr{};
        if (!fill_sockaddr(target, addr)) {
            continue;
        }
        ssize_t n = ::sendto(fd_, msg.data(), msg.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                             reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
        if (n < 0 && (errno == ECONNREFUSED || errno == ENOENT)) {
            // Nobody is bound there any more (a listener that died without
            // cleaning up): remove it so later commits do not try again.
            ::unlink(target.c_str());
            removed = true;
        }
        // EAGAIN (receiver's buffer full) is ignored: hints may be dropped; the
        // receiver's slow poll catches up.
    }
    if (removed) {
        dir_mtime_ns_ = -1;
    }
}

}  // namespace yubin::store
