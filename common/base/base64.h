// RFC 4648 base64, used by SASL (RFC 4954 §4), MIME transfer decoding and
// DKIM keys. Decoding is strict by default (no whitespace, correct padding)
// because SASL must reject malformed input; MIME callers use the lenient form.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace yubin {

std::string base64_encode(std::string_view data);
std::optional<std::string> base64_decode(std::string_view text);
// Skips whitespace and any non-alphabet byte, tolerates missing padding
// (RFC 2045 §6.8: "any characters outside of the base64 alphabet are to be ignored").
std::string base64_decode_lenient(std::string_view text);

}  // namespace yubin
