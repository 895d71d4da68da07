#include "common/io/tls_engine.h"

#include <arpa/inet.h>

#include <algorithm>
#include <climits>

#include <openssl/err.h>
#include <openssl/x509v3.h>

namespace yubin::io {

namespace {

// Each half of the BIO pair buffers this much; a TLS record is at most ~16 KiB.
constexpr size_t kBioBufferSize = 32 * 1024;

bool is_ip_literal(const std::string& name) {
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, name.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

}  // namespace

TlsEngine::~TlsEngine() = default;

Result<std::unique_ptr<TlsEngine>> TlsEngine::make(std::shared_ptr<const TlsContext> ctx) {
    if (!ctx) {
        return fail(ErrorCode::Invalid, "no TLS context");
    }
    ERR_clear_error();
    std::unique_ptr<TlsEngine> e(new TlsEngine());
    e->ssl_.reset(SSL_new(ctx->ssl_ctx()));
    if (!e->ssl_) {
        return fail(ErrorCode::Tls, "SSL_new: " + openssl_errors());
    }
    BIO* internal = nullptr;
    BIO* network = nullptr;
    if (BIO_new_bio_pair(&internal, kBioBufferSize, &network, kBioBufferSize) != 1) {
        return fail(ErrorCode::Tls, "BIO_new_bio_pair: " + openssl_errors());
    }
    SSL_set_bio(e->ssl_.get(), internal, internal);  // the SSL now owns `internal`
    e->net_bio_.reset(network);
    e->ctx_ = std::move(ctx);
    return e;
}

Result<std::unique_ptr<TlsEngine>> TlsEngine::server(std::shared_ptr<const TlsContext> ctx) {
    if (ctx && !ctx->is_server()) {
        return fail(ErrorCode::Invalid, "TLS server engine needs a server context");
    }
    auto e = make(std::move(ctx));
    if (!e) {
        return e;
    }
    SSL_set_accept_state((*e)->ssl_.get());
    return e;
}

Result<std::unique_ptr<TlsEngine>> TlsEngine::client(std::shared_ptr<const TlsContext> ctx,
                                                     std::string_view server_name) {
    if (ctx && ctx->is_server()) {
        return fail(ErrorCode::Invalid, "TLS client engine needs a client context");
    }
    auto e = make(std::move(ctx));
    if (!e) {
        return e;
    }
    TlsEngine& engine = **e;
    engine.client_ = true;
    SSL* ssl = engine.ssl_.get();
    SSL_set_connect_state(ssl);
    std::string name(server_name);
    engine.info_.server_name = name;
    if (!name.empty()) {
        if (is_ip_literal(name)) {
            // RFC 6066 §3: literal IP addresses are not sent as SNI.
            if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) != 1) {
                return fail(ErrorCode::Invalid, "bad IP address " + name);
            }
        } else {
            if (SSL_set_tlsext_host_name(ssl, name.c_str()) != 1 ||
                SSL_set1_host(ssl, name.c_str()) != 1) {
                return fail(ErrorCode::Invalid,
                            "bad server name " + name + ": " + openssl_errors());
            }
        }
    }
    return e;
}

Result<void> TlsEngine::fail_with(std::string what) {
    failed_ = true;
    std::string message = std::move(what) + ": " + openssl_errors();
    if (client_) {
        long v = SSL_get_verify_result(ssl_.get());
        if (v != X509_V_OK) {
            message += std::string(" (certificate: ") + X509_verify_cert_error_string(v) + ")";
        }
    }
    // Let the alert OpenSSL queued reach the peer.
    size_t pending = BIO_ctrl_pending(net_bio_.get());
    if (pending > 0) {
        std::string buf(pending, '\0');
        int n = BIO_read(net_bio_.get(), buf.data(), static_cast<int>(pending));
        if (n > 0) {
            cipher_out_.append(buf.data(), static_cast<size_t>(n));
        }
    }
    return fail(ErrorCode::Tls, std::move(message));
}

void TlsEngine::fill_info() {
    SSL* ssl = ssl_.get();
    info_.version = SSL_get_version(ssl);
    const char* cipher = SSL_get_cipher_name(ssl);
    info_.cipher = cipher != nullptr ? cipher : "";
    if (!client_) {
        const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        info_.server_name = sni != nullptr ? sni : "";
    }
    X509* peer = SSL_get0_peer_certificate(ssl);
    if (peer != nullptr) {
        char buf[512];
        X509_NAME_oneline(X509_get_subject_name(peer), buf, sizeof buf);
        info_.peer_subject = buf;
    }
    long v = SSL_get_verify_result(ssl);
    info_.peer_verified = peer != nullptr && v == X509_V_OK;
    if (!info_.peer_verified) {
        info_.verify_error =
            peer == nullptr ? "no peer certificate" : X509_verify_cert_error_string(v);
    }
}

Result<void> TlsEngine::process() {
    if (failed_) {
        return fail(ErrorCode::Tls, "TLS engine already failed");
    }
    ERR_clear_error();
    SSL* ssl = ssl_.get();
    BIO* net = net_bio_.get();
    // BIO_s_bio(3): always drain what the SSL wrote before giving it more to
    // read, or both halves can fill up and deadlock.
    auto flush_out = [&]() -> bool {
        bool moved = false;
        while (size_t pending = BIO_ctrl_pending(net)) {
            size_t old = cipher_out_.size();
            cipher_out_.resize(old + pending);
            int n = BIO_read(net, cipher_out_.data() + old, static_cast<int>(pending));
            cipher_out_.resize(old + static_cast<size_t>(std::max(n, 0)));
            if (n <= 0) {
                break;
            }
            moved = true;
        }
        return moved;
    };

    for (;;) {
        bool progress = flush_out();
        if (!cipher_in_.empty()) {
            size_t room = BIO_ctrl_get_write_guarantee(net);
            size_t n = std::min(room, cipher_in_.size());
            if (n > 0) {
                int w = BIO_write(net, cipher_in_.data(), static_cast<int>(n));
                if (w > 0) {
                    cipher_in_.erase(0, static_cast<size_t>(w));
                    progress = true;
                }
            }
        }
        if (!handshake_done_) {
            int r = SSL_do_handshake(ssl);
            if (r == 1) {
                handshake_done_ = true;
                fill_info();
                progress = true;
            } else {
                int err = SSL_get_error(ssl, r);
                if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
                    return fail_with("TLS handshake failed");
                }
            }
        }
        if (handshake_done_) {
            while (!plain_out_.empty()) {
                int len = static_cast<int>(std::min<size_t>(plain_out_.size(), INT_MAX));
                int n = SSL_write(ssl, plain_out_.data(), len);
                if (n > 0) {
                    plain_out_.erase(0, static_cast<size_t>(n));
                    progress = true;
                    flush_out();
                    continue;
                }
                int err = SSL_get_error(ssl, n);
                if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
                    break;
                }
                return fail_with("TLS write failed");
            }
            while (!peer_closed_) {
                char buf[16 * 1024];
                int n = SSL_read(ssl, buf, sizeof buf);
                if (n > 0) {
                    plain_in_.append(buf, static_cast<size_t>(n));
                    progress = true;
                    continue;
                }
                int err = SSL_get_error(ssl, n);
                if (err == SSL_ERROR_ZERO_RETURN) {
                    peer_closed_ = true;
                    progress = true;
                    break;
                }
                if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
                    break;
                }
                return fail_with("TLS read failed");
            }
            if (want_close_ && !close_sent_ && plain_out_.empty()) {
                // One call queues our close_notify; we do not wait for the
                // peer's (RFC 8446 §6.1 allows closing the read side at once).
                SSL_shutdown(ssl);
                close_sent_ = true;
                progress = true;
            }
        }
        if (!progress) {
            break;
        }
    }
    flush_out();
    return {};
}

}  // namespace yubin::io
