#include "common/auth/password.h"

#include <gtest/gtest.h>

namespace yubin::auth {
namespace {

TEST(Password, HashIsYescryptAndVerifies) {
    auto hash = hash_password("correct horse");
    ASSERT_TRUE(hash) << hash.error().to_string();
    EXPECT_EQ(hash->rfind("$y$", 0), 0u) << *hash;
    EXPECT_TRUE(verify_password("correct horse", *hash));
    EXPECT_FALSE(verify_password("correct horsE", *hash));
    EXPECT_FALSE(verify_password("", *hash));
}

TEST(Password, SaltsDiffer) {
    auto a = hash_password("same");
    auto b = hash_password("same");
    ASSERT_TRUE(a && b);
    EXPECT_NE(*a, *b);
}

TEST(Password, MalformedHashesNeverMatch) {
    EXPECT_FALSE(verify_password("x", ""));
    EXPECT_FALSE(verify_password("x", "x"));
    EXPECT_FALSE(verify_password("x", "$y$"));
    EXPECT_FALSE(verify_password("x", "*"));
    EXPECT_FALSE(hash_password(std::string("a\0b", 3)).has_value());
}

TEST(Password, AcceptsSha512CryptForImportedAccounts) {
    // Generated with Python: crypt.crypt("secret", "$6$saltsalt")
    const char* sha512 =
        "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq."
        "H91p5hVO1";
    EXPECT_TRUE(verify_password("secret", sha512));
    EXPECT_FALSE(verify_password("secreT", sha512));
}

}  // namespace
}  // namespace yubin::auth
