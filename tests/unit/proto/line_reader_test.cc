#include "common/proto/line_reader.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "common/base/strings.h"

namespace yubin::proto {
namespace {

using namespace std::string_literals;

// A tiny session stand-in: it switches modes on the same commands a real
// SMTP/IMAP session would, so that the event log depends only on the bytes,
// never on how they were split.
struct Policy {
    uint64_t dot_max = 1u << 20;
    uint64_t literal_accept_max = 100;
};

void apply_policy(Reader& r, const Event& ev, const Policy& policy) {
    if (ev.kind != EventKind::Line) {
        return;
    }
    if (ev.has_literal) {
        if (ev.literal_size <= policy.literal_accept_max) {
            r.accept_literal();
        } else if (ev.literal_non_sync) {
            r.skip_literal();
        }
        return;
    }
    if (ev.data == "DATA") {
        r.start_dot_data(policy.dot_max);
    } else if (istarts_with(ev.data, "BDAT ")) {
        r.start_chunk(parse_u64(split(ev.data, ' ')[1]).value_or(0), true);
    } else if (istarts_with(ev.data, "BDATSKIP ")) {
        r.start_chunk(parse_u64(split(ev.data, ' ')[1]).value_or(0), false);
    }
}

std::string describe(const Event& ev) {
    std::string s(event_kind_name(ev.kind));
    if (ev.flags != 0) {
        s += "[";
        s += (ev.flags & kBareLf) ? "LF" : "";
        s += (ev.flags & kBareCr) ? "CR" : "";
        s += (ev.flags & kNul) ? "NUL" : "";
        s += "]";
    }
    if (ev.has_literal) {
        s += "{" + std::to_string(ev.literal_size) + (ev.literal_non_sync ? "+" : "") + "}";
    }
    if (ev.kind == EventKind::DotEnd) {
        s += " size=" + std::to_string(ev.data_size) + (ev.data_too_big ? " too-big" : "");
    }
    if (!ev.data.empty() || ev.kind == EventKind::Line) {
        s += ":" + std::string(ev.data);
    }
    return s;
}

bool is_piece(EventKind k) {
    return k == EventKind::LiteralData || k == EventKind::DotData || k == EventKind::ChunkData;
}

// Feeds `input` cut at `cuts` (ascending offsets) and returns the event log,
// with adjacent pieces of the same kind merged (only their concatenation is
// meaningful).
std::vector<std::string> run(std::string_view input, const std::vector<size_t>& cuts,
                             ReaderLimits limits = {}, Policy policy = {}) {
    Reader r(limits);
    std::vector<std::string> log;
    EventKind last_piece = EventKind::NeedMore;
    size_t start = 0;
    auto drain = [&] {
        for (;;) {
            Event ev = r.next();
            if (ev.kind == EventKind::NeedMore) {
                return;
            }
            EXPECT_LE(ev.data.size(), std::max<size_t>(limits.max_line, input.size()));
            if (is_piece(ev.kind) && ev.kind == last_piece && !log.empty()) {
                log.back() += std::string(ev.data);
            } else {
                log.push_back(describe(ev));
            }
            last_piece = is_piece(ev.kind) ? ev.kind : EventKind::NeedMore;
            apply_policy(r, ev, policy);
        }
    };
    for (size_t cut : cuts) {
        r.feed(input.substr(start, cut - start));
        drain();
        start = cut;
    }
    r.feed(input.substr(start));
    drain();
    return log;
}

std::vector<size_t> every_byte(size_t n) {
    std::vector<size_t> cuts;
    for (size_t i = 1; i < n; ++i) {
        cuts.push_back(i);
    }
    return cuts;
}

std::vector<size_t> random_cuts(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<size_t> cuts;
    if (n < 2) {
        return cuts;
    }
    std::uniform_int_distribution<size_t> step(1, 17);
    for (size_t at = step(rng); at < n; at += step(rng)) {
        cuts.push_back(at);
    }
    return cuts;
}

// The core property: whole, byte by byte and at random splits all agree.
std::vector<std::string> run_all_ways(std::string_view input, ReaderLimits limits = {},
                                      Policy policy = {}) {
    std::vector<std::string> whole = run(input, {}, limits, policy);
    EXPECT_EQ(run(input, every_byte(input.size()), limits, policy), whole) << "byte by byte";
    for (uint32_t seed = 1; seed <= 20; ++seed) {
        EXPECT_EQ(run(input, random_cuts(input.size(), seed), limits, policy), whole)
            << "seed " << seed;
    }
    return whole;
}

using Log = std::vector<std::string>;

TEST(LineReader, CrlfLines) {
    EXPECT_EQ(run_all_ways("EHLO a.example\r\nNOOP\r\n\r\n"),
              (Log{"Line:EHLO a.example", "Line:NOOP", "Line:"}));
}

TEST(LineReader, IncompleteLineWaits) {
    Reader r;
    r.feed("NOOP\r");
    EXPECT_EQ(r.next().kind, EventKind::NeedMore);
    r.feed("\n");
    Event ev = r.next();
    EXPECT_EQ(ev.kind, EventKind::Line);
    EXPECT_EQ(ev.data, "NOOP");
    EXPECT_EQ(ev.flags, 0u);
}

TEST(LineReader, BareLfBareCrAndNulAreFlagged) {
    EXPECT_EQ(run_all_ways("A\nB\rC\r\nD\0E\r\nF\r\r\n"s),
              (Log{"Line[LF]:A", "Line[CR]:B\rC", "Line[NUL]:D\0E"s, "Line[CR]:F\r"}));
}

TEST(LineReader, MaxLineCountsTheTerminator) {
    ReaderLimits lim{.max_line = 10};
    // 8 + CRLF = 10: fits. 9 + CRLF = 11: too long. 9 + bare LF = 10: fits.
    EXPECT_EQ(run_all_ways("12345678\r\n123456789\r\n123456789\nOK\r\n", lim),
              (Log{"Line:12345678", "LineTooLong", "Line[LF]:123456789", "Line:OK"}));
}

TEST(LineReader, OverlongLineReportedOnceAndSkippedToLf) {
    ReaderLimits lim{.max_line = 16};
    std::string input = std::string(100, 'x') + "\r\nQUIT\r\n";
    EXPECT_EQ(run_all_ways(input, lim), (Log{"LineTooLong", "Line:QUIT"}));
}

TEST(LineReader, OverlongLineMemoryIsBounded) {
    Reader r(ReaderLimits{.max_line = 1000});
    int too_long = 0;
    std::string chunk(4096, 'a');
    for (int i = 0; i < 1000; ++i) {  // 4 MB without a newline
        r.feed(chunk);
        for (Event ev = r.next(); ev.kind != EventKind::NeedMore; ev = r.next()) {
            ASSERT_EQ(ev.kind, EventKind::LineTooLong);
            ++too_long;
        }
        ASSERT_LE(r.buffered(), chunk.size());
    }
    EXPECT_EQ(too_long, 1);
    r.feed("tail\r\nNOOP\r\n");
    Event ev = r.next();
    ASSERT_EQ(ev.kind, EventKind::Line);
    EXPECT_EQ(ev.data, "NOOP");
}

TEST(LineReader, ModeChosenAfterTooLongAppliesAfterTheSkip) {
    // The policy starts DATA on the next line; the skipped tail must not leak
    // into it whatever the split.
    ReaderLimits lim{.max_line = 8};
    EXPECT_EQ(run_all_ways("XXXXXXXXXXXX\r\nDATA\r\nhi\r\n.\r\n", lim),
              (Log{"LineTooLong", "Line:DATA", "DotData:hi\r\n", "DotEnd size=4"}));
}

TEST(DotData, UnstuffsAndEndsAtCrlfDotCrlf) {
    EXPECT_EQ(run_all_ways("DATA\r\nSubject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n"),
              (Log{"Line:DATA", "DotData:Subject: x\r\n\r\n.leading dot\r\n", "DotEnd size=28",
                   "Line:QUIT"}));
}

TEST(DotData, EmptyBody) {
    EXPECT_EQ(run_all_ways("DATA\r\n.\r\nNOOP\r\n"),
              (Log{"Line:DATA", "DotEnd size=0", "Line:NOOP"}));
}

TEST(DotData, DotsNotAtLineStartAreData) {
    EXPECT_EQ(run_all_ways("DATA\r\na.b\r\n.x\r\n.\rY\r\n.\r\n"),
              (Log{"Line:DATA", "DotData:a.b\r\nx\r\n\rY\r\n", "DotEnd[CR] size=12"}));
}

TEST(DotData, BareLfNeverEndsTheBody) {
    // "LF . LF" and "LF . CRLF" are SMTP smuggling attempts: they are body
    // bytes (flagged), and only CRLF.CRLF ends the data.
    EXPECT_EQ(run_all_ways("DATA\r\na\n.\nb\n.\r\nc\r\n.\r\n"),
              (Log{"Line:DATA", "DotData:a\n.\nb\n.\r\nc\r\n", "DotEnd[LF] size=12"}));
}

TEST(DotData, TooBigKeepsCountingAndStopsDelivering) {
    Policy policy{.dot_max = 10};
    std::string body;
    for (int i = 0; i < 10; ++i) {
        body += "0123456789\r\n";
    }
    Log log = run_all_ways("DATA\r\n" + body + ".\r\nRSET\r\n", {}, policy);
    EXPECT_EQ(log,
              (Log{"Line:DATA", "DotData:0123456789", "DotEnd size=120 too-big", "Line:RSET"}));
}

TEST(DotData, StreamsWithoutAccumulating) {
    Reader r;
    r.feed("DATA\r\n");
    ASSERT_EQ(r.next().kind, EventKind::Line);
    r.start_dot_data(UINT64_MAX);
    std::string chunk(8192, 'm');
    chunk += "\r\n";
    uint64_t delivered = 0;
    for (int i = 0; i < 500; ++i) {
        r.feed(chunk);
        for (Event ev = r.next(); ev.kind != EventKind::NeedMore; ev = r.next()) {
            ASSERT_EQ(ev.kind, EventKind::DotData);
            delivered += ev.data.size();
        }
        ASSERT_EQ(r.buffered(), 0u);
    }
    r.feed(".\r\n");
    Event end = r.next();
    ASSERT_EQ(end.kind, EventKind::DotEnd);
    EXPECT_EQ(end.data_size, delivered);
    EXPECT_EQ(delivered, 500u * chunk.size());
}

TEST(Bdat, ExactlyNBytesThenLines) {
    EXPECT_EQ(run_all_ways("BDAT 7\r\nab\r\n.\r\nQUIT\r\n"),
              (Log{"Line:BDAT 7", "ChunkData:ab\r\n.\r\n", "ChunkEnd", "Line:QUIT"}));
}

TEST(Bdat, ZeroSizedAndSkippedChunks) {
    EXPECT_EQ(run_all_ways("BDAT 0\r\nBDATSKIP 5\r\n12345NOOP\r\n"),
              (Log{"Line:BDAT 0", "ChunkEnd", "Line:BDATSKIP 5", "ChunkEnd", "Line:NOOP"}));
}

TEST(Literal, AcceptedLiteralsContinueTheLine) {
    ReaderLimits lim{.detect_literals = true};
    EXPECT_EQ(run_all_ways("a1 LOGIN {3}\r\nbob {6+}\r\nsecret\r\na2 NOOP\r\n", lim),
              (Log{"Line{3}:a1 LOGIN {3}", "LiteralData:bob", "LiteralEnd", "Line{6+}: {6+}",
                   "LiteralData:secret", "LiteralEnd", "Line:", "Line:a2 NOOP"}));
}

TEST(Literal, RejectedLiteralLeavesLineMode) {
    // The policy rejects a synchronizing literal over 100 bytes: the client
    // never got "+ go ahead", so what follows is a new command.
    ReaderLimits lim{.detect_literals = true};
    EXPECT_EQ(run_all_ways("a1 APPEND x {5000}\r\na2 NOOP\r\n", lim),
              (Log{"Line{5000}:a1 APPEND x {5000}", "Line:a2 NOOP"}));
}

TEST(Literal, RejectedNonSyncLiteralIsSkipped) {
    ReaderLimits lim{.detect_literals = true};
    std::string input = "a1 APPEND x {200+}\r\n" + std::string(200, 'z') + "\r\na2 NOOP\r\n";
    EXPECT_EQ(run_all_ways(input, lim),
              (Log{"Line{200+}:a1 APPEND x {200+}", "LiteralEnd", "Line:", "Line:a2 NOOP"}));
}

TEST(Literal, NotDetectedUnlessAskedOrMalformed) {
    EXPECT_EQ(run_all_ways("X {3}\r\nabc\r\n"), (Log{"Line:X {3}", "Line:abc"}));
    ReaderLimits lim{.detect_literals = true};
    EXPECT_EQ(run_all_ways("X {}\r\nX {3a}\r\nX {99999999999999999999}\r\n", lim),
              (Log{"Line:X {}", "Line:X {3a}", "Line:X {99999999999999999999}"}));
}

TEST(Literal, EmptyLiteral) {
    ReaderLimits lim{.detect_literals = true};
    EXPECT_EQ(run_all_ways("a {0}\r\n)\r\n", lim), (Log{"Line{0}:a {0}", "LiteralEnd", "Line:)"}));
}

TEST(Pipelining, WholeTransactionInOneChunkKeepsOrder) {
    std::string input =
        "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"
        "Hello\r\n.\r\nMAIL FROM:<c@x.test>\r\nRCPT TO:<d@y.test>\r\nBDAT 3 LAST\r\n"
        "hi!QUIT\r\n";
    EXPECT_EQ(run_all_ways(input),
              (Log{"Line:MAIL FROM:<a@x.test>", "Line:RCPT TO:<b@y.test>", "Line:DATA",
                   "DotData:Hello\r\n", "DotEnd size=7", "Line:MAIL FROM:<c@x.test>",
                   "Line:RCPT TO:<d@y.test>", "Line:BDAT 3 LAST", "ChunkData:hi!", "ChunkEnd",
                   "Line:QUIT"}));
}

TEST(Discard, StarttlsDropsPipelinedPlaintext) {
    Reader r;
    r.feed("STARTTLS\r\nMAIL FROM:<evil@x>\r\n");
    Event ev = r.next();
    ASSERT_EQ(ev.kind, EventKind::Line);
    EXPECT_EQ(ev.data, "STARTTLS");
    EXPECT_EQ(r.discard_buffered(), 20u);
    EXPECT_EQ(r.next().kind, EventKind::NeedMore);
    r.feed("EHLO me\r\n");
    ev = r.next();
    ASSERT_EQ(ev.kind, EventKind::Line);
    EXPECT_EQ(ev.data, "EHLO me");
}

TEST(Discard, EndsAPartialUnitAndReturnsToLineMode) {
    Reader r(ReaderLimits{.max_line = 6});
    r.feed("DATA\r\n");
    ASSERT_EQ(r.next().kind, EventKind::Line);
    r.start_dot_data(100);
    r.feed("partial body");
    ASSERT_EQ(r.next().kind, EventKind::DotData);
    EXPECT_EQ(r.discard_buffered(), 0u);
    EXPECT_TRUE(r.in_line_mode());
    r.feed("abcdefgh");  // an overlong line in progress
    ASSERT_EQ(r.next().kind, EventKind::LineTooLong);
    EXPECT_FALSE(r.in_line_mode());
    r.discard_buffered();
    r.feed("OK\r\n");
    Event ev = r.next();
    ASSERT_EQ(ev.kind, EventKind::Line);
    EXPECT_EQ(ev.data, "OK");
}

TEST(LineReader, RandomMixedTrafficAgreesAcrossSplits) {
    // Random sessions built from the pieces above, each checked all ways.
    const std::vector<std::string> parts = {
        "NOOP\r\n",
        "A\n",
        "x\ry\r\n",
        "DATA\r\nb\r\n..c\r\n.\r\n",
        "DATA\r\n.\r\n",
        "BDAT 4\r\n\r\n.\r",
        "a {2}\r\nzz\r\n",
        "b {3+}\r\nq\nq\r\n",
        "c {999}\r\n",
        std::string(40, 'L') + "\r\n",
        "DATA\r\n\n.\n\r\n.\r\n",
        "N\0L\r\n"s,
    };
    std::mt19937 rng(4242);
    for (int round = 0; round < 30; ++round) {
        std::string input;
        int n = 1 + static_cast<int>(rng() % 12);
        for (int i = 0; i < n; ++i) {
            input += parts[rng() % parts.size()];
        }
        ReaderLimits lim{.max_line = 32, .detect_literals = (round % 2) == 0};
        Log log = run_all_ways(input, lim, Policy{.dot_max = 5});
        EXPECT_FALSE(log.empty());
    }
}

}  // namespace
}  // namespace yubin::proto
