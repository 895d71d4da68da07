// yubin's configuration: typed structs loaded from one TOML file (conf/yubin.toml,
// /etc/yubin/yubin.toml), validated against the schema in schema.cc.
//
// Ownership: a load returns a fresh immutable snapshot, shared_ptr<const Config>.
// A daemon keeps the current snapshot and swaps it on SIGHUP; sessions that
// started under the old snapshot may keep a reference to it (STYLE.md).
// Threads: every function here is reentrant and may be called from any thread.
// Loading reads the file, may resolve the host name (hostname = "") and asks
// OpenSSL to check the cipher list: measured 0.4 ms for conf/yubin.toml (the
// first load in a process about 6 ms, OpenSSL initialising), so a SIGHUP
// reload on the loop thread is fine.
//
// Errors: a failed load returns one Error (code Invalid, or Io when the file
// cannot be read) whose message holds one line per problem, sorted by line,
// each `file:line: section.key: problem`. Every problem is reported, not just
// the first; a TOML syntax error stops parsing, so it is reported alone.
//
// To add a key: add the member to the struct below and one row to the table in
// schema.cc, then run `yubin_config_gen <source dir>` to regenerate
// conf/yubin.toml and the reference in docs/configuration.md (a unit test fails
// until you do).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/error.h"

namespace yubin::config {

enum class LogLevel { Trace, Debug, Info, Warn, Error };
enum class LogFormat { Text, Json };
enum class TlsVersion { V1_2, V1_3 };

// A numeric IP address and port, e.g. from "0.0.0.0:25" or "[::1]:2525". Host
// names are not accepted: listeners bind to addresses, and resolving a name
// for the DNS server list would need DNS.
struct SocketAddress {
    std::string ip;  // textual, without brackets: "0.0.0.0", "::1"
    uint16_t port = 0;
    bool ipv6 = false;

    std::string to_string() const;  // "0.0.0.0:25", "[::1]:2525"
    bool operator==(const SocketAddress&) const = default;
};

struct ServerConfig {
    std::string hostname;   // never empty after a load: "" in the file = this machine's FQDN
    std::string user;       // after binding, a daemon started as root switches to this user
    std::string group;      // "" = the user's primary group, looked up when dropping privileges
    std::string state_dir;  // absolute after a load
    std::chrono::seconds shutdown_timeout{0};
};

struct LogConfig {
    LogLevel level = LogLevel::Info;
    LogFormat format = LogFormat::Text;
    std::string file;  // absolute after a load, or "" for stderr
};

struct StoreConfig {
    std::string path;  // absolute after a load
    uint64_t map_size_mb = 0;
    uint32_t max_readers = 0;
    uint64_t large_body_kb = 0;
    std::chrono::seconds reader_check_interval{0};
};

struct TlsCertPair {
    std::string cert;  // PEM, absolute after a load
    std::string key;   // PEM, absolute after a load
    bool operator==(const TlsCertPair&) const = default;
};

struct TlsConfig {
    std::string cert;
    std::string key;
    TlsVersion min_version = TlsVersion::V1_2;
    std::string ciphers;           // OpenSSL cipher list for TLS 1.2 (1.3 suites are fixed)
    std::vector<TlsCertPair> sni;  // extra certificates, chosen by the client's SNI name
};

struct DnsConfig {
    std::vector<SocketAddress> servers;  // empty = the servers in /etc/resolv.conf
    uint32_t timeout_ms = 0;
    uint32_t tries = 0;
};

struct SmtpdConfig {
    std::vector<SocketAddress> mx;           // port 25, RFC 5321
    std::vector<SocketAddress> submission;   // port 587, STARTTLS, RFC 6409
    std::vector<SocketAddress> submissions;  // port 465, implicit TLS, RFC 8314
    uint32_t max_connections = 0;            // per listener
    uint32_t max_connections_per_ip = 0;
    std::chrono::seconds idle_timeout{0};
    uint32_t max_line_length = 0;
    uint64_t max_message_size = 0;
    uint32_t max_recipients = 0;
};

struct ImapdConfig {
    std::vector<SocketAddress> imap;   // port 143, STARTTLS
    std::vector<SocketAddress> imaps;  // port 993, implicit TLS
    uint32_t max_connections = 0;
    uint32_t max_connections_per_ip = 0;
    std::chrono::seconds idle_timeout{0};
    uint32_t max_line_length = 0;
};

struct Pop3dConfig {
    std::vector<SocketAddress> pop3;   // port 110, STLS
    std::vector<SocketAddress> pop3s;  // port 995, implicit TLS
    uint32_t max_connections = 0;
    uint32_t max_connections_per_ip = 0;
    std::chrono::seconds idle_timeout{0};
    uint32_t max_line_length = 0;
    bool allow_plaintext_auth_from_loopback = false;  // USER/PASS/AUTH without TLS on 127/8, ::1
    uint32_t max_errors = 0;                          // bad commands before closing; 0 = no limit
    std::chrono::seconds auth_failure_delay{0};       // first failed login; doubles after each
    std::string expire;                               // EXPIRE capability argument; "" = none
    std::chrono::seconds login_delay{0};              // LOGIN-DELAY; 0 = not announced
};

struct Config {
    ServerConfig server;
    LogConfig log;
    StoreConfig store;
    TlsConfig tls;
    DnsConfig dns;
    SmtpdConfig smtpd;
    ImapdConfig imapd;
    Pop3dConfig pop3d;

    std::string source;  // the file it was loaded from, or the name given for a string
};

struct LoadOptions {
    // Directory that relative paths in [server], [log] and [tls] resolve
    // against. load_config_file sets it to the file's directory; for
    // load_config_string, "" means the current working directory.
    std::string base_dir;
};

// Loads and validates a file. Errors name the file as `path` was given.
[[nodiscard]] Result<std::shared_ptr<const Config>> load_config_file(const std::string& path);

// Loads and validates a TOML document held in memory; errors name it `name_for_errors`.
[[nodiscard]] Result<std::shared_ptr<const Config>> load_config_string(
    std::string_view toml, std::string_view name_for_errors, const LoadOptions& options = {});

// The config file to use: the --config value if given, else conf/yubin.toml
// if it exists in the current directory, else /etc/yubin/yubin.toml.
std::string find_config_path(std::string_view flag_value);

// Renders a config as a TOML document, every key with a one-line comment. The
// result loads back into an equal config.
std::string render_config_toml(const Config& config);

// The documented default config, i.e. the content of conf/yubin.toml.
std::string default_config_toml();

// The quick-start config `yubin run` writes to var/yubin.toml: state in
// `state_dir_abs`, high ports on 127.0.0.1 and ::1, `user` as the user (the
// current user, so no privilege drop), self-signed cert under state_dir/tls.
std::string quickstart_config_toml(const std::string& state_dir_abs, const std::string& user);

// The key reference in Markdown (the generated part of docs/configuration.md).
std::string config_reference_markdown();

// Keys whose value differs between two configs and that a reload cannot apply
// (listeners, store path, user...), as "section.key". A daemon logs these on
// SIGHUP and keeps running with the old value until restarted.
std::vector<std::string> restart_required_changes(const Config& running, const Config& reloaded);

std::string_view log_level_name(LogLevel level) noexcept;

}  // namespace yubin::config
