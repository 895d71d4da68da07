// The POP3 protocol (RFC 1939, CAPA RFC 2449, STLS RFC 2595, AUTH RFC 5034,
// response codes RFC 2449 §8 / RFC 3206) as a sans-I/O state machine.
//
// The driver (server.cc) feeds it complete command lines and gets back bytes
// to send (take_output) and at most one typed Request at a time (take_request):
// start TLS, log in (verify the password, lock and list the maildrop), fetch a
// message, commit the deletions. While a request is outstanding (waiting())
// the driver feeds no more lines; it hands the result back with the matching
// *_done call and the session continues, so pipelined commands (RFC 2449 §6.6)
// are answered in order. The same session therefore runs in unit tests with no
// socket at all, fed whole, byte by byte or at random splits.
//
// States (RFC 1939 §3): Authorization → Transaction → (QUIT) Update. DELE
// only marks; the marked messages are handed to the driver in ONE Update
// request at QUIT, so a dropped connection or a timeout deletes nothing.
//
// Ownership: a plain object owned by its driver. Threads: one thread at a
// time (the loop thread in the daemon).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/auth/sasl.h"
#include "common/base/error.h"

namespace yubin::pop3d {

struct SessionOptions {
    std::string hostname;         // in the greeting
    bool tls_active = false;      // implicit TLS (995): TLS from the first byte
    bool stls_available = false;  // the listener may upgrade with STLS
    bool plaintext_auth = false;  // USER/PASS/AUTH allowed without TLS (loopback)
    uint32_t max_errors = 10;     // bad commands before the session is closed; 0 = no limit
    std::string expire;           // EXPIRE capability argument ("NEVER", "30"); "" = not offered
    std::optional<uint32_t> login_delay;  // LOGIN-DELAY seconds; unset = not offered
};

// One message of the snapshot taken at login.
struct MaildropMessage {
    uint32_t uid = 0;
    uint64_t octets = 0;  // size on the wire (message_format.h)
};

struct Maildrop {
    uint64_t mailbox_id = 0;
    uint32_t uidvalidity = 0;
    std::vector<MaildropMessage> messages;  // in uid order: message n is messages[n-1]
};

enum class LoginStatus {
    Ok,              // maildrop locked and listed
    BadCredentials,  // unknown user, wrong password, disabled account: [AUTH]
    InUse,           // another session holds the maildrop: [IN-USE]
    LoginDelay,      // logged in again sooner than LOGIN-DELAY allows: [LOGIN-DELAY]
    TempFailure,     // [SYS/TEMP]
    PermFailure,     // [SYS/PERM]
};

struct LoginResult {
    LoginStatus status = LoginStatus::BadCredentials;
    Maildrop maildrop;  // when Ok
};

enum class RequestKind {
    None,
    StartTls,  // the "+OK" is in the output: flush it, drop buffered plaintext, start TLS,
               // then call tls_started()
    Login,     // verify user/password, lock + list the maildrop → login_done()
    Retrieve,  // read message uid of mailbox_id → retrieve_done()
    Update,    // expunge uids from mailbox_id in one call → update_done()
};

struct Request {
    RequestKind kind = RequestKind::None;
    std::string user;            // Login
    std::string password;        // Login
    uint64_t mailbox_id = 0;     // Retrieve, Update
    uint32_t uid = 0;            // Retrieve
    std::vector<uint32_t> uids;  // Update
};

// UIDL value of a message (RFC 1939 §7: 1-70 characters in 0x21-0x7E):
// 8 hex digits of UIDVALIDITY then 8 of the UID, so the same message has the
// same id here and in IMAP, and no id is ever reused (a new UIDVALIDITY makes
// every id new).
std::string uidl_for(uint32_t uidvalidity, uint32_t uid);

class Session {
public:
    explicit Session(SessionOptions options);

    // Queues the greeting.
    void start();
    // One command line, without its CRLF.
    void feed_line(std::string_view line);
    // The reader skipped a line longer than the limit.
    void feed_line_too_long();
    // TLS now protects the connection (after a StartTls request). RFC 2595 §4:
    // the session forgets what it learned before (a USER name).
    void tls_started();
    void login_done(LoginResult result);
    // The stored message for the outstanding Retrieve (raw, as stored).
    void retrieve_done(Result<std::string> message);
    void update_done(Result<void> result);
    // The connection was idle too long: answer and close, deleting nothing.
    void idle_timeout();
    // The daemon is shutting down: answer and close (only while not waiting).
    void shutting_down();

    // Bytes to send, in order (moves them out).
    std::string take_output();
    bool has_output() const { return !out_.empty(); }
    // The next request, once; kind None if there is none.
    Request take_request();
    // A request was taken (or is ready) and its *_done call has not come yet.
    bool waiting() const { return waiting_; }
    // Send the remaining output, then close the connection.
    bool closing() const { return closing_; }
    bool authenticated() const { return state_ == State::Transaction; }
    const std::string& user() const { return user_; }
    // Consecutive failed logins on this connection (the driver delays the
    // failure reply more each time).
    uint32_t failed_logins() const { return failed_logins_; }

private:
    enum class State { Authorization, AuthContinue, Transaction, Update, Done };

    void dispatch(std::string_view command, std::string_view args);
    void authorization(std::string_view command, std::string_view args);
    void transaction(std::string_view command, std::string_view args);
    void auth_continue(std::string_view line);
    void finish_sasl(auth::SaslExchange::Status status);

    void cmd_capa();
    void cmd_user(std::string_view args);
    void cmd_pass(std::string_view args);
    void cmd_auth(std::string_view args);
    void cmd_stls();
    void cmd_stat();
    void cmd_list(std::string_view args, bool uidl);
    void cmd_retr(std::string_view args, bool top);
    void cmd_dele(std::string_view args);
    void cmd_rset();
    void cmd_quit();

    void request_login(std::string user, std::string password);
    bool auth_allowed() const { return tls_active_ || options_.plaintext_auth; }
    // Parses a message number; replies -ERR and returns nullopt when it is
    // not a live message.
    std::optional<size_t> message_index(std::string_view arg);
    uint64_t live_count() const;
    uint64_t live_octets() const;

    void ok(std::string_view text);
    // A client error: counts toward max_errors.
    void err(std::string_view text);
    // A failure that is not the client's fault (does not count).
    void err_nocount(std::string_view text);

    SessionOptions options_;
    State state_ = State::Authorization;
    bool tls_active_ = false;
    std::string out_;
    Request request_;
    bool waiting_ = false;
    bool closing_ = false;
    uint32_t errors_ = 0;
    uint32_t failed_logins_ = 0;

    std::string user_;  // from USER, or the logged-in user
    std::optional<auth::SaslExchange> sasl_;
    Maildrop maildrop_;
    std::vector<bool> deleted_;
    // Retrieve in flight: TOP's line count, or nullopt for RETR.
    std::optional<uint64_t> pending_top_;
    uint64_t pending_octets_ = 0;
};

}  // namespace yubin::pop3d
