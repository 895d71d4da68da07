// Reading passwords for `yubin user add|passwd`: from the terminal with echo
// off (asked twice), or one line from standard input when it is not a
// terminal, so scripts can pipe it. Never from the command line, where it
// would leak into shell history and `ps`.
#pragma once

#include <string>

#include "common/base/error.h"

namespace yubin::cli {

[[nodiscard]] Result<std::string> read_new_password();
[[nodiscard]] Result<std::string> read_password_once(const char* prompt);
// A random password of `length` characters from an unambiguous alphabet.
[[nodiscard]] std::string random_password(size_t length = 20);

}  // namespace yubin::cli
