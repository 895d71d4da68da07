#include "common/base/strings.h"

#include <gtest/gtest.h>

namespace yubin {
namespace {

TEST(Strings, CaseInsensitiveCompareIsAsciiOnly) {
    EXPECT_TRUE(iequals("EHLO", "ehlo"));
    EXPECT_FALSE(iequals("EHLO", "EHL"));
    EXPECT_FALSE(iequals("\xc3\x84", "\xc3\xa4"));  // Ä vs ä: not ASCII, not folded
    EXPECT_TRUE(istarts_with("MAIL FROM:<a@b>", "mail from:"));
}

TEST(Strings, ParseU64RejectsOverflowAndSigns) {
    EXPECT_EQ(parse_u64("0").value(), 0u);
    EXPECT_EQ(parse_u64("18446744073709551615").value(), 18446744073709551615ull);
    EXPECT_FALSE(parse_u64("18446744073709551616").has_value());
    EXPECT_FALSE(parse_u64("-1").has_value());
    EXPECT_FALSE(parse_u64("").has_value());
    EXPECT_FALSE(parse_u64("12a").has_value());
}

TEST(Strings, SplitAddressLowercasesDomainOnly) {
    auto parts = split_address("John.Doe@Example.TEST");
    ASSERT_TRUE(parts);
    EXPECT_EQ(parts->local, "John.Doe");
    EXPECT_EQ(parts->domain, "example.test");
    EXPECT_FALSE(split_address("nodomain@").has_value());
    EXPECT_FALSE(split_address("@example.test").has_value());
    EXPECT_FALSE(split_address("plain").has_value());
    // The last @ separates: quoted local parts may contain @ (RFC 5321 §4.1.2).
    EXPECT_EQ(split_address("\"a@b\"@c.test")->local, "\"a@b\"");
}

TEST(Strings, TrimAndSplit) {
    EXPECT_EQ(trim("  a b \r\n"), "a b");
    auto v = split("a,,b", ',');
    ASSERT_EQ(v.size(), 3u);
    EXPECT_EQ(v[1], "");
    EXPECT_EQ(v[2], "b");
}

}  // namespace
}  // namespace yubin
