#include "common/smtp/xtext.h"

#include <random>
#include <string>

#include <gtest/gtest.h>

namespace yubin::smtp {
namespace {

TEST(Xtext, EncodesSpecials) {
    EXPECT_EQ(xtext_encode("user@example.com"), "user@example.com");
    EXPECT_EQ(xtext_encode("a+b=c"), "a+2Bb+3Dc");
    EXPECT_EQ(xtext_encode("a b"), "a+20b");
    EXPECT_EQ(xtext_encode(std::string("\0\x7f\xff", 3)), "+00+7F+FF");
    EXPECT_EQ(xtext_encode(""), "");
}

TEST(Xtext, DecodesValid) {
    EXPECT_EQ(xtext_decode("a+2Bb+3Dc").value(), "a+b=c");
    EXPECT_EQ(xtext_decode("rfc822+3Buser@x").value(), "rfc822;user@x");
    // Lower-case hex is accepted on input.
    EXPECT_EQ(xtext_decode("+2b").value(), "+");
    EXPECT_EQ(xtext_decode("").value(), "");
}

TEST(Xtext, RejectsInvalid) {
    for (const char* bad : {"+", "+2", "+2G", "a=b", "a b", "+G0", "abc+", "\x80", "a\tb"}) {
        EXPECT_FALSE(xtext_decode(bad).has_value()) << bad;
        EXPECT_FALSE(is_xtext(bad)) << bad;
    }
    EXPECT_TRUE(is_xtext("a+2Bb"));
    EXPECT_TRUE(is_xtext("~!"));
}

TEST(Xtext, RoundTripsRandomBytes) {
    std::mt19937 rng(1234);
    for (int i = 0; i < 500; ++i) {
        std::string raw(rng() % 40, '\0');
        for (char& c : raw) {
            c = static_cast<char>(rng() & 0xff);
        }
        std::string enc = xtext_encode(raw);
        ASSERT_TRUE(is_xtext(enc));
        auto dec = xtext_decode(enc);
        ASSERT_TRUE(dec.has_value());
        EXPECT_EQ(*dec, raw);
    }
}

}  // namespace
}  // namespace yubin::smtp
