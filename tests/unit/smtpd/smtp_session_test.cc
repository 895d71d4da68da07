// The sans-I/O SMTP server session under a fake driver (no socket, no store):
// scripted dialogues checked reply by reply. Every dialogue is also fed
// through a real proto::Reader whole, one byte at a time and at random split
// points (fixed seeds); all feedings must give byte-identical output and the
// same requests.
#include "smtpd/smtp_session.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "common/base/base64.h"
#include "common/base/strings.h"
#include "common/proto/line_reader.h"

namespace yubin::smtpd {
namespace {

using namespace std::string_literals;

constexpr int64_t kNow = 1800000000;  // 2027-01-15T08:00:00Z

// Plays the daemon: answers each request at once from memory, and records
// what the session asked for.
struct Harness {
    explicit Harness(SessionOptions options, proto::ReaderLimits limits = {})
        : clock(kNow * 1000000), session(std::move(options), &clock), reader(limits) {}

    // Local domain example.org: alice, bob, postmaster; temp@ fails
    // temporarily; blocked@ is refused by policy; other local parts are
    // unknown. Every other domain is remote.
    RecipientResult lookup(const smtp::Path& path) const {
        if (path.kind == smtp::Path::Kind::Postmaster) {
            return {RecipientStatus::Local, {"postmaster"}, std::nullopt};
        }
        if (!iequals(path.mailbox.domain, "example.org")) {
            return {RecipientStatus::Remote, {}, std::nullopt};
        }
        const std::string& l = path.mailbox.local;
        if (l == "alice" || l == "bob" || l == "postmaster") {
            return {RecipientStatus::Local, {l}, std::nullopt};
        }
        if (l == "temp") {
            return {RecipientStatus::TempFailure, {}, std::nullopt};
        }
        if (l == "blocked") {
            return {RecipientStatus::Rejected, {}, std::nullopt};
        }
        return {RecipientStatus::Unknown, {}, std::nullopt};
    }

    void handle(Request r) {
        // Body pieces split where the feeding split them: only their
        // concatenation is compared, so consecutive ones are logged once.
        if (r.kind != RequestKind::MessageData || kinds.empty() ||
            kinds.back() != RequestKind::MessageData) {
            kinds.push_back(r.kind);
        }
        switch (r.kind) {
            case RequestKind::CheckSender: {
                SenderResult res;
                if (!r.auth_user.empty() && !r.path.is_null() &&
                    r.path.mailbox.local != r.auth_user) {
                    res.status = SenderStatus::NotOwned;
                }
                session.sender_done(res);
                return;
            }
            case RequestKind::CheckRecipient:
                session.recipient_done(lookup(r.path));
                return;
            case RequestKind::VerifyCredentials: {
                const auth::Credentials& c = r.credentials;
                if (c.authcid == "tempfail") {
                    session.credentials_done(AuthStatus::TempFailure);
                } else if (c.authcid == "alice" && c.password == "secret") {
                    session.credentials_done(AuthStatus::Ok);
                } else {
                    session.credentials_done(AuthStatus::Invalid);
                }
                return;
            }
            case RequestKind::StartTls:
                // The driver flushed the 220, drops pipelined plaintext and
                // handshakes; the rest of this plaintext segment never
                // reaches the session (a real client would be refused by TLS).
                reader.discard_buffered();
                drop_rest_of_segment = true;
                session.tls_started(TlsInfo{"TLSv1.3", "TLS_AES_256_GCM_SHA384"});
                return;
            case RequestKind::BeginMessage:
                envelopes.push_back(r.envelope);
                body.clear();
                return;
            case RequestKind::MessageData:
                body += r.data;
                return;
            case RequestKind::AbortMessage:
                ++aborted;
                body.clear();
                return;
            case RequestKind::EndMessage:
                bodies.push_back(body);
                end_sizes.push_back(r.size);
                end_flags.push_back(r.body_flags);
                session.message_done(delivery);
                return;
        }
    }

    void pump() {
        for (;;) {
            while (!session.waiting() && !session.closing()) {
                proto::Event ev = reader.next();
                if (ev.kind == proto::EventKind::NeedMore) {
                    break;
                }
                session.on_event(ev, reader);
            }
            output += session.take_output();
            bool answered = false;
            while (auto r = session.take_request()) {
                answered = answered || r->kind == RequestKind::CheckSender ||
                           r->kind == RequestKind::CheckRecipient ||
                           r->kind == RequestKind::VerifyCredentials ||
                           r->kind == RequestKind::StartTls || r->kind == RequestKind::EndMessage;
                handle(std::move(*r));
            }
            output += session.take_output();
            if (!answered || session.closing()) {
                return;
            }
        }
    }

    void feed(std::string_view bytes) {
        if (drop_rest_of_segment || session.closing()) {
            return;
        }
        reader.feed(bytes);
        pump();
    }

    // Each segment is fed in pieces; segments are TLS boundaries.
    void run(const std::vector<std::string>& segments, int mode) {
        session.start();
        pump();
        std::mt19937 rng(static_cast<uint32_t>(mode));
        for (const std::string& seg : segments) {
            drop_rest_of_segment = false;
            if (mode == 0) {
                feed(seg);
            } else if (mode == 1) {
                for (char ch : seg) {
                    feed(std::string_view(&ch, 1));
                }
            } else {
                size_t pos = 0;
                while (pos < seg.size()) {
                    size_t n = std::uniform_int_distribution<size_t>(1, 17)(rng);
                    n = std::min(n, seg.size() - pos);
                    feed(std::string_view(seg).substr(pos, n));
                    pos += n;
                }
            }
        }
    }

    ManualClock clock;
    Session session;
    proto::Reader reader;
    DeliveryResult delivery;
    std::string output;
    std::vector<RequestKind> kinds;
    std::vector<Envelope> envelopes;
    std::string body;
    std::vector<std::string> bodies;
    std::vector<uint64_t> end_sizes;
    std::vector<uint32_t> end_flags;
    int aborted = 0;
    bool drop_rest_of_segment = false;
};

SessionOptions mx_options() {
    SessionOptions o;
    o.hostname = "mx.example.org";
    o.listener = ListenerKind::Mx;
    o.client_ip = "198.51.100.7";
    o.max_message_size = 1000;
    o.max_recipients = 3;
    o.max_errors = 0;
    return o;
}

SessionOptions submission_options() {
    SessionOptions o = mx_options();
    o.hostname = "smtp.example.org";
    o.listener = ListenerKind::Submission;
    o.tls_available = true;
    o.offer_auth = true;
    return o;
}

SessionOptions submissions_options() {
    SessionOptions o = submission_options();
    o.listener = ListenerKind::Submissions;
    o.tls_active = true;
    o.tls_available = false;
    return o;
}

// Final reply lines' codes ("250", "354", ...), one per reply.
std::vector<std::string> codes(const std::string& output) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < output.size()) {
        size_t end = output.find("\r\n", pos);
        if (end == std::string::npos) {
            out.push_back("UNTERMINATED");
            break;
        }
        std::string line = output.substr(pos, end - pos);
        if (line.size() < 4 || line[3] == ' ') {
            out.push_back(line.substr(0, 3));
        }
        pos = end + 2;
    }
    return out;
}

bool has_line(const std::string& output, const std::string& line) {
    return ("\r\n" + output).find("\r\n" + line + "\r\n") != std::string::npos;
}

// An EHLO keyword line, wherever it falls in the reply ("250-" or last "250 ").
bool has_ext(const std::string& output, const std::string& keyword) {
    return has_line(output, "250-" + keyword) || has_line(output, "250 " + keyword);
}

// Runs the dialogue whole, byte by byte and at 5 random splittings; checks
// they all agree and returns the harness of the whole run.
std::unique_ptr<Harness> play(const SessionOptions& options,
                              const std::vector<std::string>& segments,
                              DeliveryResult delivery = {}, proto::ReaderLimits limits = {}) {
    auto whole = std::make_unique<Harness>(options, limits);
    whole->delivery = delivery;
    whole->run(segments, 0);
    for (int mode = 1; mode <= 6; ++mode) {
        Harness h(options, limits);
        h.delivery = delivery;
        h.run(segments, mode);
        EXPECT_EQ(h.output, whole->output) << "feeding mode " << mode;
        EXPECT_EQ(h.kinds, whole->kinds) << "feeding mode " << mode;
        EXPECT_EQ(h.bodies, whole->bodies) << "feeding mode " << mode;
        EXPECT_EQ(h.session.closing(), whole->session.closing()) << "feeding mode " << mode;
    }
    return whole;
}

std::string plain_ir(const std::string& user, const std::string& password) {
    return base64_encode("\0"s + user + "\0"s + password);
}

using Codes = std::vector<std::string>;

TEST(SmtpSession, PlainMxDelivery) {
    SessionOptions o = mx_options();
    o.tls_available = true;
    auto h = play(o, {"EHLO client.example.net\r\n"
                      "MAIL FROM:<sender@example.net> BODY=8BITMIME SIZE=40\r\n"
                      "RCPT TO:<alice@example.org> NOTIFY=SUCCESS,FAILURE\r\n"
                      "DATA\r\n"
                      "Subject: hi\r\n\r\n..dot\r\nbody \xc3\xa9\r\n.\r\n"
                      "QUIT\r\n"});
    EXPECT_EQ(codes(h->output), (Codes{"220", "250", "250", "250", "354", "250", "221"}));
    EXPECT_TRUE(h->output.starts_with("220 mx.example.org ESMTP ready\r\n"));
    EXPECT_TRUE(has_line(h->output, "250-mx.example.org Hello client.example.net"));
    for (const char* ext : {"250-PIPELINING", "250-SIZE 1000", "250-8BITMIME", "250-SMTPUTF8",
                            "250-ENHANCEDSTATUSCODES", "250-STARTTLS", "250-CHUNKING"}) {
        EXPECT_TRUE(has_line(h->output, ext)) << ext;
    }
    EXPECT_TRUE(has_line(h->output, "250 DSN"));
    // Not under TLS, no AUTH on this listener, no FUTURERELEASE on MX.
    EXPECT_EQ(h->output.find("AUTH"), std::string::npos);
    EXPECT_EQ(h->output.find("REQUIRETLS"), std::string::npos);
    EXPECT_EQ(h->output.find("FUTURERELEASE"), std::string::npos);
    EXPECT_EQ(h->output.find("XCLIENT"), std::string::npos);
    EXPECT_TRUE(has_line(h->output, "250 2.0.0 Message accepted"));
    EXPECT_TRUE(has_line(h->output, "221 2.0.0 Bye"));
    EXPECT_TRUE(h->session.closing());
    ASSERT_EQ(h->bodies.size(), 1u);
    EXPECT_EQ(h->bodies[0], "Subject: hi\r\n\r\n.dot\r\nbody \xc3\xa9\r\n");
    EXPECT_EQ(h->end_sizes[0], h->bodies[0].size());
    ASSERT_EQ(h->envelopes.size(), 1u);
    const Envelope& e = h->envelopes[0];
    EXPECT_EQ(e.sender.to_string(), "<sender@example.net>");
    EXPECT_EQ(e.params.body, smtp::Body::EightBitMime);
    EXPECT_EQ(e.params.size, 40u);
    ASSERT_EQ(e.recipients.size(), 1u);
    EXPECT_EQ(e.recipients[0].local_users, std::vector<std::string>{"alice"});
    EXPECT_FALSE(e.recipients[0].relay);
    EXPECT_EQ(e.recipients[0].params.notify, smtp::kNotifySuccess | smtp::kNotifyFailure);
    EXPECT_EQ(e.client.ip, "198.51.100.7");
    EXPECT_EQ(e.client.helo, "client.example.net");
    EXPECT_TRUE(e.client.helo_valid);
    EXPECT_TRUE(e.client.esmtp);
    EXPECT_FALSE(e.client.tls);
    EXPECT_TRUE(e.client.auth_user.empty());
    EXPECT_FALSE(e.chunked);
}

TEST(SmtpSession, HeloIsNotEsmtp) {
    auto h = play(mx_options(), {"HELO client.example.net\r\n"});
    EXPECT_EQ(h->output, "220 mx.example.org ESMTP ready\r\n250 mx.example.org\r\n");
}

TEST(SmtpSession, PipelinedTransactionInOneChunk) {
    auto h = play(mx_options(), {"EHLO c.example.net\r\nMAIL FROM:<s@example.net>\r\n"
                                 "RCPT TO:<alice@example.org>\r\nRCPT TO:<nobody@example.org>\r\n"
                                 "RCPT TO:<bob@example.org>\r\nDATA\r\nhello\r\n.\r\n"
                                 "MAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\nDATA\r\nbounce\r\n.\r\n"
                                 "QUIT\r\n"});
    EXPECT_EQ(codes(h->output), (Codes{"220", "250", "250", "250", "550", "250", "354", "250",
                                       "250", "250", "354", "250", "221"}));
    EXPECT_TRUE(has_line(h->output, "550 5.1.1 <nobody@example.org>: User unknown"));
    ASSERT_EQ(h->envelopes.size(), 2u);
    ASSERT_EQ(h->envelopes[0].recipients.size(), 2u);
    EXPECT_EQ(h->envelopes[0].recipients[1].path.to_string(), "<bob@example.org>");
    EXPECT_TRUE(h->envelopes[1].sender.is_null());
    EXPECT_EQ(h->bodies, (std::vector<std::string>{"hello\r\n", "bounce\r\n"}));
    // Requests in protocol order, each answered before the next command.
    EXPECT_EQ(
        h->kinds,
        (std::vector<RequestKind>{
            RequestKind::CheckSender, RequestKind::CheckRecipient, RequestKind::CheckRecipient,
            RequestKind::CheckRecipient, RequestKind::BeginMessage, RequestKind::MessageData,
            RequestKind::EndMessage, RequestKind::CheckSender, RequestKind::CheckRecipient,
            RequestKind::BeginMessage, RequestKind::MessageData, RequestKind::EndMessage}));
}

TEST(SmtpSession, WaitsWhileARequestIsOutstanding) {
    // A driver that does not answer at once: the session consumes nothing
    // more, and the pipelined commands wait in the reader.
    Session s(mx_options());
    proto::Reader reader;
    s.start();
    reader.feed("EHLO c.example.net\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<x@example.org>\r\n");
    auto pump = [&] {
        while (!s.waiting() && !s.closing()) {
            proto::Event ev = reader.next();
            if (ev.kind == proto::EventKind::NeedMore) {
                break;
            }
            s.on_event(ev, reader);
        }
    };
    pump();
    EXPECT_TRUE(s.waiting());
    EXPECT_GT(reader.buffered(), 0u);
    EXPECT_EQ(codes(s.take_output()), (Codes{"220", "250"}));
    auto r = s.take_request();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->kind, RequestKind::CheckSender);
    EXPECT_FALSE(s.take_request());
    s.sender_done({});
    EXPECT_FALSE(s.waiting());
    pump();
    EXPECT_EQ(reader.buffered(), 0u);
    EXPECT_EQ(codes(s.take_output()), (Codes{"250"}));
    r = s.take_request();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->kind, RequestKind::CheckRecipient);
    EXPECT_EQ(r->path.to_string(), "<x@example.org>");
    // An answer of the wrong kind is ignored.
    s.sender_done({});
    EXPECT_TRUE(s.waiting());
    s.recipient_done({RecipientStatus::TempFailure, {}, std::nullopt});
    EXPECT_EQ(s.take_output(), "451 4.4.3 Temporary lookup failure\r\n");
}

TEST(SmtpSession, BdatChunksAndLast) {
    auto h = play(mx_options(), {"EHLO c.example.net\r\nMAIL FROM:<s@example.net>\r\n"
                                 "RCPT TO:<alice@example.org>\r\n"
                                 "BDAT 7\r\nline1\r\nBDAT 0\r\nBDAT 8 LAST\r\nBDAT x\r\n"
                                 "BDAT 3\r\nabcNOOP\r\n"
                                 "MAIL FROM:<s@example.net>\r\nRCPT TO:<bob@example.org>\r\n"
                                 "BDAT 2\r\nabDATA\r\n"
                                 "BDAT 0 LAST\r\n"});
    EXPECT_EQ(codes(h->output), (Codes{"220", "250", "250", "250", "250", "250", "250", "503",
                                       "250", "250", "250", "250", "503", "250"}));
    EXPECT_TRUE(has_line(h->output, "250 2.0.0 7 octets received"));
    EXPECT_TRUE(has_line(h->output, "250 2.0.0 0 octets received"));
    EXPECT_TRUE(has_line(h->output, "503 5.5.1 Need MAIL command"));
    EXPECT_TRUE(has_line(h->output, "503 5.5.1 DATA not allowed after BDAT"));
    // "BDAT 8 LAST" took exactly 8 octets, binary: "BDAT x\r\n" is body.
    EXPECT_EQ(h->bodies, (std::vector<std::string>{"line1\r\nBDAT x\r\n", "ab"}));
    EXPECT_EQ(h->end_sizes, (std::vector<uint64_t>{15, 2}));
    ASSERT_EQ(h->envelopes.size(), 2u);
    EXPECT_TRUE(h->envelopes[0].chunked);
}

TEST(SmtpSession, BdatTooBigIsReadAndRefused) {
    std::string big(600, 'x');
    auto h =
        play(mx_options(),
             {"EHLO c.example.net\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.org>\r\n"
              "BDAT 600\r\n" +
              big + "BDAT 600 LAST\r\n" + big + "NOOP\r\n"});
    EXPECT_EQ(codes(h->output), (Codes{"220", "250", "250", "250", "250", "552", "250"}));
    EXPECT_EQ(h->aborted, 1);
    EXPECT_TRUE(h->bodies.empty());
}

TEST(SmtpSession, StartTlsResetsStateAndAuthNeedsTls) {
    auto h = play(submission_options(),
                  {"EHLO c.example.net\r\nAUTH PLAIN " + plain_ir("alice", "secret") +
                       "\r\nMAIL FROM:<alice@example.org>\r\nSTARTTLS\r\nRSET\r\n",
                   "MAIL FROM:<alice@example.org>\r\nEHLO c2.example.net\r\n"
                   "AUTH PLAIN " +
                       plain_ir("alice", "secret") + "\r\nSTARTTLS\r\n"});
    EXPECT_EQ(codes(h->output),
              (Codes{"220", "250", "530", "530", "220", "503", "250", "235", "503"}));
    // Before TLS: STARTTLS offered, AUTH neither offered nor accepted.
    size_t tls_at = h->output.find("220 2.0.0 Ready to start TLS\r\n");
    ASSERT_NE(tls_at, std::string::npos);
    std::string before = h->output.substr(0, tls_at);
    std::string after = h->output.substr(tls_at);
    EXPECT_TRUE(has_line(before, "250-STARTTLS"));
    EXPECT_EQ(before.find("AUTH"), std::string::npos);
    EXPECT_TRUE(has_line(before, "530 5.7.0 Must issue a STARTTLS command first"));
    // The pipelined RSET after STARTTLS was dropped: no reply for it.
    // After TLS: the EHLO is forgotten (503), then AUTH is offered, STARTTLS not.
    EXPECT_TRUE(has_line(after, "503 5.5.1 Send HELO/EHLO first"));
    EXPECT_TRUE(has_ext(after, "AUTH PLAIN LOGIN"));
    EXPECT_TRUE(has_ext(after, "REQUIRETLS"));
    EXPECT_EQ(after.find("STARTTLS\r\n"), std::string::npos);
    EXPECT_TRUE(has_line(after, "503 5.5.1 TLS already active"));
    EXPECT_TRUE(h->session.tls_active());
    EXPECT_EQ(h->session.client().helo, "c2.example.net");
    ASSERT_TRUE(h->session.client().tls);
    EXPECT_EQ(h->session.client().tls->version, "TLSv1.3");
}

TEST(SmtpSession, StartTlsForgetsAuthAndTransaction) {
    SessionOptions o = submission_options();
    o.plaintext_auth = true;  // loopback: AUTH allowed in clear
    auto h = play(o, {"EHLO c\r\nAUTH PLAIN " + plain_ir("alice", "secret") +
                          "\r\nMAIL FROM:<alice@example.org>\r\nSTARTTLS\r\n",
                      "EHLO c\r\nMAIL FROM:<alice@example.org>\r\n"});
    EXPECT_EQ(codes(h->output), (Codes{"220", "250", "235", "250", "220", "250", "530"}));
    EXPECT_TRUE(has_line(h->output, "530 5.7.0 Authentication required"));
    EXPECT_FALSE(h->session.authenticated());
}

TEST(SmtpSession, EncryptionRequiredWithoutStartTls) {
    SessionOptions o = submission_options();
    o.tls_available = false;
    auto h = play(o, {"EHLO c\r\nAUTH LOGIN\r\nSTARTTLS\r\n"});
    EXPECT_TRUE(has_line(h->output,
                         "538 5.7.11 Encryption required for requested authentication mechanism"));
    EXPECT_TRUE(has_line(h->output, "454 4.7.0 TLS not available"));
}

TEST(SmtpSession, AuthPlainInitialResponseThenRelay) {
    auto h = play(submissions_options(),
                  {"EHLO c.example.net\r\nAUTH PLAIN " + plain_ir("alice", "secret") +
                   "\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<friend@example.net>\r\n"
                   "RCPT TO:<bob@example.org>\r\nDATA\r\nhi\r\n.\r\nAUTH PLAIN " +
                   plain_ir("alice", "secret") + "\r\n"});
    EXPECT_EQ(codes(h->output),
              (Codes{"220", "250", "235", "250", "250", "250", "354", "250", "503"}));
    EXPECT_TRUE(has_line(h->output, "235 2.7.0 Authentication successful"));
    EXPECT_TRUE(has_line(h->output, "503 5.5.1 Already authenticated"));
    ASSERT_EQ(h->envelopes.size(), 1u);
    const Envelope& e = h->envelopes[0];
    EXPECT_EQ(e.client.auth_user, "alice");
    EXPECT_EQ(e.client.listener, ListenerKind::Submissions);
    ASSERT_TRUE(e.client.tls);
    ASSERT_EQ(e.recipients.size(), 2u);
    EXPECT_TRUE(e.recipients[0].relay);
    EXPECT_FALSE(e.recipients[1].relay);
}

TEST(SmtpSession, AuthPlainWithEmptyChallenge) {
    auto h = play(submissions_options(),
                  {"EHLO c\r\nAUTH PLAIN\r\n" + plain_ir("alice", "secret") + "\r\n"});
    EXPECT_TRUE(has_line(h->output, "334 "));
    EXPECT_EQ(codes(h->output), (Codes{"220", "250", "334", "235"}));
}

TEST(SmtpSession, AuthLogin) {
    auto h = play(submissions_options(), {"EHLO c\r\nAUTH LOGIN\r\n" + base64_encode("alice") +
                                          "\r\n" + base64_encode("secret") + "\r\n"});
    EXPECT_TRUE(has_line(h->output, "334 VXNlcm5hbWU6"));
    EXPECT_TRUE(has_line(h->output, "334 UGFzc3dvcmQ6"));
    EXPECT_TRUE(has_line(h->output, "235 2.7.0 Authentication successful"));
    EXPECT_TRUE(h->session.authenticated());
}

TEST(SmtpSession, AuthFailures) {
    auto h = play(submissions_options(),
                  {"EHLO c\r\nAUTH PLAIN " + plain_ir("alice", "wrong") +
                   "\r\nAUTH LOGIN\r\n*\r\nAUTH PLAIN !!!\r\nAUTH CRAM-MD5\r\nAUTH PLAIN " +
                   plain_ir("tempfail", "x") + "\r\nMAIL FROM:<alice@example.org>\r\n"});
    EXPECT_EQ(codes(h->output),
              (Codes{"220", "250", "535", "334", "501", "501", "504", "454", "530"}));
    EXPECT_TRUE(has_line(h->output, "535 5.7.8 Authentication credentials invalid"));
    EXPECT_TRUE(has_line(h->output, "501 5.0.0 Authentication cancelled"));
    EXPECT_TRUE(has_line(h->output, "454 4.7.0 Temporary authentication failure"));
    EXPECT_FALSE(h->session.authenticated());
}

TEST(SmtpSession, AuthNotOnMx) {
    SessionOptions o = mx_options();
    o.tls_active = true;
    auto h = play(o, {"EHLO c\r\nAUTH PLAIN " + plain_ir("alice", "secret") + "\r\n"});
    EXPECT_EQ(h->output.find("AUTH PLAIN LOGIN"), std::string::npos);
    EXPECT_TRUE(has_line(h->output, "502 5.5.1 Command not implemented"));
}

TEST(SmtpSession, SubmissionSenderMustBeOwned) {
    auto h = play(submissions_options(),
                  {"EHLO c\r\nAUTH PLAIN " + plain_ir("alice", "secret") +
                   "\r\nMAIL FROM:<bob@example.org>\r\nMAIL FROM:<alice@example.org>\r\n"});
    EXPECT_EQ(codes(h->output), (Codes{"220", "250", "235", "553", "250"}));
    EXPECT_TRUE(
        has_line(h->output, "553 5.7.1 Sender address not owned by the authenticated user"));
}

TEST(SmtpSession, RelayDeniedWithoutAuth) {
    auto h = play(mx_options(),
                  {"EHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<victim@example.com>\r\n"
                   "RCPT TO:<blocked@example.org>\r\nRCPT TO:<temp@example.org>\r\nDATA\r\n"});
    EXPECT_EQ(codes(h->output), (Codes{"220", "250", "250", "554", "550", "451", "554"}));
    EXPECT_TRUE(has_line(h->output, "554 5.7.1 <victim@example.com>: Relay access denied"));
    EXPECT_TRUE(has_line(h->output, "550 5.7.1 <blocked@example.org>: Rejected by policy"));
    EXPECT_TRUE(has_line(h->output, "554 5.5.1 No valid recipients"));
    EXPECT_TRUE(h->envelopes.empty());
}

TEST(SmtpSession, RelayClientMayRelay) {
    SessionOptions o = mx_options();
    o.relay_client = true;
    auto h = play(o, {"EHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<x@example.com>\r\n"});
    EXPECT_EQ(codes(h->output), (Codes{"220", "250", "250", "250"}));
}

TEST(SmtpSession, SizeLimits) {
    std::string big;
    for (int i = 0; i < 30; ++i) {
        big += "0123456789012345678901234567890123456789\r\n";  // 42 × 30 = 1260 > 1000
    }
    auto h =
        play(mx_options(), {"EHLO c\r\nMAIL FROM:<s@example.net> SIZE=1001\r\n"
                            "MAIL FROM:<s@example.net> SIZE=1000\r\nRCPT TO:<alice@example.org>\r\n"
                            "DATA\r\n" +
                            big +
                            ".\r\n"
                            "MAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.org>\r\n"
                            "DATA\r\nsmall\r\n.\r\n"});
    EXPECT_EQ(codes(h->output),
              (Codes{"220", "250", "552", "250", "250", "354", "552", "250", "250", "354", "250"}));
    EXPECT_TRUE(has_line(h->output, "552 5.3.4 Message size exceeds fixed limit"));
    EXPECT_EQ(h->aborted, 1);
    EXPECT_EQ(h->bodies, (std::vector<std::string>{"small\r\n"}));
}

TEST(SmtpSession, TooManyRecipients) {
    auto h =
        play(mx_options(), {"EHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.org>\r\n"
                            "RCPT TO:<bob@example.org>\r\nRCPT TO:<postmaster@example.org>\r\n"
                            "RCPT TO:<Postmaster>\r\nDATA\r\nx\r\n.\r\n"});
    EXPECT_EQ(codes(h->output),
              (Codes{"220", "250", "250", "250", "250", "250", "452", "354", "250"}));
    EXPECT_TRUE(has_line(h->output, "452 4.5.3 Too many recipients"));
    ASSERT_EQ(h->envelopes.size(), 1u);
    EXPECT_EQ(h->envelopes[0].recipients.size(), 3u);
}

TEST(SmtpSession, TooManyErrorsCloses) {
    SessionOptions o = mx_options();
    o.max_errors = 3;
    auto h = play(o, {"EHLO c\r\nFOO\r\nNOOP\r\nRCPT TO:<a@example.org>\r\nMAIL FROM:<x\r\n"
                      "NOOP\r\nNOOP\r\n"});
    EXPECT_EQ(codes(h->output), (Codes{"220", "250", "500", "250", "503", "501", "421"}));
    EXPECT_TRUE(has_line(h->output, "421 4.7.0 Too many errors, closing"));
    EXPECT_TRUE(h->session.closing());
}

TEST(SmtpSession, CommandsOutOfSequence) {
    auto h = play(mx_options(),
                  {"MAIL FROM:<s@example.net>\r\nEHLO c\r\nRCPT TO:<alice@example.org>\r\n"
                   "DATA\r\nBDAT 3\r\nabcMAIL FROM:<s@example.net>\r\nDATA\r\nBDAT 1 LAST\r\nz"
                   "RCPT TO:<nobody@example.org>\r\nBDAT 1\r\nz"
                   "RSET\r\nRCPT TO:<alice@example.org>\r\nVRFY alice\r\nEXPN list\r\nHELP\r\n"
                   "XCLIENT ADDR=203.0.113.9\r\nBOGUS\r\n"});
    EXPECT_EQ(codes(h->output),
              (Codes{"220", "503", "250", "503", "503", "503", "250", "503", "503", "550", "554",
                     "250", "503", "252", "502", "214", "550", "500"}));
    EXPECT_TRUE(has_line(h->output, "503 5.5.1 Send HELO/EHLO first"));
    EXPECT_TRUE(has_line(h->output, "503 5.5.1 Need RCPT command"));
    EXPECT_FALSE(has_line(h->output, "503 5.5.1 Nested MAIL command"));
    EXPECT_TRUE(has_line(h->output, "550 5.7.0 Insufficient authorization"));
    EXPECT_TRUE(has_line(h->output, "500 5.5.2 Command unrecognized"));
    EXPECT_TRUE(h->bodies.empty());
}

TEST(SmtpSession, NestedMail) {
    auto h = play(mx_options(),
                  {"EHLO c\r\nMAIL FROM:<s@example.net>\r\nMAIL FROM:<s@example.net>\r\n"});
    EXPECT_TRUE(has_line(h->output, "503 5.5.1 Nested MAIL command"));
}

TEST(SmtpSession, LineTooLong) {
    auto h = play(mx_options(), {"EHLO c\r\nNOOP " + std::string(3000, 'a') + "\r\nNOOP\r\n"}, {},
                  proto::ReaderLimits{.max_line = 512});
    EXPECT_EQ(codes(h->output), (Codes{"220", "250", "500", "250"}));
    EXPECT_TRUE(has_line(h->output, "500 5.5.6 Line too long"));
}

TEST(SmtpSession, NulInCommand) {
    auto h =
        play(mx_options(), {"EHLO c\r\nNOOP a\0b\r\nMAIL FROM:<s\0@example.net>\r\nNOOP\r\n"s});
    EXPECT_EQ(codes(h->output), (Codes{"220", "250", "500", "500", "250"}));
    EXPECT_TRUE(has_line(h->output, "500 5.5.2 NUL character in command"));
    EXPECT_TRUE(h->kinds.empty());
}

TEST(SmtpSession, QuitClosesAndIgnoresTheRest) {
    auto h = play(mx_options(), {"EHLO c\r\nQUIT\r\nNOOP\r\nNOOP\r\n"});
    EXPECT_EQ(codes(h->output), (Codes{"220", "250", "221"}));
    EXPECT_TRUE(h->session.closing());
}

TEST(SmtpSession, BareLfInBodyRejectedByDefault) {
    auto h =
        play(mx_options(), {"EHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.org>\r\n"
                            "DATA\r\nline\nmore\r\n.\r\nRSET\r\n"});
    EXPECT_EQ(codes(h->output), (Codes{"220", "250", "250", "250", "354", "550", "250"}));
    EXPECT_TRUE(has_line(h->output, "550 5.6.0 Bare LF in message body not allowed"));
    EXPECT_EQ(h->aborted, 1);
    EXPECT_TRUE(h->bodies.empty());
}

TEST(SmtpSession, BareLfInBodyAcceptedWhenConfigured) {
    SessionOptions o = mx_options();
    o.bare_lf = BareLfPolicy::Accept;
    auto h = play(o, {"EHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.org>\r\n"
                      "DATA\r\nline\nmore\r\n.\r\n"});
    EXPECT_EQ(codes(h->output), (Codes{"220", "250", "250", "250", "354", "250"}));
    ASSERT_EQ(h->end_flags.size(), 1u);
    EXPECT_NE(h->end_flags[0] & proto::kBareLf, 0u);  // the driver normalises
    EXPECT_EQ(h->bodies, (std::vector<std::string>{"line\nmore\r\n"}));
}

TEST(SmtpSession, DeliveryFailuresAndQueueId) {
    std::string dialogue =
        "EHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nx\r\n.\r\n"
        "RCPT TO:<alice@example.org>\r\n";
    auto temp = play(mx_options(), {dialogue}, {DeliveryStatus::TempFailure, "", std::nullopt});
    EXPECT_TRUE(has_line(temp->output, "451 4.3.0 Local error in processing"));
    // The transaction is over whatever the result: RCPT now needs MAIL.
    EXPECT_TRUE(has_line(temp->output, "503 5.5.1 Need MAIL command"));
    auto perm = play(mx_options(), {dialogue}, {DeliveryStatus::PermFailure, "", std::nullopt});
    EXPECT_TRUE(has_line(perm->output, "554 5.0.0 Transaction failed"));
    auto ok = play(mx_options(), {dialogue}, {DeliveryStatus::Delivered, "Q123", std::nullopt});
    EXPECT_TRUE(has_line(ok->output, "250 2.0.0 Message accepted as Q123"));
}

TEST(SmtpSession, FutureReleaseOnSubmission) {
    auto h = play(submissions_options(),
                  {"EHLO c\r\nAUTH PLAIN " + plain_ir("alice", "secret") +
                   "\r\nMAIL FROM:<alice@example.org> HOLDFOR=604801\r\n"
                   "MAIL FROM:<alice@example.org> HOLDFOR=60 REQUIRETLS ENVID=abc+2Bd RET=HDRS\r\n"
                   "RCPT TO:<x@example.net> ORCPT=rfc822;x+40example.net\r\n"
                   "DATA\r\nx\r\n.\r\n"});
    EXPECT_TRUE(has_ext(h->output, "FUTURERELEASE 604800 2027-01-22T08:00:00Z"));
    EXPECT_EQ(codes(h->output), (Codes{"220", "250", "235", "501", "250", "250", "354", "250"}));
    ASSERT_EQ(h->envelopes.size(), 1u);
    const Envelope& e = h->envelopes[0];
    EXPECT_EQ(e.release_time, kNow + 60);
    EXPECT_TRUE(e.params.requiretls);
    EXPECT_EQ(e.params.envid, "abc+d");
    EXPECT_EQ(e.params.ret, smtp::Ret::Headers);
    ASSERT_EQ(e.recipients.size(), 1u);
    ASSERT_TRUE(e.recipients[0].params.orcpt);
    EXPECT_EQ(e.recipients[0].params.orcpt->address, "x@example.net");
}

TEST(SmtpSession, NoFutureReleaseOrRequireTlsOnPlainMx) {
    auto h = play(mx_options(), {"EHLO c\r\nMAIL FROM:<s@example.net> HOLDFOR=60\r\n"
                                 "MAIL FROM:<s@example.net> REQUIRETLS\r\n"});
    EXPECT_EQ(codes(h->output), (Codes{"220", "250", "555", "555"}));
}

TEST(SmtpSession, XClientFromTrustedClient) {
    SessionOptions o = mx_options();
    o.client_trusted = true;
    o.client_ip = "127.0.0.1";
    auto h = play(o, {"EHLO proxy\r\nXCLIENT ADDR=203.0.113.5 NAME=[UNAVAILABLE] LOGIN=alice\r\n"
                      "MAIL FROM:<alice@example.org>\r\nEHLO real.example.net\r\n"
                      "MAIL FROM:<alice@example.org>\r\nRCPT TO:<x@example.com>\r\n"
                      "DATA\r\nx\r\n.\r\nXCLIENT ADDR=203.0.113.6\r\n"});
    EXPECT_TRUE(has_ext(h->output, "XCLIENT NAME ADDR PROTO HELO LOGIN"));
    EXPECT_EQ(codes(h->output),
              (Codes{"220", "250", "220", "503", "250", "250", "250", "354", "250", "550"}));
    // The new greeting came after XCLIENT; the second EHLO no longer offers XCLIENT.
    EXPECT_EQ(h->output.find("XCLIENT", h->output.find("Hello real.example.net")),
              std::string::npos);
    ASSERT_EQ(h->envelopes.size(), 1u);
    const Envelope& e = h->envelopes[0];
    EXPECT_EQ(e.client.ip, "203.0.113.5");
    EXPECT_EQ(e.client.name, "");
    EXPECT_EQ(e.client.auth_user, "alice");
    EXPECT_EQ(e.client.helo, "real.example.net");
    ASSERT_EQ(e.recipients.size(), 1u);
    EXPECT_TRUE(e.recipients[0].relay);
}

TEST(SmtpSession, ShutdownAbortsMessage) {
    Harness h(mx_options());
    h.run({"EHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\npart"},
          0);
    EXPECT_EQ(h.envelopes.size(), 1u);
    h.session.shutdown();
    h.pump();
    EXPECT_EQ(h.aborted, 1);
    EXPECT_TRUE(h.session.closing());
    EXPECT_TRUE(h.output.ends_with("421 4.3.2 Service shutting down\r\n"));
}

TEST(SmtpSession, ShutdownWhileWaiting) {
    Session s(mx_options());
    proto::Reader reader;
    s.start();
    reader.feed("EHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.org>\r\n");
    while (!s.waiting()) {
        s.on_event(reader.next(), reader);
    }
    ASSERT_TRUE(s.take_request());  // CheckSender
    s.sender_done({});
    while (!s.waiting()) {
        s.on_event(reader.next(), reader);
    }
    s.shutdown(smtp::kTimeout);
    EXPECT_FALSE(s.waiting());
    EXPECT_TRUE(s.closing());
    s.recipient_done({RecipientStatus::Local, {"alice"}, std::nullopt});  // late: ignored
    EXPECT_TRUE(
        s.take_output().ends_with("250 2.1.0 Sender ok\r\n"
                                  "421 4.4.2 Timeout, closing connection\r\n"));
    EXPECT_TRUE(s.envelope().recipients.empty());
}

TEST(SmtpSession, EndMessageInFlightIsLeftToTheDriver) {
    Session s(mx_options());
    proto::Reader reader;
    s.start();
    reader.feed(
        "EHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.org>\r\n"
        "DATA\r\nx\r\n.\r\n");
    std::vector<RequestKind> kinds;
    for (;;) {
        while (!s.waiting() && !s.closing()) {
            proto::Event ev = reader.next();
            if (ev.kind == proto::EventKind::NeedMore) {
                break;
            }
            s.on_event(ev, reader);
        }
        auto r = s.take_request();
        while (r) {
            kinds.push_back(r->kind);
            if (r->kind == RequestKind::CheckSender) {
                s.sender_done({});
            } else if (r->kind == RequestKind::CheckRecipient) {
                s.recipient_done({RecipientStatus::Local, {"alice"}, std::nullopt});
            }
            r = s.take_request();
        }
        if (!kinds.empty() && kinds.back() == RequestKind::EndMessage) {
            break;
        }
    }
    s.connection_lost();
    EXPECT_FALSE(s.take_request());  // no AbortMessage for a body being committed
    s.message_done({});
    EXPECT_EQ(s.take_output().find("Message accepted"), std::string::npos);
}

TEST(SmtpSession, RsetAndEhloBetweenChunksAbort) {
    auto h =
        play(mx_options(), {"EHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.org>\r\n"
                            "BDAT 2\r\nabRSET\r\nBDAT 1 LAST\r\nz"
                            "MAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.org>\r\n"
                            "BDAT 2\r\nabEHLO d\r\nRCPT TO:<alice@example.org>\r\n"});
    EXPECT_EQ(codes(h->output), (Codes{"220", "250", "250", "250", "250", "250", "503", "250",
                                       "250", "250", "250", "503"}));
    EXPECT_EQ(h->aborted, 2);
    EXPECT_TRUE(h->bodies.empty());
    EXPECT_EQ(h->envelopes.size(), 2u);
}

TEST(SmtpSession, SmtpUtf8Transaction) {
    auto h = play(mx_options(),
                  {"EHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<j\xc3\xb6rg@example.org>\r\n"
                   "RSET\r\nMAIL FROM:<s@example.net> SMTPUTF8\r\n"
                   "RCPT TO:<j\xc3\xb6rg@example.org>\r\n"});
    EXPECT_EQ(codes(h->output), (Codes{"220", "250", "250", "553", "250", "250", "550"}));
    EXPECT_TRUE(has_line(h->output, "553 5.6.7 Non-ASCII address requires SMTPUTF8"));
    // With SMTPUTF8 the address parses and reaches the lookup (unknown here).
    EXPECT_TRUE(has_line(h->output, "550 5.1.1 <j\xc3\xb6rg@example.org>: User unknown"));
}

// Random dialogues from a vocabulary of well- and ill-formed fragments: every
// feeding gives the same output and requests, under ASan/UBSan.
TEST(SmtpSession, RandomDialoguesAreSplitInvariant) {
    const std::vector<std::string> fragments = {
        "EHLO c.example.net\r\n",
        "HELO c\r\n",
        "MAIL FROM:<s@example.net>\r\n",
        "MAIL FROM:<> SIZE=5000\r\n",
        "MAIL FROM:<alice@example.org> HOLDFOR=10\r\n",
        "RCPT TO:<alice@example.org>\r\n",
        "RCPT TO:<x@example.com>\r\n",
        "RCPT TO:<nobody@example.org> NOTIFY=NEVER\r\n",
        "RCPT TO:<temp@example.org>\r\n",
        "DATA\r\nSubject: x\r\n\r\n..a\r\nb\nc\r\n.\r\n",
        "DATA\r\n",
        "BDAT 4\r\nabcd",
        "BDAT 3 LAST\r\nxyz",
        "BDAT 0 LAST\r\n",
        "RSET\r\n",
        "NOOP\r\n",
        "VRFY a\r\n",
        "STARTTLS\r\n",
        "AUTH PLAIN " + plain_ir("alice", "secret") + "\r\n",
        "AUTH LOGIN\r\n",
        base64_encode("alice") + "\r\n",
        "*\r\n",
        "XCLIENT ADDR=203.0.113.1\r\n",
        "FOO bar\r\n",
        "NOOP \0\r\n"s,
        std::string(1500, 'z') + "\r\n",
        "\r\n",
        "QUIT\r\n"};
    std::mt19937 rng(4242);
    for (int round = 0; round < 60; ++round) {
        SessionOptions o = round % 3 == 0   ? mx_options()
                           : round % 3 == 1 ? submission_options()
                                            : submissions_options();
        o.plaintext_auth = round % 2 == 0;
        o.client_trusted = round % 5 == 0;
        o.max_errors = round % 4 == 0 ? 5 : 0;
        std::vector<std::string> segments(2);
        for (int i = 0; i < 25; ++i) {
            segments[i < 15 ? 0 : 1] +=
                fragments[std::uniform_int_distribution<size_t>(0, fragments.size() - 1)(rng)];
        }
        auto h = play(o, segments);
        EXPECT_TRUE(h->output.starts_with("220 ")) << round;
        EXPECT_TRUE(h->output.ends_with("\r\n")) << round;
    }
}

TEST(SmtpSession, XClientDropsTheProxysRelayRight) {
    SessionOptions o = mx_options();
    o.client_trusted = true;
    o.relay_client = true;
    auto h = play(o, {"EHLO p\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<x@example.com>\r\n"
                      "RSET\r\nXCLIENT ADDR=203.0.113.5 PROTO=ESMTP HELO=h.example.net\r\n"
                      "EHLO h.example.net\r\nMAIL FROM:<s@example.net>\r\n"
                      "RCPT TO:<x@example.com>\r\n"});
    EXPECT_EQ(codes(h->output),
              (Codes{"220", "250", "250", "250", "250", "220", "250", "250", "554"}));
    EXPECT_EQ(h->session.client().ip, "203.0.113.5");
    EXPECT_TRUE(h->session.client().esmtp);
}

}  // namespace
}  // namespace yubin::smtpd
