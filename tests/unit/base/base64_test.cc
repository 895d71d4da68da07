#include "common/base/base64.h"

#include <gtest/gtest.h>

namespace yubin {
namespace {

TEST(Base64, EncodesRfc4648Vectors) {
    EXPECT_EQ(base64_encode(""), "");
    EXPECT_EQ(base64_encode("f"), "Zg==");
    EXPECT_EQ(base64_encode("fo"), "Zm8=");
    EXPECT_EQ(base64_encode("foo"), "Zm9v");
    EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
    EXPECT_EQ(base64_encode("fooba"), "Zm9vYmE=");
    EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
}

TEST(Base64, StrictDecodeRoundTripsAndRejectsGarbage) {
    EXPECT_EQ(base64_decode("Zm9vYmE=").value(), "fooba");
    EXPECT_EQ(base64_decode("AGJvYgBzZWNyZXQ=").value(), std::string("\0bob\0secret", 11));
    EXPECT_FALSE(base64_decode("Zm9").has_value());       // length not a multiple of 4
    EXPECT_FALSE(base64_decode("Zm=v").has_value());      // data after padding
    EXPECT_FALSE(base64_decode("Zm9v\r\n").has_value());  // whitespace
    EXPECT_FALSE(base64_decode("Z===").has_value());      // too much padding
    EXPECT_FALSE(base64_decode("Zg==Zg==").has_value());  // padding before the end
}

TEST(Base64, LenientDecodeSkipsLineBreaks) {
    EXPECT_EQ(base64_decode_lenient("Zm9v\r\nYmFy\r\n"), "foobar");
    EXPECT_EQ(base64_decode_lenient("Zm9vYg"), "foob");
}

TEST(Base64, EveryByteValueRoundTrips) {
    std::string all;
    for (int i = 0; i < 256; ++i) {
        all += static_cast<char>(i);
    }
    EXPECT_EQ(base64_decode(base64_encode(all)).value(), all);
}

}  // namespace
}  // namespace yubin
