// SMTP command lines → typed commands, for the server session. One call per
// line (without its CRLF, which common/proto's reader has removed); the
// result is either a Command or the Reply to send back:
//   500 5.5.2  unrecognized verb (RFC 5321 §4.2.4)
//   501 5.5.4  syntax error in the arguments (§4.3.2), 501 5.1.7 / 5.1.3 for a
//              bad sender / recipient address, 501 path too long (§4.5.3.1.9)
//   553 5.6.7  non-ASCII address without SMTPUTF8 (RFC 6531 §3.7.4.1)
//   555 5.5.4  unrecognized or not offered MAIL/RCPT parameter (§4.1.1.11)
// Whether a verb is allowed now (503), whether an AUTH mechanism exists
// (504), and all policy are the session's business, not this parser's.
//
// Verbs and parameter keywords are case-insensitive (§2.4). Tolerance beyond
// the RFC is limited to what mainstream servers accept, and each case is a
// knob in CommandOptions.
//
// Pure function on values; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "common/smtp/address.h"
#include "common/smtp/reply.h"

namespace yubin::smtp {

enum class Verb {
    Helo,
    Ehlo,
    Mail,
    Rcpt,
    Data,
    Bdat,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
    Auth,
    XClient,
};

std::string_view verb_name(Verb verb) noexcept;

// ESMTP extensions whose MAIL/RCPT parameters the server offers: a parameter
// of an extension not offered is answered 555 like an unknown one.
enum Extension : uint32_t {
    kExtSize = 1u << 0,           // RFC 1870
    kExt8BitMime = 1u << 1,       // RFC 6152
    kExtBinaryMime = 1u << 2,     // RFC 3030
    kExtSmtpUtf8 = 1u << 3,       // RFC 6531
    kExtDsn = 1u << 4,            // RFC 3461
    kExtAuth = 1u << 5,           // RFC 4954 (AUTH= on MAIL)
    kExtFutureRelease = 1u << 6,  // RFC 4865
    kExtRequireTls = 1u << 7,     // RFC 8689
    kExtAll = 0xffu,
};

struct CommandOptions {
    uint32_t extensions = kExtAll;
    // For RCPT: the transaction's MAIL carried SMTPUTF8, so UTF-8 addresses
    // are allowed (RFC 6531 §3.4). For MAIL the parameter itself decides.
    bool smtputf8_transaction = false;
    // "MAIL FROM: <a@b>": not RFC 5321 but sent by many clients and accepted
    // by every mainstream server.
    bool allow_space_after_colon = true;
    // "MAIL FROM:a@b": refused unless set.
    bool allow_missing_brackets = false;
    // See AddressOptions::max_local_part.
    size_t max_local_part = kMaxLocalPart;
};

enum class Body { Unspecified, SevenBit, EightBitMime, BinaryMime };
enum class Ret { Unspecified, Full, Headers };

struct MailParams {
    std::optional<uint64_t> size;      // SIZE=n (RFC 1870 §3)
    Body body = Body::Unspecified;     // BODY= (RFC 6152 §2, RFC 3030 §3)
    bool smtputf8 = false;             // SMTPUTF8 (RFC 6531 §3.4)
    Ret ret = Ret::Unspecified;        // RET=FULL|HDRS (RFC 3461 §4.3)
    std::optional<std::string> envid;  // ENVID=, xtext-decoded (RFC 3461 §4.4)
    // AUTH=<mailbox> (RFC 4954 §5), xtext-decoded; "<>" gives an empty string.
    std::optional<std::string> auth;
    std::optional<uint64_t> hold_for;   // HOLDFOR=seconds (RFC 4865 §4)
    std::optional<int64_t> hold_until;  // HOLDUNTIL=, as Unix seconds (UTC)
    bool requiretls = false;            // REQUIRETLS (RFC 8689 §4.1)

    friend bool operator==(const MailParams&, const MailParams&) = default;
};

enum Notify : uint8_t {
    kNotifyNever = 1u << 0,
    kNotifySuccess = 1u << 1,
    kNotifyFailure = 1u << 2,
    kNotifyDelay = 1u << 3,
};

struct Orcpt {
    std::string addr_type;  // e.g. "rfc822", as sent
    std::string address;    // xtext-decoded
    friend bool operator==(const Orcpt&, const Orcpt&) = default;
};

struct RcptParams {
    uint8_t notify = 0;  // 0: no NOTIFY parameter
    std::optional<Orcpt> orcpt;
    friend bool operator==(const RcptParams&, const RcptParams&) = default;
};

// XCLIENT (Postfix XCLIENT_README): attribute names NAME ADDR PORT PROTO HELO
// LOGIN DESTADDR DESTPORT, values xtext-encoded; "[UNAVAILABLE]" and
// "[TEMPUNAVAIL]" say the proxy does not know the value.
struct XClientAttr {
    enum class State { Value, Unavailable, TempUnavailable };
    std::string name;  // upper-cased
    State state = State::Value;
    std::string value;  // decoded, when state == Value
    friend bool operator==(const XClientAttr&, const XClientAttr&) = default;
};

struct Command {
    Verb verb = Verb::Noop;
    // HELO/EHLO argument, as sent; helo_valid says whether it is a domain or
    // address literal per §4.1.1.1 (policy may still accept what is not).
    std::string helo;
    bool helo_valid = false;
    Path path;  // MAIL (reverse-path) and RCPT (forward-path)
    MailParams mail;
    RcptParams rcpt;
    uint64_t chunk_size = 0;  // BDAT
    bool last = false;        // BDAT ... LAST
    // NOOP, VRFY, EXPN, HELP: the rest of the line, trimmed (may be empty
    // for NOOP and HELP).
    std::string argument;
    // AUTH: mechanism, upper-cased, and the initial response as sent ("="
    // means an empty one, RFC 4954 §4); decoding is the SASL layer's job.
    std::string mechanism;
    std::optional<std::string> initial_response;
    std::vector<XClientAttr> xclient;

    friend bool operator==(const Command&, const Command&) = default;
};

using CommandResult = tl::expected<Command, Reply>;

CommandResult parse_command(std::string_view line, const CommandOptions& options = {});

// The client side: a command line (without CRLF) in canonical form, e.g.
// "MAIL FROM:<a@b> SIZE=10 BODY=8BITMIME". For any command parse_command
// accepted, parse_command(format_command(c)) gives `c` back. The caller
// supplies only parameters the server offered (Capabilities).
std::string format_command(const Command& command);

// RFC 3339 §5.6 date-time → Unix seconds (fractions dropped). Exposed for the
// FUTURERELEASE capability and tests.
std::optional<int64_t> parse_rfc3339(std::string_view text) noexcept;
// Unix seconds → "YYYY-MM-DDTHH:MM:SSZ" (years 0000-9999).
std::string format_rfc3339(int64_t unix_seconds);

}  // namespace yubin::smtp
