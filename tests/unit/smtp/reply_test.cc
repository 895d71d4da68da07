#include "common/smtp/reply.h"

#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace yubin::smtp {
namespace {

// Feeds `wire` to a fresh parser in the given pieces and collects every reply;
// stops at the first error and reports it as the last element's code -1.
std::vector<Reply> parse_in_pieces(std::string_view wire, const std::vector<size_t>& cuts,
                                   ReplyParserLimits limits = {}) {
    ReplyParser parser(limits);
    std::vector<Reply> out;
    size_t pos = 0;
    auto drain = [&]() {
        for (;;) {
            auto r = parser.next();
            if (!r) {
                Reply e;
                e.code = -1;
                e.lines = {r.error().message};
                out.push_back(e);
                return false;
            }
            if (!r->has_value()) {
                return true;
            }
            out.push_back(std::move(**r));
        }
    };
    for (size_t cut : cuts) {
        parser.feed(wire.substr(pos, cut - pos));
        pos = cut;
        if (!drain()) {
            return out;
        }
    }
    parser.feed(wire.substr(pos));
    drain();
    return out;
}

std::vector<Reply> parse_whole(std::string_view wire, ReplyParserLimits limits = {}) {
    return parse_in_pieces(wire, {}, limits);
}

std::vector<Reply> parse_bytewise(std::string_view wire) {
    std::vector<size_t> cuts;
    for (size_t i = 1; i < wire.size(); ++i) {
        cuts.push_back(i);
    }
    return parse_in_pieces(wire, cuts);
}

const char kGmailEhlo[] =
    "250-smtp.gmail.com at your service, [203.0.113.9]\r\n"
    "250-SIZE 35882577\r\n"
    "250-8BITMIME\r\n"
    "250-STARTTLS\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-PIPELINING\r\n"
    "250-CHUNKING\r\n"
    "250 SMTPUTF8\r\n";

const char kSession[] =
    "220 mx.example.net ESMTP Postfix (Debian/GNU)\r\n"
    "250-mx.example.net\r\n"
    "250-PIPELINING\r\n"
    "250-SIZE 10240000\r\n"
    "250-VRFY\r\n"
    "250-ETRN\r\n"
    "250-AUTH PLAIN LOGIN\r\n"
    "250-AUTH=PLAIN LOGIN\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-8BITMIME\r\n"
    "250-DSN\r\n"
    "250 CHUNKING\r\n"
    "250 2.1.0 Ok\r\n"
    "550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown\r\n"
    "451-4.7.1 Greylisted, see\r\n"
    "451 4.7.1 https://example.net/greylist\r\n"
    "354 End data with <CR><LF>.<CR><LF>\r\n"
    "250\r\n"
    "221 2.0.0 Bye\r\n";

TEST(ReplyParser, SessionWholeBytewiseAndRandomSplitsAgree) {
    auto whole = parse_whole(kSession);
    ASSERT_EQ(whole.size(), 8u);
    EXPECT_EQ(whole[0].code, 220);
    EXPECT_FALSE(whole[0].enhanced.has_value());
    EXPECT_EQ(whole[0].lines,
              std::vector<std::string>{"mx.example.net ESMTP Postfix (Debian/GNU)"});
    EXPECT_EQ(whole[1].code, 250);
    EXPECT_EQ(whole[1].lines.size(), 11u);
    auto caps = parse_ehlo_reply(whole[1]);
    ASSERT_TRUE(caps.has_value());
    EXPECT_EQ(caps->greeting, "mx.example.net");
    EXPECT_EQ(caps->size, 10240000u);
    // "AUTH PLAIN LOGIN" and the legacy "AUTH=PLAIN LOGIN" give one list.
    EXPECT_EQ(caps->auth_mechanisms, (std::vector<std::string>{"PLAIN", "LOGIN"}));
    EXPECT_TRUE(caps->pipelining && caps->dsn && caps->chunking && caps->eightbitmime);
    EXPECT_TRUE(caps->enhanced_status_codes);
    EXPECT_FALSE(caps->starttls);
    EXPECT_TRUE(caps->has("ETRN"));
    EXPECT_TRUE(caps->has("vrfy"));
    EXPECT_EQ(whole[2].enhanced, (EnhancedCode{2, 1, 0}));
    EXPECT_EQ(whole[2].lines, std::vector<std::string>{"Ok"});
    EXPECT_EQ(whole[3].code, 550);
    EXPECT_EQ(whole[3].enhanced, (EnhancedCode{5, 1, 1}));
    EXPECT_TRUE(whole[3].permanent());
    EXPECT_EQ(whole[4].code, 451);
    EXPECT_TRUE(whole[4].transient());
    EXPECT_EQ(whole[4].lines,
              (std::vector<std::string>{"Greylisted, see", "https://example.net/greylist"}));
    EXPECT_EQ(whole[4].text(), "Greylisted, see https://example.net/greylist");
    EXPECT_EQ(whole[5].code, 354);
    EXPECT_EQ(whole[6].lines, std::vector<std::string>{""});
    EXPECT_EQ(whole[7].code, 221);

    EXPECT_EQ(parse_bytewise(kSession), whole);

    std::mt19937 rng(42);
    std::string_view wire(kSession);
    for (int round = 0; round < 200; ++round) {
        std::vector<size_t> cuts;
        size_t pos = 0;
        while (true) {
            pos += 1 + rng() % 40;
            if (pos >= wire.size()) {
                break;
            }
            cuts.push_back(pos);
        }
        ASSERT_EQ(parse_in_pieces(wire, cuts), whole) << "round " << round;
    }
}

TEST(ReplyParser, NeedsMoreUntilLastLine) {
    ReplyParser p;
    p.feed("250-first\r\n250-second\r\n");
    auto r = p.next();
    ASSERT_TRUE(r.has_value());
    EXPECT_FALSE(r->has_value());
    p.feed("250 third");
    EXPECT_FALSE(p.next()->has_value());
    EXPECT_EQ(p.buffered(), 9u);
    p.feed("\r\n250 next");
    auto done = p.next();
    ASSERT_TRUE(done.has_value() && done->has_value());
    EXPECT_EQ((*done)->lines, (std::vector<std::string>{"first", "second", "third"}));
    EXPECT_EQ(p.buffered(), 8u);  // "250 next" waits for its CRLF
}

TEST(ReplyParser, ToleratesBareLfAndMissingEnhancedCode) {
    auto r = parse_whole("250-hello\n250 OK\n");
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].lines, (std::vector<std::string>{"hello", "OK"}));
    EXPECT_FALSE(r[0].enhanced.has_value());

    // An enhanced code of the wrong class is text, not a code.
    auto wrong = parse_whole("250 5.1.1 odd\r\n");
    ASSERT_EQ(wrong.size(), 1u);
    EXPECT_FALSE(wrong[0].enhanced.has_value());
    EXPECT_EQ(wrong[0].lines.front(), "5.1.1 odd");

    // Enhanced code on the first line only: later lines are kept whole.
    auto partial = parse_whole("550-5.7.1 Rejected\r\n550 see the policy\r\n");
    ASSERT_EQ(partial.size(), 1u);
    EXPECT_EQ(partial[0].enhanced, (EnhancedCode{5, 7, 1}));
    EXPECT_EQ(partial[0].lines, (std::vector<std::string>{"Rejected", "see the policy"}));

    // Code alone with the enhanced code and no text.
    auto bare = parse_whole("250 2.0.0\r\n");
    ASSERT_EQ(bare.size(), 1u);
    EXPECT_EQ(bare[0].enhanced, (EnhancedCode{2, 0, 0}));
    EXPECT_EQ(bare[0].lines, std::vector<std::string>{""});
}

TEST(ReplyParser, RejectsMalformedLines) {
    const char* cases[] = {
        "hello\r\n",          "25\r\n",    "2500 x\r\n", "250x\r\n",
        "150 x\r\n",          "650 x\r\n", "25a x\r\n",  "\r\n",
        "250-a\r\n251 b\r\n",  // code changes mid-reply
        "250 a\rb\r\n",        // stray CR in the text
        " 250 x\r\n",
    };
    for (const char* c : cases) {
        auto out = parse_whole(c);
        ASSERT_FALSE(out.empty()) << c;
        EXPECT_EQ(out.back().code, -1) << c;
    }
    // The error sticks.
    ReplyParser p;
    p.feed("bogus\r\n");
    EXPECT_FALSE(p.next().has_value());
    p.feed("250 ok\r\n");
    auto again = p.next();
    ASSERT_FALSE(again.has_value());
}

TEST(ReplyParser, Limits) {
    ReplyParserLimits small{.max_line = 20, .max_lines = 3};
    auto ok = parse_whole("250-1\r\n250-2\r\n250 3\r\n", small);
    ASSERT_EQ(ok.size(), 1u);
    EXPECT_EQ(ok[0].lines.size(), 3u);

    auto many = parse_whole("250-1\r\n250-2\r\n250-3\r\n250 4\r\n", small);
    ASSERT_FALSE(many.empty());
    EXPECT_EQ(many.back().code, -1);

    auto long_line = parse_whole("250 " + std::string(30, 'x') + "\r\n", small);
    ASSERT_FALSE(long_line.empty());
    EXPECT_EQ(long_line.back().code, -1);

    // An endless line without a newline fails before it is complete.
    ReplyParser p(small);
    p.feed("250 " + std::string(16, 'x'));  // 20 octets: still allowed
    ASSERT_TRUE(p.next().has_value());
    p.feed("yy");
    auto r = p.next();
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, ErrorCode::Limit);
}

TEST(Reply, FormatsSingleAndMultiLine) {
    EXPECT_EQ(Reply(kOk).to_wire(), "250 2.0.0 Ok\r\n");
    EXPECT_EQ(Reply(kStartMailInput).to_wire(), "354 End data with <CR><LF>.<CR><LF>\r\n");
    EXPECT_EQ(Reply(kAuthContinue).to_wire(), "334\r\n");
    EXPECT_EQ(Reply(kShuttingDown).to_wire(), "421 4.3.2 Service shutting down\r\n");
    EXPECT_EQ(make_reply(kUserUnknown, "<bob@example.com>: ").to_wire(),
              "550 5.1.1 <bob@example.com>: User unknown\r\n");

    Reply ehlo;
    ehlo.code = 250;
    ehlo.lines = {"mx.example.org Hello", "PIPELINING", "SIZE 1000", "", "SMTPUTF8"};
    EXPECT_EQ(ehlo.to_wire(),
              "250-mx.example.org Hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-\r\n"
              "250 SMTPUTF8\r\n");

    Reply multi(451, EnhancedCode{4, 7, 1}, "one");
    multi.lines.push_back("two");
    EXPECT_EQ(multi.to_wire(), "451-4.7.1 one\r\n451 4.7.1 two\r\n");
}

TEST(Reply, TextCannotInjectLines) {
    Reply r(550, EnhancedCode{5, 7, 1}, "bad\r\n250 2.0.0 fake\nmore\rend");
    EXPECT_EQ(r.to_wire(),
              "550-5.7.1 bad\r\n550-5.7.1 250 2.0.0 fake\r\n550-5.7.1 more\r\n550 5.7.1 end\r\n");
}

TEST(Reply, WrapsLongLinesAt512) {
    std::string words;
    for (int i = 0; i < 200; ++i) {
        words += "word" + std::to_string(i) + " ";
    }
    Reply r(554, EnhancedCode{5, 7, 1}, words);
    std::string wire = r.to_wire();
    size_t start = 0;
    int line_count = 0;
    while (start < wire.size()) {
        size_t end = wire.find("\r\n", start);
        ASSERT_NE(end, std::string::npos);
        EXPECT_LE(end + 2 - start, kMaxReplyLine);
        ++line_count;
        start = end + 2;
    }
    EXPECT_GT(line_count, 1);
    auto parsed = parse_whole(wire);
    ASSERT_EQ(parsed.size(), 1u);
    // Wrapping at spaces drops only the spaces it broke at, which text()
    // puts back (the trailing space of the input survives on the last line).
    EXPECT_EQ(parsed[0].text(), words);

    // A line with no spaces is cut hard, never inside a UTF-8 character.
    std::string cjk;
    for (int i = 0; i < 300; ++i) {
        cjk += "\xe7\x94\xb0";
    }
    Reply u(250, std::nullopt, cjk);
    std::string uwire = u.to_wire();
    auto up = parse_whole(uwire);
    ASSERT_EQ(up.size(), 1u);
    std::string rejoined;
    for (const auto& l : up[0].lines) {
        EXPECT_LE(l.size() + 6, kMaxReplyLine);
        EXPECT_EQ(l.size() % 3, 0u) << "cut inside a character";
        rejoined += l;
    }
    EXPECT_EQ(rejoined, cjk);
}

TEST(Reply, RoundTripsThroughParser) {
    std::vector<Reply> replies = {
        Reply(kOk),
        Reply(kServiceReady),
        Reply(kCannotVrfy),
        Reply(kEncryptionRequired),
        Reply(kUnrecognizedParameter),
        Reply(250, std::nullopt, ""),
        Reply(250, EnhancedCode{2, 0, 0}, ""),
    };
    Reply multi(250, std::nullopt, "mail.example.com");
    multi.lines = {"mail.example.com", "PIPELINING", "AUTH PLAIN LOGIN", "CHUNKING"};
    replies.push_back(multi);
    Reply multi_enh(452, EnhancedCode{4, 5, 3}, "Too many");
    multi_enh.lines.push_back("recipients");
    replies.push_back(multi_enh);

    std::string wire;
    for (const auto& r : replies) {
        wire += r.to_wire();
    }
    EXPECT_EQ(parse_whole(wire), replies);
    EXPECT_EQ(parse_bytewise(wire), replies);
}

TEST(Reply, EnhancedCodeParse) {
    EXPECT_EQ(EnhancedCode::parse("2.0.0"), (EnhancedCode{2, 0, 0}));
    EXPECT_EQ(EnhancedCode::parse("5.7.30"), (EnhancedCode{5, 7, 30}));
    EXPECT_EQ(EnhancedCode::parse("4.123.456"), (EnhancedCode{4, 123, 456}));
    for (const char* bad :
         {"", "2.0", "3.0.0", "2..0", "2.0.", "2.1234.0", "2.0.0.0", "x.0.0", "2.a.0", "2.0.0 "}) {
        EXPECT_FALSE(EnhancedCode::parse(bad).has_value()) << bad;
    }
    EXPECT_EQ((EnhancedCode{5, 7, 11}).to_string(), "5.7.11");
}

TEST(Reply, StandardTableLooksRight) {
    // Every table entry's enhanced class matches its reply code's class
    // (RFC 3463 §2), apart from the ones that carry none.
    const ReplyTemplate all[] = {kServiceReady,      kBye,
                                 kAuthSucceeded,     kOk,
                                 kSenderOk,          kRecipientOk,
                                 kMessageAccepted,   kResetOk,
                                 kCannotVrfy,        kReadyForTls,
                                 kAuthContinue,      kStartMailInput,
                                 kShuttingDown,      kTooManyErrors,
                                 kTimeout,           kMailboxBusy,
                                 kGreylisted,        kLocalError,
                                 kTempLookupFailure, kInsufficientStorage,
                                 kTooManyRecipients, kAuthTempFailure,
                                 kTlsNotAvailable,   kUnrecognized,
                                 kLineTooLong,       kSyntaxError,
                                 kBadSenderSyntax,   kBadRecipientSyntax,
                                 kPathTooLong,       kNotImplemented,
                                 kBadSequence,       kUnknownAuthMechanism,
                                 kAuthRequired,      kMustStartTls,
                                 kAuthInvalid,       kEncryptionRequired,
                                 kUserUnknown,       kMailboxUnavailable,
                                 kPolicyRejected,    kMessageTooBig,
                                 kMailboxFull,       kTooMuchMailData,
                                 kNonAsciiAddress,   kBadMailboxName,
                                 kRelayDenied,       kTransactionFailed,
                                 kNoValidRecipients, kUnrecognizedParameter,
                                 kRequireTlsFailed};
    for (const auto& t : all) {
        if (t.enhanced.klass != 0) {
            EXPECT_EQ(t.enhanced.klass, t.code / 100) << t.code << " " << t.text;
        }
        auto parsed = parse_whole(Reply(t).to_wire());
        ASSERT_EQ(parsed.size(), 1u) << t.text;
        EXPECT_EQ(parsed[0], Reply(t)) << t.text;
    }
    EXPECT_EQ(Reply(kMustStartTls).to_wire(), "530 5.7.0 Must issue a STARTTLS command first\r\n");
    EXPECT_EQ(Reply(kEncryptionRequired).code, 538);
    EXPECT_EQ(Reply(kReadyForTls).to_wire(), "220 2.0.0 Ready to start TLS\r\n");
}

TEST(Capabilities, Gmail) {
    auto replies = parse_whole(kGmailEhlo);
    ASSERT_EQ(replies.size(), 1u);
    auto caps = parse_ehlo_reply(replies[0]);
    ASSERT_TRUE(caps.has_value());
    EXPECT_EQ(caps->greeting, "smtp.gmail.com at your service, [203.0.113.9]");
    EXPECT_EQ(caps->size, 35882577u);
    EXPECT_TRUE(caps->eightbitmime);
    EXPECT_TRUE(caps->starttls);
    EXPECT_TRUE(caps->enhanced_status_codes);
    EXPECT_TRUE(caps->pipelining);
    EXPECT_TRUE(caps->chunking);
    EXPECT_TRUE(caps->smtputf8);
    EXPECT_FALSE(caps->dsn);
    EXPECT_FALSE(caps->requiretls);
    EXPECT_TRUE(caps->auth_mechanisms.empty());
    EXPECT_TRUE(caps->has("starttls"));
    EXPECT_FALSE(caps->has("DSN"));
}

TEST(Capabilities, ExchangeStyleAndOddities) {
    Reply r;
    r.code = 250;
    r.lines = {"EXCH01.example.local Hello [198.51.100.20]",
               "SIZE",
               "AUTH=LOGIN",
               "AUTH GSSAPI NTLM login",
               "X-EXPS GSSAPI NTLM",
               "DSN",
               "BINARYMIME",
               "REQUIRETLS",
               "FUTURERELEASE 604800 2026-12-05T00:00:00Z",
               "XRDST",
               "  ",
               "BAD_KEYWORD x",
               "8bitmime"};
    auto caps = parse_ehlo_reply(r);
    ASSERT_TRUE(caps.has_value());
    EXPECT_EQ(caps->size, 0u);  // offered without a limit
    EXPECT_EQ(caps->auth_mechanisms, (std::vector<std::string>{"LOGIN", "GSSAPI", "NTLM"}));
    EXPECT_TRUE(caps->dsn);
    EXPECT_TRUE(caps->binarymime);
    EXPECT_TRUE(caps->requiretls);
    EXPECT_TRUE(caps->eightbitmime);
    EXPECT_EQ(caps->future_release_max_interval, 604800u);
    EXPECT_EQ(caps->future_release_max_datetime, "2026-12-05T00:00:00Z");
    EXPECT_TRUE(caps->has("X-EXPS"));
    EXPECT_EQ(caps->keywords.at("X-EXPS"), (std::vector<std::string>{"GSSAPI", "NTLM"}));
    EXPECT_TRUE(caps->has("XRDST"));
    EXPECT_FALSE(caps->has("BAD_KEYWORD"));
    EXPECT_FALSE(caps->pipelining);

    Reply bad_size;
    bad_size.code = 250;
    bad_size.lines = {"host", "SIZE lots"};
    auto c2 = parse_ehlo_reply(bad_size);
    ASSERT_TRUE(c2.has_value());
    EXPECT_FALSE(c2->size.has_value());

    EXPECT_FALSE(parse_ehlo_reply(Reply(kUnrecognized)).has_value());
    Reply only_greeting(250, std::nullopt, "tiny.example");
    auto c3 = parse_ehlo_reply(only_greeting);
    ASSERT_TRUE(c3.has_value());
    EXPECT_TRUE(c3->keywords.empty());
}

}  // namespace
}  // namespace yubin::smtp
