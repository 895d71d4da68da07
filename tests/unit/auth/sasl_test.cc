#include "common/auth/sasl.h"

#include <gtest/gtest.h>

#include "common/base/base64.h"

namespace yubin::auth {
namespace {

std::string b64(std::string_view s) { return base64_encode(s); }

TEST(SaslPlain, ParsesAuthzidAuthcidPassword) {
    auto c = parse_plain(std::string("admin\0bob\0secret", 16));
    ASSERT_TRUE(c);
    EXPECT_EQ(c->authzid, "admin");
    EXPECT_EQ(c->authcid, "bob");
    EXPECT_EQ(c->password, "secret");
    EXPECT_FALSE(parse_plain("bobsecret"));
    EXPECT_FALSE(parse_plain(std::string("\0\0secret", 8)));          // empty authcid
    EXPECT_FALSE(parse_plain(std::string("a\0b\0c\0d", 7)));          // three NULs
}

TEST(SaslPlain, InitialResponseCompletesAtOnce) {
    SaslExchange ex(SaslMechanism::Plain);
    EXPECT_EQ(ex.start(b64(std::string("\0bob\0pw", 7))), SaslExchange::Status::Done);
    EXPECT_EQ(ex.credentials().authcid, "bob");
    EXPECT_EQ(ex.credentials().password, "pw");
}

TEST(SaslPlain, EmptyChallengeThenResponse) {
    SaslExchange ex(SaslMechanism::Plain);
    ASSERT_EQ(ex.start(std::nullopt), SaslExchange::Status::Challenge);
    EXPECT_EQ(ex.challenge(), "");
    EXPECT_EQ(ex.feed(b64(std::string("\0bob\0pw", 7))), SaslExchange::Status::Done);
}

TEST(SaslPlain, CancelAndGarbage) {
    SaslExchange ex(SaslMechanism::Plain);
    ASSERT_EQ(ex.start(std::nullopt), SaslExchange::Status::Challenge);
    EXPECT_EQ(ex.feed("*"), SaslExchange::Status::Cancelled);
    SaslExchange ex2(SaslMechanism::Plain);
    ASSERT_EQ(ex2.start(std::nullopt), SaslExchange::Status::Challenge);
    EXPECT_EQ(ex2.feed("!!!"), SaslExchange::Status::Failed);
    SaslExchange ex3(SaslMechanism::Plain);
    EXPECT_EQ(ex3.start("="), SaslExchange::Status::Failed);
}

TEST(SaslLogin, UsernameThenPassword) {
    SaslExchange ex(SaslMechanism::Login);
    ASSERT_EQ(ex.start(std::nullopt), SaslExchange::Status::Challenge);
    EXPECT_EQ(ex.challenge(), b64("Username:"));
    ASSERT_EQ(ex.feed(b64("bob@example.test")), SaslExchange::Status::Challenge);
    EXPECT_EQ(ex.challenge(), b64("Password:"));
    ASSERT_EQ(ex.feed(b64("pw")), SaslExchange::Status::Done);
    EXPECT_EQ(ex.credentials().authcid, "bob@example.test");
    EXPECT_EQ(ex.credentials().password, "pw");
    EXPECT_EQ(ex.feed(b64("more")), SaslExchange::Status::Failed);
}

TEST(SaslLogin, InitialResponseIsUserName) {
    SaslExchange ex(SaslMechanism::Login);
    ASSERT_EQ(ex.start(b64("bob")), SaslExchange::Status::Challenge);
    EXPECT_EQ(ex.challenge(), b64("Password:"));
    ASSERT_EQ(ex.feed(b64("pw")), SaslExchange::Status::Done);
    EXPECT_EQ(ex.credentials().authcid, "bob");
}

TEST(SaslMechanismNames, CaseInsensitive) {
    EXPECT_EQ(sasl_mechanism_from_name("plain"), SaslMechanism::Plain);
    EXPECT_EQ(sasl_mechanism_from_name("LOGIN"), SaslMechanism::Login);
    EXPECT_FALSE(sasl_mechanism_from_name("CRAM-MD5"));
}

}  // namespace
}  // namespace yubin::auth
