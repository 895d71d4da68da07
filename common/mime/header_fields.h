// Parsers for the structured header fields the part tree needs: header
// splitting and unfolding (RFC 5322 §2.2), Content-Type and
// Content-Disposition with parameters (RFC 2045 §5.1, RFC 2183, RFC 2231
// continuations and charsets), and address lists (RFC 5322 §3.4).
//
// All are pure functions over a string; none fails: real mail is full of
// garbage, and a best-effort structure is worth more than an error.
// Any thread may call them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/mime/part_tree.h"

namespace yubin::mime {

struct HeaderField {
    std::string_view name;  // as written, trimmed; empty for a line without a colon
    std::string value;      // unfolded (CR and LF removed) and trimmed
};

// Splits a raw header block (lines ending in CRLF or LF; the empty line may
// or may not be included) into fields. A continuation line (starting with
// space or tab) extends the previous field; a line without a colon becomes a
// field with an empty name, so callers ignore it.
std::vector<HeaderField> split_header_fields(std::string_view header);

// Removes CR and LF bytes (RFC 5322 §2.2.3 unfolding) and trims.
std::string unfold(std::string_view value);

// Parameters after the first ";" of a Content-Type or Content-Disposition
// value, with RFC 2231 continuations joined and extended values decoded.
std::vector<Param> parse_params(std::string_view text);

struct ContentType {
    std::string type;     // lower-cased
    std::string subtype;  // lower-cased
    std::vector<Param> params;
};
// nullopt when the value has no "type/subtype" (the caller applies the
// RFC 2045 §5.2 default).
std::optional<ContentType> parse_content_type(std::string_view value);

struct ContentDisposition {
    std::string type;  // lower-cased
    std::vector<Param> params;
};
std::optional<ContentDisposition> parse_content_disposition(std::string_view value);

// First token of a value (e.g. Content-Transfer-Encoding), lower-cased, with
// comments removed; nullopt if there is none.
std::optional<std::string> parse_token(std::string_view value);

// Comma-separated language tags of Content-Language (RFC 3282).
std::vector<std::string> parse_language(std::string_view value);

// An address list (RFC 5322 §3.4), tolerant of real-world garbage:
// missing angle brackets, missing domains, unterminated groups or quotes,
// "user@host (Full Name)" comments used as names.
std::vector<Address> parse_address_list(std::string_view value);

}  // namespace yubin::mime
