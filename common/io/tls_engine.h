// The sans-I/O TLS engine: one SSL object over a BIO pair, with no socket.
// The owner feeds it ciphertext from the network and plaintext from the
// application, calls process(), then takes out ciphertext to send and
// plaintext to deliver. Connection uses it over a TCP stream; tests put two
// engines back to back.
//
// Ownership: the engine owns its SSL and BIOs and keeps its TlsContext alive.
// Threads: one engine is used by one thread at a time (OpenSSL's error queue
// is per thread, so errors are read right where they happen).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "common/base/error.h"
#include "common/io/tls_context.h"

namespace yubin::io {

// What a finished handshake tells, e.g. for Received headers
// (RFC 8314 §4.3 recommends recording the TLS version and cipher).
struct TlsInfo {
    std::string version;         // "TLSv1.3"
    std::string cipher;          // "TLS_AES_256_GCM_SHA384"
    std::string server_name;     // SNI sent by the client (server side) or asked for (client)
    bool peer_verified = false;  // client side: chain and host name verified
    std::string verify_error;    // why not, when peer_verified is false
    std::string peer_subject;    // subject of the peer's certificate, if any
};

struct SslDeleter {
    void operator()(SSL* ssl) const noexcept { SSL_free(ssl); }
};
struct BioDeleter {
    void operator()(BIO* bio) const noexcept { BIO_free(bio); }
};

class TlsEngine {
public:
    // Server side: the context must be a server context.
    static Result<std::unique_ptr<TlsEngine>> server(std::shared_ptr<const TlsContext> ctx);
    // Client side: server_name is sent as SNI (unless it is an IP address)
    // and is the name the peer certificate is verified against.
    static Result<std::unique_ptr<TlsEngine>> client(std::shared_ptr<const TlsContext> ctx,
                                                     std::string_view server_name);
    ~TlsEngine();
    TlsEngine(const TlsEngine&) = delete;
    TlsEngine& operator=(const TlsEngine&) = delete;

    // Ciphertext received from the peer (kept until process() consumes it).
    void feed_ciphertext(std::string_view bytes) { cipher_in_.append(bytes); }
    // Plaintext to send; held until the handshake is done.
    void write_plaintext(std::string_view bytes) { plain_out_.append(bytes); }
    // Ask to send close_notify once pending plaintext has been sent.
    void close() { want_close_ = true; }

    // Drives the handshake and moves bytes until nothing more can move.
    // An error (handshake failure, bad record, failed verification when
    // enforced) is final: the connection must be dropped, after sending
    // take_ciphertext() (it may hold an alert).
    [[nodiscard]] Result<void> process();

    // Bytes to send to the peer / plaintext received, both moved out.
    std::string take_ciphertext() { return std::exchange(cipher_out_, {}); }
    std::string take_plaintext() { return std::exchange(plain_in_, {}); }
    bool has_ciphertext() const { return !cipher_out_.empty(); }
    bool has_plaintext() const { return !plain_in_.empty(); }
    // Plaintext accepted but not yet encrypted (before the handshake ends, or
    // while the BIO is full).
    size_t pending_plaintext() const { return plain_out_.size(); }

    bool handshake_done() const { return handshake_done_; }
    bool peer_closed() const { return peer_closed_; }  // close_notify received
    bool close_sent() const { return close_sent_; }
    bool failed() const { return failed_; }
    // Valid once handshake_done().
    const TlsInfo& info() const { return info_; }

private:
    TlsEngine() = default;
    static Result<std::unique_ptr<TlsEngine>> make(std::shared_ptr<const TlsContext> ctx);
    Result<void> fail_with(std::string what);
    void fill_info();

    std::shared_ptr<const TlsContext> ctx_;
    std::unique_ptr<SSL, SslDeleter> ssl_;
    // The network half of the pair; the SSL owns the other half.
    std::unique_ptr<BIO, BioDeleter> net_bio_;
    bool client_ = false;
    bool handshake_done_ = false;
    bool peer_closed_ = false;
    bool want_close_ = false;
    bool close_sent_ = false;
    bool failed_ = false;
    std::string cipher_in_;
    std::string cipher_out_;
    std::string plain_in_;
    std::string plain_out_;
    TlsInfo info_;
};

}  // namespace yubin::io
