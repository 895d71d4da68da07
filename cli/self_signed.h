// Generates the quick start's self-signed TLS certificate (RSA 2048, SHA-256,
// SANs for the host name, localhost, 127.0.0.1 and ::1) so `make run` has
// TLS on every port without any operator step. Production deployments use
// a real certificate configured under [tls].
#pragma once

#include <string>
#include <vector>

#include "common/base/error.h"

namespace yubin::cli {

struct SelfSignedRequest {
    std::string common_name;           // e.g. "mail.example.test"
    std::vector<std::string> dns_names;  // subjectAltName DNS entries
    std::vector<std::string> ip_addresses;  // subjectAltName IP entries
    int days = 825;
};

// Writes cert_path (PEM certificate) and key_path (PEM PKCS#8 key, mode 0600).
[[nodiscard]] Result<void> write_self_signed(const SelfSignedRequest& request,
                                             const std::string& cert_path,
                                             const std::string& key_path);

}  // namespace yubin::cli
