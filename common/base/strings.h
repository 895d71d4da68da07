// Small ASCII string helpers used by every protocol: mail protocols are
// case-insensitive in ASCII only, so these never consult the C locale.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace yubin {

constexpr char ascii_lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
constexpr char ascii_upper(char c) noexcept {
    return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

std::string to_lower(std::string_view s);
std::string to_upper(std::string_view s);
bool iequals(std::string_view a, std::string_view b) noexcept;
bool istarts_with(std::string_view s, std::string_view prefix) noexcept;
std::string_view trim(std::string_view s) noexcept;  // spaces, tabs, CR, LF
std::vector<std::string_view> split(std::string_view s, char sep);
// Parses a whole string as an unsigned decimal; nullopt on anything else or overflow.
std::optional<uint64_t> parse_u64(std::string_view s) noexcept;

// "local@domain" → domain lower-cased, local kept as given (RFC 5321 §2.4: the
// local part may be case-sensitive; domains never are).
struct AddressParts {
    std::string local;
    std::string domain;
};
std::optional<AddressParts> split_address(std::string_view address);
// Canonical form used as a store key: local part lower-cased too (we treat
// local parts case-insensitively, as every mainstream server does).
std::string canonical_address(std::string_view address);

}  // namespace yubin
