// Shared helpers for the io tests: throwaway certificates made with the
// openssl CLI in a temporary directory, and running a Loop until a condition.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "common/io/loop.h"

namespace yubin::io::testing {

// Certificates (EC P-256, fast to make), all under one temp directory:
//   ca.crt         the test CA
//   server.crt/key mail.example.test, localhost, IP 127.0.0.1 (signed by the CA)
//   other.crt/key  other.test, *.other.test (signed by the CA)
//   evil.crt/key   mail.example.test signed by an unrelated CA
class TestCerts {
public:
    static const TestCerts& get() {
        static TestCerts certs;
        return certs;
    }
    std::string path(const std::string& name) const { return (dir_ / name).string(); }

private:
    TestCerts() {
        char tmpl[] = "/tmp/yubin-io-certs-XXXXXX";
        const char* d = ::mkdtemp(tmpl);
        if (d == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        dir_ = d;
        const std::string q = "cd '" + dir_.string() + "' && ";
        const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        auto make_ca = [&](const std::string& name, const std::string& cn) {
            run(q + "openssl req -x509 " + ec + " -keyout " + name + ".key -out " + name +
                ".crt -days 2 -subj '/CN=" + cn +
                "' -addext basicConstraints=critical,CA:TRUE "
                "-addext keyUsage=critical,keyCertSign,cRLSign");
        };
        auto make_leaf = [&](const std::string& name, const std::string& ca, const std::string& cn,
                             const std::string& sans) {
            run(q + "printf 'subjectAltName=" + sans +
                "\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > " + name +
                ".ext && openssl req " + ec + " -keyout " + name + ".key -out " + name +
                ".csr -subj '/CN=" + cn + "' && openssl x509 -req -in " + name + ".csr -CA " + ca +
                ".crt -CAkey " + ca + ".key -CAcreateserial -out " + name +
                ".crt -days 2 -extfile " + name + ".ext");
        };
        make_ca("ca", "Yubin Test CA");
        make_ca("evilca", "Evil CA");
        make_leaf("server", "ca", "mail.example.test",
                  "DNS:mail.example.test,DNS:localhost,IP:127.0.0.1");
        make_leaf("other", "ca", "other.test", "DNS:other.test,DNS:*.other.test");
        make_leaf("evil", "evilca", "mail.example.test", "DNS:mail.example.test");
    }
    ~TestCerts() {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    static void run(const std::string& cmd) {
        std::string full = "(" + cmd + ") >/dev/null 2>&1";
        if (std::system(full.c_str()) != 0) {
            throw std::runtime_error("failed: " + cmd);
        }
    }
    std::filesystem::path dir_;
};

// Runs the loop until pred() holds or timeout_ms passes; returns pred().
// A ticking timer keeps run_once from sleeping forever while other threads
// (test clients) do their part.
inline bool run_until(Loop& loop, const std::function<bool()>& pred, uint64_t timeout_ms = 5000) {
    Timer tick(loop, [] {});
    tick.start(5, 5);
    uint64_t start = loop.now_ms();
    while (!pred()) {
        if (loop.now_ms() - start > timeout_ms) {
            return pred();
        }
        loop.run_once(true);
    }
    return true;
}

}  // namespace yubin::io::testing
