// TLS configuration shared by many connections: an immutable wrapper around
// OpenSSL SSL_CTX objects. A server context holds one or more certificate/key
// pairs and picks one per handshake from the client's SNI name (exact names
// first, then wildcards, else the first pair). A client context holds the
// trust store and whether to enforce verification.
//
// Ownership: contexts are built once (start-up or config reload) and held as
// std::shared_ptr<const TlsContext>; each TlsEngine keeps a reference, so a
// reload can swap in a new context for NEW connections while existing ones
// keep theirs. Threads: building is done by one thread; a built context is
// only read afterwards (OpenSSL's SSL_CTX is safe to share for SSL_new).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/ssl.h>

#include "common/base/error.h"

namespace yubin::io {

enum class TlsVersion { Tls10, Tls11, Tls12, Tls13 };

// Default TLS 1.2 cipher list: forward secrecy and AEAD only. TLS 1.3 suites
// are OpenSSL's defaults (all AEAD).
inline constexpr std::string_view kDefaultCipherList =
    "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!MD5:!SHA1:!DSS";

struct CertKeyFiles {
    std::string cert_chain_file;  // PEM: leaf first, then intermediates
    std::string key_file;         // PEM private key
};

struct TlsServerOptions {
    std::vector<CertKeyFiles> certs;  // at least one; the first is the default
    TlsVersion min_version = TlsVersion::Tls12;
    TlsVersion max_version = TlsVersion::Tls13;
    std::string cipher_list = std::string(kDefaultCipherList);  // TLS <= 1.2
};

struct TlsClientOptions {
    std::string ca_file;         // PEM bundle; empty = none
    bool use_system_cas = true;  // also trust the system store
    bool verify = false;         // true: fail the handshake on a bad chain/name
    TlsVersion min_version = TlsVersion::Tls12;
    TlsVersion max_version = TlsVersion::Tls13;
    std::string cipher_list;  // empty = OpenSSL default
};

struct SslCtxDeleter {
    void operator()(SSL_CTX* ctx) const noexcept { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

class TlsContext {
public:
    static Result<std::shared_ptr<const TlsContext>> server(const TlsServerOptions& options);
    static Result<std::shared_ptr<const TlsContext>> client(const TlsClientOptions& options);

    bool is_server() const { return server_; }
    bool verify() const { return verify_; }
    // The context SSL objects are created from (the default certificate).
    SSL_CTX* ssl_ctx() const { return entries_.front().ctx.get(); }
    // Index of the certificate pair chosen for an SNI name (0 = default);
    // names compare case-insensitively; "*.example.org" matches exactly one
    // label (RFC 6125 §6.4.3).
    size_t select(std::string_view server_name) const;
    size_t cert_count() const { return entries_.size(); }
    // DNS names (SANs, or the CN when there are none) of pair i.
    const std::vector<std::string>& names(size_t i) const { return entries_.at(i).names; }

    // Internal: the SNI callback switches the SSL to pair i's SSL_CTX.
    SSL_CTX* ssl_ctx_at(size_t i) const { return entries_.at(i).ctx.get(); }

private:
    struct Entry {
        SslCtxPtr ctx;
        std::vector<std::string> names;
    };
    TlsContext() = default;

    bool server_ = false;
    bool verify_ = false;
    std::vector<Entry> entries_;
};

// The text of OpenSSL's error queue (then cleared), for error messages.
std::string openssl_errors();

}  // namespace yubin::io
