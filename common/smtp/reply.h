// SMTP replies, both directions:
//   - Reply: a code (RFC 5321 §4.2), an optional enhanced status code
//     (RFC 3463 class.subject.detail, RFC 2034) and text lines, formatted to
//     the wire by to_wire() (multi-line "250-"/"250 ", each line ≤ 512 octets
//     with CRLF, §4.5.3.1.5);
//   - ReplyParser: a sans-I/O parser for the client side, fed whatever bytes
//     arrived, yielding complete (possibly multi-line) replies, with limits;
//   - Capabilities: an EHLO reply read into the extensions the client needs;
//   - ReplyTemplate constants: the standard replies the server sends.
//
// Ownership and threads: plain values; a ReplyParser belongs to one client
// session and one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/error.h"

namespace yubin::smtp {

// RFC 3463 §2: class "." subject "." detail; class is 2, 4 or 5, subject and
// detail 1*3 digits.
struct EnhancedCode {
    uint8_t klass = 0;
    uint16_t subject = 0;
    uint16_t detail = 0;

    std::string to_string() const;
    // Parses exactly "c.s.d"; nullopt otherwise.
    static std::optional<EnhancedCode> parse(std::string_view text) noexcept;

    friend bool operator==(const EnhancedCode&, const EnhancedCode&) = default;
};

// A constant reply, for the table below; turn it into a Reply with make_reply.
struct ReplyTemplate {
    int code;
    EnhancedCode enhanced;  // klass == 0: none (220 greeting, 354, 334)
    std::string_view text;
};

struct Reply {
    int code = 0;
    std::optional<EnhancedCode> enhanced;
    // Text of each line, without code and enhanced code. A reply has at
    // least one line; an empty string is a bare "250".
    std::vector<std::string> lines;

    Reply() = default;
    Reply(int c, std::optional<EnhancedCode> e, std::string text);
    Reply(const ReplyTemplate& t);  // NOLINT: implicit on purpose, templates are replies

    // Wire form. A line whose text contains CR or LF is split there (so text
    // from elsewhere can never inject a reply line), and a line longer than
    // 512 octets with CRLF is wrapped, at a space if there is one. The
    // enhanced code, if any, is repeated on every line (RFC 2034 §3).
    std::string to_wire() const;
    // All lines joined by a space (for logs and DSNs).
    std::string text() const;

    bool positive() const noexcept { return code >= 200 && code < 400; }
    bool transient() const noexcept { return code >= 400 && code < 500; }
    bool permanent() const noexcept { return code >= 500 && code < 600; }

    friend bool operator==(const Reply&, const Reply&) = default;
};

// `t` with `prefix` put before its text: make_reply(kUserUnknown, "<a@b>: ")
// is "550 5.1.1 <a@b>: User unknown". Text that comes from the peer is safe
// here: to_wire() splits at CR/LF, so it cannot forge a reply line.
Reply make_reply(const ReplyTemplate& t, std::string_view prefix);

inline constexpr size_t kMaxReplyLine = 512;  // octets including CRLF, §4.5.3.1.5

struct ReplyParserLimits {
    // Longer than RFC 5321's 512 because real servers exceed it (long EHLO
    // AUTH lines, verbose 5xx texts); still bounded.
    size_t max_line = 4096;
    size_t max_lines = 128;
};

// Sans-I/O reply parser for the client. feed() appends bytes; next() returns
// the next complete reply, nullopt when more bytes are needed, or an error
// (ErrorCode::Invalid for a malformed line, ErrorCode::Limit for a limit).
// After an error the parser stays failed: the connection is unusable.
// Lines end in CRLF; a bare LF is accepted as the end of a line (a CR before
// it is dropped) because being lenient here only risks reading a reply that
// a strict reader would have refused.
class ReplyParser {
public:
    explicit ReplyParser(ReplyParserLimits limits = {}) : limits_(limits) {}

    void feed(std::string_view bytes) { buffer_.append(bytes); }
    Result<std::optional<Reply>> next();
    // Bytes fed but not yet read as a line (an unfinished line, or lines
    // behind the last reply returned).
    size_t buffered() const noexcept { return buffer_.size() - pos_; }

private:
    ReplyParserLimits limits_;
    std::string buffer_;
    size_t pos_ = 0;              // start of the first unconsumed line
    size_t scanned_ = 0;          // bytes from pos_ already searched for LF
    Reply pending_;               // lines of the reply read so far
    std::optional<Error> error_;  // set once: the parser stays failed
};

// Parses one reply line (without CRLF) into (code, is_last, text). Exposed for
// tests and for reading a single-line reply held elsewhere.
struct ReplyLine {
    int code = 0;
    bool last = true;
    std::string_view text;
};
Result<ReplyLine> parse_reply_line(std::string_view line);

// What an EHLO reply offers (RFC 5321 §4.1.1.1: first line is the server's
// domain and greeting, each further line "keyword [params]").
struct Capabilities {
    std::string greeting;  // the first line's text
    // Every keyword, upper-cased, with its parameters as sent.
    std::map<std::string, std::vector<std::string>, std::less<>> keywords;

    bool has(std::string_view keyword) const;  // case-insensitive

    bool pipelining = false;             // RFC 2920
    bool chunking = false;               // RFC 3030
    bool binarymime = false;             // RFC 3030
    bool eightbitmime = false;           // RFC 6152
    bool smtputf8 = false;               // RFC 6531
    bool dsn = false;                    // RFC 3461
    bool starttls = false;               // RFC 3207
    bool enhanced_status_codes = false;  // RFC 2034
    bool requiretls = false;             // RFC 8689
    // SIZE (RFC 1870 §4): nullopt if not offered, 0 if offered without a limit.
    std::optional<uint64_t> size;
    // AUTH mechanisms, upper-cased (RFC 4954 §3), also from the pre-standard
    // "AUTH=LOGIN PLAIN" form that old Exchange and Outlook servers send.
    std::vector<std::string> auth_mechanisms;
    // FUTURERELEASE (RFC 4865 §3): max interval in seconds and max date-time.
    std::optional<uint64_t> future_release_max_interval;
    std::string future_release_max_datetime;
};

// Requires a 250 reply; anything else is ErrorCode::Invalid. Unknown keywords
// are kept in `keywords`; malformed parameters of known keywords are ignored
// (the feature counts as not offered) rather than failing the session.
Result<Capabilities> parse_ehlo_reply(const Reply& reply);

// ---- The standard replies the server sends (code, enhanced code, text). ----
// Enhanced codes from RFC 3463 §3 and the IANA registry; where one code has
// several uses, the session replaces the text with make_reply().
inline constexpr ReplyTemplate kServiceReady{220, {}, "ESMTP ready"};
inline constexpr ReplyTemplate kBye{221, {2, 0, 0}, "Bye"};
inline constexpr ReplyTemplate kAuthSucceeded{235, {2, 7, 0}, "Authentication successful"};
inline constexpr ReplyTemplate kOk{250, {2, 0, 0}, "Ok"};
inline constexpr ReplyTemplate kSenderOk{250, {2, 1, 0}, "Sender ok"};
inline constexpr ReplyTemplate kRecipientOk{250, {2, 1, 5}, "Recipient ok"};
inline constexpr ReplyTemplate kMessageAccepted{250, {2, 0, 0}, "Message accepted"};
inline constexpr ReplyTemplate kResetOk{250, {2, 0, 0}, "Reset"};
inline constexpr ReplyTemplate kCannotVrfy{
    252, {2, 5, 2}, "Cannot VRFY user, but will accept message and attempt delivery"};
inline constexpr ReplyTemplate kReadyForTls{220, {2, 0, 0}, "Ready to start TLS"};
inline constexpr ReplyTemplate kAuthContinue{334, {}, ""};
inline constexpr ReplyTemplate kStartMailInput{354, {}, "End data with <CR><LF>.<CR><LF>"};
inline constexpr ReplyTemplate kShuttingDown{421, {4, 3, 2}, "Service shutting down"};
inline constexpr ReplyTemplate kTooManyErrors{421, {4, 7, 0}, "Too many errors, closing"};
inline constexpr ReplyTemplate kTimeout{421, {4, 4, 2}, "Timeout, closing connection"};
inline constexpr ReplyTemplate kMailboxBusy{450, {4, 2, 1}, "Mailbox temporarily unavailable"};
inline constexpr ReplyTemplate kGreylisted{450, {4, 7, 1}, "Try again later"};
inline constexpr ReplyTemplate kLocalError{451, {4, 3, 0}, "Local error in processing"};
inline constexpr ReplyTemplate kTempLookupFailure{451, {4, 4, 3}, "Temporary lookup failure"};
inline constexpr ReplyTemplate kInsufficientStorage{452, {4, 3, 1}, "Insufficient system storage"};
inline constexpr ReplyTemplate kTooManyRecipients{452, {4, 5, 3}, "Too many recipients"};
inline constexpr ReplyTemplate kAuthTempFailure{454, {4, 7, 0}, "Temporary authentication failure"};
inline constexpr ReplyTemplate kTlsNotAvailable{454, {4, 7, 0}, "TLS not available"};
inline constexpr ReplyTemplate kUnrecognized{500, {5, 5, 2}, "Command unrecognized"};
inline constexpr ReplyTemplate kLineTooLong{500, {5, 5, 6}, "Line too long"};
inline constexpr ReplyTemplate kSyntaxError{501, {5, 5, 4}, "Syntax error in parameters"};
inline constexpr ReplyTemplate kBadSenderSyntax{501, {5, 1, 7}, "Bad sender address syntax"};
inline constexpr ReplyTemplate kBadRecipientSyntax{501, {5, 1, 3}, "Bad recipient address syntax"};
inline constexpr ReplyTemplate kPathTooLong{501, {5, 5, 4}, "Path too long"};
inline constexpr ReplyTemplate kNotImplemented{502, {5, 5, 1}, "Command not implemented"};
inline constexpr ReplyTemplate kBadSequence{503, {5, 5, 1}, "Bad sequence of commands"};
inline constexpr ReplyTemplate kUnknownAuthMechanism{
    504, {5, 5, 4}, "Unrecognized authentication mechanism"};
inline constexpr ReplyTemplate kAuthRequired{530, {5, 7, 0}, "Authentication required"};
inline constexpr ReplyTemplate kMustStartTls{530, {5, 7, 0}, "Must issue a STARTTLS command first"};
inline constexpr ReplyTemplate kAuthInvalid{535, {5, 7, 8}, "Authentication credentials invalid"};
inline constexpr ReplyTemplate kEncryptionRequired{
    538, {5, 7, 11}, "Encryption required for requested authentication mechanism"};
inline constexpr ReplyTemplate kUserUnknown{550, {5, 1, 1}, "User unknown"};
inline constexpr ReplyTemplate kMailboxUnavailable{550, {5, 2, 1}, "Mailbox unavailable"};
inline constexpr ReplyTemplate kPolicyRejected{550, {5, 7, 1}, "Rejected by policy"};
inline constexpr ReplyTemplate kMessageTooBig{552, {5, 3, 4}, "Message size exceeds fixed limit"};
inline constexpr ReplyTemplate kMailboxFull{552, {5, 2, 2}, "Mailbox full"};
inline constexpr ReplyTemplate kTooMuchMailData{552, {5, 3, 4}, "Too much mail data"};
inline constexpr ReplyTemplate kNonAsciiAddress{
    553, {5, 6, 7}, "Non-ASCII address requires SMTPUTF8"};  // RFC 6531 §3.7.4.1 / RFC 6533 §3
inline constexpr ReplyTemplate kBadMailboxName{553, {5, 1, 3}, "Mailbox name not allowed"};
inline constexpr ReplyTemplate kRelayDenied{554, {5, 7, 1}, "Relay access denied"};
inline constexpr ReplyTemplate kTransactionFailed{554, {5, 0, 0}, "Transaction failed"};
inline constexpr ReplyTemplate kNoValidRecipients{554, {5, 5, 1}, "No valid recipients"};
inline constexpr ReplyTemplate kUnrecognizedParameter{
    555, {5, 5, 4}, "MAIL FROM/RCPT TO parameters not recognized or not implemented"};
inline constexpr ReplyTemplate kRequireTlsFailed{
    550, {5, 7, 30}, "REQUIRETLS support required"};  // RFC 8689 §5

}  // namespace yubin::smtp
