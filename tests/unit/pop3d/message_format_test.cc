#include "pop3d/message_format.h"

#include <gtest/gtest.h>

namespace yubin::pop3d {
namespace {

std::string encode(std::string_view m) {
    std::string out;
    encode_message(m, out);
    return out;
}

std::string top(std::string_view m, uint64_t n) {
    std::string out;
    encode_top(m, n, out);
    return out;
}

TEST(MessageFormat, CrlfMessageIsSentAsIs) {
    std::string m = "Subject: x\r\n\r\nhello\r\n";
    EXPECT_EQ(encode(m), m);
    EXPECT_EQ(encoded_size(m), m.size());
}

TEST(MessageFormat, DotStuffsLinesStartingWithDot) {
    std::string m = "Subject: x\r\n\r\n.\r\n..two\r\n.x\r\nmid.dle\r\n";
    EXPECT_EQ(encode(m), "Subject: x\r\n\r\n..\r\n...two\r\n..x\r\nmid.dle\r\n");
    EXPECT_EQ(encoded_size(m), m.size() + 3);
}

TEST(MessageFormat, BareLfBecomesCrlfAndBareCrStays) {
    EXPECT_EQ(encode("a\nb\r\nc\rd\n"), "a\r\nb\r\nc\rd\r\n");
    EXPECT_EQ(encoded_size("a\nb\r\nc\rd\n"), encode("a\nb\r\nc\rd\n").size());
}

TEST(MessageFormat, MissingFinalLineEndIsAdded) {
    EXPECT_EQ(encode("a\r\n.end"), "a\r\n..end\r\n");
    EXPECT_EQ(encoded_size("a\r\n.end"), 10u);  // 3 + 7
    EXPECT_EQ(encode(""), "");
    EXPECT_EQ(encoded_size(""), 0u);
}

TEST(MessageFormat, SizeAlwaysMatchesEncodingOnArbitraryBytes) {
    // A deterministic pseudo-random mix of the interesting bytes.
    uint32_t x = 12345;
    const char alphabet[] = {'.', '\r', '\n', 'a', ' ', '\0'};
    for (int round = 0; round < 500; ++round) {
        std::string m;
        size_t len = round % 64;
        for (size_t i = 0; i < len; ++i) {
            x = x * 1103515245u + 12345u;
            m.push_back(alphabet[(x >> 16) % sizeof alphabet]);
        }
        std::string e = encode(m);
        ASSERT_EQ(encoded_size(m), e.size()) << round;
        // The wire form never contains a bare LF and always ends with CRLF.
        if (!e.empty()) {
            ASSERT_EQ(e.substr(e.size() - 2), "\r\n");
        }
        for (size_t i = 0; i < e.size(); ++i) {
            if (e[i] == '\n') {
                ASSERT_TRUE(i > 0 && e[i - 1] == '\r') << round;
            }
        }
        // No line of the wire form is a lone "." (it would end the reply).
        ASSERT_EQ(("\r\n" + e).find("\r\n.\r\n"), std::string::npos) << round;
    }
}

TEST(MessageFormat, TopSendsHeaderBlankLineAndNLines) {
    std::string m = "A: 1\r\nB: 2\r\n\r\nl1\r\n.l2\r\nl3\r\n";
    EXPECT_EQ(top(m, 0), "A: 1\r\nB: 2\r\n\r\n");
    EXPECT_EQ(top(m, 2), "A: 1\r\nB: 2\r\n\r\nl1\r\n..l2\r\n");
    EXPECT_EQ(top(m, 99), encode(m));
}

TEST(MessageFormat, TopOfHeaderOnlyMessageIsWholeMessage) {
    EXPECT_EQ(top("A: 1\r\nB: 2\r\n", 0), "A: 1\r\nB: 2\r\n");
}

}  // namespace
}  // namespace yubin::pop3d
