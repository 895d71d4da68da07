#include "common/smtp/address.h"

#include <string>

#include <gtest/gtest.h>

namespace yubin::smtp {
namespace {

struct GoodPath {
    const char* input;
    const char* local;
    const char* domain;
    bool literal;
};

TEST(Address, ValidForwardPaths) {
    const GoodPath cases[] = {
        {"<user@example.com>", "user", "example.com", false},
        {"<User.Name+tag@Sub.Example.COM>", "User.Name+tag", "Sub.Example.COM", false},
        {"<o'brien@example.ie>", "o'brien", "example.ie", false},
        {"<!#$%&'*+-/=?^_`{|}~@x.org>", "!#$%&'*+-/=?^_`{|}~", "x.org", false},
        {"<\"john doe\"@example.com>", "john doe", "example.com", false},
        {"<\"a\\\"b\\\\c\"@example.com>", "a\"b\\c", "example.com", false},
        {"<\"a>b\"@example.com>", "a>b", "example.com", false},
        {"<\"\"@example.com>", "", "example.com", false},
        {"<user@[192.0.2.1]>", "user", "[192.0.2.1]", true},
        {"<user@[IPv6:2001:db8::1]>", "user", "[IPv6:2001:db8::1]", true},
        {"<user@[ipv6:::1]>", "user", "[ipv6:::1]", true},
        {"<@relay1.example,@relay2.example:user@example.com>", "user", "example.com", false},
        {"<@relay.example:user@example.com>", "user", "example.com", false},
        {"<x@localhost>", "x", "localhost", false},
        {"<x@123.example>", "x", "123.example", false},
        {"<x@a-b.c-d.example>", "x", "a-b.c-d.example", false},
    };
    for (const auto& c : cases) {
        auto p = parse_forward_path(c.input);
        ASSERT_TRUE(p.has_value()) << c.input << ": " << p.error().message;
        EXPECT_EQ(p->kind, Path::Kind::Mailbox) << c.input;
        EXPECT_EQ(p->mailbox.local, c.local) << c.input;
        EXPECT_EQ(p->mailbox.domain, c.domain) << c.input;
        EXPECT_EQ(p->mailbox.domain_is_literal, c.literal) << c.input;
    }
}

TEST(Address, InvalidPaths) {
    const char* cases[] = {
        "",
        "<",
        ">",
        "<<user@example.com>>",
        "<user@example.com",
        "user@example.com>",
        "<user>",  // no domain (other than postmaster)
        "<@example.com>",
        "<user@>",
        "<user@@example.com>",
        "<user@example..com>",
        "<user@.example.com>",
        "<user@example.com.>",  // trailing root dot is not in RFC 5321 Domain
        "<user@-example.com>",
        "<user@example-.com>",
        "<user@exa_mple.com>",
        "<.user@example.com>",
        "<user.@example.com>",
        "<us..er@example.com>",
        "<us er@example.com>",
        "<user@exa mple.com>",
        "<\"unterminated@example.com>",
        "<\"a\"b@example.com>",
        "<user@[300.1.1.1]>",
        "<user@[1.2.3]>",
        "<user@[IPv6:not-an-address]>",
        "<user@[foo:bar]>",  // unregistered general literal tag
        "<user@[1.2.3.4>",
        "<@relay.example user@example.com>",
        "<@relay.example,user@example.com>",
        "<@:user@example.com>",
        "<user@example.com> ",
        "<>",  // null path is reverse-path only
        "<user@example.com>x",
        "<a\x01@example.com>",
    };
    for (const char* c : cases) {
        EXPECT_FALSE(parse_forward_path(c).has_value()) << "accepted: " << c;
    }
}

TEST(Address, NullAndPostmaster) {
    auto null = parse_reverse_path("<>");
    ASSERT_TRUE(null.has_value());
    EXPECT_TRUE(null->is_null());
    EXPECT_EQ(null->to_string(), "<>");

    EXPECT_FALSE(parse_forward_path("<>").has_value());

    for (const char* pm : {"<postmaster>", "<Postmaster>", "<POSTMASTER>"}) {
        auto p = parse_forward_path(pm);
        ASSERT_TRUE(p.has_value()) << pm;
        EXPECT_EQ(p->kind, Path::Kind::Postmaster);
    }
    // <postmaster> without a domain is only a recipient.
    EXPECT_FALSE(parse_reverse_path("<postmaster>").has_value());
    auto pm = parse_forward_path("<postmaster@example.com>");
    ASSERT_TRUE(pm.has_value());
    EXPECT_EQ(pm->kind, Path::Kind::Mailbox);
}

TEST(Address, MissingBracketsKnob) {
    EXPECT_FALSE(parse_reverse_path("user@example.com").has_value());
    AddressOptions lax;
    lax.allow_missing_brackets = true;
    auto p = parse_reverse_path("user@example.com", lax);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->mailbox.to_string(), "user@example.com");
    EXPECT_FALSE(parse_reverse_path("", lax).has_value());
}

TEST(Address, Limits) {
    std::string local64(64, 'a');
    std::string local65(65, 'a');
    EXPECT_TRUE(parse_forward_path("<" + local64 + "@example.com>").has_value());
    auto too_long = parse_forward_path("<" + local65 + "@example.com>");
    ASSERT_FALSE(too_long.has_value());
    EXPECT_EQ(too_long.error().code, ErrorCode::Limit);

    // A quoted local part counts its quotes: 62 characters + 2 quotes = 64.
    EXPECT_TRUE(parse_forward_path("<\"" + std::string(62, 'q') + "\"@x.org>").has_value());
    EXPECT_FALSE(parse_forward_path("<\"" + std::string(63, 'q') + "\"@x.org>").has_value());

    // Labels of 63 are fine, 64 are not.
    std::string label63(63, 'd');
    EXPECT_TRUE(parse_forward_path("<a@" + label63 + ".org>").has_value());
    EXPECT_FALSE(parse_forward_path("<a@" + label63 + "d.org>").has_value());

    // Path of exactly 256 octets passes, 257 fails with Limit.
    std::string domain = label63 + "." + label63 + "." + label63 + ".";  // 192
    std::string base = "<" + std::string(40, 'u') + "@" + domain;        // 234
    std::string tail(256 - base.size() - 1, 'e');
    std::string path256 = base + tail + ">";
    ASSERT_EQ(path256.size(), 256u);
    EXPECT_TRUE(parse_forward_path(path256).has_value()) << path256;
    std::string path257 = base + tail + "e>";
    auto r = parse_forward_path(path257);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, ErrorCode::Limit);
}

TEST(Address, Utf8NeedsSmtpUtf8) {
    const std::string addr =
        "<j\xc3\xb6rg@b\xc3\xbc"
        "cher.example>";  // jörg@bücher.example
    auto plain = parse_forward_path(addr);
    ASSERT_FALSE(plain.has_value());
    EXPECT_EQ(plain.error().code, ErrorCode::Perm);

    AddressOptions utf8;
    utf8.smtputf8 = true;
    auto p = parse_forward_path(addr, utf8);
    ASSERT_TRUE(p.has_value()) << p.error().message;
    EXPECT_EQ(p->mailbox.local, "j\xc3\xb6rg");
    EXPECT_EQ(p->mailbox.domain,
              "b\xc3\xbc"
              "cher.example");

    // Quoted UTF-8 local part.
    EXPECT_TRUE(parse_forward_path("<\"\xe7\x94\xb0 \xe4\xb8\xad\"@example.jp>", utf8).has_value());

    // Invalid UTF-8 is refused even with SMTPUTF8: a lone continuation byte,
    // an overlong '/', a surrogate, a truncated sequence, beyond U+10FFFF.
    for (const char* bad : {"<a\x80@x.org>", "<a\xc0\xaf@x.org>", "<a\xed\xa0\x80@x.org>",
                            "<a\xe2\x82@x.org>", "<a\xf4\x90\x80\x80@x.org>"}) {
        auto r = parse_forward_path(bad, utf8);
        ASSERT_FALSE(r.has_value()) << bad;
        EXPECT_EQ(r.error().code, ErrorCode::Invalid);
    }
}

TEST(Address, Utf8Validator) {
    EXPECT_TRUE(is_valid_utf8(""));
    EXPECT_TRUE(is_valid_utf8("plain"));
    EXPECT_TRUE(is_valid_utf8("\xf0\x9f\x93\xa7"));  // U+1F4E7
    EXPECT_TRUE(is_valid_utf8("\xf4\x8f\xbf\xbf"));  // U+10FFFF
    EXPECT_FALSE(is_valid_utf8("\xe0\x80\x80"));     // overlong NUL
    EXPECT_FALSE(is_valid_utf8("\xff"));
    EXPECT_FALSE(is_valid_utf8("\xf8\x88\x80\x80\x80"));
}

TEST(Address, ToStringRequotes) {
    Mailbox plain{"user.name", "example.com", false};
    EXPECT_EQ(plain.to_string(), "user.name@example.com");
    Mailbox spaced{"john doe", "example.com", false};
    EXPECT_EQ(spaced.to_string(), "\"john doe\"@example.com");
    Mailbox escaped{"a\"b\\c", "example.com", false};
    EXPECT_EQ(escaped.to_string(), "\"a\\\"b\\\\c\"@example.com");
    Mailbox empty{"", "example.com", false};
    EXPECT_EQ(empty.to_string(), "\"\"@example.com");
    Mailbox dots{"a..b", "example.com", false};
    EXPECT_EQ(dots.to_string(), "\"a..b\"@example.com");

    // Parse → to_string → parse gives the same mailbox.
    for (const char* in : {"<\"john doe\"@example.com>", "<\"a\\\"b\"@x.org>", "<u@[IPv6:::1]>",
                           "<\"a..b\"@x.org>", "<\"plain\"@x.org>"}) {
        auto p = parse_forward_path(in);
        ASSERT_TRUE(p.has_value()) << in;
        auto again = parse_forward_path(p->to_string());
        ASSERT_TRUE(again.has_value()) << p->to_string();
        EXPECT_EQ(*again, *p) << in;
    }
    // A needlessly quoted dot-string is written unquoted (§4.1.2).
    EXPECT_EQ(parse_forward_path("<\"plain\"@x.org>")->to_string(), "<plain@x.org>");
}

TEST(Address, DomainAndLiteralHelpers) {
    EXPECT_TRUE(is_domain("mail-wm1-f45.google.com"));
    EXPECT_TRUE(is_domain("DESKTOP-ABC123"));
    EXPECT_FALSE(is_domain("my_host"));
    EXPECT_FALSE(is_domain(""));
    EXPECT_FALSE(is_domain(std::string(256, 'a')));
    EXPECT_TRUE(is_address_literal("[127.0.0.1]"));
    EXPECT_TRUE(is_address_literal("[IPv6:fe80::1]"));
    EXPECT_FALSE(is_address_literal("[127.0.0.1"));
    EXPECT_FALSE(is_address_literal("[]"));
    EXPECT_FALSE(is_address_literal("[1.2.3.4.5]"));
    EXPECT_FALSE(is_address_literal("[1.2.3.0256]"));
}

TEST(Address, FindPathEnd) {
    EXPECT_EQ(find_path_end("<a@b> SIZE=1"), 5u);
    EXPECT_EQ(find_path_end("<\"x> y\"@b> SIZE=1"), 10u);
    EXPECT_EQ(find_path_end("<a@b"), std::string_view::npos);
    EXPECT_EQ(find_path_end("a@b>"), std::string_view::npos);
    EXPECT_EQ(find_path_end("<\"a>"), std::string_view::npos);
}

}  // namespace
}  // namespace yubin::smtp
