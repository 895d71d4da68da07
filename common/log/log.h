// Structured logging: one line per event, each carrying a stable id (a session
// id "S…" or a queue id "Q…", see id.h) so that one message can be followed
// across daemons with `grep <id>`.
//
//   log::info(session_id, "connect", {{"client", peer}, {"tls", false}});
// writes, in text form (one line):
//   2026-11-28T16:00:00.123Z yubin-smtpd[1234] info S0hd8k… connect client=203.0.113.5:51234 tls=no
// or in JSON form (one line):
//   {"time":"2026-11-28T16:00:00.123Z","daemon":"yubin-smtpd","pid":1234,"level":"info",
//    "id":"S0hd8k…","event":"connect","client":"203.0.113.5:51234","tls":false}
//
// Events are short snake_case words chosen by the caller ("connect",
// "mail_from", "delivered"); details go in fields, never in the event, so that
// the text form stays grep-able and the JSON form stays queryable. Values are
// escaped so that a line is always one line: in text form a value with spaces,
// quotes, '=' or control bytes is double-quoted with C escapes; bytes that are
// not UTF-8 become \xHH (text) or U+FFFD (JSON). A value longer than
// kMaxValueBytes is cut and marked with "...". The keys time, daemon, pid,
// level, id and event are taken.
//
// Threads: every function may be called from any thread at any time (the loop
// thread, libuv workers, the store writer). A line is formatted in the calling
// thread and written with one write(2) under the sink's lock, to a file opened
// with O_APPEND, so several processes may share one log file without tearing
// lines. Before init() lines go to stderr at level info as "yubin".
//
// Ownership: the module owns the sink; init(), reconfigure() and reopen()
// replace or reopen it while other threads keep logging. The Clock passed to
// init() must outlive logging (tests pass a ManualClock).
#pragma once

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "common/base/clock.h"
#include "common/base/error.h"
#include "common/config/config.h"

namespace yubin::log {

using config::LogFormat;
using config::LogLevel;

inline constexpr size_t kMaxValueBytes = 2048;

// A field's value: text, an integer or a boolean (rendered yes/no in text,
// true/false in JSON). Holds a view: build fields in the logging call itself.
class Value {
  public:
    enum class Type { Text, Signed, Unsigned, Bool };

    Value(const char* s) : type_(Type::Text), text_(s != nullptr ? s : "") {}
    Value(std::string_view s) : type_(Type::Text), text_(s) {}
    Value(const std::string& s) : type_(Type::Text), text_(s) {}
    Value(bool b) : type_(Type::Bool), b_(b) {}
    template <std::signed_integral T>
    Value(T v) : type_(Type::Signed), i_(v) {}
    template <std::unsigned_integral T>
    requires(!std::same_as<T, bool>) Value(T v) : type_(Type::Unsigned), u_(v) {}

    Type type() const { return type_; }
    std::string_view text() const { return text_; }
    int64_t as_signed() const { return i_; }
    uint64_t as_unsigned() const { return u_; }
    bool as_bool() const { return b_; }

  private:
    Type type_;
    std::string_view text_;
    int64_t i_ = 0;
    uint64_t u_ = 0;
    bool b_ = false;
};

struct Field {
    std::string_view key;
    Value value;
};

using Fields = std::initializer_list<Field>;

// Sets the daemon name ("yubin-smtpd"), the level, the format and the file
// ("" = stderr). Call once at start, and again in a child after fork() (the
// pid is taken here). Fails only when the file cannot be opened; logging then
// stays as it was.
[[nodiscard]] Result<void> init(std::string daemon_name, const config::LogConfig& config,
                                const Clock& clock = SystemClock::instance());

// Applies a reloaded [log] section: level and format at once; a different
// file is opened (and the old one closed) before the switch.
[[nodiscard]] Result<void> reconfigure(const config::LogConfig& config);

// Reopens the log file by name, for SIGHUP after logrotate moved it. A no-op
// when logging to stderr. On failure the old file stays in use.
[[nodiscard]] Result<void> reopen();

void set_level(LogLevel level) noexcept;
LogLevel level() noexcept;
bool enabled(LogLevel level) noexcept;

// Writes one line if `level` is enabled. `id` may be empty ("-" is written).
// Never throws; a failed write is dropped (there is nowhere left to report it).
void write(LogLevel level, std::string_view id, std::string_view event,
           Fields fields = {}) noexcept;

inline void trace(std::string_view id, std::string_view event, Fields fields = {}) noexcept {
    write(LogLevel::Trace, id, event, fields);
}
inline void debug(std::string_view id, std::string_view event, Fields fields = {}) noexcept {
    write(LogLevel::Debug, id, event, fields);
}
inline void info(std::string_view id, std::string_view event, Fields fields = {}) noexcept {
    write(LogLevel::Info, id, event, fields);
}
inline void warn(std::string_view id, std::string_view event, Fields fields = {}) noexcept {
    write(LogLevel::Warn, id, event, fields);
}
inline void error(std::string_view id, std::string_view event, Fields fields = {}) noexcept {
    write(LogLevel::Error, id, event, fields);
}

// The line write() would produce, without the trailing newline; pure, for
// tests and for tools that print in the log's format.
struct LineContext {
    int64_t time_us = 0;  // wall clock, microseconds since the epoch
    std::string_view daemon;
    int pid = 0;
};
std::string format_line(LogFormat format, const LineContext& context, LogLevel level,
                        std::string_view id, std::string_view event, Fields fields);

// "2026-11-28T16:00:00.123Z"
std::string format_timestamp(int64_t time_us);

}  // namespace yubin::log
