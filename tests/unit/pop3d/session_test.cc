// The sans-I/O POP3 session driven by a fake driver (no socket, no store):
// scripted dialogues checked line by line, and the same dialogue fed whole,
// one byte at a time and at random splits must give identical output.
#include "pop3d/session.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "common/base/base64.h"
#include "common/proto/line_reader.h"
#include "pop3d/message_format.h"

namespace yubin::pop3d {
namespace {

const std::string kMsg1 = "Subject: one\r\n\r\nfirst body\r\n";
const std::string kMsg2 = "Subject: two\r\n\r\n.dotted\r\nline2\r\nline3\r\n";
const std::string kMsg3 = "Subject: three\nFrom: a@b\n\nbare LF body\n";

// Plays the daemon's part: answers each request at once from memory.
struct Harness {
    explicit Harness(SessionOptions options = default_options()) : session(std::move(options)) {
        bodies = {{10, kMsg1}, {11, kMsg2}, {15, kMsg3}};
    }

    static SessionOptions default_options() {
        SessionOptions o;
        o.hostname = "mail.example.test";
        o.tls_active = true;
        o.max_errors = 0;
        return o;
    }

    void start() {
        session.start();
        pump();
    }

    void feed(std::string_view bytes) {
        reader.feed(bytes);
        pump();
    }

    void pump() {
        for (;;) {
            out += session.take_output();
            Request r = session.take_request();
            if (r.kind != RequestKind::None) {
                handle(r);
                continue;
            }
            if (session.closing()) {
                closed = true;
                return;
            }
            proto::Event ev = reader.next();
            if (ev.kind == proto::EventKind::NeedMore) {
                return;
            }
            if (ev.kind == proto::EventKind::LineTooLong) {
                session.feed_line_too_long();
            } else if (ev.kind == proto::EventKind::Line) {
                session.feed_line(ev.data);
            }
        }
    }

    void handle(const Request& r) {
        switch (r.kind) {
            case RequestKind::StartTls:
                discarded += reader.discard_buffered();
                session.tls_started();
                break;
            case RequestKind::Login: {
                logins.push_back(r.user + ":" + r.password);
                LoginResult res;
                if (r.user == "bob@example.test" && r.password == "secret pw") {
                    if (in_use) {
                        res.status = LoginStatus::InUse;
                    } else {
                        res.status = LoginStatus::Ok;
                        res.maildrop.mailbox_id = 7;
                        res.maildrop.uidvalidity = 0x1234;
                        for (auto& [uid, body] : bodies) {
                            res.maildrop.messages.push_back({uid, encoded_size(body)});
                        }
                    }
                } else {
                    res.status = LoginStatus::BadCredentials;
                }
                session.login_done(std::move(res));
                break;
            }
            case RequestKind::Retrieve: {
                EXPECT_EQ(r.mailbox_id, 7u);
                auto it = bodies.find(r.uid);
                if (it == bodies.end() || vanished.count(r.uid) != 0) {
                    session.retrieve_done(fail(ErrorCode::NotFound, "gone"));
                } else {
                    session.retrieve_done(it->second);
                }
                break;
            }
            case RequestKind::Update:
                EXPECT_EQ(r.mailbox_id, 7u);
                updates.push_back(r.uids);
                session.update_done(update_fails ? Result<void>(fail(ErrorCode::Temp, "disk"))
                                                 : Result<void>{});
                break;
            case RequestKind::None:
                break;
        }
    }

    Session session;
    proto::Reader reader{proto::ReaderLimits{255, false}};
    std::map<uint32_t, std::string> bodies;
    std::set<uint32_t> vanished;
    bool in_use = false;
    bool update_fails = false;
    std::string out;
    bool closed = false;
    size_t discarded = 0;
    std::vector<std::string> logins;
    std::vector<std::vector<uint32_t>> updates;
};

// Runs a whole dialogue and returns the replies.
std::string run_dialogue(std::string_view input, const std::vector<size_t>& cuts) {
    Harness h;
    h.start();
    size_t pos = 0;
    for (size_t cut : cuts) {
        h.feed(input.substr(pos, cut - pos));
        pos = cut;
    }
    h.feed(input.substr(pos));
    return h.out;
}

std::string login_lines() {
    return "USER bob@example.test\r\nPASS secret pw\r\n";
}

TEST(Pop3Session, GreetingHasNoApopTimestamp) {
    Harness h;
    h.start();
    EXPECT_EQ(h.out, "+OK mail.example.test POP3 server ready\r\n");
}

TEST(Pop3Session, CapaBeforeAndAfterLogin) {
    Harness h;
    h.start();
    h.out.clear();
    h.feed("CAPA\r\n");
    EXPECT_EQ(h.out,
              "+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
              "PIPELINING\r\nUSER\r\nSASL PLAIN\r\nIMPLEMENTATION yubin\r\n.\r\n");
    h.feed(login_lines());
    h.out.clear();
    h.feed("capa\r\n");
    EXPECT_EQ(h.out,
              "+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
              "PIPELINING\r\nIMPLEMENTATION yubin\r\n.\r\n");
}

TEST(Pop3Session, CapaOffersStlsButNoLoginBeforeTls) {
    SessionOptions o = Harness::default_options();
    o.tls_active = false;
    o.stls_available = true;
    o.expire = "NEVER";
    o.login_delay = 0;
    Harness h(o);
    h.start();
    h.out.clear();
    h.feed("CAPA\r\n");
    EXPECT_EQ(
        h.out,
        "+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
        "PIPELINING\r\nSTLS\r\nEXPIRE NEVER\r\nLOGIN-DELAY 0\r\nIMPLEMENTATION yubin\r\n.\r\n");
    h.out.clear();
    h.feed("USER bob@example.test\r\nAUTH PLAIN\r\n");
    EXPECT_EQ(h.out,
              "-ERR [AUTH] plaintext authentication is only allowed after STLS\r\n"
              "-ERR [AUTH] plaintext authentication is only allowed after STLS\r\n");
    EXPECT_TRUE(h.logins.empty());
}

TEST(Pop3Session, StlsDiscardsPipelinedPlaintextAndResets) {
    SessionOptions o = Harness::default_options();
    o.tls_active = false;
    o.stls_available = true;
    Harness h(o);
    h.start();
    h.out.clear();
    // The injected PASS after STLS must not be read as if it came over TLS.
    h.feed("STLS\r\nUSER bob@example.test\r\nPASS secret pw\r\n");
    EXPECT_EQ(h.out, "+OK begin TLS negotiation\r\n");
    EXPECT_GT(h.discarded, 0u);
    EXPECT_TRUE(h.logins.empty());
    h.out.clear();
    h.feed("PASS secret pw\r\nSTLS\r\n");  // USER was forgotten; STLS twice is refused
    EXPECT_EQ(h.out, "-ERR USER first\r\n-ERR TLS is already active\r\n");
    h.out.clear();
    h.feed(login_lines());
    EXPECT_EQ(h.out,
              "+OK send PASS\r\n+OK logged in, 3 messages (" +
                  std::to_string(encoded_size(kMsg1) + encoded_size(kMsg2) + encoded_size(kMsg3)) +
                  " octets)\r\n");
}

TEST(Pop3Session, StlsNotOfferedOnImplicitTls) {
    Harness h;  // tls_active, stls_available = false
    h.start();
    h.out.clear();
    h.feed("STLS\r\n");
    EXPECT_EQ(h.out, "-ERR TLS is already active\r\n");
}

TEST(Pop3Session, PlaintextAllowedWhenConfigured) {
    SessionOptions o = Harness::default_options();
    o.tls_active = false;
    o.plaintext_auth = true;
    Harness h(o);
    h.start();
    h.feed(login_lines());
    EXPECT_TRUE(h.session.authenticated());
}

TEST(Pop3Session, FullTransaction) {
    Harness h;
    h.start();
    h.feed(login_lines());
    uint64_t s1 = encoded_size(kMsg1), s2 = encoded_size(kMsg2), s3 = encoded_size(kMsg3);
    EXPECT_EQ(s2, kMsg2.size() + 1);  // one stuffed dot
    EXPECT_EQ(s3, kMsg3.size() + 4);  // four LF → CRLF
    h.out.clear();
    h.feed("STAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 3\r\n");
    EXPECT_EQ(h.out, "+OK 3 " + std::to_string(s1 + s2 + s3) + "\r\n" + "+OK 3 messages (" +
                         std::to_string(s1 + s2 + s3) + " octets)\r\n" + "1 " + std::to_string(s1) +
                         "\r\n2 " + std::to_string(s2) + "\r\n3 " + std::to_string(s3) +
                         "\r\n.\r\n" + "+OK 2 " + std::to_string(s2) + "\r\n" +
                         "+OK unique-id listing follows\r\n1 000012340000000a\r\n"
                         "2 000012340000000b\r\n3 000012340000000f\r\n.\r\n"
                         "+OK 3 000012340000000f\r\n");
    h.out.clear();
    h.feed("RETR 2\r\n");
    EXPECT_EQ(h.out, "+OK " + std::to_string(s2) +
                         " octets\r\nSubject: two\r\n\r\n..dotted\r\nline2\r\nline3\r\n.\r\n");
    h.out.clear();
    h.feed("TOP 2 1\r\nTOP 3 0\r\n");
    EXPECT_EQ(h.out,
              "+OK top of message follows\r\nSubject: two\r\n\r\n..dotted\r\n.\r\n"
              "+OK top of message follows\r\nSubject: three\r\nFrom: a@b\r\n\r\n.\r\n");
    h.out.clear();
    h.feed("DELE 1\r\nDELE 1\r\nRETR 1\r\nLIST 1\r\nSTAT\r\nLIST\r\n");
    EXPECT_EQ(h.out,
              "+OK message 1 deleted\r\n-ERR message 1 already deleted\r\n"
              "-ERR message 1 already deleted\r\n-ERR message 1 already deleted\r\n"
              "+OK 2 " +
                  std::to_string(s2 + s3) + "\r\n" + "+OK 2 messages (" + std::to_string(s2 + s3) +
                  " octets)\r\n2 " + std::to_string(s2) + "\r\n3 " + std::to_string(s3) +
                  "\r\n.\r\n");
    h.out.clear();
    h.feed("RSET\r\nSTAT\r\nDELE 3\r\nDELE 1\r\nNOOP\r\n");
    EXPECT_EQ(h.out, "+OK maildrop has 3 messages (" + std::to_string(s1 + s2 + s3) +
                         " octets)\r\n+OK 3 " + std::to_string(s1 + s2 + s3) +
                         "\r\n+OK message 3 deleted\r\n+OK message 1 deleted\r\n+OK\r\n");
    EXPECT_TRUE(h.updates.empty());
    h.out.clear();
    h.feed("QUIT\r\n");
    EXPECT_EQ(h.out, "+OK bye, 1 messages left\r\n");
    ASSERT_EQ(h.updates.size(), 1u);
    EXPECT_EQ(h.updates[0], (std::vector<uint32_t>{10, 15}));  // in one call, uid order
    EXPECT_TRUE(h.closed);
}

TEST(Pop3Session, QuitWithoutDeletionsNeedsNoUpdate) {
    Harness h;
    h.start();
    h.feed(login_lines() + "RETR 1\r\nQUIT\r\n");
    EXPECT_TRUE(h.updates.empty());
    EXPECT_TRUE(h.closed);
    EXPECT_NE(h.out.find("+OK bye\r\n"), std::string::npos);
}

TEST(Pop3Session, FailedUpdateIsReported) {
    Harness h;
    h.update_fails = true;
    h.start();
    h.feed(login_lines() + "DELE 2\r\n");
    h.out.clear();
    h.feed("QUIT\r\n");
    EXPECT_EQ(h.out,
              "-ERR [SYS/TEMP] the deletions could not be committed; nothing was deleted\r\n");
    EXPECT_TRUE(h.closed);
}

TEST(Pop3Session, TimeoutAndShutdownDeleteNothing) {
    Harness h;
    h.start();
    h.feed(login_lines() + "DELE 1\r\nDELE 2\r\n");
    h.out.clear();
    h.session.idle_timeout();
    h.pump();
    EXPECT_EQ(h.out, "-ERR [SYS/TEMP] idle for too long, closing; nothing was deleted\r\n");
    EXPECT_TRUE(h.closed);
    EXPECT_TRUE(h.updates.empty());

    Harness g;
    g.start();
    g.feed(login_lines() + "DELE 1\r\n");
    g.session.shutting_down();
    g.pump();
    EXPECT_TRUE(g.closed);
    EXPECT_TRUE(g.updates.empty());
}

TEST(Pop3Session, QuitInAuthorizationState) {
    Harness h;
    h.start();
    h.out.clear();
    h.feed("QUIT\r\nNOOP\r\n");
    EXPECT_EQ(h.out, "+OK bye\r\n");
    EXPECT_TRUE(h.closed);
}

TEST(Pop3Session, BadCredentialsAndUnknownUsersLookTheSame) {
    Harness h;
    h.start();
    h.out.clear();
    h.feed("USER nobody@example.test\r\nPASS x\r\nUSER bob@example.test\r\nPASS wrong\r\n");
    EXPECT_EQ(h.out,
              "+OK send PASS\r\n-ERR [AUTH] authentication failed\r\n"
              "+OK send PASS\r\n-ERR [AUTH] authentication failed\r\n");
    EXPECT_EQ(h.session.failed_logins(), 2u);
    EXPECT_FALSE(h.session.authenticated());
    // After a failure the USER must be given again.
    h.out.clear();
    h.feed("PASS secret pw\r\n");
    EXPECT_EQ(h.out, "-ERR USER first\r\n");
}

TEST(Pop3Session, PasswordKeepsSpaces) {
    Harness h;
    h.start();
    h.feed(login_lines());
    ASSERT_EQ(h.logins.size(), 1u);
    EXPECT_EQ(h.logins[0], "bob@example.test:secret pw");
    EXPECT_TRUE(h.session.authenticated());
}

TEST(Pop3Session, AuthPlainWithInitialResponse) {
    Harness h;
    h.start();
    h.out.clear();
    std::string ir = base64_encode(std::string("\0bob@example.test\0secret pw", 27));
    h.feed("AUTH PLAIN " + ir + "\r\nSTAT\r\n");
    EXPECT_EQ(h.out.substr(0, h.out.find("\r\n")),
              "+OK logged in, 3 messages (" +
                  std::to_string(encoded_size(kMsg1) + encoded_size(kMsg2) + encoded_size(kMsg3)) +
                  " octets)");
    EXPECT_TRUE(h.session.authenticated());
}

TEST(Pop3Session, AuthPlainWithContinuationAndCancel) {
    Harness h;
    h.start();
    h.out.clear();
    h.feed("AUTH PLAIN\r\n");
    EXPECT_EQ(h.out, "+ \r\n");
    h.out.clear();
    h.feed("*\r\n");
    EXPECT_EQ(h.out, "-ERR authentication cancelled\r\n");
    h.out.clear();
    h.feed("AUTH PLAIN\r\n" + base64_encode(std::string("\0bob@example.test\0secret pw", 27)) +
           "\r\n");
    EXPECT_EQ(h.out.substr(0, 19), "+ \r\n+OK logged in, ");
}

TEST(Pop3Session, AuthRejectsOtherAuthzidAndGarbage) {
    Harness h;
    h.start();
    h.out.clear();
    h.feed("AUTH PLAIN " + base64_encode(std::string("alice\0bob@example.test\0secret pw", 32)) +
           "\r\nAUTH PLAIN !!!\r\nAUTH CRAM-MD5\r\nAUTH PLAIN =\r\nAUTH\r\n");
    EXPECT_EQ(h.out,
              "-ERR [AUTH] authorization identity must be empty or the user itself\r\n"
              "-ERR [AUTH] malformed authentication exchange\r\n"
              "-ERR unsupported SASL mechanism\r\n"
              "-ERR [AUTH] malformed authentication exchange\r\n"
              "+OK\r\nPLAIN\r\n.\r\n");
    EXPECT_TRUE(h.logins.empty());
}

TEST(Pop3Session, InUse) {
    Harness h;
    h.in_use = true;
    h.start();
    h.out.clear();
    h.feed(login_lines() + "STAT\r\n");
    EXPECT_EQ(h.out,
              "+OK send PASS\r\n-ERR [IN-USE] the maildrop is in use by another session\r\n"
              "-ERR not logged in\r\n");
}

TEST(Pop3Session, LoginDelayAndFailuresAreReported) {
    for (auto [status, text] : std::vector<std::pair<LoginStatus, std::string>>{
             {LoginStatus::LoginDelay,
              "-ERR [LOGIN-DELAY] logged in too recently, try again later"},
             {LoginStatus::TempFailure, "-ERR [SYS/TEMP] temporary failure, try again later"},
             {LoginStatus::PermFailure, "-ERR [SYS/PERM] the maildrop cannot be opened"}}) {
        Session s(Harness::default_options());
        s.start();
        s.feed_line("USER bob@example.test");
        s.feed_line("PASS x");
        ASSERT_TRUE(s.waiting());
        Request r = s.take_request();
        EXPECT_EQ(r.kind, RequestKind::Login);
        EXPECT_EQ(r.user, "bob@example.test");
        s.take_output();
        s.feed_line("STAT");  // ignored while the login is pending
        s.login_done(LoginResult{status, {}});
        EXPECT_EQ(s.take_output(), text + "\r\n");
        EXPECT_FALSE(s.authenticated());
        EXPECT_EQ(s.failed_logins(), 0u);  // not a credentials failure
        s.feed_line("STAT");
        EXPECT_EQ(s.take_output(), "-ERR not logged in\r\n");
    }
}

TEST(Pop3Session, BadInputGetsErrAndContinues) {
    Harness h;
    h.start();
    h.out.clear();
    h.feed("STAT\r\nRETR 1\r\nXYZZY\r\n\r\nAPOP bob x\r\n");
    EXPECT_EQ(h.out,
              "-ERR not logged in\r\n-ERR not logged in\r\n-ERR unknown command\r\n"
              "-ERR empty command\r\n-ERR APOP is not supported\r\n");
    h.feed(login_lines());
    h.out.clear();
    h.feed(
        "RETR 0\r\nRETR 4\r\nRETR -1\r\nRETR +1\r\nRETR 1x\r\nRETR\r\nRETR 1 2\r\n"
        "TOP 1\r\nTOP 1 x\r\nLIST 99999999999999999999999\r\nSTAT 1\r\nUSER x\r\n"
        "NOOP x\r\n");
    EXPECT_EQ(h.out,
              "-ERR invalid message number\r\n-ERR no such message\r\n"
              "-ERR invalid message number\r\n-ERR invalid message number\r\n"
              "-ERR invalid message number\r\n-ERR usage: RETR message\r\n"
              "-ERR usage: RETR message\r\n-ERR usage: TOP message lines\r\n"
              "-ERR invalid line count\r\n-ERR invalid message number\r\n"
              "-ERR STAT takes no arguments\r\n-ERR already logged in\r\n"
              "-ERR NOOP takes no arguments\r\n");
    h.out.clear();
    h.feed(std::string(300, 'A') + "\r\nNOOP\r\n");
    EXPECT_EQ(h.out, "-ERR line too long\r\n+OK\r\n");
    EXPECT_FALSE(h.closed);
}

TEST(Pop3Session, TooManyErrorsCloses) {
    SessionOptions o = Harness::default_options();
    o.max_errors = 3;
    Harness h(o);
    h.start();
    h.feed(login_lines() + "DELE 1\r\n");
    h.out.clear();
    h.feed("BAD\r\nBAD\r\nBAD\r\nNOOP\r\n");
    EXPECT_EQ(h.out,
              "-ERR unknown command\r\n-ERR unknown command\r\n"
              "-ERR unknown command (too many errors, closing)\r\n");
    EXPECT_TRUE(h.closed);
    EXPECT_TRUE(h.updates.empty());  // nothing deleted
}

TEST(Pop3Session, MessageDeletedElsewhereAfterSnapshot) {
    Harness h;
    h.start();
    h.feed(login_lines());
    h.vanished.insert(11);
    h.out.clear();
    h.feed("RETR 2\r\nRETR 1\r\n");
    EXPECT_EQ(h.out.substr(0, h.out.find("\r\n")), "-ERR message was deleted by another session");
    EXPECT_NE(h.out.find("+OK " + std::to_string(encoded_size(kMsg1)) + " octets\r\n"),
              std::string::npos);
}

TEST(Pop3Session, UidlFormat) {
    EXPECT_EQ(uidl_for(1, 1), "0000000100000001");
    EXPECT_EQ(uidl_for(0xffffffffu, 0xffffffffu), "ffffffffffffffff");
}

// The whole of a realistic session: every command, errors included.
std::string full_dialogue() {
    return "CAPA\r\nAUTH\r\nUSER bob@example.test\r\nPASS wrong\r\n" + login_lines() +
           "STAT\r\nLIST\r\nUIDL\r\nLIST 3\r\nRETR 1\r\nRETR 2\r\nRETR 3\r\nTOP 2 1\r\n"
           "DELE 2\r\nRETR 2\r\nbogus\r\n" +
           std::string(400, 'x') +
           "\r\nRSET\r\nDELE 1\r\n"
           "NOOP\r\nQUIT\r\n";
}

TEST(Pop3Session, SameOutputWholeByteByByteAndRandomSplits) {
    std::string input = full_dialogue();
    std::string whole = run_dialogue(input, {});
    ASSERT_NE(whole.find("+OK bye, 2 messages left"), std::string::npos) << whole;
    std::vector<size_t> every;
    for (size_t i = 1; i < input.size(); ++i) {
        every.push_back(i);
    }
    EXPECT_EQ(run_dialogue(input, every), whole);
    std::mt19937 rng(42);
    for (int round = 0; round < 200; ++round) {
        std::vector<size_t> cuts;
        size_t pos = 0;
        while (true) {
            pos += 1 + rng() % 40;
            if (pos >= input.size()) {
                break;
            }
            cuts.push_back(pos);
        }
        ASSERT_EQ(run_dialogue(input, cuts), whole) << "round " << round;
    }
}

}  // namespace
}  // namespace yubin::pop3d
