// The MIME part tree: what the streaming parser (mime_parser.h) produces once
// per message at delivery, what the store keeps (serialize.h), and what IMAP
// builds ENVELOPE and BODYSTRUCTURE from (RFC 3501 §7.4.2, RFC 9051 §7.5.2)
// without re-reading the message.
//
// Ownership: a PartTree is a plain value; it owns all its strings. It holds no
// pointer into the message bytes, only offsets relative to the first byte of
// the message as stored. Any thread may use a tree; it is not shared.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace yubin::mime {

// One Content-Type / Content-Disposition parameter. RFC 2231 continuations
// (name*0, name*1*, ...) are already joined and the charset decoded to UTF-8;
// `extended` tells that the value came in RFC 2231 form, with its `charset`
// and `language` (both empty otherwise) and `rfc2231`, the joined value
// re-encoded as one RFC 2231 §4 extended value (charset'language'%XX...) in
// the original charset, for IMAP to send as the parameter "name*" in
// BODYSTRUCTURE where it wants the RFC 2231 form (docs/mime.md).
struct Param {
    std::string name;   // lower-cased
    std::string value;  // quotes removed; UTF-8 when extended
    bool extended = false;
    std::string charset;  // as written
    std::string language;
    std::string rfc2231;

    bool operator==(const Param&) const = default;
};

// One entry of an address list, flattened the way IMAP ENVELOPE sends it
// (RFC 3501 §7.4.2): a group is a GroupStart entry (mailbox = group name),
// its members, then a GroupEnd entry. Strings are raw (RFC 2047 words not
// decoded: IMAP sends them as they are; display code calls
// decode_encoded_words()). An empty string stands for NIL.
struct Address {
    enum class Kind : uint8_t { Mailbox = 0, GroupStart = 1, GroupEnd = 2 };
    Kind kind = Kind::Mailbox;
    std::string name;     // display name, quotes removed, runs of spaces kept as one
    std::string route;    // obsolete source route "@a,@b" (RFC 5322 §4.4)
    std::string mailbox;  // local part (kept quoted if it was quoted); group name for GroupStart
    std::string host;     // domain; empty when missing

    bool operator==(const Address&) const = default;
};

// The header fields IMAP ENVELOPE needs, of one message (the top-level one or
// one encapsulated in message/rfc822). Raw values are unfolded (line breaks
// removed, the whitespace after them kept) and trimmed; nullopt when the field
// is absent. Only the first occurrence of each field counts.
struct Envelope {
    std::optional<std::string> date;
    std::optional<std::string> subject;
    std::optional<std::string> from;
    std::optional<std::string> sender;
    std::optional<std::string> reply_to;
    std::optional<std::string> to;
    std::optional<std::string> cc;
    std::optional<std::string> bcc;
    std::optional<std::string> in_reply_to;
    std::optional<std::string> message_id;

    std::vector<Address> from_addrs;
    std::vector<Address> sender_addrs;
    std::vector<Address> reply_to_addrs;
    std::vector<Address> to_addrs;
    std::vector<Address> cc_addrs;
    std::vector<Address> bcc_addrs;

    bool operator==(const Envelope&) const = default;
};

// No tree is ever deeper than this (ParserLimits::max_depth is clamped to
// it; deserialize() rejects deeper trees), so walking a tree recursively is
// safe.
inline constexpr uint32_t kMaxTreeDepth = 256;

// Bits in PartTree::limits_hit and Part::flags.
enum PartFlag : uint32_t {
    kFlagNone = 0,
    kFlagHeaderTruncated = 1u << 0,       // header longer than max_header_size: the rest not parsed
    kFlagDepthLimit = 1u << 1,            // would have descended, but max_depth was reached
    kFlagPartLimit = 1u << 2,             // max_parts reached: no more children made
    kFlagBoundaryTooLong = 1u << 3,       // boundary longer than max_boundary_length
    kFlagMissingBoundary = 1u << 4,       // multipart without a usable boundary parameter
    kFlagMissingFinalBoundary = 1u << 5,  // multipart ended without its close delimiter
    kFlagNoHeaderEnd = 1u << 6,           // header not ended by an empty line
    kFlagHasNul = 1u << 7,                // NUL byte in header or body
    kFlagBareLf = 1u << 8,                // at least one line ended by LF without CR
    kFlagEightBitHeader = 1u << 9,        // a byte >= 0x80 in the header
};

// One MIME entity. Offsets are byte offsets from the start of the message;
// the header includes the empty line that ends it; the body runs to the end
// of the message, or to just before the CRLF (or LF) that precedes the next
// boundary line (RFC 2046 §5.1.1: that line break belongs to the boundary).
struct Part {
    int32_t parent = -1;             // index in PartTree::parts; -1 for the root
    std::vector<uint32_t> children;  // indices, in message order

    uint64_t header_offset = 0;
    uint64_t header_size = 0;
    uint64_t header_lines = 0;    // LF bytes in the header
    uint64_t header_bare_lf = 0;  // LF bytes not preceded by CR in the header
    uint64_t body_offset = 0;
    uint64_t body_size = 0;
    uint64_t body_lines = 0;    // LF bytes in the body (what Dovecot reports)
    uint64_t body_bare_lf = 0;  // LF bytes not preceded by CR in the body
    // Sizes as IMAP must report them (every line ending sent as CRLF):
    // size + bare_lf. Kept as two numbers so the stored bytes stay exact.

    // Content-Type, lower-cased, with the RFC 2045 §5.2 default
    // (text/plain; charset=us-ascii) or, inside multipart/digest,
    // message/rfc822 (RFC 2046 §5.1.5) when absent or unparseable.
    std::string type = "text";
    std::string subtype = "plain";
    std::vector<Param> params;
    bool content_type_given = false;  // a parseable Content-Type field was present

    std::optional<std::string> disposition;  // lower-cased
    std::vector<Param> disposition_params;
    std::vector<std::string> language;  // Content-Language tags, as given
    std::optional<std::string> location;
    std::optional<std::string> content_id;
    std::optional<std::string> description;        // raw (RFC 2047 words not decoded)
    std::optional<std::string> transfer_encoding;  // lower-cased token
    std::optional<std::string> md5;

    // Set on the root and on the child of every message/rfc822 or
    // message/global part: the fields of that (encapsulated) message.
    std::optional<Envelope> envelope;

    uint32_t flags = kFlagNone;  // PartFlag bits about this part

    uint64_t header_virtual_size() const { return header_size + header_bare_lf; }
    uint64_t body_virtual_size() const { return body_size + body_bare_lf; }
    bool is_multipart() const { return type == "multipart"; }
    bool is_message() const {
        return type == "message" && (subtype == "rfc822" || subtype == "global");
    }
    // The value of a Content-Type parameter, or nullptr.
    const std::string* param(std::string_view name) const;

    bool operator==(const Part&) const = default;
};

// The whole tree in pre-order: parts[0] is the message itself, and every
// part comes after its parent. A message/rfc822 part has exactly one child
// (the encapsulated message, whose header starts at the parent's body).
struct PartTree {
    std::vector<Part> parts;
    uint64_t message_size = 0;
    uint64_t message_lines = 0;       // LF bytes in the whole message
    uint32_t limits_hit = kFlagNone;  // union of all parts' flags

    const Part& root() const { return parts.front(); }
    bool operator==(const PartTree&) const = default;
};

}  // namespace yubin::mime
