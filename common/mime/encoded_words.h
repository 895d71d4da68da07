// Charset conversion and RFC 2047 encoded-word decoding, for SEARCH and for
// display. The parser itself never decodes header values it stores raw (IMAP
// ENVELOPE sends them raw); it only uses charset_to_utf8() for RFC 2231
// parameter values.
//
// Pure functions; any thread may call them. Conversions other than UTF-8,
// US-ASCII and ISO-8859-1 go through glibc's iconv, one iconv_t per call.
#pragma once

#include <string>
#include <string_view>

namespace yubin::mime {

// Converts `bytes` in `charset` (a MIME charset name, any case) to UTF-8,
// never failing: bytes that are invalid in the charset become U+FFFD, and an
// unknown charset is treated as UTF-8 with invalid sequences replaced.
std::string charset_to_utf8(std::string_view charset, std::string_view bytes);

// Replaces every invalid UTF-8 sequence by U+FFFD.
std::string sanitize_utf8(std::string_view bytes);
bool is_valid_utf8(std::string_view bytes) noexcept;

// Decodes RFC 2047 encoded words (B and Q) in an unstructured header value
// and returns UTF-8. Whitespace between two adjacent encoded words is dropped
// (RFC 2047 §6.2); adjacent words in the same charset are joined before
// conversion so a character split across two words survives. The RFC 2231 §5
// language suffix (=?utf-8*en?Q?...?=) is accepted. Tolerant of real mail:
// encoded words glued to other text are decoded too; malformed ones are kept
// as they are. Text outside encoded words is passed through sanitize_utf8().
std::string decode_encoded_words(std::string_view value);

}  // namespace yubin::mime
