#include "common/io/tls_context.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/base/strings.h"

namespace yubin::io {

std::string openssl_errors() {
    std::string out;
    char buf[256];
    while (unsigned long e = ERR_get_error()) {
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) {
            out += "; ";
        }
        out += buf;
    }
    return out.empty() ? std::string("unknown OpenSSL error") : out;
}

namespace {

int to_openssl(TlsVersion v) {
    switch (v) {
        case TlsVersion::Tls10:
            return TLS1_VERSION;
        case TlsVersion::Tls11:
            return TLS1_1_VERSION;
        case TlsVersion::Tls12:
            return TLS1_2_VERSION;
        case TlsVersion::Tls13:
            return TLS1_3_VERSION;
    }
    return TLS1_2_VERSION;
}

struct X509Deleter {
    void operator()(X509* x) const noexcept { X509_free(x); }
};
struct GeneralNamesDeleter {
    void operator()(GENERAL_NAMES* g) const noexcept { GENERAL_NAMES_free(g); }
};

// The DNS names a certificate is valid for: its dNSName SANs, or its CN when
// it has none (RFC 6125 §6.4.4 allows the CN only in that case).
std::vector<std::string> certificate_names(X509* cert) {
    std::vector<std::string> names;
    std::unique_ptr<GENERAL_NAMES, GeneralNamesDeleter> sans(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
    if (sans) {
        for (int i = 0; i < sk_GENERAL_NAME_num(sans.get()); ++i) {
            const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans.get(), i);
            if (gn->type == GEN_DNS) {
                const ASN1_IA5STRING* s = gn->d.dNSName;
                names.push_back(to_lower(
                    std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                     static_cast<size_t>(ASN1_STRING_length(s)))));
            }
        }
    }
    if (names.empty()) {
        X509_NAME* subject = X509_get_subject_name(cert);
        char cn[256];
        int n = X509_NAME_get_text_by_NID(subject, NID_commonName, cn, sizeof cn);
        if (n > 0) {
            names.push_back(to_lower(std::string_view(cn, static_cast<size_t>(n))));
        }
    }
    return names;
}

bool wildcard_matches(std::string_view pattern, std::string_view name) {
    // "*.example.org" covers "a.example.org" but neither "example.org" nor
    // "a.b.example.org" (RFC 6125 §6.4.3).
    if (pattern.size() < 3 || pattern.substr(0, 2) != "*.") {
        return false;
    }
    size_t dot = name.find('.');
    if (dot == std::string_view::npos || dot == 0) {
        return false;
    }
    return iequals(name.substr(dot), pattern.substr(1));
}

// SNI (RFC 6066 §3): runs during the ClientHello; switches the SSL to the
// certificate chosen for the name. Called from C: must not throw.
int servername_callback(SSL* ssl, int* /*alert*/, void* arg) noexcept {
    try {
        const auto* ctx = static_cast<const TlsContext*>(arg);
        const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        if (name == nullptr || ctx == nullptr) {
            return SSL_TLSEXT_ERR_OK;
        }
        size_t i = ctx->select(name);
        if (i != 0) {
            SSL_set_SSL_CTX(ssl, ctx->ssl_ctx_at(i));
        }
        return SSL_TLSEXT_ERR_OK;
    } catch (...) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
}

Result<SslCtxPtr> new_ctx(bool server, TlsVersion min, TlsVersion max,
                          const std::string& cipher_list) {
    ERR_clear_error();
    SslCtxPtr ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
    if (!ctx) {
        return fail(ErrorCode::Tls, "SSL_CTX_new: " + openssl_errors());
    }
    if (SSL_CTX_set_min_proto_version(ctx.get(), to_openssl(min)) != 1 ||
        SSL_CTX_set_max_proto_version(ctx.get(), to_openssl(max)) != 1) {
        return fail(ErrorCode::Tls, "TLS version range: " + openssl_errors());
    }
    if (!cipher_list.empty() && SSL_CTX_set_cipher_list(ctx.get(), cipher_list.c_str()) != 1) {
        return fail(ErrorCode::Invalid, "cipher list '" + cipher_list + "': " + openssl_errors());
    }
    // Compression invites CRIME; renegotiation is not needed by mail protocols.
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                       SSL_OP_CIPHER_SERVER_PREFERENCE);
    // The engine writes records into a memory BIO that may be momentarily
    // full: let SSL_write return partial counts and be retried from a moved
    // buffer.
    SSL_CTX_set_mode(ctx.get(),
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ctx;
}

}  // namespace

size_t TlsContext::select(std::string_view server_name) const {
    for (size_t i = 0; i < entries_.size(); ++i) {
        for (const std::string& n : entries_[i].names) {
            if (iequals(n, server_name)) {
                return i;
            }
        }
    }
    for (size_t i = 0; i < entries_.size(); ++i) {
        for (const std::string& n : entries_[i].names) {
            if (wildcard_matches(n, server_name)) {
                return i;
            }
        }
    }
    return 0;
}

Result<std::shared_ptr<const TlsContext>> TlsContext::server(const TlsServerOptions& options) {
    if (options.certs.empty()) {
        return fail(ErrorCode::Invalid, "TLS server context needs at least one certificate");
    }
    std::shared_ptr<TlsContext> out(new TlsContext());
    out->server_ = true;
    for (const CertKeyFiles& files : options.certs) {
        auto ctx = new_ctx(true, options.min_version, options.max_version, options.cipher_list);
        if (!ctx) {
            return fail(ctx.error());
        }
        SSL_CTX* c = ctx->get();
        if (SSL_CTX_use_certificate_chain_file(c, files.cert_chain_file.c_str()) != 1) {
            return fail(ErrorCode::Invalid,
                        "certificate " + files.cert_chain_file + ": " + openssl_errors());
        }
        if (SSL_CTX_use_PrivateKey_file(c, files.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
            return fail(ErrorCode::Invalid, "key " + files.key_file + ": " + openssl_errors());
        }
        if (SSL_CTX_check_private_key(c) != 1) {
            return fail(ErrorCode::Invalid, "key " + files.key_file + " does not match " +
                                                files.cert_chain_file + ": " + openssl_errors());
        }
        // Built-in DH groups sized to the key, so the DHE suites in the list
        // work without a dhparam file.
        SSL_CTX_set_dh_auto(c, 1);
        static const unsigned char kSessionContext[] = "yubin";
        SSL_CTX_set_session_id_context(c, kSessionContext, sizeof kSessionContext - 1);
        Entry entry;
        entry.names = certificate_names(SSL_CTX_get0_certificate(c));
        entry.ctx = std::move(*ctx);
        out->entries_.push_back(std::move(entry));
    }
    // Only the default context sees the ClientHello, so only it needs the
    // callback; the pointer stays valid because engines hold the context.
    SSL_CTX_set_tlsext_servername_callback(out->entries_.front().ctx.get(), servername_callback);
    SSL_CTX_set_tlsext_servername_arg(out->entries_.front().ctx.get(), out.get());
    return std::shared_ptr<const TlsContext>(std::move(out));
}

Result<std::shared_ptr<const TlsContext>> TlsContext::client(const TlsClientOptions& options) {
    auto ctx = new_ctx(false, options.min_version, options.max_version, options.cipher_list);
    if (!ctx) {
        return fail(ctx.error());
    }
    SSL_CTX* c = ctx->get();
    if (options.use_system_cas && SSL_CTX_set_default_verify_paths(c) != 1) {
        return fail(ErrorCode::Tls, "system CA store: " + openssl_errors());
    }
    if (!options.ca_file.empty() &&
        SSL_CTX_load_verify_locations(c, options.ca_file.c_str(), nullptr) != 1) {
        return fail(ErrorCode::Invalid, "CA file " + options.ca_file + ": " + openssl_errors());
    }
    // Without `verify` the chain and name are still checked and the result
    // reported (TlsInfo), so the caller's policy (e.g. MTA-STS, DANE, or
    // opportunistic TLS per RFC 7435) decides what to do with it.
    SSL_CTX_set_verify(c, options.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
    std::shared_ptr<TlsContext> out(new TlsContext());
    out->server_ = false;
    out->verify_ = options.verify;
    Entry entry;
    entry.ctx = std::move(*ctx);
    out->entries_.push_back(std::move(entry));
    return std::shared_ptr<const TlsContext>(std::move(out));
}

}  // namespace yubin::io
