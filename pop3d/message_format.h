// How a stored message goes on the wire in POP3 (RFC 1939 §3): CRLF line
// ends, every line that starts with "." gets one more "." in front (byte
// stuffing), and the text ends with CRLF, so the terminating ".CRLF" can
// follow. The sizes announced by STAT, LIST and "+OK n octets" are those of
// exactly this form (without the terminator), so a client that counts octets
// gets what was promised.
//
// Pure functions on byte strings; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace yubin::pop3d {

// Octets encode_message(message) produces, counted without building it.
uint64_t encoded_size(std::string_view message);

// Appends the wire form of the whole message (without the final ".CRLF").
// A bare LF becomes CRLF, a bare CR is kept as it is (it is not a line end).
void encode_message(std::string_view message, std::string& out);

// TOP (RFC 1939 §7): the header, the blank line after it and at most
// body_lines lines of the body, in the same wire form. A message without a
// blank line is all header and is sent whole.
void encode_top(std::string_view message, uint64_t body_lines, std::string& out);

}  // namespace yubin::pop3d
