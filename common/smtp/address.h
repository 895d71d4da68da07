// RFC 5321 mailboxes and paths as they appear in MAIL FROM and RCPT TO
// (§4.1.2), with the SMTPUTF8 extension (RFC 6531 §3.3) and the size limits
// of §4.5.3.1. Used by the server to read envelopes and by the client to
// write them back out (Mailbox::to_string quotes the local part if needed).
//
// Parsing is strict about syntax and tolerant only where real servers are,
// through explicit knobs in AddressOptions. Errors come back as Result with
// ErrorCode::Invalid (syntax), ErrorCode::Limit (a §4.5.3.1 limit) or
// ErrorCode::Perm (UTF-8 without SMTPUTF8); the command parser maps them to
// replies.
//
// Pure functions on values; any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/base/error.h"

namespace yubin::smtp {

// RFC 5321 §4.5.3.1.1-3. These are octet counts of the wire form.
inline constexpr size_t kMaxLocalPart = 64;
inline constexpr size_t kMaxDomain = 255;
inline constexpr size_t kMaxPath = 256;  // including "<", ">" and a source route

struct AddressOptions {
    // RFC 6531 §3.3: UTF-8 in the local part and domain only when SMTPUTF8 is
    // in force for this address (the MAIL command carried SMTPUTF8).
    bool smtputf8 = false;
    // "MAIL FROM:user@host": not RFC 5321, sent by some scripts and bots.
    // Rejected unless set.
    bool allow_missing_brackets = false;
    // §4.5.3.1.1 sets 64, but §4.5.3.1 also asks implementations to avoid
    // limits where they can, and real senders exceed it (SRS and BATV
    // rewritten senders, Google Docs notification senders of 80+ octets).
    // A server may raise this; the path limit still bounds the whole.
    size_t max_local_part = kMaxLocalPart;
};

struct Mailbox {
    // The local part with any quoting removed ("a b"@x → `a b`).
    std::string local;
    // The domain as written: a domain name, or an address literal including
    // its brackets ("[192.0.2.1]", "[IPv6:2001:db8::1]").
    std::string domain;
    bool domain_is_literal = false;

    // Wire form: local@domain, the local part re-quoted if it is not a
    // dot-string (RFC 5321 §4.1.2: a quoted form is used only when needed).
    std::string to_string() const;

    friend bool operator==(const Mailbox&, const Mailbox&) = default;
};

struct Path {
    enum class Kind {
        Null,        // "<>" (reverse-path only)
        Postmaster,  // "<Postmaster>" without a domain (RCPT only, §4.1.1.3)
        Mailbox,
    };
    Kind kind = Kind::Null;
    Mailbox mailbox;  // set when kind == Mailbox

    bool is_null() const noexcept { return kind == Kind::Null; }
    // "<>", "<Postmaster>" or "<local@domain>".
    std::string to_string() const;

    friend bool operator==(const Path&, const Path&) = default;
};

// A bare mailbox, "local@domain", no brackets.
Result<Mailbox> parse_mailbox(std::string_view text, const AddressOptions& options = {});

// MAIL FROM argument: "<>" or a Path. A source route ("<@a,@b:user@host>",
// §4.1.2 and Appendix C) is checked for syntax and dropped.
Result<Path> parse_reverse_path(std::string_view text, const AddressOptions& options = {});

// RCPT TO argument: a Path, or "<Postmaster>" (case-insensitive, §4.1.1.3).
Result<Path> parse_forward_path(std::string_view text, const AddressOptions& options = {});

// Given text starting with "<", the index just after the matching ">" (a
// quoted local part may contain ">" and spaces), or npos.
size_t find_path_end(std::string_view text) noexcept;

// Syntax checks that HELO/EHLO and the capability parser also need.
bool is_domain(std::string_view text, bool allow_utf8 = false) noexcept;
bool is_address_literal(std::string_view text) noexcept;  // with brackets
bool is_dot_string(std::string_view text, bool allow_utf8 = false) noexcept;

// Well-formed UTF-8 (no overlong forms, no surrogates, ≤ U+10FFFF).
bool is_valid_utf8(std::string_view text) noexcept;

}  // namespace yubin::smtp
