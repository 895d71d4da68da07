#include "common/proto/line_reader.h"

#include <algorithm>
#include <optional>

#include "common/base/strings.h"

namespace yubin::proto {

std::string_view event_kind_name(EventKind kind) noexcept {
    switch (kind) {
        case EventKind::NeedMore:
            return "NeedMore";
        case EventKind::Line:
            return "Line";
        case EventKind::LineTooLong:
            return "LineTooLong";
        case EventKind::LiteralData:
            return "LiteralData";
        case EventKind::LiteralEnd:
            return "LiteralEnd";
        case EventKind::DotData:
            return "DotData";
        case EventKind::DotEnd:
            return "DotEnd";
        case EventKind::ChunkData:
            return "ChunkData";
        case EventKind::ChunkEnd:
            return "ChunkEnd";
    }
    return "?";
}

namespace {

Event make_event(EventKind kind, std::string_view data = {}) {
    Event ev;
    ev.kind = kind;
    ev.data = data;
    return ev;
}

// A CR that the dot-data scanner held back (".CR" at a line start might have
// been the terminator) and later turned out to be data.
constexpr std::string_view kHeldCr = "\r";

}  // namespace

Reader::Reader(ReaderLimits limits) : limits_(limits) {}

void Reader::feed(std::string_view bytes) {
    // Compact first: consumed bytes are never needed again, and the views of
    // earlier events are documented as invalid from here on.
    if (pos_ == buf_.size()) {
        buf_.clear();
    } else if (pos_ > 0) {
        buf_.erase(0, pos_);
    }
    pos_ = 0;
    buf_.append(bytes);
}

size_t Reader::discard_buffered() {
    size_t dropped = buffered();
    buf_.clear();
    pos_ = 0;
    mode_ = Mode::Line;
    skipping_ = false;
    literal_offered_ = false;
    remaining_ = 0;
    dot_state_ = DotState::LineStart;
    data_size_ = 0;
    data_flags_ = 0;
    return dropped;
}

void Reader::accept_literal() {
    if (!literal_offered_) {
        return;
    }
    literal_offered_ = false;
    mode_ = Mode::Literal;
    remaining_ = offered_literal_;
    deliver_ = true;
}

void Reader::skip_literal() {
    if (!literal_offered_) {
        return;
    }
    accept_literal();
    deliver_ = false;
}

void Reader::start_dot_data(uint64_t max_size) {
    literal_offered_ = false;
    mode_ = Mode::DotData;
    // The DATA command's own CRLF puts us at the start of a line, so a body
    // that is just ".CRLF" is an empty message.
    dot_state_ = DotState::LineStart;
    data_size_ = 0;
    data_max_ = max_size;
    data_flags_ = 0;
}

void Reader::start_chunk(uint64_t size, bool deliver) {
    literal_offered_ = false;
    mode_ = Mode::Chunk;
    remaining_ = size;
    deliver_ = deliver;
}

Event Reader::next() {
    // Not accepting an offered literal is a rejection.
    literal_offered_ = false;
    if (skipping_) {
        // The rest of an overlong line, whatever mode was chosen since: the
        // whole-line case consumed it before reporting, so must we.
        size_t lf = buf_.find('\n', pos_);
        if (lf == std::string::npos) {
            pos_ = buf_.size();
            return make_event(EventKind::NeedMore);
        }
        pos_ = lf + 1;
        skipping_ = false;
    }
    switch (mode_) {
        case Mode::Line:
            return next_line();
        case Mode::Literal:
        case Mode::Chunk:
            return next_counted();
        case Mode::DotData:
            return next_dot();
    }
    return make_event(EventKind::NeedMore);
}

Event Reader::next_line() {
    std::string_view view(buf_);
    view.remove_prefix(pos_);
    size_t lf = view.find('\n');
    if (lf == std::string_view::npos) {
        // Unterminated and already max_line long: whatever terminator comes,
        // the line will exceed the limit, so report it now and stop holding
        // its bytes (this is what bounds memory).
        if (!view.empty() && view.size() >= limits_.max_line) {
            skipping_ = true;
            pos_ = buf_.size();
            return make_event(EventKind::LineTooLong);
        }
        return make_event(EventKind::NeedMore);
    }
    size_t total = lf + 1;
    pos_ += total;
    if (total > limits_.max_line) {
        return make_event(EventKind::LineTooLong);
    }
    std::string_view text = view.substr(0, lf);
    Event ev = make_event(EventKind::Line);
    if (!text.empty() && text.back() == '\r') {
        text.remove_suffix(1);
    } else {
        ev.flags |= kBareLf;
    }
    for (char c : text) {
        if (c == '\r') {
            ev.flags |= kBareCr;
        } else if (c == '\0') {
            ev.flags |= kNul;
        }
    }
    ev.data = text;
    if (limits_.detect_literals) {
        scan_literal(ev);
        if (ev.has_literal) {
            literal_offered_ = true;
            offered_literal_ = ev.literal_size;
        }
    }
    return ev;
}

void Reader::scan_literal(Event& ev) const {
    // RFC 9051 §4.3: literal = "{" number64 ["+"] "}" CRLF, at the very end
    // of the line ("~{" for literal8 ends the same way).
    std::string_view text = ev.data;
    if (text.size() < 3 || text.back() != '}') {
        return;
    }
    size_t open = text.rfind('{');
    if (open == std::string_view::npos) {
        return;
    }
    std::string_view inner = text.substr(open + 1, text.size() - open - 2);
    bool non_sync = false;
    if (!inner.empty() && inner.back() == '+') {
        non_sync = true;
        inner.remove_suffix(1);
    }
    std::optional<uint64_t> n = parse_u64(inner);
    if (!n) {
        return;
    }
    ev.has_literal = true;
    ev.literal_non_sync = non_sync;
    ev.literal_size = *n;
}

Event Reader::next_counted() {
    const bool literal = mode_ == Mode::Literal;
    for (;;) {
        if (remaining_ == 0) {
            mode_ = Mode::Line;
            return make_event(literal ? EventKind::LiteralEnd : EventKind::ChunkEnd);
        }
        size_t avail = buf_.size() - pos_;
        if (avail == 0) {
            return make_event(EventKind::NeedMore);
        }
        size_t n = static_cast<size_t>(std::min<uint64_t>(avail, remaining_));
        std::string_view piece(buf_.data() + pos_, n);
        pos_ += n;
        remaining_ -= n;
        if (deliver_) {
            return make_event(literal ? EventKind::LiteralData : EventKind::ChunkData, piece);
        }
    }
}

Event Reader::next_dot() {
    // Applies the size limit to a run of body bytes: everything is counted,
    // only what fits under data_max_ is delivered.
    auto deliver = [this](std::string_view run) -> std::optional<Event> {
        uint64_t before = data_size_;
        data_size_ += run.size();
        if (before >= data_max_) {
            return std::nullopt;
        }
        uint64_t room = data_max_ - before;
        if (run.size() > room) {
            run = run.substr(0, static_cast<size_t>(room));
        }
        return make_event(EventKind::DotData, run);
    };

    const char* p = buf_.data();
    const size_t end = buf_.size();
    size_t i = pos_;
    size_t run_start = pos_;  // bytes [run_start, i) are body bytes to hand out
    while (i < end) {
        const char c = p[i];
        switch (dot_state_) {
            case DotState::LineStart:
                if (c == '.') {
                    // RFC 5321 §4.5.2: a leading dot is removed; if the line
                    // is then empty it was the terminator.
                    if (i > run_start) {
                        pos_ = i;
                        if (auto ev = deliver({p + run_start, i - run_start})) {
                            return *ev;
                        }
                        run_start = i;
                    }
                    dot_state_ = DotState::LineStartDot;
                    ++i;
                    run_start = i;
                    pos_ = i;
                    continue;
                }
                dot_state_ = DotState::Mid;
                continue;  // handle c as an ordinary byte
            case DotState::Mid:
                if (static_cast<unsigned char>(c) > '\r') {
                    // Fast path: bytes above CR are never special here.
                    ++i;
                    while (i<end&& static_cast<unsigned char>(p[i])> '\r') {
                        ++i;
                    }
                    continue;
                }
                if (c == '\r') {
                    dot_state_ = DotState::SawCr;
                } else if (c == '\n') {
                    // A bare LF never starts a new line here: only CRLF.CRLF
                    // ends the body, so "LF.LF"-style endings cannot be
                    // smuggled past us; the flag lets smtpd refuse the mail.
                    data_flags_ |= kBareLf;
                } else if (c == '\0') {
                    data_flags_ |= kNul;
                }
                ++i;
                continue;
            case DotState::SawCr:
                if (c == '\n') {
                    dot_state_ = DotState::LineStart;
                    ++i;
                } else {
                    data_flags_ |= kBareCr;
                    dot_state_ = DotState::Mid;  // c is handled as an ordinary byte
                }
                continue;
            case DotState::LineStartDot:
                if (c == '\r') {
                    // Might be the terminator: hold the CR until we see LF.
                    dot_state_ = DotState::LineStartDotCr;
                    ++i;
                    run_start = i;
                    pos_ = i;
                } else {
                    dot_state_ = DotState::Mid;  // the dot was stuffing; c is data
                }
                continue;
            case DotState::LineStartDotCr:
                if (c == '\n') {
                    pos_ = i + 1;
                    Event ev = make_event(EventKind::DotEnd);
                    ev.flags = data_flags_;
                    ev.data_size = data_size_;
                    ev.data_too_big = data_size_ > data_max_;
                    mode_ = Mode::Line;
                    dot_state_ = DotState::LineStart;
                    data_size_ = 0;
                    data_flags_ = 0;
                    return ev;
                }
                // The held CR was data after all; c is examined again in SawCr.
                dot_state_ = DotState::SawCr;
                pos_ = i;
                if (auto ev = deliver(kHeldCr)) {
                    return *ev;
                }
                run_start = i;
                continue;
        }
    }
    pos_ = i;
    if (i > run_start) {
        if (auto ev = deliver({p + run_start, i - run_start})) {
            return *ev;
        }
    }
    return make_event(EventKind::NeedMore);
}

}  // namespace yubin::proto
