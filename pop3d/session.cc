#include "pop3d/session.h"

#include <fmt/format.h>

#include "common/base/base64.h"
#include "common/base/strings.h"
#include "pop3d/message_format.h"

namespace yubin::pop3d {

namespace {

// Splits "a b  c" into its words (POP3 arguments are separated by single
// spaces, RFC 1939 §3; we tolerate runs of them).
std::vector<std::string_view> words(std::string_view s) {
    std::vector<std::string_view> out;
    for (auto w : split(s, ' ')) {
        if (!w.empty()) {
            out.push_back(w);
        }
    }
    return out;
}

}  // namespace

std::string uidl_for(uint32_t uidvalidity, uint32_t uid) {
    return fmt::format("{:08x}{:08x}", uidvalidity, uid);
}

Session::Session(SessionOptions options)
    : options_(std::move(options)), tls_active_(options_.tls_active) {}

void Session::start() {
    // No APOP timestamp in the greeting: APOP is not offered (it needs the
    // clear password on the server).
    ok(fmt::format("{} POP3 server ready", options_.hostname));
}

std::string Session::take_output() {
    std::string out;
    out.swap(out_);
    return out;
}

Request Session::take_request() {
    Request r;
    std::swap(r, request_);
    return r;
}

void Session::ok(std::string_view text) {
    out_.append("+OK");
    if (!text.empty()) {
        out_.push_back(' ');
        out_.append(text);
    }
    out_.append("\r\n");
}

void Session::err_nocount(std::string_view text) {
    out_.append("-ERR ");
    out_.append(text);
    out_.append("\r\n");
}

void Session::err(std::string_view text) {
    ++errors_;
    if (options_.max_errors != 0 && errors_ >= options_.max_errors) {
        err_nocount(fmt::format("{} (too many errors, closing)", text));
        // Nothing is deleted: deletions happen only at QUIT (RFC 1939 §6).
        state_ = State::Done;
        closing_ = true;
        return;
    }
    err_nocount(text);
}

void Session::feed_line_too_long() {
    if (closing_ || waiting_) {
        return;
    }
    if (state_ == State::AuthContinue) {
        sasl_.reset();
        state_ = State::Authorization;
        err("[AUTH] authentication response too long");
        return;
    }
    err("line too long");
}

void Session::feed_line(std::string_view line) {
    if (closing_ || waiting_) {
        return;
    }
    if (state_ == State::AuthContinue) {
        auth_continue(line);
        return;
    }
    size_t space = line.find(' ');
    std::string_view command = line.substr(0, space);
    std::string_view args =
        space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
    if (command.empty()) {
        err("empty command");
        return;
    }
    dispatch(command, args);
}

void Session::dispatch(std::string_view command, std::string_view args) {
    if (iequals(command, "CAPA")) {
        cmd_capa();
    } else if (iequals(command, "QUIT")) {
        cmd_quit();
    } else if (state_ == State::Authorization) {
        authorization(command, args);
    } else if (state_ == State::Transaction) {
        transaction(command, args);
    } else {
        err("command not allowed now");
    }
}

void Session::authorization(std::string_view command, std::string_view args) {
    if (iequals(command, "USER")) {
        cmd_user(args);
    } else if (iequals(command, "PASS")) {
        cmd_pass(args);
    } else if (iequals(command, "AUTH")) {
        cmd_auth(args);
    } else if (iequals(command, "STLS")) {
        cmd_stls();
    } else if (iequals(command, "APOP")) {
        err("APOP is not supported");
    } else if (iequals(command, "STAT") || iequals(command, "LIST") || iequals(command, "RETR") ||
               iequals(command, "DELE") || iequals(command, "NOOP") || iequals(command, "RSET") ||
               iequals(command, "TOP") || iequals(command, "UIDL")) {
        err("not logged in");
    } else {
        err("unknown command");
    }
}

void Session::transaction(std::string_view command, std::string_view args) {
    bool no_args = words(args).empty();
    if (iequals(command, "STAT")) {
        no_args ? cmd_stat() : err("STAT takes no arguments");
    } else if (iequals(command, "LIST")) {
        cmd_list(args, false);
    } else if (iequals(command, "UIDL")) {
        cmd_list(args, true);
    } else if (iequals(command, "RETR")) {
        cmd_retr(args, false);
    } else if (iequals(command, "TOP")) {
        cmd_retr(args, true);
    } else if (iequals(command, "DELE")) {
        cmd_dele(args);
    } else if (iequals(command, "NOOP")) {
        no_args ? ok("") : err("NOOP takes no arguments");
    } else if (iequals(command, "RSET")) {
        no_args ? cmd_rset() : err("RSET takes no arguments");
    } else if (iequals(command, "USER") || iequals(command, "PASS") || iequals(command, "AUTH") ||
               iequals(command, "STLS") || iequals(command, "APOP")) {
        err("already logged in");
    } else {
        err("unknown command");
    }
}

void Session::cmd_capa() {
    // RFC 2449 §5: the list may differ by state; login mechanisms are only
    // shown where they can be used (RFC 2595 §4: not before TLS).
    out_.append("+OK capability list follows\r\n");
    out_.append("TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n");
    if (state_ == State::Authorization) {
        if (auth_allowed()) {
            out_.append("USER\r\nSASL PLAIN\r\n");
        }
        if (!tls_active_ && options_.stls_available) {
            out_.append("STLS\r\n");
        }
    }
    if (!options_.expire.empty()) {
        out_.append(fmt::format("EXPIRE {}\r\n", options_.expire));
    }
    if (options_.login_delay) {
        out_.append(fmt::format("LOGIN-DELAY {}\r\n", *options_.login_delay));
    }
    out_.append("IMPLEMENTATION yubin\r\n.\r\n");
}

void Session::cmd_user(std::string_view args) {
    if (!auth_allowed()) {
        err("[AUTH] plaintext authentication is only allowed after STLS");
        return;
    }
    std::string_view name = trim(args);
    if (name.empty()) {
        err("USER needs a name");
        return;
    }
    // Always +OK: whether the user exists is told only after PASS, so that
    // USER cannot be used to probe for accounts.
    user_ = std::string(name);
    ok("send PASS");
}

void Session::cmd_pass(std::string_view args) {
    if (!auth_allowed()) {
        err("[AUTH] plaintext authentication is only allowed after STLS");
        return;
    }
    if (user_.empty()) {
        err("USER first");
        return;
    }
    // RFC 1939 §7: the argument is the rest of the line; spaces belong to it.
    std::string user = std::move(user_);
    user_.clear();
    request_login(std::move(user), std::string(args));
}

void Session::cmd_auth(std::string_view args) {
    auto w = words(args);
    if (w.empty()) {
        // The pre-RFC 5034 form that many clients still send: list mechanisms.
        out_.append("+OK\r\n");
        if (auth_allowed()) {
            out_.append("PLAIN\r\n");
        }
        out_.append(".\r\n");
        return;
    }
    if (!auth_allowed()) {
        err("[AUTH] plaintext authentication is only allowed after STLS");
        return;
    }
    if (!iequals(w[0], "PLAIN")) {
        err("unsupported SASL mechanism");
        return;
    }
    if (w.size() > 2) {
        err("too many arguments");
        return;
    }
    user_.clear();
    sasl_.emplace(auth::SaslMechanism::Plain);
    std::optional<std::string_view> initial;
    if (w.size() == 2) {
        initial = w[1];  // RFC 5034 §4: "=" is an empty initial response
    }
    auto status = sasl_->start(initial);
    if (status == auth::SaslExchange::Status::Challenge) {
        // RFC 5034 §4: "+ " then the base64 challenge (empty for PLAIN).
        state_ = State::AuthContinue;
        out_.append("+ ");
        out_.append(sasl_->challenge());
        out_.append("\r\n");
        return;
    }
    finish_sasl(status);
}

void Session::auth_continue(std::string_view line) {
    state_ = State::Authorization;
    auto status = sasl_->feed(line);
    if (status == auth::SaslExchange::Status::Challenge) {
        // PLAIN has a single step; a second challenge would be a bug.
        status = auth::SaslExchange::Status::Failed;
    }
    finish_sasl(status);
}

void Session::finish_sasl(auth::SaslExchange::Status status) {
    using Status = auth::SaslExchange::Status;
    if (status == Status::Cancelled) {
        sasl_.reset();
        err("authentication cancelled");
        return;
    }
    if (status != Status::Done) {
        sasl_.reset();
        err("[AUTH] malformed authentication exchange");
        return;
    }
    auth::Credentials creds = sasl_->credentials();
    sasl_.reset();
    // We do not let one user act as another (no proxy authorization).
    if (!creds.authzid.empty() && creds.authzid != creds.authcid) {
        ++failed_logins_;
        err("[AUTH] authorization identity must be empty or the user itself");
        return;
    }
    request_login(std::move(creds.authcid), std::move(creds.password));
}

void Session::request_login(std::string user, std::string password) {
    request_ = Request{};
    request_.kind = RequestKind::Login;
    request_.user = user;
    request_.password = std::move(password);
    user_ = std::move(user);
    waiting_ = true;
}

void Session::login_done(LoginResult result) {
    if (!waiting_) {
        return;
    }
    waiting_ = false;
    if (result.status != LoginStatus::Ok) {
        user_.clear();
    }
    switch (result.status) {
        case LoginStatus::Ok: {
            failed_logins_ = 0;
            maildrop_ = std::move(result.maildrop);
            deleted_.assign(maildrop_.messages.size(), false);
            state_ = State::Transaction;
            ok(fmt::format("logged in, {} messages ({} octets)", live_count(), live_octets()));
            return;
        }
        case LoginStatus::BadCredentials:
            ++failed_logins_;
            err("[AUTH] authentication failed");
            return;
        case LoginStatus::InUse:
            err_nocount("[IN-USE] the maildrop is in use by another session");
            return;
        case LoginStatus::LoginDelay:
            err_nocount("[LOGIN-DELAY] logged in too recently, try again later");
            return;
        case LoginStatus::TempFailure:
            err_nocount("[SYS/TEMP] temporary failure, try again later");
            return;
        case LoginStatus::PermFailure:
            err_nocount("[SYS/PERM] the maildrop cannot be opened");
            return;
    }
}

void Session::cmd_stls() {
    if (tls_active_) {
        err("TLS is already active");
        return;
    }
    if (!options_.stls_available) {
        err("STLS is not available here");
        return;
    }
    ok("begin TLS negotiation");
    request_ = Request{};
    request_.kind = RequestKind::StartTls;
    waiting_ = true;
}

void Session::tls_started() {
    waiting_ = false;
    tls_active_ = true;
    // RFC 2595 §4: discard what was learned before TLS.
    user_.clear();
    sasl_.reset();
    state_ = State::Authorization;
}

uint64_t Session::live_count() const {
    uint64_t n = 0;
    for (size_t i = 0; i < maildrop_.messages.size(); ++i) {
        n += deleted_[i] ? 0 : 1;
    }
    return n;
}

uint64_t Session::live_octets() const {
    uint64_t n = 0;
    for (size_t i = 0; i < maildrop_.messages.size(); ++i) {
        n += deleted_[i] ? 0 : maildrop_.messages[i].octets;
    }
    return n;
}

std::optional<size_t> Session::message_index(std::string_view arg) {
    // Digits only: no sign, no spaces (parse_u64 rejects anything else).
    auto n = parse_u64(arg);
    if (!n || *n == 0) {
        err("invalid message number");
        return std::nullopt;
    }
    if (*n > maildrop_.messages.size()) {
        err("no such message");
        return std::nullopt;
    }
    size_t index = static_cast<size_t>(*n - 1);
    if (deleted_[index]) {
        err(fmt::format("message {} already deleted", *n));
        return std::nullopt;
    }
    return index;
}

void Session::cmd_stat() {
    // RFC 1939 §5: deleted messages are not counted.
    ok(fmt::format("{} {}", live_count(), live_octets()));
}

void Session::cmd_list(std::string_view args, bool uidl) {
    auto w = words(args);
    if (w.size() > 1) {
        err("too many arguments");
        return;
    }
    auto value = [&](size_t i) {
        return uidl ? uidl_for(maildrop_.uidvalidity, maildrop_.messages[i].uid)
                    : std::to_string(maildrop_.messages[i].octets);
    };
    if (w.size() == 1) {
        auto index = message_index(w[0]);
        if (index) {
            ok(fmt::format("{} {}", *index + 1, value(*index)));
        }
        return;
    }
    if (uidl) {
        ok("unique-id listing follows");
    } else {
        ok(fmt::format("{} messages ({} octets)", live_count(), live_octets()));
    }
    for (size_t i = 0; i < maildrop_.messages.size(); ++i) {
        if (!deleted_[i]) {
            out_.append(fmt::format("{} {}\r\n", i + 1, value(i)));
        }
    }
    out_.append(".\r\n");
}

void Session::cmd_retr(std::string_view args, bool top) {
    auto w = words(args);
    if (w.size() != (top ? 2u : 1u)) {
        err(top ? "usage: TOP message lines" : "usage: RETR message");
        return;
    }
    std::optional<uint64_t> lines;
    if (top) {
        lines = parse_u64(w[1]);
        if (!lines) {
            err("invalid line count");
            return;
        }
    }
    auto index = message_index(w[0]);
    if (!index) {
        return;
    }
    pending_top_ = lines;
    pending_octets_ = maildrop_.messages[*index].octets;
    request_ = Request{};
    request_.kind = RequestKind::Retrieve;
    request_.mailbox_id = maildrop_.mailbox_id;
    request_.uid = maildrop_.messages[*index].uid;
    waiting_ = true;
}

void Session::retrieve_done(Result<std::string> message) {
    if (!waiting_) {
        return;
    }
    waiting_ = false;
    if (!message) {
        if (message.error().code == ErrorCode::NotFound) {
            // Expunged through IMAP after our snapshot was taken.
            err_nocount("message was deleted by another session");
        } else {
            err_nocount("[SYS/TEMP] cannot read the message, try again later");
        }
        return;
    }
    if (pending_top_) {
        ok("top of message follows");
        encode_top(*message, *pending_top_, out_);
    } else {
        // The size promised by LIST was computed from the same bytes with the
        // same encoder (message_format.h), so this count is exact.
        uint64_t octets = encoded_size(*message);
        ok(fmt::format("{} octets", octets));
        encode_message(*message, out_);
    }
    out_.append(".\r\n");
}

void Session::cmd_dele(std::string_view args) {
    auto w = words(args);
    if (w.size() != 1) {
        err("usage: DELE message");
        return;
    }
    auto index = message_index(w[0]);
    if (!index) {
        return;
    }
    deleted_[*index] = true;
    ok(fmt::format("message {} deleted", *index + 1));
}

void Session::cmd_rset() {
    deleted_.assign(maildrop_.messages.size(), false);
    ok(fmt::format("maildrop has {} messages ({} octets)", live_count(), live_octets()));
}

void Session::cmd_quit() {
    if (state_ != State::Transaction) {
        ok("bye");
        state_ = State::Done;
        closing_ = true;
        return;
    }
    // RFC 1939 §6: the UPDATE state removes the marked messages, all at once.
    state_ = State::Update;
    std::vector<uint32_t> uids;
    for (size_t i = 0; i < maildrop_.messages.size(); ++i) {
        if (deleted_[i]) {
            uids.push_back(maildrop_.messages[i].uid);
        }
    }
    if (uids.empty()) {
        ok("bye");
        state_ = State::Done;
        closing_ = true;
        return;
    }
    request_ = Request{};
    request_.kind = RequestKind::Update;
    request_.mailbox_id = maildrop_.mailbox_id;
    request_.uids = std::move(uids);
    waiting_ = true;
}

void Session::update_done(Result<void> result) {
    if (!waiting_) {
        return;
    }
    waiting_ = false;
    state_ = State::Done;
    closing_ = true;
    if (!result) {
        // RFC 1939 §6: -ERR when some deleted messages were not removed.
        err_nocount("[SYS/TEMP] the deletions could not be committed; nothing was deleted");
        return;
    }
    ok(fmt::format("bye, {} messages left", live_count()));
}

void Session::idle_timeout() {
    if (closing_) {
        return;
    }
    // RFC 1939 §3: an autologout timer ends the session without UPDATE.
    err_nocount("[SYS/TEMP] idle for too long, closing; nothing was deleted");
    state_ = State::Done;
    closing_ = true;
}

void Session::shutting_down() {
    if (closing_ || waiting_) {
        return;
    }
    err_nocount("[SYS/TEMP] server shutting down, nothing was deleted");
    state_ = State::Done;
    closing_ = true;
}

}  // namespace yubin::pop3d
