#include "cli/self_signed.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace yubin::cli {
namespace {

struct PkeyFree {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
    void operator()(X509* p) const { X509_free(p); }
};
struct BioFree {
    void operator()(BIO* p) const { BIO_free(p); }
};
struct ExtFree {
    void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};

Result<void> add_extension(X509* cert, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    std::unique_ptr<X509_EXTENSION, ExtFree> ext(
        X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
    if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
        return fail(ErrorCode::Tls, "cannot add certificate extension " + value);
    }
    return {};
}

Result<void> write_file(const std::string& path, const std::string& data, mode_t mode) {
    std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        return fail(ErrorCode::Io, tmp + ": " + std::strerror(errno));
    }
    size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            int err = errno;
            ::close(fd);
            return fail(ErrorCode::Io, tmp + ": " + std::strerror(err));
        }
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        return fail(ErrorCode::Io, tmp + ": " + std::strerror(errno));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        return fail(ErrorCode::Io, path + ": " + std::strerror(errno));
    }
    return {};
}

std::string bio_to_string(BIO* bio) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<size_t>(len));
}

}  // namespace

Result<void> write_self_signed(const SelfSignedRequest& request, const std::string& cert_path,
                               const std::string& key_path) {
    std::unique_ptr<EVP_PKEY, PkeyFree> key(EVP_RSA_gen(2048));
    if (!key) {
        return fail(ErrorCode::Tls, "RSA key generation failed");
    }
    std::unique_ptr<X509, X509Free> cert(X509_new());
    if (!cert) {
        return fail(ErrorCode::Tls, "X509_new failed");
    }
    X509_set_version(cert.get(), 2);  // v3
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof serial) != 1) {
        return fail(ErrorCode::Tls, "RAND_bytes failed");
    }
    serial[0] &= 0x7f;  // a positive serial number (RFC 5280 §4.1.2.2)
    BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(request.days) * 86400);
    X509_set_pubkey(cert.get(), key.get());
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>("yubin quick start"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(request.common_name.c_str()),
                               -1, -1, 0);
    X509_set_issuer_name(cert.get(), name);

    std::string san;
    for (const auto& dns : request.dns_names) {
        san += (san.empty() ? "" : ",") + std::string("DNS:") + dns;
    }
    for (const auto& ip : request.ip_addresses) {
        san += (san.empty() ? "" : ",") + std::string("IP:") + ip;
    }
    if (!san.empty()) {
        if (auto r = add_extension(cert.get(), NID_subject_alt_name, san); !r) {
            return r;
        }
    }
    if (auto r = add_extension(cert.get(), NID_basic_constraints, "critical,CA:FALSE"); !r) {
        return r;
    }
    if (auto r = add_extension(cert.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment");
        !r) {
        return r;
    }
    if (auto r = add_extension(cert.get(), NID_ext_key_usage, "serverAuth"); !r) {
        return r;
    }
    if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
        return fail(ErrorCode::Tls, "X509_sign failed");
    }

    std::unique_ptr<BIO, BioFree> key_bio(BIO_new(BIO_s_mem()));
    std::unique_ptr<BIO, BioFree> cert_bio(BIO_new(BIO_s_mem()));
    if (!key_bio || !cert_bio ||
        PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1 ||
        PEM_write_bio_X509(cert_bio.get(), cert.get()) != 1) {
        return fail(ErrorCode::Tls, "PEM encoding failed");
    }
    if (auto r = write_file(key_path, bio_to_string(key_bio.get()), 0600); !r) {
        return r;
    }
    return write_file(cert_path, bio_to_string(cert_bio.get()), 0644);
}

}  // namespace yubin::cli
