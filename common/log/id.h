// Ids that tie log lines together: a session id ("S…") for each connection and
// a queue id ("Q…") for each accepted message, written in every line about
// them so that `grep <id>` follows a message across smtpd, queue and imapd.
//
// An id is a prefix letter and 15 base32 characters (Crockford's alphabet,
// lower case) encoding 74 bits: milliseconds since 2024-01-01 (42 bits, good
// until 2163), a counter within the millisecond (10 bits) and the process id
// (22 bits, Linux's pid_max limit). Ids from one process strictly increase;
// processes alive at the same time differ by pid; a restarted process with a
// reused pid starts at a later millisecond. If a process asks for more than
// 1024 ids in one millisecond the time part runs ahead of the clock until the
// clock catches up, which keeps ids unique. A clock stepped backwards by more
// than a restart takes could repeat an id of a dead process with the same
// pid; accepted. Ids sort by creation time across processes.
//
// Threads: next() is lock-free and may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/clock.h"

namespace yubin::log {

inline constexpr int64_t kIdEpochMs = 1704067200000;  // 2024-01-01T00:00:00Z
inline constexpr size_t kIdLength = 16;               // prefix + 15 characters

class IdGenerator {
  public:
    // pid 0 = ask getpid() at every call, so a forked child never repeats its
    // parent's ids. Tests pass a fixed pid and a ManualClock.
    explicit IdGenerator(const Clock& clock = SystemClock::instance(), uint32_t pid = 0)
        : clock_(clock), pid_(pid) {}

    std::string next(char prefix);

  private:
    const Clock& clock_;
    uint32_t pid_;
    std::atomic<uint64_t> last_{0};  // (ms << 10) | counter of the last id
};

std::string new_session_id();  // "S…", from a process-wide generator
std::string new_queue_id();    // "Q…"

struct IdParts {
    char prefix = 0;
    int64_t time_ms = 0;  // Unix epoch milliseconds
    uint32_t counter = 0;
    uint32_t pid = 0;
};
// Decodes an id (for `yubin` tools and tests); nullopt if it is not one.
std::optional<IdParts> parse_id(std::string_view id);

}  // namespace yubin::log
