#include "common/base/error.h"

namespace yubin {

std::string_view error_code_name(ErrorCode code) noexcept {
    switch (code) {
        case ErrorCode::Temp: return "temporary";
        case ErrorCode::Perm: return "permanent";
        case ErrorCode::NotFound: return "not found";
        case ErrorCode::Exists: return "exists";
        case ErrorCode::Limit: return "limit";
        case ErrorCode::Io: return "io";
        case ErrorCode::Tls: return "tls";
        case ErrorCode::Dns: return "dns";
        case ErrorCode::Auth: return "auth";
        case ErrorCode::Invalid: return "invalid";
        case ErrorCode::Internal: return "internal";
    }
    return "unknown";
}

std::string Error::to_string() const {
    std::string out(error_code_name(code));
    if (!message.empty()) {
        out += ": ";
        out += message;
    }
    return out;
}

}  // namespace yubin
