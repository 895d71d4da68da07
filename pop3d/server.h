// yubin-pop3d's driver: the daemon::Service that listens on [pop3d] pop3
// (STLS) and pop3s (implicit TLS), and one Pop3Connection per client that
// moves bytes between an io::Connection, a proto::Reader and the sans-I/O
// pop3d::Session, carrying out the session's requests:
// - Login: the user record is read from the store on the loop thread, the
//   password verified on the libuv thread pool (thread_pool.h), a failure
//   answered after a growing delay; on success the maildrop lock is taken
//   (maildrop_lock.h) and the INBOX listed once: that list is the session's
//   snapshot (mail delivered later shows at the next login).
// - Retrieve: one short store read on the loop thread.
// - Update: one Store::expunge_async call; its callback (store writer
//   thread) is posted back to the loop. The lock is held until it returns.
//
// Ownership: the service owns the store, the listeners, the locks and the
// connections; a connection owns its io::Connection and Session. Threads:
// everything on the loop thread except the pool work and the store callback,
// which only post back.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/daemon/daemon.h"
#include "common/io/tcp_listener.h"
#include "common/store/store.h"
#include "pop3d/maildrop_lock.h"
#include "pop3d/session.h"

namespace yubin::pop3d {

class Pop3Connection;

// Limits that are not config keys (the others are in [pop3d]).
struct Pop3Limits {
    // The failed-login delay doubles per failure up to this multiple of
    // [pop3d] auth_failure_delay.
    uint32_t auth_failure_delay_max_factor = 16;
    // Stop reading commands while more than this is queued and unsent (a
    // client pipelining RETRs without reading the answers).
    size_t max_write_queue = 1 << 20;
};

class Pop3Service final : public daemon::Service {
public:
    Pop3Service();
    ~Pop3Service() override;

    Result<void> bind(daemon::Runtime& runtime) override;
    Result<void> start(daemon::Runtime& runtime) override;
    void reload(daemon::Runtime& runtime) override;
    void shutdown(daemon::Runtime& runtime, std::function<void()> done) override;
    void teardown(daemon::Runtime& runtime) override;

    // ---- for Pop3Connection ----
    daemon::Runtime& runtime() { return *runtime_; }
    store::Store& store() { return *store_; }
    MaildropLocks& locks() { return *locks_; }
    const Pop3Limits& limits() const { return limits_; }
    // A hash that never matches, verified for unknown users so that they
    // take as long to reject as a wrong password.
    const std::string& dummy_hash() const { return dummy_hash_; }
    // Lists the user's INBOX with exact wire sizes (cached per message).
    [[nodiscard]] Result<Maildrop> snapshot(const std::string& user);
    // LOGIN-DELAY (RFC 2449 §6.8), enforced within this process: true if the
    // user logged in less than [pop3d] login_delay ago; otherwise records now.
    bool login_too_soon(const std::string& user);
    // Deferred removal: the connection may be inside its own callback.
    void remove(Pop3Connection* connection);

private:
    struct Listening {
        std::unique_ptr<io::TcpListener> listener;
        bool implicit_tls = false;
    };
    [[nodiscard]] Result<void> add_listener(daemon::Runtime& runtime, const std::string& address,
                                            bool implicit_tls);
    [[nodiscard]] Result<void> start_serving(daemon::Runtime& runtime);
    void accept(std::unique_ptr<io::Connection> conn, bool implicit_tls);
    void maybe_done();

    daemon::Runtime* runtime_ = nullptr;
    std::vector<Listening> listeners_;
    std::unique_ptr<store::Store> store_;
    std::unique_ptr<MaildropLocks> locks_;
    std::unique_ptr<io::Timer> reader_check_timer_;
    std::list<std::unique_ptr<Pop3Connection>> connections_;
    std::function<void()> done_;
    Pop3Limits limits_;
    std::string dummy_hash_;
    std::unordered_map<std::string, uint64_t> last_login_ms_;
    // (mailbox id, uid) → octets on the wire. Messages never change, so an
    // entry never goes stale; the map is simply cleared when it grows large.
    struct KeyHash {
        size_t operator()(const std::pair<uint64_t, uint32_t>& k) const noexcept {
            return std::hash<uint64_t>{}(k.first * 0x9E3779B97F4A7C15ULL ^ k.second);
        }
    };
    std::unordered_map<std::pair<uint64_t, uint32_t>, uint64_t, KeyHash> octets_cache_;
};

}  // namespace yubin::pop3d
