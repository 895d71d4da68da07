// Errors as values (STYLE.md): every fallible call returns Result<T>, a
// tl::expected carrying a small error code plus a human message. A protocol
// error is a reply, never an exception; exceptions only at start-up.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include <tl/expected.hpp>

namespace yubin {

enum class ErrorCode {
    Temp,      // try again later (4xx-ish)
    Perm,      // will never work (5xx-ish)
    NotFound,  // the thing asked for does not exist
    Exists,    // the thing to create already exists
    Limit,     // a configured limit was hit
    Io,        // operating-system I/O failure
    Tls,       // TLS handshake or record failure
    Dns,       // resolver failure
    Auth,      // authentication failed
    Invalid,   // malformed input or argument
    Internal,  // a bug or an impossible state
};

std::string_view error_code_name(ErrorCode code) noexcept;

struct Error {
    ErrorCode code = ErrorCode::Internal;
    std::string message;

    std::string to_string() const;
};

template <typename T>
using Result = tl::expected<T, Error>;

// Shorthand for returning a failure: `return fail(ErrorCode::NotFound, "no user");`
inline tl::unexpected<Error> fail(ErrorCode code, std::string message) {
    return tl::unexpected<Error>(Error{code, std::move(message)});
}

inline tl::unexpected<Error> fail(Error error) { return tl::unexpected<Error>(std::move(error)); }

}  // namespace yubin
