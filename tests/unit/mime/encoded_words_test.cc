#include "common/mime/encoded_words.h"

#include <gtest/gtest.h>

namespace yubin::mime {
namespace {

TEST(EncodedWords, DecodesBAndQ) {
    EXPECT_EQ(decode_encoded_words("=?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?="), "Grüße aus Köln");
    EXPECT_EQ(decode_encoded_words("=?utf-8?q?Zo=C3=AB_Smith?="), "Zoë Smith");
    // Charset and encoding letters are case-insensitive.
    EXPECT_EQ(decode_encoded_words("=?ISO-8859-1?Q?=DCberraschung?="), "Überraschung");
    EXPECT_EQ(decode_encoded_words("=?us-ascii?b?aGVsbG8=?="), "hello");
}

TEST(EncodedWords, KeepsPlainTextAndSpacesAroundWords) {
    EXPECT_EQ(decode_encoded_words("Re: =?utf-8?Q?caf=C3=A9?= tonight"), "Re: café tonight");
    EXPECT_EQ(decode_encoded_words("no words here"), "no words here");
    EXPECT_EQ(decode_encoded_words(""), "");
}

TEST(EncodedWords, DropsWhitespaceBetweenAdjacentWords) {
    // RFC 2047 §6.2: linear whitespace between encoded words is ignored.
    EXPECT_EQ(decode_encoded_words("=?utf-8?Q?a?= =?utf-8?Q?b?="), "ab");
    EXPECT_EQ(decode_encoded_words("=?utf-8?Q?a?=\r\n =?utf-8?Q?b?="), "ab");
    // To keep a space it must be encoded.
    EXPECT_EQ(decode_encoded_words("=?utf-8?Q?a_?= =?utf-8?Q?b?="), "a b");
    // Different charsets still join, each converted on its own.
    EXPECT_EQ(decode_encoded_words("=?iso-8859-1?Q?=E9?= =?utf-8?Q?=C3=A9?="), "éé");
    // Text between words is kept with its spaces.
    EXPECT_EQ(decode_encoded_words("=?utf-8?Q?a?= und =?utf-8?Q?b?="), "a und b");
}

TEST(EncodedWords, JoinsACharacterSplitAcrossTwoWords) {
    // "日" is E6 97 A5; here split after its first byte.
    EXPECT_EQ(decode_encoded_words("=?UTF-8?B?5g==?= =?UTF-8?B?l6U=?="), "日");
    EXPECT_EQ(decode_encoded_words("=?UTF-8?B?5pel5pys6Kqe?= =?UTF-8?B?44Gu5Lu25ZCN?="),
              "日本語の件名");
}

TEST(EncodedWords, AcceptsRfc2231LanguageSuffix) {
    EXPECT_EQ(decode_encoded_words("=?US-ASCII*EN?Q?Keith_Moore?="), "Keith Moore");
}

TEST(EncodedWords, LeavesMalformedWordsAlone) {
    EXPECT_EQ(decode_encoded_words("=?utf-8?X?abc?="), "=?utf-8?X?abc?=");
    EXPECT_EQ(decode_encoded_words("=?utf-8?Q?no end"), "=?utf-8?Q?no end");
    EXPECT_EQ(decode_encoded_words("=??Q?abc?="), "=??Q?abc?=");
    EXPECT_EQ(decode_encoded_words("=?utf-8?Q?has space?="), "=?utf-8?Q?has space?=");
    // A broken "=" escape in Q stays as it is.
    EXPECT_EQ(decode_encoded_words("=?utf-8?Q?100=ZZ?="), "100=ZZ");
}

TEST(EncodedWords, UnterminatedWordsStayLinear) {
    std::string v;
    for (int i = 0; i < 20000; ++i) {
        v += "=?a?q?xyz";
    }
    EXPECT_EQ(decode_encoded_words(v), v);  // nothing to decode, and fast
    // A "?" inside the text ends the word early: not a valid word.
    EXPECT_EQ(decode_encoded_words("=?utf-8?Q?a?b?="), "=?utf-8?Q?a?b?=");
}

TEST(EncodedWords, DecodesWordsGluedToText) {
    // Not allowed by RFC 2047 §5, but common; mail clients decode them.
    EXPECT_EQ(decode_encoded_words("Re:=?utf-8?Q?caf=C3=A9?=!"), "Re:café!");
}

TEST(EncodedWords, OutputIsAlwaysUtf8) {
    // Invalid UTF-8 inside a word claiming UTF-8, and raw 8-bit outside.
    std::string out = decode_encoded_words("=?utf-8?B?/w==?= \xff");
    EXPECT_TRUE(is_valid_utf8(out));
    EXPECT_EQ(out, "\xEF\xBF\xBD \xEF\xBF\xBD");
}

TEST(Charset, ConvertsCommonCharsets) {
    EXPECT_EQ(charset_to_utf8("ISO-8859-1",
                              "Stra\xdf"
                              "e"),
              "Straße");
    EXPECT_EQ(charset_to_utf8("utf-8", "Straße"), "Straße");
    EXPECT_EQ(charset_to_utf8("us-ascii", "plain"), "plain");
    // Through iconv: windows-1252 has € at 0x80, KOI8-R Cyrillic, and
    // ISO-2022-JP is stateful (escape sequences).
    EXPECT_EQ(charset_to_utf8("windows-1252", "\x80 5"), "€ 5");
    EXPECT_EQ(charset_to_utf8("KOI8-R", "\xf0\xd2\xc9\xd7\xc5\xd4"), "Привет");
    EXPECT_EQ(charset_to_utf8("ISO-2022-JP", "\x1b$BF|K\\\x1b(B"), "日本");
    EXPECT_EQ(charset_to_utf8("iso-8859-15", "\xa4"), "€");
}

TEST(Charset, NeverFails) {
    // Unknown charset: the bytes are taken as UTF-8, invalid ones replaced.
    EXPECT_EQ(charset_to_utf8("x-no-such-charset", "ok"), "ok");
    EXPECT_EQ(charset_to_utf8("x-no-such-charset", "a\xff"), "a\xEF\xBF\xBD");
    // Invalid bytes in a real charset are replaced too, and decoding goes on.
    std::string out = charset_to_utf8("ISO-2022-JP",
                                      "a\x80"
                                      "b");
    EXPECT_TRUE(is_valid_utf8(out));
    EXPECT_EQ(out.front(), 'a');
    EXPECT_EQ(out.back(), 'b');
}

TEST(Utf8, ValidatesAndSanitizes) {
    EXPECT_TRUE(is_valid_utf8("héllo 日本 🙂"));
    EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong "/"
    EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
    EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
    EXPECT_FALSE(is_valid_utf8("\xe6\x97"));          // truncated
    EXPECT_EQ(sanitize_utf8("a\xe6\x97"
                            "b"),
              "a\xEF\xBF\xBD\xEF\xBF\xBD"
              "b");
}

}  // namespace
}  // namespace yubin::mime
