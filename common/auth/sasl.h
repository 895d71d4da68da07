// SASL mechanisms PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login) as
// sans-I/O exchanges shared by smtpd (RFC 4954), imapd (AUTHENTICATE) and
// pop3d (RFC 5034). An exchange is fed the client's base64 responses and
// yields either a challenge to send, a completed credential pair, or an
// error. Verifying the password is the caller's job (on the thread pool).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/base/error.h"

namespace yubin::auth {

struct Credentials {
    std::string authzid;  // requested authorization identity; empty = same as authcid
    std::string authcid;  // the user name that authenticates
    std::string password;
};

// Decodes a PLAIN message (already base64-decoded): authzid NUL authcid NUL passwd.
[[nodiscard]] Result<Credentials> parse_plain(std::string_view message);

enum class SaslMechanism { Plain, Login };
std::optional<SaslMechanism> sasl_mechanism_from_name(std::string_view name);

class SaslExchange {
public:
    enum class Status {
        Challenge,  // send challenge() (base64) to the client, feed its answer
        Done,       // credentials() is ready
        Failed,     // error() says why; the protocol answers with its failure reply
        Cancelled,  // the client sent "*" (RFC 4954 §4): answer 501
    };

    explicit SaslExchange(SaslMechanism mechanism);

    // Starts the exchange. `initial_response` is the base64 text given with the
    // command (SASL-IR), if any; "=" means an empty initial response (RFC 4954 §4).
    Status start(std::optional<std::string_view> initial_response);
    // Feeds one client line (base64, without CRLF).
    Status feed(std::string_view line);

    const std::string& challenge() const { return challenge_; }  // base64, may be empty
    const Credentials& credentials() const { return credentials_; }
    const std::string& error() const { return error_; }

private:
    Status take_plain(std::string_view base64);
    Status fail_with(std::string message);

    SaslMechanism mechanism_;
    int step_ = 0;
    std::string challenge_;
    Credentials credentials_;
    std::string error_;
};

}  // namespace yubin::auth
