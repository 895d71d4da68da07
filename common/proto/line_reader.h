// The bounded protocol reader every daemon puts between its socket and its
// sans-I/O session. It is fed arbitrary byte chunks (whatever one read()
// returned) and yields protocol units one at a time:
//   - CRLF lines (SMTP commands, IMAP command lines, POP3 commands), with a
//     maximum length, and flags for bare LF, bare CR and NUL;
//   - IMAP literals {n} / {n+} (RFC 9051 §4.3, RFC 7888), once the caller
//     accepts them;
//   - SMTP DATA dot-data (RFC 5321 §4.5.2), unstuffed and streamed;
//   - BDAT chunks (RFC 3030 §2), exactly n bytes, streamed.
//
// It never blocks and never calls out: feed() stores bytes, next() returns the
// next event or NeedMore. Between two events the caller may switch modes
// (start_dot_data, start_chunk, accept_literal); bytes that arrived pipelined
// behind a command simply wait in the buffer and are read in the new mode, so
// order is kept. discard_buffered() drops everything not yet consumed, which a
// driver must do right after STARTTLS/STLS (RFC 3207 §4.2).
//
// Memory: the reader holds at most max_line bytes of an unfinished line plus
// the last chunk fed; data, literal and chunk bytes are handed out as views
// into that buffer and never accumulated. A driver that stops calling next()
// (a session waiting for a lookup) must also pause reading from its socket,
// otherwise the buffer grows by what it keeps feeding: buffered() tells.
//
// Ownership and threads: a Reader is a plain value owned by one session and
// used by one thread. Views in an Event stay valid until the next feed() or
// discard_buffered() call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace yubin::proto {

// Flags on a line or on a whole DATA body: what a strict reader must not accept
// silently (RFC 5321 §2.3.8: CR and LF only as the CRLF pair).
enum LineFlag : uint32_t {
    kBareLf = 1u << 0,  // an LF not preceded by CR (for a line: it was the terminator)
    kBareCr = 1u << 1,  // a CR not followed by LF
    kNul = 1u << 2,     // a NUL byte
};

enum class EventKind {
    NeedMore,     // nothing more can be decided until more bytes are fed
    Line,         // one complete line, text without its terminator
    LineTooLong,  // a line longer than max_line; its remainder up to LF is skipped
    LiteralData,  // a piece of an accepted IMAP literal
    LiteralEnd,   // the accepted literal is complete; line mode resumes
    DotData,      // a piece of unstuffed DATA body (CRLFs included)
    DotEnd,       // the "CRLF.CRLF" terminator was read; see data_* fields
    ChunkData,    // a piece of a BDAT chunk
    ChunkEnd,     // the chunk's n bytes have all been read; line mode resumes
};

std::string_view event_kind_name(EventKind kind) noexcept;

struct Event {
    EventKind kind = EventKind::NeedMore;
    // Line: the text without CRLF/LF. *Data: the piece. Empty otherwise.
    // Pieces may be split anywhere: only their concatenation is meaningful.
    std::string_view data;
    // Line: LineFlag bits. DotEnd: LineFlag bits seen anywhere in the body.
    uint32_t flags = 0;
    // Line, when literal detection is on and the line ends in "{n}" or "{n+}":
    // the announced size. The caller must then call accept_literal() or
    // skip_literal() before the next next(), or nothing (= reject: the
    // reader stays in line mode).
    bool has_literal = false;
    bool literal_non_sync = false;  // "{n+}" (RFC 7888)
    uint64_t literal_size = 0;
    // DotEnd: unstuffed body size (counted in full, even past the limit), and
    // whether it exceeded max_size (the body was then delivered only up to
    // max_size bytes; the server answers 552 after the final dot,
    // RFC 5321 §4.5.3.1.10).
    uint64_t data_size = 0;
    bool data_too_big = false;
};

struct ReaderLimits {
    // Longest line, terminator included. RFC 5321 §4.5.3.1.4 allows 512 for a
    // command line; servers commonly accept more (extensions, SMTPUTF8).
    size_t max_line = 1000;
    // IMAP: report "{n}"/"{n+}" at the end of a line as a literal.
    bool detect_literals = false;
};

class Reader {
public:
    explicit Reader(ReaderLimits limits = {});

    // Appends bytes. Invalidates views of earlier events.
    void feed(std::string_view bytes);
    // Returns the next unit, or NeedMore.
    Event next();

    // After a Line event with has_literal: read the literal's literal_size
    // bytes as LiteralData pieces, then LiteralEnd, then back to line mode
    // (the command line continues after the literal).
    void accept_literal();
    // Same, but the bytes are consumed silently (only LiteralEnd is
    // reported): for a rejected non-synchronizing literal, whose data the
    // client sends anyway (RFC 7888 §4).
    void skip_literal();
    // After the 354 reply to DATA: read dot-data. Bytes past max_size are
    // counted but not delivered.
    void start_dot_data(uint64_t max_size);
    // After "BDAT n": read exactly n bytes. deliver=false consumes them
    // silently (a rejected chunk must still be read, RFC 3030 §2).
    void start_chunk(uint64_t size, bool deliver = true);

    // Drops every buffered byte not yet returned, ends any partial unit and
    // returns to line mode. Returns how many bytes were dropped (worth logging:
    // plaintext pipelined behind STARTTLS is an injection attempt).
    size_t discard_buffered();

    void set_limits(ReaderLimits limits) { limits_ = limits; }
    const ReaderLimits& limits() const { return limits_; }
    // Bytes held and not yet returned.
    size_t buffered() const { return buf_.size() - pos_; }
    // True in line mode with no partial unit pending: a safe point to switch.
    bool in_line_mode() const { return mode_ == Mode::Line && !skipping_; }

private:
    enum class Mode { Line, Literal, DotData, Chunk };
    // States of the dot-data scanner (RFC 5321 §4.5.2).
    enum class DotState { Mid, SawCr, LineStart, LineStartDot, LineStartDotCr };

    Event next_line();
    Event next_counted();
    Event next_dot();
    void scan_literal(Event& ev) const;

    ReaderLimits limits_;
    std::string buf_;
    size_t pos_ = 0;  // first unconsumed byte in buf_
    Mode mode_ = Mode::Line;
    bool skipping_ = false;  // discarding the rest of an overlong line
    // Offered literal from the last Line event, for accept/skip.
    uint64_t offered_literal_ = 0;
    bool literal_offered_ = false;
    // Counted modes (literal, chunk).
    uint64_t remaining_ = 0;
    bool deliver_ = true;
    // Dot-data.
    DotState dot_state_ = DotState::LineStart;
    uint64_t data_size_ = 0;
    uint64_t data_max_ = 0;
    uint32_t data_flags_ = 0;
};

}  // namespace yubin::proto
