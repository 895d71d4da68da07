#include "common/mime/header_fields.h"

#include <gtest/gtest.h>

namespace yubin::mime {
namespace {

Address mbox(std::string name, std::string mailbox, std::string host, std::string route = {}) {
    return Address{Address::Kind::Mailbox, std::move(name), std::move(route), std::move(mailbox),
                   std::move(host)};
}
Address group_start(std::string name) {
    return Address{Address::Kind::GroupStart, {}, {}, std::move(name), {}};
}
Address group_end() {
    return Address{Address::Kind::GroupEnd, {}, {}, {}, {}};
}

TEST(HeaderSplit, UnfoldsAndKeepsOrder) {
    auto fields = split_header_fields(
        "Subject: a\r\n  folded\r\n\tline\r\nX-Empty:\r\nno colon here\r\nTo: b\r\n\r\nBody: "
        "no\r\n");
    ASSERT_EQ(fields.size(), 4u);
    EXPECT_EQ(fields[0].name, "Subject");
    EXPECT_EQ(fields[0].value, "a  folded\tline");
    EXPECT_EQ(fields[1].name, "X-Empty");
    EXPECT_EQ(fields[1].value, "");
    EXPECT_EQ(fields[2].name, "");  // the line without a colon
    EXPECT_EQ(fields[3].name, "To");
    EXPECT_EQ(fields[3].value, "b");
}

TEST(HeaderSplit, BareLfAndNoEmptyLine) {
    auto fields = split_header_fields("A: 1\nB: 2\n continued");
    ASSERT_EQ(fields.size(), 2u);
    EXPECT_EQ(fields[1].value, "2 continued");
    // A leading continuation line has nothing to continue: a field of its own.
    EXPECT_EQ(split_header_fields(" lead: x\n").size(), 1u);
}

TEST(ContentType, ParsesTypeSubtypeAndParams) {
    auto ct = parse_content_type(
        "Text/HTML ; Charset=\"UTF-8\" (comment); format=flowed;\r\n boundary=\"a;b \\\"c\\\"\"");
    ASSERT_TRUE(ct);
    EXPECT_EQ(ct->type, "text");
    EXPECT_EQ(ct->subtype, "html");
    ASSERT_EQ(ct->params.size(), 3u);
    EXPECT_EQ(ct->params[0].name, "charset");
    EXPECT_EQ(ct->params[0].value, "UTF-8");
    EXPECT_EQ(ct->params[1].value, "flowed");
    EXPECT_EQ(ct->params[2].value, "a;b \"c\"");
    EXPECT_FALSE(ct->params[2].extended);
}

TEST(ContentType, CommentAfterAValueIsNotPartOfIt) {
    auto ct = parse_content_type("text/plain; charset=us-ascii (Plain text); format=fixed");
    ASSERT_TRUE(ct);
    ASSERT_EQ(ct->params.size(), 2u);
    EXPECT_EQ(ct->params[0].value, "us-ascii");
    EXPECT_EQ(ct->params[1].value, "fixed");
    // Unquoted values with tspecials are kept whole (common in real mail).
    auto b = parse_content_type("multipart/mixed; boundary=----=_Part_1/2");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->params.at(0).value, "----=_Part_1/2");
}

TEST(ContentType, ManyParamsStayFast) {
    // Thousands of distinct parameters in one 64 KiB header must not be
    // quadratic (this runs in well under a second even under ASan).
    std::string v = "text/plain";
    for (int i = 0; i < 8000; ++i) {
        v += "; p" + std::to_string(i) + "=" + std::to_string(i);
    }
    auto ct = parse_content_type(v);
    ASSERT_TRUE(ct);
    EXPECT_EQ(ct->params.size(), 8000u);
    EXPECT_EQ(ct->params.back().value, "7999");
}

TEST(ContentType, RejectsWhatHasNoSubtype) {
    EXPECT_FALSE(parse_content_type("text"));
    EXPECT_FALSE(parse_content_type("text/"));
    EXPECT_FALSE(parse_content_type(""));
    EXPECT_FALSE(parse_content_type("/plain"));
    EXPECT_TRUE(parse_content_type("(c) text (c) / (c) plain"));
}

TEST(ContentType, ToleratesGarbageParams) {
    auto ct = parse_content_type("application/octet-stream; ;junk; name=My File.pdf; =x; a=");
    ASSERT_TRUE(ct);
    ASSERT_EQ(ct->params.size(), 2u);
    EXPECT_EQ(ct->params[0].name, "name");
    EXPECT_EQ(ct->params[0].value, "My File.pdf");
    EXPECT_EQ(ct->params[1].name, "a");
    EXPECT_EQ(ct->params[1].value, "");
}

TEST(Rfc2231, JoinsContinuationsAndDecodesCharset) {
    auto ps = parse_params(
        "; filename*1*=%E3%81%AE.txt; filename*0*=UTF-8'ja'%E6%97%A5%E6%9C%AC%E8%AA%9E");
    ASSERT_EQ(ps.size(), 1u);
    EXPECT_EQ(ps[0].name, "filename");
    EXPECT_EQ(ps[0].value, "日本語の.txt");  // segments out of order are sorted
    EXPECT_TRUE(ps[0].extended);
    EXPECT_EQ(ps[0].charset, "UTF-8");
    EXPECT_EQ(ps[0].language, "ja");
    EXPECT_EQ(ps[0].rfc2231, "UTF-8'ja'%E6%97%A5%E6%9C%AC%E8%AA%9E%E3%81%AE.txt");
}

TEST(Rfc2231, MixesEncodedAndPlainSegments) {
    // RFC 2231 §4.1's example: only segments with "*" are %-decoded.
    auto ps = parse_params(
        "; title*0*=us-ascii'en'This%20is%20even%20more%20; title*1*=%2A%2A%2Afun%2A%2A%2A%20;"
        " title*2=\"isn't it!\"");
    ASSERT_EQ(ps.size(), 1u);
    EXPECT_EQ(ps[0].value, "This is even more ***fun*** isn't it!");
    EXPECT_EQ(ps[0].language, "en");
    // Re-encoded as one extended value, plain segments escaped too.
    EXPECT_EQ(ps[0].rfc2231,
              "us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn%27t%20it!");
}

TEST(Rfc2231, SingleExtendedValueInLatin1) {
    auto ps = parse_params("; filename*=iso-8859-1''Stra%DFe.txt");
    ASSERT_EQ(ps.size(), 1u);
    EXPECT_EQ(ps[0].value, "Straße.txt");
    EXPECT_EQ(ps[0].charset, "iso-8859-1");
    EXPECT_EQ(ps[0].language, "");
    EXPECT_EQ(ps[0].rfc2231, "iso-8859-1''Stra%DFe.txt");  // original charset kept
}

TEST(Rfc2231, ExtendedWinsOverPlainAndKeepsItsPlace) {
    auto ps = parse_params("; name=\"fallback.txt\"; x=1; name*=utf-8''r%C3%A9al.txt");
    ASSERT_EQ(ps.size(), 2u);
    EXPECT_EQ(ps[0].name, "name");
    EXPECT_EQ(ps[0].value, "réal.txt");
    EXPECT_EQ(ps[1].name, "x");
}

TEST(Rfc2231, StopsAtAGapAndIgnoresHostileIndices) {
    auto ps = parse_params("; a*0=one; a*2=three; b*4000000000=x; c*01=y; c*0=z");
    ASSERT_EQ(ps.size(), 2u);
    EXPECT_EQ(ps[0].name, "a");
    EXPECT_EQ(ps[0].value, "one");  // *2 without *1 is dropped
    EXPECT_EQ(ps[1].name, "c");
    EXPECT_EQ(ps[1].value, "z");  // "01" has a leading zero: not a segment
}

TEST(Rfc2231, PlainContinuationsJoinIntoAPlainValue) {
    auto ps = parse_params("; title*0=\"A long title, \"; title*1=\"split\"");
    ASSERT_EQ(ps.size(), 1u);
    EXPECT_EQ(ps[0].value, "A long title, split");
    EXPECT_FALSE(ps[0].extended);
    EXPECT_EQ(ps[0].rfc2231, "");
}

TEST(Rfc2231, PlainValueUsedWhenSegmentZeroMissing) {
    auto ps = parse_params("; name=plain.txt; name*1=tail");
    ASSERT_EQ(ps.size(), 1u);
    EXPECT_EQ(ps[0].value, "plain.txt");
    EXPECT_FALSE(ps[0].extended);
}

TEST(Disposition, ParsesTypeAndParams) {
    auto cd = parse_content_disposition("Attachment; filename=\"a b.pdf\"; size=12");
    ASSERT_TRUE(cd);
    EXPECT_EQ(cd->type, "attachment");
    ASSERT_EQ(cd->params.size(), 2u);
    EXPECT_EQ(cd->params[0].value, "a b.pdf");
    EXPECT_FALSE(parse_content_disposition("  ; filename=x"));
}

TEST(Tokens, TransferEncodingAndLanguage) {
    EXPECT_EQ(parse_token(" Base64 (comment)"), "base64");
    EXPECT_FALSE(parse_token("   "));
    EXPECT_EQ(parse_language("en-US, de (German) ,fr"),
              (std::vector<std::string>{"en-US", "de", "fr"}));
}

TEST(Addresses, Simple) {
    EXPECT_EQ(parse_address_list("alice@example.org"),
              (std::vector<Address>{mbox("", "alice", "example.org")}));
    EXPECT_EQ(parse_address_list("Alice Example <alice@example.org>, \"Bob, Jr.\" <bob@x.net>"),
              (std::vector<Address>{mbox("Alice Example", "alice", "example.org"),
                                    mbox("Bob, Jr.", "bob", "x.net")}));
}

TEST(Addresses, PhraseKeepsDotsAndEncodedWordsRaw) {
    EXPECT_EQ(parse_address_list("John Q. Public <jqp@example.com>"),
              (std::vector<Address>{mbox("John Q. Public", "jqp", "example.com")}));
    EXPECT_EQ(parse_address_list("=?utf-8?Q?Zo=C3=AB?= <zoe@x.net>"),
              (std::vector<Address>{mbox("=?utf-8?Q?Zo=C3=AB?=", "zoe", "x.net")}));
}

TEST(Addresses, Groups) {
    EXPECT_EQ(parse_address_list("undisclosed-recipients:;"),
              (std::vector<Address>{group_start("undisclosed-recipients"), group_end()}));
    EXPECT_EQ(parse_address_list("Team: a@x, B <b@y>; c@z"),
              (std::vector<Address>{group_start("Team"), mbox("", "a", "x"), mbox("B", "b", "y"),
                                    group_end(), mbox("", "c", "z")}));
    // An unterminated group is closed at the end.
    EXPECT_EQ(parse_address_list("Open Group: a@x"),
              (std::vector<Address>{group_start("Open Group"), mbox("", "a", "x"), group_end()}));
}

TEST(Addresses, RouteCommentsAndLiterals) {
    EXPECT_EQ(parse_address_list("<@r1.example,@r2.example:kim@example.org>"),
              (std::vector<Address>{mbox("", "kim", "example.org", "@r1.example,@r2.example")}));
    EXPECT_EQ(parse_address_list("lou@example.org (Lou Smith)"),
              (std::vector<Address>{mbox("Lou Smith", "lou", "example.org")}));
    EXPECT_EQ(parse_address_list("\"Max\" <max@[192.0.2.55]>"),
              (std::vector<Address>{mbox("Max", "max", "[192.0.2.55]")}));
    EXPECT_EQ(parse_address_list("\"john doe\"@example.com"),
              (std::vector<Address>{mbox("", "\"john doe\"", "example.com")}));
}

TEST(Addresses, ManyColonsStayFast) {
    std::string v = "a@b";
    for (int i = 0; i < 30000; ++i) {
        v += ":";
    }
    auto list = parse_address_list(v);
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0].mailbox, "a");
}

TEST(Addresses, Garbage) {
    // Missing domain, empty entries, unterminated quote and angle bracket.
    EXPECT_EQ(parse_address_list("nodomain, , ,"),
              (std::vector<Address>{mbox("", "nodomain", "")}));
    EXPECT_EQ(parse_address_list("\"Unterminated <a@b>"),
              (std::vector<Address>{mbox("", "\"Unterminated <a@b>\"", "")}));
    EXPECT_EQ(parse_address_list("Name <a@b"), (std::vector<Address>{mbox("Name", "a", "b")}));
    EXPECT_TRUE(parse_address_list("").empty());
    EXPECT_TRUE(parse_address_list("  (just a comment)  ").empty());
    // Multiple "@": split at the last one.
    EXPECT_EQ(parse_address_list("a@b@c"), (std::vector<Address>{mbox("", "a@b", "c")}));
}

}  // namespace
}  // namespace yubin::mime
