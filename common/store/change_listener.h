// Change notification between processes sharing a store (ARCHITECTURE.md:
// "wake-ups are hints"). Each listening process binds a UNIX datagram socket
// <store>/notify/<role>-<pid>.sock; after every commit the writer of whichever
// process committed sends one small datagram listing what changed to every
// socket in that directory, removing sockets nobody is bound to any more
// (ECONNREFUSED). Nobody holds a read transaction while waiting: a listener
// re-reads the store when woken, and should also poll slowly as a fallback
// (a full receive buffer drops hints).
//
// ChangeListener: owned by the daemon; poll fd() for readability on its loop
// (uv_poll) and call drain() from that same thread. No libuv dependency here.
// Notifier: owned by the store's writer thread, used only from it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/error.h"
#include "common/store/types.h"

namespace yubin::store {

class ChangeListener {
  public:
    // store_path is StoreOptions::path; role names the process kind ("imapd").
    // The socket path must fit sockaddr_un (about 107 bytes).
    [[nodiscard]] static Result<std::unique_ptr<ChangeListener>> open(std::string_view store_path,
                                                                      std::string_view role);
    ~ChangeListener();
    ChangeListener(const ChangeListener&) = delete;
    ChangeListener& operator=(const ChangeListener&) = delete;

    // Non-blocking datagram socket; readable when a hint arrived.
    int fd() const { return fd_; }
    // Reads every pending datagram; returns the changes, de-duplicated, in
    // arrival order. Never blocks.
    std::vector<Change> drain();
    const std::string& socket_path() const { return path_; }

  private:
    ChangeListener(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
    int fd_ = -1;
    std::string path_;
};

class Notifier {
  public:
    explicit Notifier(std::string notify_dir);
    ~Notifier();
    Notifier(const Notifier&) = delete;
    Notifier& operator=(const Notifier&) = delete;

    // Sends the changes (or one Kind::All if there are too many for one
    // datagram) to every listener. Best effort: errors are ignored.
    void send(const std::vector<Change>& changes);

  private:
    void refresh_targets();
    std::string dir_;
    int fd_ = -1;
    std::vector<std::string> targets_;
    int64_t dir_mtime_ns_ = -1;
};

// Datagram payload: a sequence of 9-byte entries (kind byte, big-endian id).
std::string encode_changes(const std::vector<Change>& changes);
std::vector<Change> decode_changes(std::string_view datagram);

}  // namespace yubin::store
