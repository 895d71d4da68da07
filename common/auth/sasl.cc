#include "common/auth/sasl.h"

#include "common/base/base64.h"
#include "common/base/strings.h"

namespace yubin::auth {

Result<Credentials> parse_plain(std::string_view message) {
    // RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd
    size_t first = message.find('\0');
    if (first == std::string_view::npos) {
        return fail(ErrorCode::Invalid, "PLAIN message without NUL separators");
    }
    size_t second = message.find('\0', first + 1);
    if (second == std::string_view::npos || message.find('\0', second + 1) != std::string_view::npos) {
        return fail(ErrorCode::Invalid, "PLAIN message needs exactly two NUL separators");
    }
    Credentials c;
    c.authzid = std::string(message.substr(0, first));
    c.authcid = std::string(message.substr(first + 1, second - first - 1));
    c.password = std::string(message.substr(second + 1));
    if (c.authcid.empty() || c.authcid.size() > 255 || c.password.size() > 255 ||
        c.authzid.size() > 255) {
        return fail(ErrorCode::Invalid, "PLAIN identity or password empty or too long");
    }
    return c;
}

std::optional<SaslMechanism> sasl_mechanism_from_name(std::string_view name) {
    if (iequals(name, "PLAIN")) {
        return SaslMechanism::Plain;
    }
    if (iequals(name, "LOGIN")) {
        return SaslMechanism::Login;
    }
    return std::nullopt;
}

SaslExchange::SaslExchange(SaslMechanism mechanism) : mechanism_(mechanism) {}

SaslExchange::Status SaslExchange::fail_with(std::string message) {
    error_ = std::move(message);
    return Status::Failed;
}

SaslExchange::Status SaslExchange::take_plain(std::string_view base64) {
    auto decoded = base64_decode(base64);
    if (!decoded) {
        return fail_with("invalid base64");
    }
    auto creds = parse_plain(*decoded);
    if (!creds) {
        return fail_with(creds.error().message);
    }
    credentials_ = std::move(*creds);
    return Status::Done;
}

SaslExchange::Status SaslExchange::start(std::optional<std::string_view> initial_response) {
    step_ = 1;
    if (mechanism_ == SaslMechanism::Plain) {
        if (initial_response) {
            if (*initial_response == "=") {
                return fail_with("empty PLAIN response");
            }
            return take_plain(*initial_response);
        }
        challenge_.clear();  // PLAIN's server challenge is empty ("334 ")
        return Status::Challenge;
    }
    // LOGIN: the initial response, if any, is the user name.
    if (initial_response && *initial_response != "=") {
        auto user = base64_decode(*initial_response);
        if (!user || user->empty()) {
            return fail_with("invalid base64 user name");
        }
        credentials_.authcid = std::move(*user);
        step_ = 2;
        challenge_ = base64_encode("Password:");
        return Status::Challenge;
    }
    challenge_ = base64_encode("Username:");
    return Status::Challenge;
}

SaslExchange::Status SaslExchange::feed(std::string_view line) {
    if (line == "*") {
        return Status::Cancelled;
    }
    if (mechanism_ == SaslMechanism::Plain) {
        if (step_ != 1) {
            return fail_with("unexpected response");
        }
        step_ = 3;
        return take_plain(line);
    }
    auto decoded = base64_decode(line);
    if (!decoded) {
        return fail_with("invalid base64");
    }
    if (step_ == 1) {
        if (decoded->empty() || decoded->size() > 255) {
            return fail_with("empty or overlong user name");
        }
        credentials_.authcid = std::move(*decoded);
        step_ = 2;
        challenge_ = base64_encode("Password:");
        return Status::Challenge;
    }
    if (step_ == 2) {
        if (decoded->size() > 255) {
            return fail_with("overlong password");
        }
        credentials_.password = std::move(*decoded);
        step_ = 3;
        return Status::Done;
    }
    return fail_with("unexpected response");
}

}  // namespace yubin::auth
