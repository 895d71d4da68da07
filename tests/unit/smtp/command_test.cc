#include "common/smtp/command.h"

#include <string>

#include <gtest/gtest.h>

namespace yubin::smtp {
namespace {

Command ok(std::string_view line, const CommandOptions& options = {}) {
    auto r = parse_command(line, options);
    EXPECT_TRUE(r.has_value()) << line << " -> " << (r ? "" : r.error().to_wire());
    return r ? *r : Command{};
}

Reply err(std::string_view line, const CommandOptions& options = {}) {
    auto r = parse_command(line, options);
    EXPECT_FALSE(r.has_value()) << "accepted: " << line;
    return r ? Reply{} : r.error();
}

struct ErrorCase {
    const char* line;
    int code;
    const char* enhanced;  // "" = do not check
};

void check_errors(const std::vector<ErrorCase>& cases, const CommandOptions& options = {}) {
    for (const auto& c : cases) {
        Reply r = err(c.line, options);
        EXPECT_EQ(r.code, c.code) << c.line << " -> " << r.to_wire();
        if (c.enhanced[0] != '\0') {
            ASSERT_TRUE(r.enhanced.has_value()) << c.line;
            EXPECT_EQ(r.enhanced->to_string(), c.enhanced) << c.line;
        }
    }
}

TEST(Command, SimpleVerbsAnyCase) {
    struct Case {
        const char* line;
        Verb verb;
    };
    const Case cases[] = {
        {"DATA", Verb::Data},         {"data", Verb::Data},
        {"DaTa", Verb::Data},         {"RSET", Verb::Rset},
        {"rset ", Verb::Rset},        {"QUIT", Verb::Quit},
        {"quit\t", Verb::Quit},       {"NOOP", Verb::Noop},
        {"NOOP hello", Verb::Noop},   {"HELP", Verb::Help},
        {"HELP MAIL", Verb::Help},    {"STARTTLS", Verb::StartTls},
        {"starttls", Verb::StartTls}, {"VRFY postmaster", Verb::Vrfy},
        {"EXPN staff", Verb::Expn},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(ok(c.line).verb, c.verb) << c.line;
    }
    EXPECT_EQ(ok("NOOP  hello there ").argument, "hello there");
    EXPECT_EQ(ok("HELP").argument, "");
    EXPECT_EQ(ok("VRFY <bob@example.com>").argument, "<bob@example.com>");
}

TEST(Command, Errors) {
    check_errors({
        {"", 500, "5.5.2"},
        {"   ", 500, "5.5.2"},
        {"FOO", 500, "5.5.2"},
        {"GET / HTTP/1.1", 500, "5.5.2"},  // HTTP to port 25 (cross-protocol probes)
        {"MAILFROM:<a@b.c>", 500, "5.5.2"},
        {"EHLO\rfoo", 500, "5.5.2"},
        {"DATA x", 501, "5.5.4"},
        {"RSET now", 501, "5.5.4"},
        {"QUIT please", 501, "5.5.4"},
        {"STARTTLS x", 501, "5.5.4"},
        {"VRFY", 501, "5.5.4"},
        {"EXPN ", 501, "5.5.4"},
        {"HELO", 501, "5.5.4"},
        {"EHLO   ", 501, "5.5.4"},
    });
    // The embedded NUL must be seen even though it is mid-line.
    Reply r = err(std::string_view("NOOP a\0b", 8));
    EXPECT_EQ(r.code, 500);
}

TEST(Command, HeloEhlo) {
    Command gmail = ok("EHLO mail-wm1-f45.google.com");
    EXPECT_EQ(gmail.verb, Verb::Ehlo);
    EXPECT_EQ(gmail.helo, "mail-wm1-f45.google.com");
    EXPECT_TRUE(gmail.helo_valid);

    Command literal = ok("ehlo [192.168.1.5]");
    EXPECT_TRUE(literal.helo_valid);
    EXPECT_TRUE(ok("EHLO [IPv6:2001:db8::5]").helo_valid);

    // Outlook on a Windows box: a bare NetBIOS name, valid as a domain.
    Command outlook = ok("EHLO DESKTOP-7QK2M9L");
    EXPECT_TRUE(outlook.helo_valid);

    // Underscore and trailing garbage: kept, flagged invalid, policy decides.
    Command underscore = ok("HELO my_pc");
    EXPECT_EQ(underscore.verb, Verb::Helo);
    EXPECT_EQ(underscore.helo, "my_pc");
    EXPECT_FALSE(underscore.helo_valid);
    Command bot = ok("EHLO 203.0.113.7");  // bare IP, no brackets: bots do this
    EXPECT_FALSE(bot.helo_valid);
    Command two = ok("HELO foo bar");
    EXPECT_EQ(two.helo, "foo bar");
    EXPECT_FALSE(two.helo_valid);
}

TEST(Command, MailFrom) {
    Command c = ok("MAIL FROM:<alice@example.com>");
    EXPECT_EQ(c.verb, Verb::Mail);
    EXPECT_EQ(c.path.mailbox.to_string(), "alice@example.com");
    EXPECT_EQ(c.mail, MailParams{});

    EXPECT_TRUE(ok("MAIL FROM:<>").path.is_null());
    EXPECT_TRUE(ok("mail from:<>").path.is_null());
    EXPECT_EQ(ok("Mail From:<Alice@Example.COM>").path.mailbox.domain, "Example.COM");
    // A space after the colon (many clients) and doubled spaces before params.
    EXPECT_EQ(ok("MAIL FROM: <alice@example.com>").path.mailbox.local, "alice");
    EXPECT_EQ(ok("MAIL FROM:  <alice@example.com>   SIZE=10 ").mail.size, 10u);
    // Source route is dropped.
    EXPECT_EQ(ok("MAIL FROM:<@a.example,@b.example:joe@c.example>").path.mailbox.to_string(),
              "joe@c.example");
    // Quoted local part with a space and '>' inside, followed by parameters.
    Command q = ok("MAIL FROM:<\"odd > name\"@example.com> BODY=8BITMIME");
    EXPECT_EQ(q.path.mailbox.local, "odd > name");
    EXPECT_EQ(q.mail.body, Body::EightBitMime);
}

TEST(Command, MailFromErrors) {
    check_errors({
        {"MAIL", 501, "5.5.4"},
        {"MAIL TO:<a@b.example>", 501, "5.5.4"},
        {"MAIL FROM", 501, "5.5.4"},
        {"MAIL FROM:", 501, "5.1.7"},
        {"MAIL FROM:alice@example.com", 501, "5.1.7"},  // missing brackets
        {"MAIL FROM: alice@example.com", 501, "5.1.7"},
        {"MAIL FROM:<alice@example.com", 501, "5.1.7"},
        {"MAIL FROM:<<alice@example.com>>", 501, "5.1.7"},
        {"MAIL FROM:<alice@example.com>SIZE=1", 501, "5.1.7"},
        {"MAIL FROM:<alice>", 501, "5.1.7"},
        {"MAIL FROM:<postmaster>", 501, "5.1.7"},
        {"MAIL FROM:<a@b.example> SIZE", 501, "5.5.4"},
        {"MAIL FROM:<a@b.example> SIZE=", 501, "5.5.4"},
        {"MAIL FROM:<a@b.example> SIZE=-1", 501, "5.5.4"},
        {"MAIL FROM:<a@b.example> SIZE=1k", 501, "5.5.4"},
        {"MAIL FROM:<a@b.example> SIZE=123456789012345678901", 501, "5.5.4"},  // 21 digits
        {"MAIL FROM:<a@b.example> SIZE=1 SIZE=2", 501, "5.5.4"},
        {"MAIL FROM:<a@b.example> size=1 SIZE=1", 501, "5.5.4"},
        {"MAIL FROM:<a@b.example> BODY=8BIT", 501, "5.5.4"},
        {"MAIL FROM:<a@b.example> BODY", 501, "5.5.4"},
        {"MAIL FROM:<a@b.example> SMTPUTF8=yes", 501, "5.5.4"},
        {"MAIL FROM:<a@b.example> RET=ALL", 501, "5.5.4"},
        {"MAIL FROM:<a@b.example> ENVID=a=b", 501, "5.5.4"},
        {"MAIL FROM:<a@b.example> ENVID=+ZZ", 501, "5.5.4"},
        {"MAIL FROM:<a@b.example> ENVID=+0A", 501, "5.5.4"},  // control char inside
        {"MAIL FROM:<a@b.example> HOLDFOR=1234567890", 501, "5.5.4"},
        {"MAIL FROM:<a@b.example> HOLDUNTIL=2026-13-01T00:00:00Z", 501, "5.5.4"},
        {"MAIL FROM:<a@b.example> HOLDFOR=10 HOLDUNTIL=2030-01-01T00:00:00Z", 501, "5.5.4"},
        {"MAIL FROM:<a@b.example> REQUIRETLS=1", 501, "5.5.4"},
        {"MAIL FROM:<a@b.example> -X=1", 501, "5.5.4"},
        {"MAIL FROM:<a@b.example> =1", 501, "5.5.4"},
        {"MAIL FROM:<a@b.example> XFOO=bar", 555, "5.5.4"},
        {"MAIL FROM:<a@b.example> NOTIFY=NEVER", 555, "5.5.4"},  // an RCPT parameter
        {"MAIL FROM:<a@b.example> XVERP", 555, "5.5.4"},
        {"MAIL FROM:<j\xc3\xb6rg@b.example>", 553, "5.6.7"},
        {"MAIL FROM:<j\xc3\xb6rg@b.example> SMTPUTF8 BODY=8BITMIME SIZE=x", 501, "5.5.4"},
        {"MAIL FROM:<\xff@b.example> SMTPUTF8", 501, "5.1.7"},  // not UTF-8
    });
    std::string many = "MAIL FROM:<a@b.example>";
    for (int i = 0; i < 33; ++i) {
        many += " X" + std::to_string(i) + "=1";
    }
    EXPECT_EQ(err(many).code, 501);
    std::string long_path = "MAIL FROM:<" + std::string(64, 'a') + "@" + std::string(63, 'b') +
                            "." + std::string(63, 'c') + "." + std::string(63, 'd') + ".example>";
    Reply r = err(long_path);
    EXPECT_EQ(r.code, 501);
    EXPECT_NE(r.text().find("too long"), std::string::npos) << r.text();
}

TEST(Command, MailFromKnobs) {
    CommandOptions strict;
    strict.allow_space_after_colon = false;
    EXPECT_EQ(err("MAIL FROM: <a@b.example>", strict).code, 501);
    EXPECT_TRUE(parse_command("MAIL FROM:<a@b.example>", strict).has_value());

    CommandOptions lax;
    lax.allow_missing_brackets = true;
    Command c = ok("MAIL FROM:alice@example.com SIZE=5", lax);
    EXPECT_EQ(c.path.mailbox.to_string(), "alice@example.com");
    EXPECT_EQ(c.mail.size, 5u);
    EXPECT_EQ(ok("MAIL FROM: alice@example.com", lax).path.mailbox.local, "alice");
    EXPECT_TRUE(ok("RCPT TO:bob@example.com", lax).path.mailbox.local == "bob");
}

TEST(Command, MailParams) {
    // What Exchange, Gmail and Postfix send.
    Command ex = ok("MAIL FROM:<a@b.example> SIZE=1234 BODY=8BITMIME AUTH=<>");
    EXPECT_EQ(ex.mail.size, 1234u);
    EXPECT_EQ(ex.mail.body, Body::EightBitMime);
    ASSERT_TRUE(ex.mail.auth.has_value());
    EXPECT_EQ(*ex.mail.auth, "");

    Command all =
        ok("MAIL FROM:<a@b.example> size=0 body=binarymime SmtpUtf8 RET=hdrs "
           "ENVID=QQ+2B314159 AUTH=e+3Dmc2@example.com HOLDFOR=3600 REQUIRETLS");
    EXPECT_EQ(all.mail.size, 0u);
    EXPECT_EQ(all.mail.body, Body::BinaryMime);
    EXPECT_TRUE(all.mail.smtputf8);
    EXPECT_EQ(all.mail.ret, Ret::Headers);
    EXPECT_EQ(all.mail.envid, "QQ+314159");
    EXPECT_EQ(all.mail.auth, "e=mc2@example.com");
    EXPECT_EQ(all.mail.hold_for, 3600u);
    EXPECT_FALSE(all.mail.hold_until.has_value());
    EXPECT_TRUE(all.mail.requiretls);

    EXPECT_EQ(ok("MAIL FROM:<a@b.example> BODY=7BIT RET=FULL").mail.ret, Ret::Full);
    EXPECT_EQ(ok("MAIL FROM:<a@b.example> BODY=7bit").mail.body, Body::SevenBit);
    // SIZE with 20 digits that overflow 64 bits saturates (→ 552 by policy).
    EXPECT_EQ(ok("MAIL FROM:<a@b.example> SIZE=99999999999999999999").mail.size, UINT64_MAX);

    Command hold = ok("MAIL FROM:<a@b.example> HOLDUNTIL=2026-11-28T18:00:00+01:00");
    EXPECT_EQ(hold.mail.hold_until, 1795885200);  // 17:00Z

    // SMTPUTF8 on MAIL unlocks a UTF-8 sender.
    Command u =
        ok("MAIL FROM:<j\xc3\xb6rg@b\xc3\xbc"
           "cher.example> SMTPUTF8");
    EXPECT_EQ(u.path.mailbox.local, "j\xc3\xb6rg");
}

TEST(Command, ExtensionsNotOffered) {
    CommandOptions bare;
    bare.extensions = kExtSize;
    check_errors(
        {
            {"MAIL FROM:<a@b.example> BODY=8BITMIME", 555, "5.5.4"},
            {"MAIL FROM:<a@b.example> SMTPUTF8", 555, "5.5.4"},
            {"MAIL FROM:<a@b.example> RET=FULL", 555, "5.5.4"},
            {"MAIL FROM:<a@b.example> REQUIRETLS", 555, "5.5.4"},
            {"MAIL FROM:<a@b.example> HOLDFOR=5", 555, "5.5.4"},
            {"MAIL FROM:<a@b.example> AUTH=<>", 555, "5.5.4"},
            {"RCPT TO:<a@b.example> NOTIFY=NEVER", 555, "5.5.4"},
        },
        bare);
    EXPECT_TRUE(parse_command("MAIL FROM:<a@b.example> SIZE=5", bare).has_value());

    CommandOptions eight;
    eight.extensions = kExt8BitMime;
    EXPECT_EQ(err("MAIL FROM:<a@b.example> BODY=BINARYMIME", eight).code, 501);
    EXPECT_TRUE(parse_command("MAIL FROM:<a@b.example> BODY=8BITMIME", eight).has_value());
}

TEST(Command, RcptTo) {
    Command c = ok("RCPT TO:<bob@example.com>");
    EXPECT_EQ(c.verb, Verb::Rcpt);
    EXPECT_EQ(c.path.mailbox.local, "bob");
    EXPECT_EQ(c.rcpt.notify, 0);
    EXPECT_EQ(ok("rcpt to:<Postmaster>").path.kind, Path::Kind::Postmaster);
    EXPECT_EQ(ok("RCPT TO: <bob@example.com>").path.mailbox.local, "bob");

    Command dsn =
        ok("RCPT TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.com");
    EXPECT_EQ(dsn.rcpt.notify, kNotifySuccess | kNotifyFailure);
    ASSERT_TRUE(dsn.rcpt.orcpt.has_value());
    EXPECT_EQ(dsn.rcpt.orcpt->addr_type, "rfc822");
    EXPECT_EQ(dsn.rcpt.orcpt->address, "bob@example.com");

    EXPECT_EQ(ok("RCPT TO:<b@x.example> NOTIFY=never").rcpt.notify, kNotifyNever);
    EXPECT_EQ(ok("RCPT TO:<b@x.example> NOTIFY=DELAY").rcpt.notify, kNotifyDelay);
    Command enc = ok("RCPT TO:<b@x.example> ORCPT=RFC822;b+2Bx+3Dy@x.example");
    EXPECT_EQ(enc.rcpt.orcpt->address, "b+x=y@x.example");

    // UTF-8 recipient only within an SMTPUTF8 transaction.
    const char* utf8 = "RCPT TO:<\xe7\x94\xb0\xe4\xb8\xad@\xe4\xbe\x8b\xe3\x81\x88.jp>";
    EXPECT_EQ(err(utf8).code, 553);
    CommandOptions tx;
    tx.smtputf8_transaction = true;
    EXPECT_TRUE(parse_command(utf8, tx).has_value());
}

TEST(Command, RcptErrors) {
    check_errors({
        {"RCPT", 501, "5.5.4"},
        {"RCPT FROM:<a@b.example>", 501, "5.5.4"},
        {"RCPT TO:<>", 501, "5.1.3"},
        {"RCPT TO:", 501, "5.1.3"},
        {"RCPT TO:bob@example.com", 501, "5.1.3"},
        {"RCPT TO:<bob@example.com", 501, "5.1.3"},
        {"RCPT TO:<bob@ex ample.com>", 501, "5.1.3"},
        {"RCPT TO:<bob@example.com> SIZE=1", 555, "5.5.4"},  // a MAIL parameter
        {"RCPT TO:<bob@example.com> NOTIFY=NEVER,SUCCESS", 501, "5.5.4"},
        {"RCPT TO:<bob@example.com> NOTIFY=SUCCESS,BOGUS", 501, "5.5.4"},
        {"RCPT TO:<bob@example.com> NOTIFY=", 501, "5.5.4"},
        {"RCPT TO:<bob@example.com> NOTIFY=SUCCESS,", 501, "5.5.4"},
        {"RCPT TO:<bob@example.com> NOTIFY", 501, "5.5.4"},
        {"RCPT TO:<bob@example.com> NOTIFY=DELAY NOTIFY=DELAY", 501, "5.5.4"},
        {"RCPT TO:<bob@example.com> ORCPT=bob@example.com", 501, "5.5.4"},
        {"RCPT TO:<bob@example.com> ORCPT=;bob@example.com", 501, "5.5.4"},
        {"RCPT TO:<bob@example.com> ORCPT=rfc822;", 501, "5.5.4"},
        {"RCPT TO:<bob@example.com> ORCPT=rfc822;a+XYb", 501, "5.5.4"},
    });
}

// Lines seen from real clients and bots; each must parse, and the path must
// come back as shown.
TEST(Command, RealWorldAccepted) {
    struct Case {
        const char* line;
        Verb verb;
        const char* path;  // Path::to_string(), "" when not MAIL/RCPT
    };
    const Case cases[] = {
        // Gmail / Google Workspace
        {"MAIL FROM:<bounces+SRS=ab12c=XY@gmail.com> SIZE=4242 BODY=8BITMIME", Verb::Mail,
         "<bounces+SRS=ab12c=XY@gmail.com>"},
        {"MAIL FROM:<3x5YZZQgKAAo@doclist.bounces.google.com> SMTPUTF8 BODY=8BITMIME", Verb::Mail,
         "<3x5YZZQgKAAo@doclist.bounces.google.com>"},
        // Exchange / Outlook.com
        {"MAIL FROM:<Alice.Smith@contoso.com> SIZE=20480 AUTH=<>", Verb::Mail,
         "<Alice.Smith@contoso.com>"},
        {"MAIL FROM:<alice@contoso.com> AUTH=alice+40contoso.com", Verb::Mail,
         "<alice@contoso.com>"},
        {"RCPT TO:<bob@fabrikam.com> NOTIFY=FAILURE,DELAY ORCPT=rfc822;bob@fabrikam.com",
         Verb::Rcpt, "<bob@fabrikam.com>"},
        // Outlook desktop: space after the colon
        {"MAIL FROM: <carol@example.org>", Verb::Mail, "<carol@example.org>"},
        {"RCPT TO: <dave@example.org>", Verb::Rcpt, "<dave@example.org>"},
        // Postfix bounce, VERP sender, BATV sender
        {"MAIL FROM:<> SIZE=3210", Verb::Mail, "<>"},
        {"MAIL FROM:<list-bounces+dave=example.org@lists.example.net>", Verb::Mail,
         "<list-bounces+dave=example.org@lists.example.net>"},
        {"MAIL FROM:<prvs=0123456789=sender@example.com>", Verb::Mail,
         "<prvs=0123456789=sender@example.com>"},
        // Lower-case verbs from hand-typed telnet sessions and scripts
        {"mail from:<x@y.example>", Verb::Mail, "<x@y.example>"},
        {"rcpt to:<postmaster>", Verb::Rcpt, "<Postmaster>"},
        {"Rcpt To:<POSTMASTER@Y.EXAMPLE>", Verb::Rcpt, "<POSTMASTER@Y.EXAMPLE>"},
        // Old relays still sending source routes
        {"RCPT TO:<@hosta.example,@hostb.example:user@hostc.example>", Verb::Rcpt,
         "<user@hostc.example>"},
        // Address literal recipients
        {"RCPT TO:<root@[127.0.0.1]>", Verb::Rcpt, "<root@[127.0.0.1]>"},
        // Quoted local parts
        {"RCPT TO:<\"last, first\"@example.com>", Verb::Rcpt, "<\"last, first\"@example.com>"},
        {"RCPT TO:<\"very.unusual.@.unusual.com\"@example.com>", Verb::Rcpt,
         "<\"very.unusual.@.unusual.com\"@example.com>"},
        // Trailing spaces from scripts
        {"QUIT   ", Verb::Quit, ""},
        {"EHLO localhost.localdomain ", Verb::Ehlo, ""},
        {"HELO [IPv6:::1]", Verb::Helo, ""},
        {"noop", Verb::Noop, ""},
    };
    for (const auto& c : cases) {
        Command cmd = ok(c.line);
        EXPECT_EQ(cmd.verb, c.verb) << c.line;
        if (c.verb == Verb::Mail || c.verb == Verb::Rcpt) {
            EXPECT_EQ(cmd.path.to_string(), c.path) << c.line;
        }
    }
}

TEST(Command, LongLocalPartKnob) {
    std::string line = "MAIL FROM:<" + std::string(86, 'g') + "@docs.example>";
    Reply r = err(line);
    EXPECT_EQ(r.code, 501);
    CommandOptions roomy;
    roomy.max_local_part = 128;
    EXPECT_EQ(ok(line, roomy).path.mailbox.local.size(), 86u);
    // The 256-octet path limit still holds.
    std::string huge = "MAIL FROM:<" + std::string(250, 'g') + "@docs.example>";
    CommandOptions unlimited;
    unlimited.max_local_part = 1000;
    EXPECT_EQ(err(huge, unlimited).code, 501);
}

TEST(Command, Bdat) {
    Command c = ok("BDAT 1000");
    EXPECT_EQ(c.verb, Verb::Bdat);
    EXPECT_EQ(c.chunk_size, 1000u);
    EXPECT_FALSE(c.last);
    Command last = ok("bdat 0 last");
    EXPECT_EQ(last.chunk_size, 0u);
    EXPECT_TRUE(last.last);
    EXPECT_TRUE(ok("BDAT 12  LAST").last);
    check_errors({
        {"BDAT", 501, "5.5.4"},
        {"BDAT x", 501, "5.5.4"},
        {"BDAT -1", 501, "5.5.4"},
        {"BDAT 10 FIRST", 501, "5.5.4"},
        {"BDAT 10 LAST x", 501, "5.5.4"},
        {"BDAT 99999999999999999999999", 501, "5.5.4"},
    });
}

TEST(Command, Auth) {
    Command plain = ok("AUTH PLAIN AGFsaWNlAHNlY3JldA==");
    EXPECT_EQ(plain.verb, Verb::Auth);
    EXPECT_EQ(plain.mechanism, "PLAIN");
    EXPECT_EQ(plain.initial_response, "AGFsaWNlAHNlY3JldA==");
    Command login = ok("auth login");
    EXPECT_EQ(login.mechanism, "LOGIN");
    EXPECT_FALSE(login.initial_response.has_value());
    EXPECT_EQ(ok("AUTH PLAIN =").initial_response, "=");
    EXPECT_EQ(ok("AUTH SCRAM-SHA-256").mechanism, "SCRAM-SHA-256");
    // Unknown mechanisms parse: 504 is the session's answer.
    EXPECT_EQ(ok("AUTH XOAUTH2 dXNlcj1h").mechanism, "XOAUTH2");
    check_errors({
        {"AUTH", 501, "5.5.4"},
        {"AUTH PLAIN a b", 501, "5.5.4"},
        {"AUTH PL@IN", 501, "5.5.4"},
        {"AUTH ABCDEFGHIJKLMNOPQRSTU", 501, "5.5.4"},  // 21 characters
        {"AUTH PLAIN a*b", 501, "5.5.4"},
    });
}

TEST(Command, XClient) {
    Command c =
        ok("XCLIENT NAME=mail.example.net ADDR=203.0.113.5 PORT=4321 PROTO=ESMTP "
           "HELO=[UNAVAILABLE] LOGIN=alice+40example.net DESTADDR=198.51.100.1 "
           "DESTPORT=25");
    EXPECT_EQ(c.verb, Verb::XClient);
    ASSERT_EQ(c.xclient.size(), 8u);
    EXPECT_EQ(c.xclient[0].name, "NAME");
    EXPECT_EQ(c.xclient[0].value, "mail.example.net");
    EXPECT_EQ(c.xclient[1].value, "203.0.113.5");
    EXPECT_EQ(c.xclient[4].name, "HELO");
    EXPECT_EQ(c.xclient[4].state, XClientAttr::State::Unavailable);
    EXPECT_EQ(c.xclient[5].value, "alice@example.net");
    EXPECT_EQ(c.xclient[7].value, "25");

    Command t = ok("xclient name=[TEMPUNAVAIL] addr=IPV6:2001:db8::1");
    EXPECT_EQ(t.xclient[0].name, "NAME");
    EXPECT_EQ(t.xclient[0].state, XClientAttr::State::TempUnavailable);
    EXPECT_EQ(t.xclient[1].value, "IPV6:2001:db8::1");
    check_errors({
        {"XCLIENT", 501, "5.5.4"},
        {"XCLIENT FOO=bar", 501, "5.5.4"},
        {"XCLIENT ADDR", 501, "5.5.4"},
        {"XCLIENT ADDR=1.2.3.4 ADDR=5.6.7.8", 501, "5.5.4"},
        {"XCLIENT LOGIN=a+4", 501, "5.5.4"},
    });
}

TEST(Command, VerbNames) {
    EXPECT_EQ(verb_name(Verb::StartTls), "STARTTLS");
    EXPECT_EQ(verb_name(Verb::XClient), "XCLIENT");
    EXPECT_EQ(verb_name(Verb::Mail), "MAIL");
}

TEST(Command, Rfc3339) {
    EXPECT_EQ(parse_rfc3339("1970-01-01T00:00:00Z"), 0);
    EXPECT_EQ(parse_rfc3339("2000-02-29T12:00:00Z"), 951825600);
    EXPECT_EQ(parse_rfc3339("1996-12-19T16:39:57-08:00"), 851042397);  // RFC 3339 §5.8
    EXPECT_EQ(parse_rfc3339("1990-12-31T23:59:60Z"), 662688000);       // leap second
    EXPECT_EQ(parse_rfc3339("1985-04-12t23:20:50.52z"), 482196050);    // §5.8, lower case
    for (const char* bad :
         {"", "2001-02-29T00:00:00Z", "2000-01-01T24:00:00Z", "2000-01-01T00:60:00Z",
          "2000-01-01 00:00:00Z", "2000-01-01T00:00:00", "2000-01-01T00:00:00+0100",
          "2000-01-01T00:00:00.Z", "2000-1-01T00:00:00Z", "2000-01-01T00:00:00Z ",
          "2000-01-01T00:00:00+24:00"}) {
        EXPECT_FALSE(parse_rfc3339(bad).has_value()) << bad;
    }
}

}  // namespace
}  // namespace yubin::smtp

namespace yubin::smtp {
namespace {

TEST(FormatCommand, CanonicalForms) {
    struct Case {
        const char* in;
        const char* out;
    };
    const Case cases[] = {
        {"ehlo client.example", "EHLO client.example"},
        {"mail from: <a@b.example> body=8bitmime size=10",
         "MAIL FROM:<a@b.example> SIZE=10 BODY=8BITMIME"},
        {"MAIL FROM:<>", "MAIL FROM:<>"},
        {"MAIL FROM:<\"x y\"@b.example> AUTH=<> ENVID=a+2Bb RET=full",
         "MAIL FROM:<\"x y\"@b.example> RET=FULL ENVID=a+2Bb AUTH=<>"},
        {"MAIL FROM:<a@b.example> HOLDUNTIL=2026-11-28T18:00:00.5+01:00",
         "MAIL FROM:<a@b.example> HOLDUNTIL=2026-11-28T17:00:00Z"},
        {"MAIL FROM:<a@b.example> AUTH=+3C+3E", "MAIL FROM:<a@b.example> AUTH=+3C>"},
        {"RCPT TO:<@r.example:u@b.example> ORCPT=rfc822;u+2Bx@b.example notify=delay,success",
         "RCPT TO:<u@b.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;u+2Bx@b.example"},
        {"rcpt to:<postmaster>", "RCPT TO:<Postmaster>"},
        {"bdat 10 last", "BDAT 10 LAST"},
        {"auth plain =", "AUTH PLAIN ="},
        {"xclient addr=203.0.113.1 helo=[tempunavail] login=+5BUNAVAILABLE]",
         "XCLIENT ADDR=203.0.113.1 HELO=[TEMPUNAVAIL] LOGIN=+5BUNAVAILABLE]"},
        {"noop", "NOOP"},
        {"vrfy  bob ", "VRFY bob"},
        {"starttls", "STARTTLS"},
    };
    for (const auto& c : cases) {
        auto parsed = parse_command(c.in);
        ASSERT_TRUE(parsed.has_value()) << c.in;
        EXPECT_EQ(format_command(*parsed), c.out) << c.in;
        auto again = parse_command(format_command(*parsed));
        ASSERT_TRUE(again.has_value()) << c.out;
        EXPECT_EQ(*again, *parsed) << c.in;
    }
}

TEST(FormatCommand, BuiltByTheClient) {
    Command mail;
    mail.verb = Verb::Mail;
    mail.path = *parse_reverse_path("<bounce@queue.example>");
    mail.mail.size = 123456;
    mail.mail.body = Body::EightBitMime;
    mail.mail.smtputf8 = true;
    mail.mail.envid = "id with space+=";
    mail.mail.requiretls = true;
    std::string line = format_command(mail);
    EXPECT_EQ(line,
              "MAIL FROM:<bounce@queue.example> SIZE=123456 BODY=8BITMIME SMTPUTF8 "
              "ENVID=id+20with+20space+2B+3D REQUIRETLS");
    auto back = parse_command(line);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, mail);
}

TEST(FormatCommand, Rfc3339RoundTrip) {
    EXPECT_EQ(format_rfc3339(0), "1970-01-01T00:00:00Z");
    EXPECT_EQ(format_rfc3339(951825600), "2000-02-29T12:00:00Z");
    EXPECT_EQ(format_rfc3339(-1), "1969-12-31T23:59:59Z");
    for (int64_t t : {int64_t{0}, int64_t{-86401}, int64_t{1795885200}, int64_t{253402300799}}) {
        EXPECT_EQ(parse_rfc3339(format_rfc3339(t)), t) << t;
    }
}

}  // namespace
}  // namespace yubin::smtp
