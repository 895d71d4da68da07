// The SMTP server protocol (RFC 5321 with ESMTP extensions: PIPELINING
// RFC 2920, SIZE RFC 1870, 8BITMIME RFC 6152, SMTPUTF8 RFC 6531, ENHANCED-
// STATUSCODES RFC 2034, STARTTLS RFC 3207, AUTH RFC 4954, CHUNKING RFC 3030,
// DSN RFC 3461, FUTURERELEASE RFC 4865, REQUIRETLS RFC 8689, and Postfix's
// XCLIENT) as a sans-I/O state machine: no socket, no timer, no store.
//
// The driver owns a proto::Reader and this Session. Its loop is:
//
//     session.start();                       // queues the 220 greeting
//     on bytes:  reader.feed(bytes); pump();
//     pump():    while (!session.waiting() && !session.closing()) {
//                    auto ev = reader.next();
//                    if (ev.kind == NeedMore) break;
//                    session.on_event(ev, reader);
//                }
//                send(session.take_output());
//                while (auto r = session.take_request()) carry_out(*r);
//
// on_event() switches the reader's mode itself (dot-data after 354, a BDAT
// chunk after "BDAT n") because the switch must happen before the next
// next() call, so nothing is left for the driver to get wrong.
//
// Requests (take_request) come in two sorts. Those marked "waits" below put
// the session in waiting(): it consumes no further event until the driver
// calls the matching *_done(); pipelined commands stay in the reader's buffer
// and are answered in order once the answer arrives (RFC 2920 §3). The
// others (BeginMessage, MessageData, AbortMessage) are a stream the driver
// applies in order without answering.
//
// Policy that is fixed here, on purpose:
//   - never an open relay: a recipient the driver calls Remote is accepted
//     only from an authenticated client (or a driver-declared relay client);
//   - AUTH is neither advertised nor accepted without TLS unless the listener
//     allows plaintext AUTH (loopback);
//   - submission requires AUTH before MAIL (RFC 6409 §4.3);
//   - 8-bit data is accepted with or without BODY=8BITMIME (as every major
//     server does: refusing it only loses mail);
//   - a DATA body with bare LF line ends is rejected after the final dot with
//     550 5.6.0 by default (BareLfPolicy): bare LFs are what SMTP smuggling
//     (CVE-2023-51764..51766) is built from, and a message we store and relay
//     as-is must not carry them to a downstream server that reads them as line
//     ends. Accept hands the flag to the driver to normalise instead.
//     A command line ended by a bare LF is accepted (the reader treats LF as
//     the terminator): commands go nowhere downstream, and old clients send it;
//   - a NUL in a command line is refused (500 5.5.2); VRFY gets 252, EXPN 502.
//
// Ownership: a plain object owned by its driver. Threads: one at a time (the
// loop thread in the daemon).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/auth/sasl.h"
#include "common/base/clock.h"
#include "common/proto/line_reader.h"
#include "common/smtp/command.h"
#include "common/smtp/reply.h"

namespace yubin::smtpd {

enum class ListenerKind {
    Mx,           // port 25: inbound mail, no AUTH required
    Submission,   // port 587: STARTTLS, then AUTH, then MAIL (RFC 6409)
    Submissions,  // port 465: implicit TLS (RFC 8314)
};

enum class BareLfPolicy { Reject, Accept };

struct SessionOptions {
    std::string hostname = "localhost";  // greeting and EHLO
    ListenerKind listener = ListenerKind::Mx;
    bool tls_active = false;      // implicit TLS: TLS from the first byte
    bool tls_available = false;   // a TLS context exists: STARTTLS is offered
    bool offer_auth = false;      // this listener accepts AUTH (at all)
    bool plaintext_auth = false;  // ... even without TLS (loopback only)
    bool client_trusted = false;  // XCLIENT allowed (a trusted proxy or test client)
    bool relay_client = false;    // may relay without AUTH (configured networks)
    uint64_t max_message_size = 25u * 1024 * 1024;  // SIZE; 0 = no limit
    uint32_t max_recipients = 100;
    uint32_t max_errors = 10;  // client errors before 421 and close; 0 = no limit
    // FUTURERELEASE (submission only): the longest hold. 0 = not offered.
    uint64_t max_hold_seconds = 7 * 24 * 3600;
    BareLfPolicy bare_lf = BareLfPolicy::Reject;
    std::string client_ip;                 // as the driver saw it (XCLIENT may override)
    std::string client_name;               // reverse DNS, if the driver has it
    smtp::CommandOptions command_options;  // tolerance knobs; extensions are set per state
};

struct TlsInfo {
    std::string version;  // "TLSv1.3"
    std::string cipher;
};

// Who sent the message: what the queue needs for Received:, logs and policy.
struct ClientInfo {
    ListenerKind listener = ListenerKind::Mx;
    std::string ip;
    std::string name;
    std::string helo;
    bool helo_valid = false;
    bool esmtp = false;  // EHLO rather than HELO
    std::optional<TlsInfo> tls;
    std::string auth_user;  // empty: not authenticated
};

enum class RecipientStatus {
    Local,        // delivered to local mailbox(es): local_users
    Remote,       // not ours: relayed, if the client may relay
    Unknown,      // 550 5.1.1
    TempFailure,  // 451 4.4.3
    Rejected,     // a policy refusal: `reply`, or 550 5.7.1
};

struct RecipientResult {
    RecipientStatus status = RecipientStatus::Unknown;
    std::vector<std::string> local_users;  // Local: the mailbox owners (aliases expanded)
    std::optional<smtp::Reply> reply;      // overrides the default reply for a refusal
};

struct Recipient {
    smtp::Path path;
    smtp::RcptParams params;  // NOTIFY / ORCPT kept for DSNs
    bool relay = false;       // Remote, relayed
    std::vector<std::string> local_users;
};

struct Envelope {
    smtp::Path sender;
    smtp::MailParams params;  // SIZE, BODY, SMTPUTF8, RET, ENVID, HOLD*, REQUIRETLS
    // FUTURERELEASE: Unix seconds at which the queue may send; nullopt = now.
    std::optional<int64_t> release_time;
    std::vector<Recipient> recipients;  // accepted ones only, in RCPT order
    ClientInfo client;
    bool chunked = false;  // BDAT rather than DATA
};

enum class SenderStatus {
    Ok,           // 250 2.1.0
    NotOwned,     // submission: the user may not send as this address, 553 5.7.1
    Rejected,     // policy (SPF fail, ...): `reply`, or 550 5.7.1
    TempFailure,  // 451 4.4.3
};

struct SenderResult {
    SenderStatus status = SenderStatus::Ok;
    std::optional<smtp::Reply> reply;
};

enum class AuthStatus { Ok, Invalid, TempFailure };

enum class DeliveryStatus { Delivered, TempFailure, PermFailure };

struct DeliveryResult {
    DeliveryStatus status = DeliveryStatus::Delivered;
    std::string queue_id;  // appended to the 250 text when set
    std::optional<smtp::Reply> reply;
};

enum class RequestKind {
    CheckSender,        // waits → sender_done(): MAIL FROM (SPF, or ownership on submission)
    CheckRecipient,     // waits → recipient_done() (the sender: session.envelope())
    VerifyCredentials,  // waits → credentials_done()
    StartTls,      // waits → tls_started(): flush output, reader.discard_buffered(), handshake
    BeginMessage,  // open a body sink for `envelope`
    MessageData,   // append `data` to the body
    AbortMessage,  // drop the body begun (too big, RSET, bare LF, closed)
    EndMessage,    // waits → message_done(): commit, then the session sends 250
};

struct Request {
    RequestKind kind = RequestKind::CheckSender;
    smtp::Path path;                // CheckSender, CheckRecipient
    smtp::MailParams mail;          // CheckSender
    smtp::RcptParams rcpt;          // CheckRecipient
    std::string auth_user;          // CheckSender, CheckRecipient: the client's login, if any
    auth::Credentials credentials;  // VerifyCredentials
    Envelope envelope;              // BeginMessage
    std::string data;               // MessageData
    uint64_t size = 0;              // EndMessage: body octets
    uint32_t body_flags = 0;        // EndMessage: proto::LineFlag bits seen in a DATA body
};

class Session {
public:
    explicit Session(SessionOptions options, const Clock* clock = nullptr);

    // Queues the 220 greeting.
    void start();
    // One reader event. Must not be called while waiting() or closing().
    void on_event(const proto::Event& event, proto::Reader& reader);

    // Answers to the waiting requests.
    void sender_done(SenderResult result);
    void recipient_done(RecipientResult result);
    void credentials_done(AuthStatus status);
    void tls_started(TlsInfo info);
    void message_done(DeliveryResult result);
    // The driver is shutting down or timed out (pass smtp::kTimeout): 421
    // and close. Callable at any time, also while waiting(): a body still
    // being received is aborted (AbortMessage); an EndMessage already handed
    // over is left to the driver; later *_done calls are ignored.
    void shutdown(const smtp::ReplyTemplate& reply = smtp::kShuttingDown);
    // The connection is gone: as shutdown(), without a reply.
    void connection_lost();

    std::string take_output();
    bool has_output() const { return !out_.empty(); }
    std::optional<Request> take_request();
    bool waiting() const { return waiting_; }
    // Send what is left in the output, then close.
    bool closing() const { return closing_; }

    bool authenticated() const { return !client_.auth_user.empty(); }
    bool tls_active() const { return tls_active_; }
    const ClientInfo& client() const { return client_; }
    const Envelope& envelope() const { return envelope_; }  // the transaction so far

private:
    enum class State {
        Fresh,         // greeted, no HELO/EHLO yet
        Ready,         // HELO/EHLO done (a transaction may be open: in_transaction_)
        AuthContinue,  // a SASL exchange expects a client line
        Data,          // reading dot-data
        Chunk,         // reading a BDAT chunk
    };
    enum class Pending { None, Sender, Recipient, Credentials, Tls, Message };

    void on_line(std::string_view line, uint32_t flags, proto::Reader& reader);
    void on_dot_end(const proto::Event& event);
    void on_chunk_end();

    void cmd_helo(const smtp::Command& c, bool esmtp);
    void cmd_mail(smtp::Command c);
    void cmd_rcpt(smtp::Command c);
    void cmd_data(proto::Reader& reader);
    void cmd_bdat(const smtp::Command& c, proto::Reader& reader);
    void cmd_rset();
    void cmd_auth(const smtp::Command& c);
    void cmd_starttls();
    void cmd_xclient(const smtp::Command& c);
    void auth_line(std::string_view line);
    void sasl_step(auth::SaslExchange::Status status);

    std::vector<std::string> ehlo_lines() const;
    uint32_t extensions() const;
    bool auth_offered() const;
    bool submission() const { return options_.listener != ListenerKind::Mx; }
    void begin_message();
    void abort_message();
    void reset_transaction();
    // Forget everything learnt on this connection (STARTTLS, XCLIENT).
    void reset_connection();
    void push(Request request, Pending pending = Pending::None);
    void drop_pending();

    void reply(const smtp::Reply& r);
    // A reply that is the client's fault: counts toward max_errors, and the
    // limit closes the connection with 421.
    void error(const smtp::Reply& r);

    SessionOptions options_;
    const Clock* clock_;
    State state_ = State::Fresh;
    bool tls_active_ = false;
    bool client_trusted_ = false;
    bool relay_client_ = false;
    ClientInfo client_;
    Envelope envelope_;
    bool in_transaction_ = false;
    uint32_t rcpt_commands_ = 0;  // RCPTs seen in this transaction, accepted or not
    bool message_begun_ = false;
    bool bdat_used_ = false;
    bool chunk_delivered_ = false;
    bool chunk_last_ = false;
    uint64_t chunk_size_ = 0;
    uint64_t body_size_ = 0;
    std::optional<auth::SaslExchange> sasl_;
    std::optional<smtp::Command> pending_command_;  // the MAIL/RCPT being checked
    std::optional<int64_t> pending_release_;        // FUTURERELEASE of the MAIL being checked
    std::string pending_user_;                      // the AUTH identity being verified
    Pending pending_ = Pending::None;
    bool waiting_ = false;
    bool closing_ = false;
    uint32_t errors_ = 0;
    std::string out_;
    std::deque<Request> requests_;
};

}  // namespace yubin::smtpd
