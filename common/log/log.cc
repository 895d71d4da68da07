#include "common/log/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>

#include <fmt/format.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/base_sink.h>

namespace yubin::log {

namespace {

// A sink that writes each line with a single write(2) to a descriptor opened
// with O_APPEND. spdlog's own file sinks go through stdio, which may split a
// long line into several write(2) calls; with several daemons appending to one
// file, lines could then interleave mid-line. Written by hand for that reason.
class AppendSink final : public spdlog::sinks::base_sink<std::mutex> {
  public:
    // Takes ownership of fd (unless it is stderr). path "" = stderr.
    AppendSink(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
    ~AppendSink() override { close_fd(fd_); }

    const std::string& path() const { return path_; }

    // Opens the same path again and swaps descriptors; the old one is closed.
    Result<void> reopen() {
        if (path_.empty()) {
            return {};
        }
        auto fd = open_append(path_);
        if (!fd) {
            return fail(fd.error());
        }
        std::lock_guard<std::mutex> lock(mutex_);
        close_fd(fd_);
        fd_ = *fd;
        return {};
    }

    static Result<int> open_append(const std::string& path) {
        int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0) {
            return fail(ErrorCode::Io, fmt::format("{}: {}", path, std::strerror(errno)));
        }
        return fd;
    }

  protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        // The payload already ends in '\n' (see write()): one line, one write.
        const char* p = msg.payload.data();
        size_t left = msg.payload.size();
        while (left > 0) {
            ssize_t n = ::write(fd_, p, left);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return;  // disk full, closed pipe: drop the line
            }
            p += n;
            left -= static_cast<size_t>(n);
        }
    }
    void flush_() override {}  // no user-space buffer

  private:
    static void close_fd(int fd) {
        if (fd > STDERR_FILENO) {
            ::close(fd);
        }
    }

    int fd_;
    std::string path_;
};

struct State {
    std::string daemon = "yubin";
    int pid = 0;
    LogFormat format = LogFormat::Text;
    const Clock* clock = &SystemClock::instance();
    std::shared_ptr<AppendSink> sink;
    std::shared_ptr<spdlog::logger> logger;
};

std::shared_ptr<const State> make_state(std::string daemon, LogFormat format, const Clock* clock,
                                        std::shared_ptr<AppendSink> sink) {
    auto s = std::make_shared<State>();
    s->daemon = std::move(daemon);
    s->pid = static_cast<int>(::getpid());
    s->format = format;
    s->clock = clock;
    s->sink = std::move(sink);
    s->logger = std::make_shared<spdlog::logger>(s->daemon, s->sink);
    s->logger->set_level(spdlog::level::trace);  // filtering is ours, before formatting
    return s;
}

std::atomic<int> g_level{static_cast<int>(LogLevel::Info)};

// Readers take a snapshot; init/reconfigure publish a new one. The old state
// (and its file) lives until the last writer using it is done.
std::atomic<std::shared_ptr<const State>>& state_slot() {
    static std::atomic<std::shared_ptr<const State>> slot{
        make_state("yubin", LogFormat::Text, &SystemClock::instance(),
                   std::make_shared<AppendSink>(STDERR_FILENO, ""))};
    return slot;
}

// Serialises init/reconfigure/reopen against each other (not against writers).
std::mutex& admin_mutex() {
    static std::mutex m;
    return m;
}

Result<std::shared_ptr<AppendSink>> open_sink(const std::string& file) {
    if (file.empty()) {
        return std::make_shared<AppendSink>(STDERR_FILENO, "");
    }
    auto fd = AppendSink::open_append(file);
    if (!fd) {
        return fail(fd.error());
    }
    return std::make_shared<AppendSink>(*fd, file);
}

spdlog::level::level_enum to_spdlog(LogLevel level) {
    switch (level) {
        case LogLevel::Trace:
            return spdlog::level::trace;
        case LogLevel::Debug:
            return spdlog::level::debug;
        case LogLevel::Info:
            return spdlog::level::info;
        case LogLevel::Warn:
            return spdlog::level::warn;
        case LogLevel::Error:
            return spdlog::level::err;
    }
    return spdlog::level::info;
}

// ---- escaping ----

// Length of the valid UTF-8 sequence at s[i], or 0 if the byte starts none
// (RFC 3629 §4: no overlongs, no surrogates, nothing above U+10FFFF).
size_t utf8_sequence(std::string_view s, size_t i) {
    auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
    unsigned char c = b(0);
    size_t n = c < 0x80                   ? 1
               : (c >= 0xC2 && c <= 0xDF) ? 2
               : (c >= 0xE0 && c <= 0xEF) ? 3
               : (c >= 0xF0 && c <= 0xF4) ? 4
                                          : 0;
    if (n == 0 || i + n > s.size()) {
        return 0;
    }
    for (size_t k = 1; k < n; ++k) {
        if ((b(k) & 0xC0) != 0x80) {
            return 0;
        }
    }
    if ((c == 0xE0 && b(1) < 0xA0) || (c == 0xED && b(1) > 0x9F) || (c == 0xF0 && b(1) < 0x90) ||
        (c == 0xF4 && b(1) > 0x8F)) {
        return 0;
    }
    return n;
}

std::string_view clip(std::string_view s, bool& clipped) {
    clipped = s.size() > kMaxValueBytes;
    return clipped ? s.substr(0, kMaxValueBytes) : s;
}

bool needs_quotes(std::string_view s) {
    if (s.empty()) {
        return true;
    }
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u == 0x7f || c == '"' || c == '=' || c == '\\' || u >= 0x80) {
            return true;
        }
    }
    return false;
}

// Text form: bare when safe, else "..." with C escapes; valid UTF-8 kept.
void append_text(std::string& out, std::string_view raw) {
    bool clipped = false;
    std::string_view s = clip(raw, clipped);
    if (!clipped && !needs_quotes(s)) {
        out += s;
        return;
    }
    out += '"';
    for (size_t i = 0; i < s.size();) {
        auto u = static_cast<unsigned char>(s[i]);
        if (u >= 0x80) {
            size_t n = utf8_sequence(s, i);
            if (n > 0) {
                out.append(s.substr(i, n));
                i += n;
            } else {
                fmt::format_to(std::back_inserter(out), "\\x{:02x}", u);
                ++i;
            }
            continue;
        }
        switch (s[i]) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (u < 0x20 || u == 0x7f) {
                    fmt::format_to(std::back_inserter(out), "\\x{:02x}", u);
                } else {
                    out += s[i];
                }
        }
        ++i;
    }
    if (clipped) {
        out += "...";
    }
    out += '"';
}

// A bare token (id, event, key): anything unsafe becomes '_' so a line keeps
// its shape whatever a caller passes.
void append_token(std::string& out, std::string_view s) {
    if (s.empty()) {
        out += '-';
        return;
    }
    bool clipped = false;
    for (char c : clip(s, clipped)) {
        auto u = static_cast<unsigned char>(c);
        bool ok = u > 0x20 && u < 0x7f && c != '"' && c != '=' && c != '\\';
        out += ok ? c : '_';
    }
}

// JSON string (RFC 8259 §7); invalid UTF-8 becomes U+FFFD.
void append_json_string(std::string& out, std::string_view raw) {
    bool clipped = false;
    std::string_view s = clip(raw, clipped);
    out += '"';
    for (size_t i = 0; i < s.size();) {
        auto u = static_cast<unsigned char>(s[i]);
        if (u >= 0x80) {
            size_t n = utf8_sequence(s, i);
            if (n > 0) {
                out.append(s.substr(i, n));
                i += n;
            } else {
                out += "\\ufffd";
                ++i;
            }
            continue;
        }
        switch (s[i]) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (u < 0x20 || u == 0x7f) {
                    fmt::format_to(std::back_inserter(out), "\\u{:04x}", u);
                } else {
                    out += s[i];
                }
        }
        ++i;
    }
    if (clipped) {
        out += "...";
    }
    out += '"';
}

void append_text_value(std::string& out, const Value& v) {
    switch (v.type()) {
        case Value::Type::Text:
            append_text(out, v.text());
            break;
        case Value::Type::Signed:
            fmt::format_to(std::back_inserter(out), "{}", v.as_signed());
            break;
        case Value::Type::Unsigned:
            fmt::format_to(std::back_inserter(out), "{}", v.as_unsigned());
            break;
        case Value::Type::Bool:
            out += v.as_bool() ? "yes" : "no";
            break;
    }
}

void append_json_value(std::string& out, const Value& v) {
    switch (v.type()) {
        case Value::Type::Text:
            append_json_string(out, v.text());
            break;
        case Value::Type::Signed:
            fmt::format_to(std::back_inserter(out), "{}", v.as_signed());
            break;
        case Value::Type::Unsigned:
            fmt::format_to(std::back_inserter(out), "{}", v.as_unsigned());
            break;
        case Value::Type::Bool:
            out += v.as_bool() ? "true" : "false";
            break;
    }
}

}  // namespace

std::string format_timestamp(int64_t time_us) {
    int64_t seconds = time_us / 1000000;
    int64_t millis = (time_us % 1000000) / 1000;
    if (millis < 0) {  // before 1970: floor, not truncate
        millis += 1000;
        seconds -= 1;
    }
    time_t t = static_cast<time_t>(seconds);
    struct tm tm {};
    gmtime_r(&t, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

std::string format_line(LogFormat format, const LineContext& context, LogLevel level,
                        std::string_view id, std::string_view event, Fields fields) {
    std::string out;
    out.reserve(128);
    const std::string_view level_name = config::log_level_name(level);
    if (format == LogFormat::Json) {
        out += "{\"time\":\"";
        out += format_timestamp(context.time_us);
        out += "\",\"daemon\":";
        append_json_string(out, context.daemon);
        fmt::format_to(std::back_inserter(out), ",\"pid\":{},\"level\":\"{}\",\"id\":", context.pid,
                       level_name);
        append_json_string(out, id);
        out += ",\"event\":";
        append_json_string(out, event);
        for (const auto& f : fields) {
            out += ',';
            append_json_string(out, f.key);
            out += ':';
            append_json_value(out, f.value);
        }
        out += '}';
        return out;
    }
    out += format_timestamp(context.time_us);
    out += ' ';
    append_token(out, context.daemon);
    fmt::format_to(std::back_inserter(out), "[{}] {} ", context.pid, level_name);
    append_token(out, id);
    out += ' ';
    append_token(out, event);
    for (const auto& f : fields) {
        out += ' ';
        append_token(out, f.key);
        out += '=';
        append_text_value(out, f.value);
    }
    return out;
}

Result<void> init(std::string daemon_name, const config::LogConfig& config, const Clock& clock) {
    std::lock_guard<std::mutex> lock(admin_mutex());
    auto sink = open_sink(config.file);
    if (!sink) {
        return fail(sink.error());
    }
    state_slot().store(make_state(std::move(daemon_name), config.format, &clock, std::move(*sink)));
    set_level(config.level);
    return {};
}

Result<void> reconfigure(const config::LogConfig& config) {
    std::lock_guard<std::mutex> lock(admin_mutex());
    std::shared_ptr<const State> current = state_slot().load();
    std::shared_ptr<AppendSink> sink = current->sink;
    if (sink->path() != config.file) {
        auto opened = open_sink(config.file);
        if (!opened) {
            return fail(opened.error());
        }
        sink = std::move(*opened);
    }
    auto next = make_state(current->daemon, config.format, current->clock, std::move(sink));
    state_slot().store(std::move(next));
    set_level(config.level);
    return {};
}

Result<void> reopen() {
    std::lock_guard<std::mutex> lock(admin_mutex());
    return state_slot().load()->sink->reopen();
}

void set_level(LogLevel level) noexcept {
    g_level.store(static_cast<int>(level));
}

LogLevel level() noexcept {
    return static_cast<LogLevel>(g_level.load());
}

bool enabled(LogLevel level) noexcept {
    return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

void write(LogLevel level, std::string_view id, std::string_view event, Fields fields) noexcept {
    if (!enabled(level)) {
        return;
    }
    try {
        std::shared_ptr<const State> s = state_slot().load();
        std::string line = format_line(s->format, {s->clock->now_us(), s->daemon, s->pid}, level,
                                       id, event, fields);
        line += '\n';
        s->logger->log(to_spdlog(level), spdlog::string_view_t(line.data(), line.size()));
    } catch (...) {
        // Out of memory while logging: nothing sensible left to do.
    }
}

}  // namespace yubin::log
