// Password hashing for user accounts: libcrypt's yescrypt ("$y$"), the
// default of Debian 12's /etc/shadow. Hashing is deliberately slow (tens of
// milliseconds): daemons must call these on the libuv thread pool, never on
// the loop thread. Both functions are thread-safe (crypt_rn, per-call state).
#pragma once

#include <string>
#include <string_view>

#include "common/base/error.h"

namespace yubin::auth {

// Returns a "$y$..." hash string suitable for the store. Fails only when the
// system's random source or libcrypt fails.
[[nodiscard]] Result<std::string> hash_password(std::string_view password);

// True when `password` matches `hash`. Any hash libcrypt knows is accepted
// (so accounts imported with $6$ or $2b$ hashes keep working); an empty or
// malformed hash never matches. Compares in constant time.
[[nodiscard]] bool verify_password(std::string_view password, std::string_view hash);

}  // namespace yubin::auth
