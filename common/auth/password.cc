#include "common/auth/password.h"

#include <crypt.h>
#include <openssl/crypto.h>

#include <cstring>
#include <memory>

namespace yubin::auth {
namespace {

// crypt_data is ~32 KiB: heap-allocate it rather than put it on a coroutine
// or thread-pool stack.
std::unique_ptr<crypt_data> new_crypt_data() {
    auto data = std::make_unique<crypt_data>();
    std::memset(data.get(), 0, sizeof(crypt_data));
    return data;
}

}  // namespace

Result<std::string> hash_password(std::string_view password) {
    if (password.find('\0') != std::string_view::npos) {
        return fail(ErrorCode::Invalid, "password contains a NUL byte");
    }
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    // count 0 = libcrypt's default cost for yescrypt; NULL rbytes = read the
    // system's random source.
    if (crypt_gensalt_rn("$y$", 0, nullptr, 0, salt, sizeof salt) == nullptr) {
        return fail(ErrorCode::Internal, std::string("crypt_gensalt_rn: ") + std::strerror(errno));
    }
    auto data = new_crypt_data();
    std::string pw(password);
    const char* out = crypt_rn(pw.c_str(), salt, data.get(), sizeof(crypt_data));
    OPENSSL_cleanse(pw.data(), pw.size());
    if (out == nullptr || out[0] == '*') {
        return fail(ErrorCode::Internal, "crypt_rn failed");
    }
    return std::string(out);
}

bool verify_password(std::string_view password, std::string_view hash) {
    if (hash.empty() || hash[0] != '$' || password.find('\0') != std::string_view::npos ||
        hash.find('\0') != std::string_view::npos) {
        return false;
    }
    auto data = new_crypt_data();
    std::string pw(password);
    std::string setting(hash);
    const char* out = crypt_rn(pw.c_str(), setting.c_str(), data.get(), sizeof(crypt_data));
    OPENSSL_cleanse(pw.data(), pw.size());
    // crypt_rn returns NULL or a string starting with '*' on failure.
    if (out == nullptr || out[0] == '*') {
        return false;
    }
    size_t len = std::strlen(out);
    return len == hash.size() && CRYPTO_memcmp(out, hash.data(), len) == 0;
}

}  // namespace yubin::auth
