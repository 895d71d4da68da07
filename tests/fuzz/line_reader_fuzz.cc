// libFuzzer target for proto::Reader. The input's first two bytes choose the
// limits; the rest is fed once whole and once cut at points derived from the
// input. Mode switches come from the events themselves (DATA, BDAT n, IMAP
// literals), as a session would make them, so both runs must log the same
// events. Invariants checked on every event: line and data limits, literal
// and chunk sizes exact, memory bounded after NeedMore.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/strings.h"
#include "common/proto/line_reader.h"

namespace {

using yubin::proto::Event;
using yubin::proto::EventKind;
using yubin::proto::Reader;
using yubin::proto::ReaderLimits;

void check(bool ok) {
    if (!ok) {
        std::abort();
    }
}

bool is_piece(EventKind k) {
    return k == EventKind::LiteralData || k == EventKind::DotData || k == EventKind::ChunkData;
}

struct Run {
    ReaderLimits limits;
    uint64_t dot_max = 0;
    std::vector<std::string> log;

    // Per-unit accounting for the invariants.
    EventKind last_piece = EventKind::NeedMore;
    uint64_t expect_counted = 0;
    uint64_t got_counted = 0;
    uint64_t dot_delivered = 0;

    void on_event(Reader& r, const Event& ev) {
        if (is_piece(ev.kind) && ev.kind == last_piece) {
            log.back().append(ev.data);
        } else {
            std::string entry(yubin::proto::event_kind_name(ev.kind));
            entry += '|' + std::to_string(ev.flags) + '|' + std::to_string(ev.data_size) +
                     (ev.data_too_big ? "!" : "") + '|' + std::string(ev.data);
            log.push_back(entry);
        }
        last_piece = is_piece(ev.kind) ? ev.kind : EventKind::NeedMore;
        switch (ev.kind) {
            case EventKind::Line:
                check(ev.data.size() + ((ev.flags & yubin::proto::kBareLf) ? 1 : 2) <=
                      limits.max_line);
                decide(r, ev);
                break;
            case EventKind::LiteralData:
            case EventKind::ChunkData:
                got_counted += ev.data.size();
                check(got_counted <= expect_counted);
                break;
            case EventKind::LiteralEnd:
            case EventKind::ChunkEnd:
                check(got_counted == expect_counted);
                break;
            case EventKind::DotData:
                dot_delivered += ev.data.size();
                check(dot_delivered <= dot_max);
                break;
            case EventKind::DotEnd:
                check(ev.data_too_big == (ev.data_size > dot_max));
                check(dot_delivered == (ev.data_too_big ? dot_max : ev.data_size));
                break;
            default:
                break;
        }
    }

    void decide(Reader& r, const Event& ev) {
        got_counted = 0;
        if (ev.has_literal) {
            if (ev.literal_size <= 64) {
                expect_counted = ev.literal_size;
                r.accept_literal();
            } else if (ev.literal_non_sync) {
                expect_counted = 0;  // skipped: nothing delivered
                r.skip_literal();
            }
            return;
        }
        if (ev.data == "DATA") {
            dot_delivered = 0;
            r.start_dot_data(dot_max);
            return;
        }
        std::vector<std::string_view> words = yubin::split(ev.data, ' ');
        if (words.size() >= 2 && (words[0] == "BDAT" || words[0] == "SKIP")) {
            uint64_t n = yubin::parse_u64(words[1]).value_or(0);
            bool deliver = words[0] == "BDAT";
            expect_counted = deliver ? n : 0;
            r.start_chunk(n, deliver);
        }
    }

    void feed_all(std::string_view input, const std::vector<size_t>& cuts) {
        Reader r(limits);
        size_t start = 0;
        auto drain = [&] {
            for (Event ev = r.next(); ev.kind != EventKind::NeedMore; ev = r.next()) {
                on_event(r, ev);
            }
            // After NeedMore the reader holds at most a partial line shorter
            // than max_line, and nothing at all in the streaming modes.
            check(r.buffered() < std::max<size_t>(limits.max_line, 1));
        };
        for (size_t cut : cuts) {
            r.feed(input.substr(start, cut - start));
            drain();
            start = cut;
        }
        r.feed(input.substr(start));
        drain();
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) {
        return 0;
    }
    ReaderLimits limits;
    limits.max_line = 1 + (data[0] & 0x7f);
    limits.detect_literals = (data[0] & 0x80) != 0;
    uint64_t dot_max = data[1];
    std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);

    Run whole{limits, dot_max, {}};
    whole.feed_all(input, {});

    // Cut points from a simple generator seeded by the input itself.
    std::vector<size_t> cuts;
    uint32_t x = 2166136261u ^ static_cast<uint32_t>(size);
    for (size_t at = 0;;) {
        x = x * 1103515245u + 12345u;
        at += 1 + (x >> 16) % 9;
        if (at >= input.size()) {
            break;
        }
        cuts.push_back(at);
    }
    Run split{limits, dot_max, {}};
    split.feed_all(input, cuts);
    check(whole.log == split.log);
    return 0;
}
