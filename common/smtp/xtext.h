// xtext (RFC 3461 §4): the encoding ESMTP parameters use to carry arbitrary
// octets in a command line (ENVID, ORCPT, AUTH=, XCLIENT values). Every octet
// outside "!".."~", and "+" and "=" themselves, is written "+XX" (two
// upper-case hex digits).
//
// Pure functions on values; any thread.
#pragma once

#include <string>
#include <string_view>

#include "common/base/error.h"

namespace yubin::smtp {

// Encodes any octet string; the result always decodes back to `raw`.
std::string xtext_encode(std::string_view raw);

// Decodes and validates: a bare octet outside 33..126, a bare "=", or a "+"
// not followed by two hex digits is an error (ErrorCode::Invalid). RFC 3461
// §4 asks for upper-case hex; lower-case is accepted on input because some
// clients send it and nothing is ambiguous about it (be liberal, §4.5 of RFC
// 5321's robustness spirit), but xtext_encode never produces it.
Result<std::string> xtext_decode(std::string_view xtext);

// True if `text` is syntactically valid xtext (same rules as xtext_decode).
bool is_xtext(std::string_view text) noexcept;

}  // namespace yubin::smtp
