#include "common/mime/mime_parser.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "common/mime/serialize.h"

namespace yubin::mime {
namespace {

std::string_view at(const std::string& msg, uint64_t off, uint64_t size) {
    return std::string_view(msg).substr(off, size);
}

std::string body_of(const std::string& msg, const Part& p) {
    return std::string(at(msg, p.body_offset, p.body_size));
}

TEST(MimeParser, EmptyInput) {
    PartTree t = parse_message("");
    ASSERT_EQ(t.parts.size(), 1u);
    EXPECT_EQ(t.message_size, 0u);
    EXPECT_EQ(t.root().header_size, 0u);
    EXPECT_EQ(t.root().body_size, 0u);
    EXPECT_EQ(t.root().type, "text");
    EXPECT_TRUE(check_tree(t).has_value());
}

TEST(MimeParser, DefaultsToTextPlainUsAscii) {
    // RFC 2045 §5.2: absent or invalid Content-Type.
    for (std::string msg : {std::string("Subject: x\r\n\r\nbody\r\n"),
                            std::string("Content-Type: garbage\r\n\r\nbody\r\n")}) {
        PartTree t = parse_message(msg);
        EXPECT_EQ(t.root().type, "text");
        EXPECT_EQ(t.root().subtype, "plain");
        ASSERT_EQ(t.root().params.size(), 1u);
        EXPECT_EQ(t.root().params[0].value, "us-ascii");
        EXPECT_FALSE(t.root().content_type_given);
    }
}

TEST(MimeParser, FirstContentTypeWins) {
    PartTree t = parse_message(
        "Content-Type: text/html\r\nContent-Type: image/png\r\nCONTENT-TRANSFER-ENCODING: "
        "QUOTED-PRINTABLE\r\n\r\nx");
    EXPECT_EQ(t.root().subtype, "html");
    EXPECT_EQ(t.root().transfer_encoding, "quoted-printable");
}

TEST(MimeParser, BoundaryOwnsThePrecedingLineBreak) {
    // RFC 2046 §5.1.1: "a\r\n" is the body, the CRLF before "--b" is not.
    std::string msg =
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\n\r\na\r\n\r\n--b\r\n\r\nno trailing break\r\n--b--\r\n";
    PartTree t = parse_message(msg);
    ASSERT_EQ(t.parts.size(), 3u);
    EXPECT_EQ(body_of(msg, t.parts[1]), "a\r\n");
    EXPECT_EQ(t.parts[1].body_lines, 1u);
    EXPECT_EQ(at(msg, t.parts[1].header_offset, t.parts[1].header_size), "\r\n");
    EXPECT_EQ(body_of(msg, t.parts[2]), "no trailing break");
    EXPECT_EQ(t.parts[2].body_lines, 0u);
    EXPECT_EQ(t.limits_hit, 0u);
}

TEST(MimeParser, BoundaryRightAfterTheHeaderTakesTheEmptyLinesBreak) {
    // The empty line's CRLF is also the CRLF before the boundary; it goes to
    // the boundary, so the header shrinks and the part stays inside its
    // parent.
    std::string msg =
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\n--b\r\n--b--\r\n";
    PartTree t = parse_message(msg);
    ASSERT_EQ(t.parts.size(), 3u);
    const Part& p1 = t.parts[1];
    EXPECT_EQ(at(msg, p1.header_offset, p1.header_size), "Content-Type: text/plain\r\n");
    EXPECT_EQ(p1.body_size, 0u);
    EXPECT_EQ(p1.header_lines, 1u);
    // The second part is empty: it starts after "--b\r\n", which is where
    // "\r\n--b--" begins, so it is squeezed to nothing at that point.
    const Part& p2 = t.parts[2];
    EXPECT_EQ(p2.header_size + p2.body_size, 0u);
    EXPECT_TRUE(check_tree(t).has_value()) << check_tree(t).error().to_string();
}

TEST(MimeParser, MissingBoundaryParameterKeepsTheBodyOpaque) {
    std::string msg = "Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\nbody\r\n--x--\r\n";
    PartTree t = parse_message(msg);
    ASSERT_EQ(t.parts.size(), 1u);
    EXPECT_EQ(t.root().type, "multipart");
    EXPECT_NE(t.root().flags & kFlagMissingBoundary, 0u);
    EXPECT_EQ(t.root().body_size, msg.size() - t.root().body_offset);
}

TEST(MimeParser, OuterBoundaryClosesAnInnerMultipartWithoutItsEnd) {
    std::string msg =
        "Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
        "--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
        "--inner\r\n\r\ntext\r\n"
        "--outer\r\n\r\nsecond\r\n--outer--\r\n";
    PartTree t = parse_message(msg);
    ASSERT_EQ(t.parts.size(), 4u);
    EXPECT_EQ(t.parts[1].children, (std::vector<uint32_t>{2}));
    EXPECT_EQ(body_of(msg, t.parts[2]), "text");
    EXPECT_NE(t.parts[1].flags & kFlagMissingFinalBoundary, 0u);
    EXPECT_EQ(t.parts[3].parent, 0);
    EXPECT_EQ(body_of(msg, t.parts[3]), "second");
    EXPECT_EQ(t.root().flags & kFlagMissingFinalBoundary, 0u);
}

TEST(MimeParser, EncodedMessageRfc822StaysOpaque) {
    std::string msg =
        "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        "U3ViamVjdDogaGkNCg0KYm9keQ0K\r\n";
    PartTree t = parse_message(msg);
    EXPECT_EQ(t.parts.size(), 1u);
}

TEST(MimeParser, MessageRfc822GetsAnEnvelopeAndTheSameEnd) {
    std::string msg =
        "Subject: outer\r\nContent-Type: message/rfc822\r\n\r\n"
        "Subject: inner\r\nFrom: A <a@b>\r\n\r\ninner body\r\n";
    PartTree t = parse_message(msg);
    ASSERT_EQ(t.parts.size(), 2u);
    ASSERT_TRUE(t.parts[1].envelope);
    EXPECT_EQ(t.parts[1].envelope->subject, "inner");
    EXPECT_EQ(t.root().envelope->subject, "outer");
    EXPECT_EQ(t.parts[1].header_offset, t.root().body_offset);
    EXPECT_EQ(body_of(msg, t.parts[1]), "inner body\r\n");
    EXPECT_EQ(t.root().body_lines, 4u);
}

TEST(MimeParser, DigestChildrenDefaultToRfc822) {
    std::string msg =
        "Content-Type: multipart/digest; boundary=d\r\n\r\n"
        "--d\r\n\r\nSubject: one\r\n\r\nfirst\r\n"
        "--d\r\nContent-Type: text/plain\r\n\r\nplain\r\n--d--\r\n";
    PartTree t = parse_message(msg);
    ASSERT_EQ(t.parts.size(), 4u);
    EXPECT_EQ(t.parts[1].type, "message");
    EXPECT_EQ(t.parts[1].subtype, "rfc822");
    EXPECT_FALSE(t.parts[1].content_type_given);
    EXPECT_EQ(t.parts[2].envelope->subject, "one");
    EXPECT_EQ(t.parts[3].type, "text");
}

TEST(MimeParser, DepthLimitStopsDescending) {
    std::string msg;
    for (int i = 0; i < 10; ++i) {
        msg += "Content-Type: multipart/mixed; boundary=b" + std::to_string(i) + "\r\n\r\n--b" +
               std::to_string(i) + "\r\n";
    }
    msg += "\r\nleaf\r\n";
    ParserLimits limits;
    limits.max_depth = 4;
    PartTree t = parse_message(msg, limits);
    EXPECT_EQ(t.parts.size(), 4u);
    EXPECT_NE(t.limits_hit & kFlagDepthLimit, 0u);
    EXPECT_NE(t.parts[3].flags & kFlagDepthLimit, 0u);
    EXPECT_TRUE(check_tree(t).has_value());
    // Without the limit, all levels are there.
    EXPECT_EQ(parse_message(msg).parts.size(), 11u);
}

TEST(MimeParser, DepthLimitAppliesToMessageRfc822Too) {
    std::string msg;
    for (int i = 0; i < 50; ++i) {
        msg += "Content-Type: message/rfc822\r\n\r\n";
    }
    msg += "Subject: deepest\r\n\r\nbody\r\n";
    PartTree t = parse_message(msg);  // default max_depth 32
    EXPECT_EQ(t.parts.size(), 32u);
    EXPECT_NE(t.limits_hit & kFlagDepthLimit, 0u);
    EXPECT_EQ(t.parts.back().body_offset + t.parts.back().body_size, msg.size());
}

TEST(MimeParser, PartLimitMakesTheRestOpaque) {
    std::string msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n";
    for (int i = 0; i < 20; ++i) {
        msg += "--b\r\n\r\npart " + std::to_string(i) + "\r\n";
    }
    msg += "--b--\r\n";
    ParserLimits limits;
    limits.max_parts = 5;
    PartTree t = parse_message(msg, limits);
    ASSERT_EQ(t.parts.size(), 5u);
    EXPECT_NE(t.root().flags & kFlagPartLimit, 0u);
    // The last child ends at the next boundary; the rest is the root's body.
    EXPECT_EQ(body_of(msg, t.parts[4]), "part 3");
    EXPECT_EQ(t.root().body_offset + t.root().body_size, msg.size());
}

TEST(MimeParser, HeaderLimitTruncatesFieldsButFindsTheBody) {
    std::string msg = "Subject: kept\r\nX-Big: " + std::string(100000, 'x') +
                      "\r\nContent-Type: text/html\r\n\r\nbody\r\n";
    PartTree t = parse_message(msg);  // default max_header_size 64 KiB
    EXPECT_NE(t.root().flags & kFlagHeaderTruncated, 0u);
    EXPECT_EQ(t.root().envelope->subject, "kept");
    EXPECT_EQ(t.root().type, "text");  // the Content-Type came after the cut
    EXPECT_EQ(body_of(msg, t.root()), "body\r\n");
}

TEST(MimeParser, TotalHeaderBudgetCapsManyBigHeaders) {
    std::string msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n";
    for (int i = 0; i < 30; ++i) {
        msg +=
            "--b\r\nX-Pad: " + std::string(1000, 'p') + "\r\nContent-Type: text/html\r\n\r\nx\r\n";
    }
    msg += "--b--\r\n";
    ParserLimits limits;
    limits.max_total_header_size = 10000;
    PartTree t = parse_message(msg, limits);
    ASSERT_EQ(t.parts.size(), 31u);
    EXPECT_EQ(t.parts[1].subtype, "html");
    EXPECT_EQ(t.parts[30].subtype, "plain");  // its header was not kept
    EXPECT_NE(t.parts[30].flags & kFlagHeaderTruncated, 0u);
    EXPECT_EQ(body_of(msg, t.parts[30]), "x");
}

TEST(MimeParser, BoundaryLongerThanTheLimitIsOpaque) {
    std::string b(300, 'q');
    std::string msg = "Content-Type: multipart/mixed; boundary=" + b + "\r\n\r\n--" + b +
                      "\r\n\r\ntext\r\n--" + b + "--\r\n";
    PartTree t = parse_message(msg);
    EXPECT_EQ(t.parts.size(), 1u);
    EXPECT_NE(t.root().flags & kFlagBoundaryTooLong, 0u);
    ParserLimits limits;
    limits.max_boundary_length = 400;
    EXPECT_EQ(parse_message(msg, limits).parts.size(), 2u);
}

TEST(MimeParser, VeryLongLinesAndNulBytes) {
    std::string msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n" +
                      std::string(1 << 20, 'z') + std::string(1, '\0') + "\r\n--b--\r\n";
    PartTree t = parse_message(msg);
    ASSERT_EQ(t.parts.size(), 2u);
    EXPECT_EQ(t.parts[1].body_size, (1u << 20) + 1);
    EXPECT_NE(t.parts[1].flags & kFlagHasNul, 0u);
}

TEST(MimeParser, BareLfCountsAndVirtualSizes) {
    std::string msg = "A: 1\nB: 2\r\n\nx\ny\r\n";
    PartTree t = parse_message(msg);
    const Part& r = t.root();
    EXPECT_EQ(r.header_size, 12u);
    EXPECT_EQ(r.header_lines, 3u);
    EXPECT_EQ(r.header_bare_lf, 2u);
    EXPECT_EQ(r.header_virtual_size(), 14u);
    EXPECT_EQ(r.body_lines, 2u);
    EXPECT_EQ(r.body_bare_lf, 1u);
    EXPECT_EQ(r.body_virtual_size(), 6u);
    EXPECT_NE(r.flags & kFlagBareLf, 0u);
}

TEST(MimeParser, LineOfSpacesDoesNotEndTheHeader) {
    PartTree t = parse_message("Subject: a\r\n \r\nTo: b@c\r\n\r\nbody");
    EXPECT_EQ(t.root().envelope->to, "b@c");
    EXPECT_EQ(t.root().body_size, 4u);
}

TEST(MimeParser, FeedAfterFinishIsIgnored) {
    MimeParser p;
    p.feed("Subject: x\r\n\r\nbody");
    PartTree t = p.finish();
    p.feed("more");
    EXPECT_EQ(t.message_size, 18u);
    EXPECT_TRUE(p.finish().parts.empty());
}

TEST(MimeParser, EnvelopeFields) {
    PartTree t = parse_message(
        "From: A <a@x>\r\nSender: s@x\r\nReply-To: r@x\r\nTo: t@x\r\nCc: c@x\r\nBcc: b@x\r\n"
        "Subject:  spaced  \r\nDate: Mon, 1 Jan 2026 00:00:00 +0000\r\n"
        "In-Reply-To: <p@x>\r\nMessage-ID: <m@x>\r\nSubject: second ignored\r\n\r\n");
    const Envelope& e = *t.root().envelope;
    EXPECT_EQ(e.subject, "spaced");
    EXPECT_EQ(e.sender_addrs.at(0).mailbox, "s");
    EXPECT_EQ(e.reply_to_addrs.at(0).mailbox, "r");
    EXPECT_EQ(e.cc_addrs.at(0).mailbox, "c");
    EXPECT_EQ(e.bcc_addrs.at(0).mailbox, "b");
    EXPECT_EQ(e.in_reply_to, "<p@x>");
    EXPECT_EQ(e.message_id, "<m@x>");
    EXPECT_EQ(e.date, "Mon, 1 Jan 2026 00:00:00 +0000");
    // Absent and empty are different (NIL vs "").
    PartTree t2 = parse_message("Subject:\r\n\r\n");
    EXPECT_EQ(t2.root().envelope->subject, "");
    EXPECT_FALSE(t2.root().envelope->from);
}

TEST(MimeParser, BufferedBytesStayWithinTheLimits) {
    ParserLimits limits;
    limits.max_header_size = 1000;
    limits.max_boundary_length = 70;
    MimeParser p(limits);
    // Bound: one header, one line prefix, one boundary per level.
    const size_t bound = limits.max_header_size + (limits.max_boundary_length + 4) +
                         8 * (limits.max_boundary_length + 2);
    size_t peak = 0;
    auto feed = [&](const std::string& s) {
        // Odd chunk sizes, so lines are split everywhere.
        for (size_t off = 0; off < s.size(); off += 777) {
            p.feed(std::string_view(s).substr(off, 777));
            peak = std::max(peak, p.buffered_bytes());
        }
    };
    // The Content-Type comes first: what follows X-Huge is past the header
    // limit and not read.
    feed("Content-Type: multipart/mixed; boundary=" + std::string(70, 'b') + "\r\n");
    feed("Subject: x\r\nX-Huge: " + std::string(50000, 'h') + "\r\n\r\n");
    feed("--" + std::string(70, 'b') + "\r\nContent-Type: text/plain\r\n\r\n");
    for (int i = 0; i < 200; ++i) {
        feed(std::string(10000, 'x') + "\r\n");  // 2 MB of body lines
    }
    feed(std::string(3000000, 'y'));  // and one 3 MB line
    feed("\r\n--" + std::string(70, 'b') + "--\r\n");
    EXPECT_LE(peak, bound);
    PartTree t = p.finish();
    ASSERT_EQ(t.parts.size(), 2u);
    EXPECT_NE(t.root().flags & kFlagHeaderTruncated, 0u);
    EXPECT_GT(t.parts[1].body_size, 5000000u);
}

TEST(MimeParser, LargeBodyStreamsInChunks) {
    // 8 MiB through the parser in 4 KiB chunks; the tree stays one part and
    // the counts match, with no part of the body kept anywhere.
    MimeParser p;
    p.feed("Subject: big\r\n\r\n");
    std::string chunk;
    for (int i = 0; i < 64; ++i) {
        chunk += std::string(62, 'a') + "\r\n";
    }
    for (int i = 0; i < 2048; ++i) {
        p.feed(chunk);
    }
    PartTree t = p.finish();
    EXPECT_EQ(t.root().body_size, 2048u * 4096);
    EXPECT_EQ(t.root().body_lines, 2048u * 64);
    EXPECT_EQ(t.message_size, 16u + 2048u * 4096);
}

}  // namespace
}  // namespace yubin::mime

// ---- generated messages ------------------------------------------------------
// Random trees of multipart, message/rfc822 and leaf parts, written out with
// random CRLF/LF line ends while recording where each part's header and body
// must be; the parser has to find exactly those offsets.

namespace yubin::mime {
namespace {

struct Expected {
    int32_t parent = -1;
    uint64_t header_offset = 0;
    uint64_t header_size = 0;
    uint64_t body_offset = 0;
    uint64_t body_size = 0;
    std::string type;
};

class Generator {
  public:
    explicit Generator(unsigned seed) : rng_(seed), mixed_(seed % 3 == 0), crlf_(seed % 2 == 0) {}

    std::string message(std::vector<Expected>& expected) {
        out_.clear();
        part(expected, -1, 0);
        return out_;
    }

  private:
    std::string eol() {
        bool crlf = mixed_ ? (rng_() % 2 == 0) : crlf_;
        return crlf ? "\r\n" : "\n";
    }
    size_t pick(size_t n) { return rng_() % n; }
    std::string text_line() {
        static const char* kWords[] = {
            "lorem", "ipsum", "-dash", "x", "", "a b", "\xc3\xa9t\xc3\xa9"};
        std::string line;
        for (size_t i = 0, n = pick(5); i < n; ++i) {
            line += kWords[pick(7)];
            line += ' ';
        }
        return line;
    }

    void part(std::vector<Expected>& ex, int32_t parent, int depth) {
        size_t index = ex.size();
        ex.push_back(Expected{});
        ex[index].parent = parent;
        ex[index].header_offset = out_.size();
        size_t kind = depth < 4 ? pick(4) : 0;  // 0, 1 leaf; 2 multipart; 3 message
        std::string boundary = "=_b" + std::to_string(index) + "_" + std::to_string(pick(1000));
        if (parent < 0 || pick(2) == 0) {
            out_ += "Subject: " + text_line() + eol();
        }
        if (kind == 2) {
            ex[index].type = "multipart";
            out_ +=
                "Content-Type: multipart/mixed;" + eol() + " boundary=\"" + boundary + "\"" + eol();
        } else if (kind == 3) {
            ex[index].type = "message";
            out_ += "Content-Type: message/rfc822" + eol();
        } else {
            ex[index].type = "text";
            if (pick(2) == 0) {
                out_ += "Content-Type: text/plain; charset=utf-8" + eol();
            }
        }
        out_ += eol();  // the empty line
        ex[index].header_size = out_.size() - ex[index].header_offset;
        ex[index].body_offset = out_.size();
        if (kind == 2) {
            if (pick(2) == 0) {
                out_ += "preamble " + text_line() + eol();
            }
            for (size_t c = 0, n = 1 + pick(3); c < n; ++c) {
                // The line break before each delimiter belongs to it.
                if (c > 0 || out_.size() > ex[index].body_offset) {
                    out_ += eol();
                }
                out_ += "--" + boundary + (pick(3) == 0 ? "  " : "") + eol();
                part(ex, static_cast<int32_t>(index), depth + 1);
            }
            out_ += eol() + "--" + boundary + "--";
            if (pick(2) == 0) {
                out_ += eol() + "epilogue " + text_line();
            }
        } else if (kind == 3) {
            part(ex, static_cast<int32_t>(index), depth + 1);
        } else {
            for (size_t l = 0, n = pick(4); l < n; ++l) {
                out_ += text_line();
                if (l + 1 < n || pick(2) == 0) {
                    out_ += eol();
                }
            }
        }
        ex[index].body_size = out_.size() - ex[index].body_offset;
    }

    std::mt19937 rng_;
    bool mixed_;
    bool crlf_;
    std::string out_;
};

TEST(MimeParserGenerated, FindsExactlyTheGeneratedStructure) {
    size_t total_parts = 0;
    size_t multiparts = 0;
    size_t messages = 0;
    for (unsigned seed = 1; seed <= 400; ++seed) {
        SCOPED_TRACE("seed " + std::to_string(seed));
        Generator gen(seed);
        std::vector<Expected> ex;
        std::string msg = gen.message(ex);
        PartTree t = parse_message(msg);
        ASSERT_EQ(t.parts.size(), ex.size()) << msg;
        total_parts += ex.size();
        for (const Expected& e : ex) {
            multiparts += e.type == "multipart" ? 1 : 0;
            messages += e.type == "message" ? 1 : 0;
        }
        for (size_t i = 0; i < ex.size(); ++i) {
            SCOPED_TRACE("part " + std::to_string(i));
            const Part& p = t.parts[i];
            EXPECT_EQ(p.parent, ex[i].parent);
            EXPECT_EQ(p.type, ex[i].type);
            EXPECT_EQ(p.header_offset, ex[i].header_offset);
            EXPECT_EQ(p.header_size, ex[i].header_size);
            EXPECT_EQ(p.body_offset, ex[i].body_offset);
            EXPECT_EQ(p.body_size, ex[i].body_size) << msg;
            std::string_view body = at(msg, p.body_offset, p.body_size);
            EXPECT_EQ(p.body_lines,
                      static_cast<uint64_t>(std::count(body.begin(), body.end(), '\n')));
        }
        EXPECT_EQ(t.limits_hit & ~static_cast<uint32_t>(kFlagBareLf | kFlagEightBitHeader), 0u);
        // Random chunking gives the same tree.
        std::mt19937 rng(seed);
        MimeParser chunked;
        for (size_t pos = 0; pos < msg.size();) {
            size_t n = std::min<size_t>(msg.size() - pos, rng() % 40);
            chunked.feed(std::string_view(msg).substr(pos, n));
            pos += n;
        }
        EXPECT_EQ(chunked.finish(), t);
    }
    // The generator really builds nested trees.
    EXPECT_GT(total_parts, 1000u);
    EXPECT_GT(multiparts, 200u);
    EXPECT_GT(messages, 200u);
    std::printf("generated %zu parts, %zu multiparts, %zu message/rfc822\n", total_parts,
                multiparts, messages);
}

}  // namespace
}  // namespace yubin::mime
