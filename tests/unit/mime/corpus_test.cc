// The hand-written corpus in tests/testdata/mime: goldens, split-feeding
// equivalence, serialization round trips, and an independent check that every
// part's offsets land on the right bytes.
//
// YUBIN_UPDATE_GOLDENS=1 rewrites the goldens (<name>.json) from the current
// parser instead of comparing; review the diff before committing it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/mime/encoded_words.h"
#include "common/mime/mime_parser.h"
#include "common/mime/serialize.h"

namespace yubin::mime {
namespace {

namespace fs = std::filesystem;

const fs::path kDir = YUBIN_MIME_TESTDATA;

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<fs::path> corpus() {
    std::vector<fs::path> out;
    for (const auto& entry : fs::directory_iterator(kDir)) {
        if (entry.path().extension() == ".eml") {
            out.push_back(entry.path());
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

bool update_goldens() {
    const char* v = std::getenv("YUBIN_UPDATE_GOLDENS");
    return v != nullptr && std::string(v) == "1";
}

TEST(MimeCorpus, HasTheMessages) {
    // The issue asks for at least 20 hand-written messages.
    EXPECT_GE(corpus().size(), 20u);
}

TEST(MimeCorpus, MatchesGoldens) {
    for (const fs::path& eml : corpus()) {
        SCOPED_TRACE(eml.filename().string());
        std::string json = to_json(parse_message(read_file(eml)));
        fs::path golden = eml;
        golden.replace_extension(".json");
        if (update_goldens()) {
            std::ofstream(golden, std::ios::binary) << json;
            continue;
        }
        ASSERT_TRUE(fs::exists(golden)) << "no golden; run with YUBIN_UPDATE_GOLDENS=1";
        std::string want = read_file(golden);
        if (json != want) {
            // Point at the first differing line rather than print both.
            std::istringstream a(json);
            std::istringstream b(want);
            std::string la;
            std::string lb;
            int line = 0;
            while (true) {
                bool more_a = static_cast<bool>(std::getline(a, la));
                bool more_b = static_cast<bool>(std::getline(b, lb));
                ++line;
                if (la != lb || more_a != more_b) {
                    ADD_FAILURE() << golden.filename().string() << ":" << line << ": golden has\n  "
                                  << lb << "\nparser gives\n  " << la;
                    break;
                }
                if (!more_a) {
                    break;
                }
            }
        }
    }
}

PartTree parse_in_chunks(std::string_view msg, const std::vector<size_t>& cuts) {
    MimeParser parser;
    size_t pos = 0;
    for (size_t cut : cuts) {
        parser.feed(msg.substr(pos, cut - pos));
        pos = cut;
    }
    parser.feed(msg.substr(pos));
    return parser.finish();
}

TEST(MimeCorpus, SplitFeedingGivesTheSameTree) {
    for (const fs::path& eml : corpus()) {
        SCOPED_TRACE(eml.filename().string());
        std::string msg = read_file(eml);
        PartTree whole = parse_message(msg);

        // One byte at a time, empty chunks included.
        MimeParser bytewise;
        for (char c : msg) {
            bytewise.feed(std::string_view(&c, 1));
            bytewise.feed({});
        }
        EXPECT_EQ(bytewise.finish(), whole) << "byte by byte";

        for (unsigned seed = 1; seed <= 25; ++seed) {
            std::mt19937 rng(seed);
            std::uniform_int_distribution<size_t> pick(0, msg.size());
            std::vector<size_t> cuts(1 + seed % 12);
            for (size_t& c : cuts) {
                c = pick(rng);
            }
            std::sort(cuts.begin(), cuts.end());
            EXPECT_EQ(parse_in_chunks(msg, cuts), whole) << "seed " << seed;
        }
    }
}

TEST(MimeCorpus, SerializationRoundTrips) {
    for (const fs::path& eml : corpus()) {
        SCOPED_TRACE(eml.filename().string());
        PartTree tree = parse_message(read_file(eml));
        ASSERT_TRUE(check_tree(tree).has_value()) << check_tree(tree).error().to_string();
        std::string bytes = serialize(tree);
        auto back = deserialize(bytes);
        ASSERT_TRUE(back.has_value()) << back.error().to_string();
        EXPECT_EQ(*back, tree);
        EXPECT_EQ(serialize(*back), bytes);
    }
}

TEST(MimeCorpus, TruncatedOrFlippedSerializationIsRejected) {
    for (const fs::path& eml : corpus()) {
        SCOPED_TRACE(eml.filename().string());
        std::string bytes = serialize(parse_message(read_file(eml)));
        for (size_t len = 0; len < bytes.size(); ++len) {
            EXPECT_FALSE(deserialize(std::string_view(bytes).substr(0, len)).has_value())
                << "truncated to " << len;
        }
        // The CRC-32 catches every single-byte change.
        std::mt19937 rng(7);
        for (size_t pos = 0; pos < bytes.size(); ++pos) {
            std::string bad = bytes;
            bad[pos] = static_cast<char>(bad[pos] ^ (1 + rng() % 255));
            EXPECT_FALSE(deserialize(bad).has_value()) << "byte " << pos << " changed";
        }
    }
}

TEST(MimeCorpus, EncodedWordsInTheEnvelopeDecode) {
    // The envelope keeps raw values; the RFC 2047 helper turns them into text.
    PartTree t = parse_message(read_file(kDir / "rfc2047_headers.eml"));
    const Envelope& e = *t.root().envelope;
    EXPECT_EQ(decode_encoded_words(*e.subject), "Grüße aus Köln und Überraschung日本語の件名");
    ASSERT_EQ(e.from_addrs.size(), 1u);
    EXPECT_EQ(decode_encoded_words(e.from_addrs[0].name), "Jürgen Müller");
    ASSERT_EQ(e.to_addrs.size(), 2u);
    EXPECT_EQ(decode_encoded_words(e.to_addrs[0].name), "François Château");
    EXPECT_EQ(decode_encoded_words(e.to_addrs[1].name), "Zoë Smith");
}

// ---- independent offset verification ---------------------------------------

struct Checker {
    const std::string& msg;
    const PartTree& tree;

    std::string boundary_of(const Part& p) const {
        const std::string* b = p.param("boundary");
        return b == nullptr ? std::string() : *b;
    }

    // The boundaries in force at `index`: those of its multipart ancestors.
    std::vector<std::string> ancestor_boundaries(uint32_t index) const {
        std::vector<std::string> out;
        for (int32_t a = tree.parts[index].parent; a >= 0;
             a = tree.parts[static_cast<size_t>(a)].parent) {
            const Part& anc = tree.parts[static_cast<size_t>(a)];
            if (anc.is_multipart() && !boundary_of(anc).empty()) {
                out.push_back(boundary_of(anc));
            }
        }
        return out;
    }

    // True if a part may end at `pos`: the end of the message, or a line
    // break followed by "--boundary", or "--boundary" at a line start.
    bool at_delimiter(uint64_t pos, const std::vector<std::string>& boundaries) const {
        if (pos == msg.size()) {
            return true;
        }
        std::string_view rest = std::string_view(msg).substr(static_cast<size_t>(pos));
        for (const std::string& b : boundaries) {
            for (std::string_view lead : {"\r\n--", "\n--", "--"}) {
                if (lead == "--" && pos != 0 && msg[static_cast<size_t>(pos) - 1] != '\n') {
                    continue;
                }
                std::string want = std::string(lead) + b;
                if (rest.substr(0, want.size()) == want) {
                    return true;
                }
            }
        }
        return false;
    }

    static uint64_t count_lf(std::string_view msg, uint64_t off, uint64_t size, bool bare) {
        uint64_t n = 0;
        for (uint64_t i = off; i < off + size; ++i) {
            if (msg[static_cast<size_t>(i)] == '\n' &&
                (!bare || i == 0 || msg[static_cast<size_t>(i) - 1] != '\r')) {
                ++n;
            }
        }
        return n;
    }

    void check(uint32_t index) const {
        SCOPED_TRACE("part " + std::to_string(index));
        const Part& p = tree.parts[index];
        const uint64_t header_end = p.header_offset + p.header_size;
        const uint64_t body_end = p.body_offset + p.body_size;
        ASSERT_EQ(p.body_offset, header_end);
        ASSERT_LE(body_end, msg.size());
        std::vector<std::string> bounds = ancestor_boundaries(index);

        // Line counts, straight from the bytes.
        EXPECT_EQ(p.header_lines, count_lf(msg, p.header_offset, p.header_size, false));
        EXPECT_EQ(p.header_bare_lf, count_lf(msg, p.header_offset, p.header_size, true));
        EXPECT_EQ(p.body_lines, count_lf(msg, p.body_offset, p.body_size, false));
        EXPECT_EQ(p.body_bare_lf, count_lf(msg, p.body_offset, p.body_size, true));

        // The header ends with its empty line ("\n\n", "\r\n\r\n", "\n\r\n",
        // or is just that line), unless it was cut short by a boundary or
        // the end of the message.
        std::string_view header = std::string_view(msg).substr(p.header_offset, p.header_size);
        bool empty_line_end = header == "\n" || header == "\r\n" ||
                              (header.size() >= 2 && header.substr(header.size() - 2) == "\n\n") ||
                              (header.size() >= 3 && header.substr(header.size() - 3) == "\n\r\n");
        if ((p.flags & kFlagNoHeaderEnd) != 0) {
            EXPECT_FALSE(empty_line_end && p.body_size > 0);
            EXPECT_TRUE(at_delimiter(header_end, bounds)) << "header cut at " << header_end;
        } else if (!empty_line_end) {
            // Only a boundary right after the empty line takes its break.
            EXPECT_EQ(p.body_size, 0u);
            EXPECT_TRUE(at_delimiter(header_end, bounds));
        }

        if (p.parent < 0) {
            EXPECT_EQ(p.header_offset, 0u);
            EXPECT_EQ(body_end, msg.size());
            return;
        }
        const Part& parent = tree.parts[static_cast<size_t>(p.parent)];
        if (parent.is_message()) {
            // The encapsulated message fills its parent's body exactly.
            EXPECT_EQ(p.header_offset, parent.body_offset);
            EXPECT_EQ(body_end, parent.body_offset + parent.body_size);
            return;
        }
        ASSERT_TRUE(parent.is_multipart());
        // A multipart child ends at a boundary (its own multipart's or an
        // outer one's, when the close delimiter is missing) or at the end.
        EXPECT_TRUE(at_delimiter(body_end, bounds)) << "body end " << body_end;
        if (p.header_size == 0 && p.body_size == 0) {
            return;  // an empty part squeezed between two boundary lines
        }
        // It starts right after a "--boundary" line of its parent.
        ASSERT_GT(p.header_offset, 0u);
        ASSERT_EQ(msg[p.header_offset - 1], '\n');
        size_t line_start = msg.rfind('\n', p.header_offset - 2);
        line_start = line_start == std::string::npos ? 0 : line_start + 1;
        std::string delimiter = "--" + boundary_of(parent);
        EXPECT_EQ(msg.substr(line_start, delimiter.size()), delimiter)
            << "line before part: " << msg.substr(line_start, p.header_offset - line_start);
    }
};

TEST(MimeCorpus, OffsetsLandOnTheRightBytes) {
    for (const fs::path& eml : corpus()) {
        SCOPED_TRACE(eml.filename().string());
        std::string msg = read_file(eml);
        PartTree tree = parse_message(msg);
        ASSERT_EQ(tree.message_size, msg.size());
        ASSERT_EQ(tree.message_lines,
                  static_cast<uint64_t>(std::count(msg.begin(), msg.end(), '\n')));
        Checker checker{msg, tree};
        for (uint32_t i = 0; i < tree.parts.size(); ++i) {
            checker.check(i);
        }
    }
}

}  // namespace
}  // namespace yubin::mime
