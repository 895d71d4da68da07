#include "smtpd/smtp_session.h"

#include <algorithm>
#include <limits>
#include <utility>

#include <fmt/format.h>

namespace yubin::smtpd {

namespace {

using smtp::EnhancedCode;
using smtp::Reply;

Reply bad_sequence(std::string text) {
    return Reply(503, EnhancedCode{5, 5, 1}, std::move(text));
}

}  // namespace

Session::Session(SessionOptions options, const Clock* clock)
    : options_(std::move(options)), clock_(clock) {
    tls_active_ = options_.tls_active;
    client_trusted_ = options_.client_trusted;
    relay_client_ = options_.relay_client;
    client_.listener = options_.listener;
    client_.ip = options_.client_ip;
    client_.name = options_.client_name;
    if (tls_active_) {
        client_.tls = TlsInfo{};
    }
}

void Session::start() {
    reply(Reply(220, std::nullopt, options_.hostname + " ESMTP ready"));
}

// ---- Output ----

void Session::reply(const Reply& r) {
    out_ += r.to_wire();
}

void Session::error(const Reply& r) {
    reply(r);
    ++errors_;
    if (options_.max_errors != 0 && errors_ >= options_.max_errors && !closing_) {
        abort_message();
        reply(smtp::kTooManyErrors);
        closing_ = true;
    }
}

std::string Session::take_output() {
    return std::exchange(out_, {});
}

std::optional<Request> Session::take_request() {
    if (requests_.empty()) {
        return std::nullopt;
    }
    Request r = std::move(requests_.front());
    requests_.pop_front();
    return r;
}

void Session::push(Request request, Pending pending) {
    // Adjacent body pieces are merged: the reader hands out pieces as small
    // as one byte when the client trickles, and the driver need not see that.
    if (request.kind == RequestKind::MessageData && !requests_.empty() &&
        requests_.back().kind == RequestKind::MessageData) {
        requests_.back().data += request.data;
        return;
    }
    requests_.push_back(std::move(request));
    if (pending != Pending::None) {
        pending_ = pending;
        waiting_ = true;
    }
}

// ---- Events ----

void Session::on_event(const proto::Event& event, proto::Reader& reader) {
    if (waiting_ || closing_) {
        return;  // a driver bug; the header says not to
    }
    switch (event.kind) {
        case proto::EventKind::NeedMore:
        case proto::EventKind::LiteralData:
        case proto::EventKind::LiteralEnd:
            return;
        case proto::EventKind::Line:
            if (state_ == State::AuthContinue) {
                auth_line(event.data);
            } else {
                on_line(event.data, event.flags, reader);
            }
            return;
        case proto::EventKind::LineTooLong:
            if (state_ == State::AuthContinue) {
                sasl_.reset();
                state_ = State::Ready;
            }
            error(smtp::kLineTooLong);
            return;
        case proto::EventKind::DotData:
            if (state_ == State::Data && message_begun_) {
                push(Request{.kind = RequestKind::MessageData, .data = std::string(event.data)});
            }
            return;
        case proto::EventKind::DotEnd:
            if (state_ == State::Data) {
                on_dot_end(event);
            }
            return;
        case proto::EventKind::ChunkData:
            if (state_ == State::Chunk && chunk_delivered_ && message_begun_) {
                push(Request{.kind = RequestKind::MessageData, .data = std::string(event.data)});
            }
            return;
        case proto::EventKind::ChunkEnd:
            if (state_ == State::Chunk) {
                on_chunk_end();
            }
            return;
    }
}

uint32_t Session::extensions() const {
    uint32_t ext =
        smtp::kExtSize | smtp::kExt8BitMime | smtp::kExtSmtpUtf8 | smtp::kExtDsn | smtp::kExtAuth;
    if (submission() && options_.max_hold_seconds != 0 && clock_ != nullptr) {
        ext |= smtp::kExtFutureRelease;
    }
    if (tls_active_) {
        ext |= smtp::kExtRequireTls;  // RFC 8689 §4: only over TLS
    }
    return ext;
}

bool Session::auth_offered() const {
    return options_.offer_auth && (tls_active_ || options_.plaintext_auth);
}

void Session::on_line(std::string_view line, uint32_t flags, proto::Reader& reader) {
    if ((flags & proto::kNul) != 0) {
        // RFC 5321 §4.1: commands are US-ASCII (or UTF-8); a NUL is never
        // part of one, and passing it on invites C-string truncation bugs.
        error(Reply(500, EnhancedCode{5, 5, 2}, "NUL character in command"));
        return;
    }
    smtp::CommandOptions copts = options_.command_options;
    copts.extensions = extensions();
    copts.smtputf8_transaction = in_transaction_ && envelope_.params.smtputf8;
    auto parsed = smtp::parse_command(line, copts);
    if (!parsed) {
        error(parsed.error());
        return;
    }
    smtp::Command& c = *parsed;
    switch (c.verb) {
        case smtp::Verb::Helo:
            cmd_helo(c, false);
            return;
        case smtp::Verb::Ehlo:
            cmd_helo(c, true);
            return;
        case smtp::Verb::Mail:
            cmd_mail(std::move(c));
            return;
        case smtp::Verb::Rcpt:
            cmd_rcpt(std::move(c));
            return;
        case smtp::Verb::Data:
            cmd_data(reader);
            return;
        case smtp::Verb::Bdat:
            cmd_bdat(c, reader);
            return;
        case smtp::Verb::Rset:
            cmd_rset();
            return;
        case smtp::Verb::Noop:
            reply(smtp::kOk);
            return;
        case smtp::Verb::Quit:
            abort_message();
            reply(smtp::kBye);
            closing_ = true;
            return;
        case smtp::Verb::Vrfy:
            // RFC 5321 §3.5.3: 252 rather than confirming addresses to harvesters.
            reply(smtp::kCannotVrfy);
            return;
        case smtp::Verb::Expn:
            reply(smtp::kNotImplemented);  // list membership is not disclosed
            return;
        case smtp::Verb::Help:
            reply(Reply(214, EnhancedCode{2, 0, 0}, "See RFC 5321"));
            return;
        case smtp::Verb::StartTls:
            cmd_starttls();
            return;
        case smtp::Verb::Auth:
            cmd_auth(c);
            return;
        case smtp::Verb::XClient:
            cmd_xclient(c);
            return;
    }
}

// ---- HELO / EHLO ----

std::vector<std::string> Session::ehlo_lines() const {
    std::vector<std::string> lines;
    std::string greeting = options_.hostname;
    if (!client_.helo.empty()) {
        greeting += " Hello " + client_.helo;
    }
    lines.push_back(std::move(greeting));
    lines.emplace_back("PIPELINING");
    lines.push_back(options_.max_message_size != 0
                        ? fmt::format("SIZE {}", options_.max_message_size)
                        : std::string("SIZE"));
    lines.emplace_back("8BITMIME");
    lines.emplace_back("SMTPUTF8");
    lines.emplace_back("ENHANCEDSTATUSCODES");
    if (!tls_active_ && options_.tls_available) {
        lines.emplace_back("STARTTLS");
    }
    if (auth_offered()) {
        lines.emplace_back("AUTH PLAIN LOGIN");
    }
    lines.emplace_back("CHUNKING");
    lines.emplace_back("DSN");
    if ((extensions() & smtp::kExtFutureRelease) != 0) {
        // RFC 4865 §3: max-future-release-interval and max-future-release-date-time.
        int64_t max_until = clock_->now_seconds() + static_cast<int64_t>(options_.max_hold_seconds);
        lines.push_back(fmt::format("FUTURERELEASE {} {}", options_.max_hold_seconds,
                                    smtp::format_rfc3339(max_until)));
    }
    if (tls_active_) {
        lines.emplace_back("REQUIRETLS");
    }
    if (client_trusted_) {
        lines.emplace_back("XCLIENT NAME ADDR PROTO HELO LOGIN");
    }
    return lines;
}

void Session::cmd_helo(const smtp::Command& c, bool esmtp) {
    // RFC 5321 §4.1.4: HELO/EHLO in a transaction is as if RSET.
    abort_message();
    reset_transaction();
    client_.helo = c.helo;
    client_.helo_valid = c.helo_valid;
    client_.esmtp = esmtp;
    state_ = State::Ready;
    if (!esmtp) {
        reply(Reply(250, std::nullopt, options_.hostname));
        return;
    }
    Reply r;
    r.code = 250;
    r.lines = ehlo_lines();
    reply(r);
}

// ---- Transaction ----

void Session::cmd_mail(smtp::Command c) {
    if (state_ == State::Fresh) {
        error(bad_sequence("Send HELO/EHLO first"));
        return;
    }
    if (in_transaction_) {
        error(bad_sequence("Nested MAIL command"));
        return;
    }
    if (submission() && !authenticated()) {
        // RFC 6409 §4.3; and AUTH needs TLS first where STARTTLS is possible.
        error(!tls_active_ && options_.tls_available ? smtp::kMustStartTls : smtp::kAuthRequired);
        return;
    }
    if (c.mail.size && options_.max_message_size != 0 && *c.mail.size > options_.max_message_size) {
        // RFC 1870 §6.1: refuse at MAIL when the declared size is too big.
        reply(smtp::kMessageTooBig);
        return;
    }
    pending_release_.reset();
    if (c.mail.hold_for || c.mail.hold_until) {
        int64_t now = clock_->now_seconds();  // only offered with a clock
        int64_t release = c.mail.hold_for
                              ? now + static_cast<int64_t>(std::min<uint64_t>(
                                          *c.mail.hold_for, std::numeric_limits<int32_t>::max()))
                              : *c.mail.hold_until;
        if (release - now > static_cast<int64_t>(options_.max_hold_seconds)) {
            // RFC 4865 §5: a hold beyond the advertised maximum is refused.
            error(Reply(501, EnhancedCode{5, 5, 4}, "Hold time exceeds the maximum"));
            return;
        }
        if (release > now) {
            pending_release_ = release;  // a time in the past means "now"
        }
    }
    Request r{.kind = RequestKind::CheckSender};
    r.path = c.path;
    r.mail = c.mail;
    r.auth_user = client_.auth_user;
    pending_command_ = std::move(c);
    push(std::move(r), Pending::Sender);
}

void Session::sender_done(SenderResult result) {
    if (pending_ != Pending::Sender || !pending_command_) {
        return;
    }
    pending_ = Pending::None;
    waiting_ = false;
    smtp::Command c = std::move(*pending_command_);
    pending_command_.reset();
    switch (result.status) {
        case SenderStatus::Ok:
            in_transaction_ = true;
            envelope_ = Envelope{};
            envelope_.sender = std::move(c.path);
            envelope_.params = std::move(c.mail);
            envelope_.release_time = pending_release_;
            reply(smtp::kSenderOk);
            return;
        case SenderStatus::NotOwned:
            error(result.reply ? *result.reply
                               : Reply(553, EnhancedCode{5, 7, 1},
                                       "Sender address not owned by the authenticated user"));
            return;
        case SenderStatus::Rejected:
            error(result.reply ? *result.reply : Reply(smtp::kPolicyRejected));
            return;
        case SenderStatus::TempFailure:
            reply(result.reply ? *result.reply : Reply(smtp::kTempLookupFailure));
            return;
    }
}

void Session::cmd_rcpt(smtp::Command c) {
    if (!in_transaction_) {
        error(bad_sequence("Need MAIL command"));
        return;
    }
    ++rcpt_commands_;
    if (options_.max_recipients != 0 && envelope_.recipients.size() >= options_.max_recipients) {
        // RFC 5321 §4.5.3.1.10: 452 (not 552), the client sends the rest later.
        reply(smtp::kTooManyRecipients);
        return;
    }
    Request r{.kind = RequestKind::CheckRecipient};
    r.path = c.path;
    r.rcpt = c.rcpt;
    r.auth_user = client_.auth_user;
    pending_command_ = std::move(c);
    push(std::move(r), Pending::Recipient);
}

void Session::recipient_done(RecipientResult result) {
    if (pending_ != Pending::Recipient || !pending_command_) {
        return;
    }
    pending_ = Pending::None;
    waiting_ = false;
    smtp::Command c = std::move(*pending_command_);
    pending_command_.reset();
    std::string who = c.path.to_string() + ": ";
    switch (result.status) {
        case RecipientStatus::Local:
        case RecipientStatus::Remote: {
            bool relay = result.status == RecipientStatus::Remote;
            if (relay && !authenticated() && !relay_client_) {
                // Never an open relay: only authenticated or configured clients.
                error(smtp::make_reply(smtp::kRelayDenied, who));
                return;
            }
            Recipient rcpt;
            rcpt.path = std::move(c.path);
            rcpt.params = std::move(c.rcpt);
            rcpt.relay = relay;
            rcpt.local_users = std::move(result.local_users);
            envelope_.recipients.push_back(std::move(rcpt));
            reply(smtp::kRecipientOk);
            return;
        }
        case RecipientStatus::Unknown:
            error(result.reply ? *result.reply : smtp::make_reply(smtp::kUserUnknown, who));
            return;
        case RecipientStatus::TempFailure:
            reply(result.reply ? *result.reply : Reply(smtp::kTempLookupFailure));
            return;
        case RecipientStatus::Rejected:
            error(result.reply ? *result.reply : smtp::make_reply(smtp::kPolicyRejected, who));
            return;
    }
}

void Session::begin_message() {
    envelope_.client = client_;
    Request r{.kind = RequestKind::BeginMessage};
    r.envelope = envelope_;
    push(std::move(r));
    message_begun_ = true;
}

void Session::abort_message() {
    if (message_begun_) {
        push(Request{.kind = RequestKind::AbortMessage});
        message_begun_ = false;
    }
}

void Session::reset_transaction() {
    envelope_ = Envelope{};
    in_transaction_ = false;
    rcpt_commands_ = 0;
    bdat_used_ = false;
    body_size_ = 0;
    pending_release_.reset();
}

void Session::cmd_data(proto::Reader& reader) {
    if (!in_transaction_) {
        error(bad_sequence("Need MAIL command"));
        return;
    }
    if (bdat_used_) {
        // RFC 3030 §2: DATA and BDAT are not mixed in one transaction.
        error(bad_sequence("DATA not allowed after BDAT"));
        return;
    }
    if (rcpt_commands_ == 0) {
        error(bad_sequence("Need RCPT command"));
        return;
    }
    if (envelope_.recipients.empty()) {
        // RFC 5321 §3.3: RCPTs were sent but none was accepted.
        error(smtp::kNoValidRecipients);
        return;
    }
    begin_message();
    reply(smtp::kStartMailInput);
    reader.start_dot_data(options_.max_message_size != 0 ? options_.max_message_size
                                                         : std::numeric_limits<uint64_t>::max());
    state_ = State::Data;
}

void Session::on_dot_end(const proto::Event& event) {
    state_ = State::Ready;
    if (event.data_too_big) {
        // RFC 5321 §4.5.3.1.10: the whole body was read; refuse after the dot.
        abort_message();
        reset_transaction();
        reply(smtp::kMessageTooBig);
        return;
    }
    if ((event.flags & proto::kBareLf) != 0 && options_.bare_lf == BareLfPolicy::Reject) {
        // RFC 5321 §2.3.8: CR and LF only as CRLF. See the header for why we
        // refuse rather than normalise by default.
        abort_message();
        reset_transaction();
        reply(Reply(550, EnhancedCode{5, 6, 0}, "Bare LF in message body not allowed"));
        return;
    }
    Request r{.kind = RequestKind::EndMessage};
    r.size = event.data_size;
    r.body_flags = event.flags;
    push(std::move(r), Pending::Message);
}

void Session::cmd_bdat(const smtp::Command& c, proto::Reader& reader) {
    // Every refused chunk must still be read off the wire (RFC 3030 §2):
    // its bytes are consumed silently and its reply is sent right away.
    auto refuse = [&](const Reply& r, bool count) {
        chunk_delivered_ = false;
        state_ = State::Chunk;
        reader.start_chunk(c.chunk_size, false);
        if (count) {
            error(r);
        } else {
            reply(r);
        }
    };
    if (!in_transaction_) {
        refuse(bad_sequence("Need MAIL command"), true);
        return;
    }
    if (rcpt_commands_ == 0) {
        refuse(bad_sequence("Need RCPT command"), true);
        return;
    }
    if (envelope_.recipients.empty()) {
        refuse(smtp::kNoValidRecipients, true);
        return;
    }
    if (options_.max_message_size != 0 && (c.chunk_size > options_.max_message_size ||
                                           body_size_ + c.chunk_size > options_.max_message_size)) {
        // The transaction is over: later chunks get 503 until a new MAIL.
        abort_message();
        reset_transaction();
        refuse(smtp::kMessageTooBig, false);
        return;
    }
    if (!message_begun_) {
        envelope_.chunked = true;
        begin_message();
    }
    bdat_used_ = true;
    chunk_delivered_ = true;
    chunk_last_ = c.last;
    chunk_size_ = c.chunk_size;
    state_ = State::Chunk;
    reader.start_chunk(c.chunk_size, true);
}

void Session::on_chunk_end() {
    state_ = State::Ready;
    if (!chunk_delivered_) {
        return;
    }
    chunk_delivered_ = false;
    body_size_ += chunk_size_;
    if (chunk_last_) {
        Request r{.kind = RequestKind::EndMessage};
        r.size = body_size_;
        push(std::move(r), Pending::Message);
        return;
    }
    reply(Reply(250, EnhancedCode{2, 0, 0}, fmt::format("{} octets received", chunk_size_)));
}

void Session::message_done(DeliveryResult result) {
    if (pending_ != Pending::Message) {
        return;
    }
    pending_ = Pending::None;
    waiting_ = false;
    message_begun_ = false;
    reset_transaction();  // RFC 5321 §4.1.1.4: the transaction ends either way
    switch (result.status) {
        case DeliveryStatus::Delivered: {
            if (result.reply) {
                reply(*result.reply);
            } else if (!result.queue_id.empty()) {
                reply(Reply(250, EnhancedCode{2, 0, 0}, "Message accepted as " + result.queue_id));
            } else {
                reply(smtp::kMessageAccepted);
            }
            return;
        }
        case DeliveryStatus::TempFailure:
            reply(result.reply ? *result.reply : Reply(smtp::kLocalError));
            return;
        case DeliveryStatus::PermFailure:
            reply(result.reply ? *result.reply : Reply(smtp::kTransactionFailed));
            return;
    }
}

void Session::cmd_rset() {
    abort_message();
    reset_transaction();
    reply(smtp::kResetOk);
}

// ---- AUTH (RFC 4954) ----

void Session::cmd_auth(const smtp::Command& c) {
    if (!options_.offer_auth) {
        error(smtp::kNotImplemented);
        return;
    }
    if (state_ == State::Fresh) {
        error(bad_sequence("Send EHLO first"));
        return;
    }
    if (authenticated()) {
        error(bad_sequence("Already authenticated"));  // RFC 4954 §4
        return;
    }
    if (in_transaction_) {
        error(bad_sequence("AUTH not allowed during a mail transaction"));
        return;
    }
    if (!tls_active_ && !options_.plaintext_auth) {
        // RFC 4954 §4 / RFC 3207: passwords never cross the wire in clear.
        error(options_.tls_available ? smtp::kMustStartTls : smtp::kEncryptionRequired);
        return;
    }
    auto mechanism = auth::sasl_mechanism_from_name(c.mechanism);
    if (!mechanism) {
        error(smtp::kUnknownAuthMechanism);
        return;
    }
    sasl_.emplace(*mechanism);
    std::optional<std::string_view> initial;
    if (c.initial_response) {
        initial = *c.initial_response;
    }
    sasl_step(sasl_->start(initial));
}

void Session::auth_line(std::string_view line) {
    sasl_step(sasl_->feed(line));
}

void Session::sasl_step(auth::SaslExchange::Status status) {
    using Status = auth::SaslExchange::Status;
    switch (status) {
        case Status::Challenge:
            state_ = State::AuthContinue;
            // Written by hand: "334 " with the space even for PLAIN's empty
            // challenge (RFC 4954 §4), which Reply would print as "334".
            out_ += "334 " + sasl_->challenge() + "\r\n";
            return;
        case Status::Done: {
            state_ = State::Ready;
            Request r{.kind = RequestKind::VerifyCredentials};
            r.credentials = sasl_->credentials();
            pending_user_ = r.credentials.authcid;
            sasl_.reset();
            push(std::move(r), Pending::Credentials);
            return;
        }
        case Status::Failed:
            state_ = State::Ready;
            sasl_.reset();
            error(Reply(501, EnhancedCode{5, 5, 2}, "Invalid authentication data"));
            return;
        case Status::Cancelled:
            state_ = State::Ready;
            sasl_.reset();
            error(Reply(501, EnhancedCode{5, 0, 0}, "Authentication cancelled"));
            return;
    }
}

void Session::credentials_done(AuthStatus status) {
    if (pending_ != Pending::Credentials) {
        return;
    }
    pending_ = Pending::None;
    waiting_ = false;
    std::string user = std::exchange(pending_user_, {});
    switch (status) {
        case AuthStatus::Ok:
            client_.auth_user = std::move(user);
            reply(smtp::kAuthSucceeded);
            return;
        case AuthStatus::Invalid:
            error(smtp::kAuthInvalid);
            return;
        case AuthStatus::TempFailure:
            reply(smtp::kAuthTempFailure);
            return;
    }
}

// ---- STARTTLS (RFC 3207) ----

void Session::cmd_starttls() {
    if (tls_active_) {
        error(bad_sequence("TLS already active"));
        return;
    }
    if (!options_.tls_available) {
        error(smtp::kTlsNotAvailable);
        return;
    }
    reply(smtp::kReadyForTls);
    push(Request{.kind = RequestKind::StartTls}, Pending::Tls);
}

void Session::reset_connection() {
    abort_message();
    reset_transaction();
    sasl_.reset();
    client_.helo.clear();
    client_.helo_valid = false;
    client_.esmtp = false;
    client_.auth_user.clear();
    state_ = State::Fresh;
}

void Session::tls_started(TlsInfo info) {
    if (pending_ != Pending::Tls) {
        return;
    }
    pending_ = Pending::None;
    waiting_ = false;
    // RFC 3207 §4.2: discard all knowledge obtained from the client before
    // TLS; the client must send EHLO again. No new greeting is sent.
    reset_connection();
    tls_active_ = true;
    client_.tls = std::move(info);
}

// ---- XCLIENT (Postfix XCLIENT_README) ----

void Session::cmd_xclient(const smtp::Command& c) {
    if (!client_trusted_) {
        error(Reply(550, EnhancedCode{5, 7, 0}, "Insufficient authorization"));
        return;
    }
    if (in_transaction_) {
        error(bad_sequence("XCLIENT not allowed during a mail transaction"));
        return;
    }
    ClientInfo next = client_;
    bool login_given = false;
    for (const smtp::XClientAttr& a : c.xclient) {
        std::string value = a.state == smtp::XClientAttr::State::Value ? a.value : std::string();
        if (a.name == "ADDR") {
            next.ip = value;
        } else if (a.name == "NAME") {
            next.name = value;
        } else if (a.name == "HELO") {
            next.helo = value;
        } else if (a.name == "PROTO") {
            next.esmtp = value == "ESMTP";
        } else if (a.name == "LOGIN") {
            next.auth_user = value;
            login_given = true;
        } else if (a.name == "PORT" || a.name == "DESTADDR" || a.name == "DESTPORT") {
            // Accepted and not used (yet).
        } else {
            error(Reply(501, EnhancedCode{5, 5, 4}, "Bad XCLIENT attribute name"));
            return;
        }
    }
    // Postfix: the server then acts as if a new client connected, with these
    // attributes, and greets again; the client sends EHLO again. The trust
    // belonged to the proxy, not to the client it speaks for.
    std::string auth_user = login_given ? next.auth_user : client_.auth_user;
    reset_connection();
    client_.ip = next.ip;
    client_.name = next.name;
    client_.helo = next.helo;
    client_.esmtp = next.esmtp;
    client_.auth_user = auth_user;
    client_trusted_ = false;
    relay_client_ = false;  // that was the proxy's network, not the client's
    reply(Reply(220, std::nullopt, options_.hostname + " ESMTP ready"));
}

// ---- Driver-side endings ----

void Session::shutdown(const smtp::ReplyTemplate& r) {
    if (closing_) {
        return;
    }
    drop_pending();
    reply(r);
    closing_ = true;
}

void Session::connection_lost() {
    drop_pending();
    closing_ = true;
}

void Session::drop_pending() {
    // An EndMessage already handed over is the driver's to finish (its
    // commit may already be done); any other body begun is dropped. Answers
    // that arrive after this are ignored.
    if (pending_ == Pending::Message) {
        message_begun_ = false;
    }
    abort_message();
    pending_ = Pending::None;
    waiting_ = false;
    pending_command_.reset();
}

}  // namespace yubin::smtpd
