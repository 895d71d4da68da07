// The config schema: every section and key yubin reads, in one table.
//
// Adding a key (engineers of smtpd, imapd, pop3d, queue...):
//   1. add the member to the section's struct in config.h;
//   2. add one row below, with the builder matching its type:
//        integer(name, &Struct::member, default, min, max, reload, doc)
//        duration(name, &Struct::member, default_seconds, min, max, reload, doc)
//        boolean / string / path / enumeration / addresses / cert_pairs
//      `doc` is one line; it becomes the comment in conf/yubin.toml and the
//      description in docs/configuration.md. Cite the RFC when a default or a
//      bound comes from one;
//   3. run `build/.../common/config/yubin_config_gen .` from the source root to
//      regenerate conf/yubin.toml and the reference in docs/configuration.md.
// A new section: a struct in config.h, a member of Config, a section() block.
// Ranges are the loader's only check, so make them tight enough to catch typos
// (a size in bytes written as megabytes) yet loose enough for tests.
#include "common/config/schema.h"

#include <arpa/inet.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <utility>

#include <fmt/format.h>
#include <openssl/ssl.h>

#include "common/base/strings.h"

namespace yubin::config {

namespace {

// Collects the rows of one section. Each row's setter and getter capture the
// member pointers, so the loader and the renderer need no per-key code.
template <typename S>
class SectionBuilder {
  public:
    SectionBuilder(S Config::*section, std::string name, std::string doc) : section_(section) {
        spec_.name = std::move(name);
        spec_.doc = std::move(doc);
    }

    template <typename F>
    SectionBuilder& integer(std::string name, F S::*field, int64_t def, int64_t min, int64_t max,
                            Reload reload, std::string doc) {
        KeySpec k = row(std::move(name), Kind::Int, def, reload, std::move(doc));
        k.min = min;
        k.max = max;
        k.set = [s = section_, field](Config& c, const Value& v) {
            (c.*s).*field = static_cast<F>(std::get<int64_t>(v));
        };
        k.get = [s = section_, field](const Config& c) -> Value {
            return static_cast<int64_t>((c.*s).*field);
        };
        return add(std::move(k));
    }

    SectionBuilder& duration(std::string name, std::chrono::seconds S::*field, int64_t def,
                             int64_t min, int64_t max, Reload reload, std::string doc) {
        KeySpec k = row(std::move(name), Kind::Duration, def, reload, std::move(doc));
        k.min = min;
        k.max = max;
        k.set = [s = section_, field](Config& c, const Value& v) {
            (c.*s).*field = std::chrono::seconds(std::get<int64_t>(v));
        };
        k.get = [s = section_, field](const Config& c) -> Value {
            return static_cast<int64_t>(((c.*s).*field).count());
        };
        return add(std::move(k));
    }

    SectionBuilder& boolean(std::string name, bool S::*field, bool def, Reload reload,
                            std::string doc) {
        KeySpec k = row(std::move(name), Kind::Bool, def, reload, std::move(doc));
        k.set = [s = section_, field](Config& c, const Value& v) {
            (c.*s).*field = std::get<bool>(v);
        };
        k.get = [s = section_, field](const Config& c) -> Value { return (c.*s).*field; };
        return add(std::move(k));
    }

    SectionBuilder& string(
        std::string name, std::string S::*field, std::string def, Reload reload, std::string doc,
        std::function<std::optional<std::string>(const std::string&)> check = {}) {
        KeySpec k = row(std::move(name), Kind::String, std::move(def), reload, std::move(doc));
        k.check = std::move(check);
        string_accessors(k, field);
        return add(std::move(k));
    }

    SectionBuilder& path(std::string name, std::string S::*field, std::string def, PathBase base,
                         Reload reload, std::string doc) {
        KeySpec k = row(std::move(name), Kind::Path, std::move(def), reload, std::move(doc));
        k.base = base;
        string_accessors(k, field);
        return add(std::move(k));
    }

    template <typename E>
    SectionBuilder& enumeration(std::string name, E S::*field, E def,
                                std::vector<std::pair<std::string, E>> values, Reload reload,
                                std::string doc) {
        auto table =
            std::make_shared<const std::vector<std::pair<std::string, E>>>(std::move(values));
        std::string def_name;
        for (const auto& [n, e] : *table) {
            if (e == def) {
                def_name = n;
            }
        }
        KeySpec k = row(std::move(name), Kind::Enum, def_name, reload, std::move(doc));
        for (const auto& [n, e] : *table) {
            k.allowed.push_back(n);
        }
        k.set = [s = section_, field, table](Config& c, const Value& v) {
            for (const auto& [n, e] : *table) {
                if (n == std::get<std::string>(v)) {
                    (c.*s).*field = e;
                }
            }
        };
        k.get = [s = section_, field, table](const Config& c) -> Value {
            for (const auto& [n, e] : *table) {
                if (e == (c.*s).*field) {
                    return n;
                }
            }
            return std::string();
        };
        return add(std::move(k));
    }

    SectionBuilder& addresses(std::string name, std::vector<SocketAddress> S::*field,
                              std::vector<std::string> def, uint16_t default_port, Reload reload,
                              std::string doc) {
        KeySpec k = row(std::move(name), Kind::AddressList, std::move(def), reload, std::move(doc));
        k.default_port = default_port;
        k.set = [s = section_, field, default_port](Config& c, const Value& v) {
            std::vector<SocketAddress> out;
            for (const auto& text : std::get<std::vector<std::string>>(v)) {
                // The loader validated the text already; defaults are checked by a test.
                if (auto a = parse_socket_address(text, default_port)) {
                    out.push_back(*a);
                }
            }
            (c.*s).*field = std::move(out);
        };
        k.get = [s = section_, field](const Config& c) -> Value {
            std::vector<std::string> out;
            for (const auto& a : (c.*s).*field) {
                out.push_back(a.to_string());
            }
            return out;
        };
        return add(std::move(k));
    }

    SectionBuilder& cert_pairs(std::string name, std::vector<TlsCertPair> S::*field, PathBase base,
                               Reload reload, std::string doc) {
        KeySpec k = row(std::move(name), Kind::CertPairs, std::vector<TlsCertPair>{}, reload,
                        std::move(doc));
        k.base = base;
        k.set = [s = section_, field](Config& c, const Value& v) {
            (c.*s).*field = std::get<std::vector<TlsCertPair>>(v);
        };
        k.get = [s = section_, field](const Config& c) -> Value { return (c.*s).*field; };
        return add(std::move(k));
    }

    // How the docs describe the last row's default, when the literal value
    // would mislead (e.g. "" meaning "this machine's FQDN").
    SectionBuilder& default_doc(std::string text) {
        spec_.keys.back().default_doc = std::move(text);
        return *this;
    }

    SectionSpec build() { return std::move(spec_); }

  private:
    static KeySpec row(std::string name, Kind kind, Value def, Reload reload, std::string doc) {
        KeySpec k;
        k.name = std::move(name);
        k.kind = kind;
        k.default_value = std::move(def);
        k.reload = reload;
        k.doc = std::move(doc);
        return k;
    }

    void string_accessors(KeySpec& k, std::string S::*field) {
        k.set = [s = section_, field](Config& c, const Value& v) {
            (c.*s).*field = std::get<std::string>(v);
        };
        k.get = [s = section_, field](const Config& c) -> Value { return (c.*s).*field; };
    }

    SectionBuilder& add(KeySpec k) {
        spec_.keys.push_back(std::move(k));
        return *this;
    }

    S Config::*section_;
    SectionSpec spec_;
};

template <typename S>
SectionBuilder<S> section(S Config::*member, std::string name, std::string doc) {
    return SectionBuilder<S>(member, std::move(name), std::move(doc));
}

std::optional<std::string> check_hostname(const std::string& v) {
    if (v.empty()) {
        return std::nullopt;  // resolved to the machine's FQDN at load
    }
    // RFC 1123 §2.1 host names: letters, digits, hyphens, dot-separated labels.
    for (std::string_view label : split(v, '.')) {
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
            return "must be a host name like mail.example.org";
        }
        for (char c : label) {
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-';
            if (!ok) {
                return "must be a host name like mail.example.org";
            }
        }
    }
    if (v.size() > 253) {
        return "must be at most 253 characters";
    }
    return std::nullopt;
}

std::optional<std::string> check_not_empty(const std::string& v) {
    if (v.empty()) {
        return "must not be empty";
    }
    return std::nullopt;
}

// Asks OpenSSL itself whether it understands the list, so a typo is caught at
// load (and on SIGHUP, before the running TLS context is replaced) rather than
// when the first TLS client connects.
std::optional<std::string> check_ciphers(const std::string& v) {
    if (v.empty()) {
        return "must not be empty";
    }
    std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_method()), &SSL_CTX_free);
    if (!ctx) {
        return std::nullopt;  // cannot check here; the TLS setup will report it
    }
    if (SSL_CTX_set_cipher_list(ctx.get(), v.c_str()) != 1) {
        return "OpenSSL accepts no cipher in this list";
    }
    return std::nullopt;
}

// Mozilla's "intermediate" TLS 1.2 suites, ECDHE only (no DH parameters to
// manage): forward secrecy and AEAD everywhere, still reachable by every MTA
// in use today. TLS 1.3 suites are OpenSSL's defaults and not set here.
constexpr const char* kDefaultCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

constexpr int64_t kDay = 86400;

// Limits every protocol daemon has; the defaults differ per protocol.
struct ListenerLimits {
    int64_t max_connections;
    int64_t max_connections_per_ip;
    int64_t idle_timeout;
    std::string idle_doc;
    int64_t max_line_length;
    int64_t min_line_length;
    std::string line_doc;
};

template <typename S>
void add_limits(SectionBuilder<S>& b, const ListenerLimits& l) {
    b.integer("max_connections", &S::max_connections, l.max_connections, 1, 1000000, Reload::Live,
              "Most simultaneous connections per listener; more are refused.")
        .integer("max_connections_per_ip", &S::max_connections_per_ip, l.max_connections_per_ip, 1,
                 1000000, Reload::Live, "Most simultaneous connections from one client IP address.")
        .duration("idle_timeout", &S::idle_timeout, l.idle_timeout, 1, kDay, Reload::Live,
                  l.idle_doc)
        .integer("max_line_length", &S::max_line_length, l.max_line_length, l.min_line_length,
                 16 * 1024 * 1024, Reload::Live, l.line_doc);
}

std::vector<std::string> both_stacks(int port) {
    return {fmt::format("0.0.0.0:{}", port), fmt::format("[::]:{}", port)};
}

std::vector<SectionSpec> build_schema() {
    std::vector<SectionSpec> out;

    out.push_back(
        section(&Config::server, "server", "Identity of this server and where its state lives.")
            .string(
                "hostname", &ServerConfig::hostname, "", Reload::Live,
                "Name used in greetings, Received: headers and DSNs; \"\" = this machine's FQDN.",
                check_hostname)
            .default_doc("this machine's FQDN")
            .string("user", &ServerConfig::user, "yubin", Reload::Restart,
                    "User a daemon started as root switches to after binding its ports.",
                    check_not_empty)
            .string("group", &ServerConfig::group, "", Reload::Restart,
                    "Group to switch to; \"\" = the user's primary group.")
            .default_doc("the user's primary group")
            .path("state_dir", &ServerConfig::state_dir, "/var/lib/yubin", PathBase::ConfigDir,
                  Reload::Restart, "Directory for the store and other state.")
            .duration("shutdown_timeout", &ServerConfig::shutdown_timeout, 30, 0, 3600,
                      Reload::Live,
                      "On SIGTERM, how long in-flight transactions may take to finish.")
            .build());

    out.push_back(
        section(&Config::log, "log", "Log lines, one per event, each with a session or queue id.")
            .enumeration("level", &LogConfig::level, LogLevel::Info,
                         {{"trace", LogLevel::Trace},
                          {"debug", LogLevel::Debug},
                          {"info", LogLevel::Info},
                          {"warn", LogLevel::Warn},
                          {"error", LogLevel::Error}},
                         Reload::Live, "Least severe level written.")
            .enumeration("format", &LogConfig::format, LogFormat::Text,
                         {{"text", LogFormat::Text}, {"json", LogFormat::Json}}, Reload::Live,
                         "text: `time daemon[pid] level id event key=value...`; json: one "
                         "object per line.")
            .path("file", &LogConfig::file, "", PathBase::ConfigDir, Reload::Live,
                  "File to append to, reopened on SIGHUP (for logrotate); \"\" = stderr.")
            .default_doc("stderr")
            .build());

    out.push_back(
        section(&Config::store, "store", "The LMDB message store, shared by all daemons.")
            .path("path", &StoreConfig::path, "store", PathBase::StateDir, Reload::Restart,
                  "Directory of the LMDB environment; relative = inside server.state_dir.")
            .integer("map_size_mb", &StoreConfig::map_size_mb, 1024, 1, int64_t{1} << 24,
                     Reload::Restart, "Initial LMDB map size in MiB; it grows when full.")
            .integer("max_readers", &StoreConfig::max_readers, 1022, 8, 65536, Reload::Restart,
                     "LMDB reader slots shared by all processes (one per reading thread).")
            .integer("large_body_kb", &StoreConfig::large_body_kb, 1024, 1, 1024 * 1024,
                     Reload::Live,
                     "Bodies larger than this many KiB are stored as files beside LMDB.")
            .duration("reader_check_interval", &StoreConfig::reader_check_interval, 60, 1, kDay,
                      Reload::Live, "How often reader slots left by killed processes are freed.")
            .build());

    out.push_back(
        section(&Config::tls, "tls",
                "Certificates and protocol settings for STARTTLS and implicit TLS.")
            .path("cert", &TlsConfig::cert, "/etc/yubin/tls/cert.pem", PathBase::ConfigDir,
                  Reload::Live, "Certificate chain (PEM, leaf first); re-read on SIGHUP.")
            .path("key", &TlsConfig::key, "/etc/yubin/tls/key.pem", PathBase::ConfigDir,
                  Reload::Live, "Private key of `cert` (PEM); re-read on SIGHUP.")
            .enumeration("min_version", &TlsConfig::min_version, TlsVersion::V1_2,
                         {{"1.2", TlsVersion::V1_2}, {"1.3", TlsVersion::V1_3}}, Reload::Live,
                         "Oldest TLS version offered (RFC 8996 retired 1.0 and 1.1).")
            .string("ciphers", &TlsConfig::ciphers, kDefaultCiphers, Reload::Live,
                    "OpenSSL cipher list for TLS 1.2 (TLS 1.3 uses OpenSSL's suites).",
                    check_ciphers)
            .cert_pairs("sni", &TlsConfig::sni, PathBase::ConfigDir, Reload::Live,
                        "Extra certificates chosen by the client's SNI name: [[tls.sni]] tables "
                        "with cert and key.")
            .default_doc("none")
            .build());

    out.push_back(
        section(&Config::dns, "dns", "The resolver used for MX, SPF, DKIM and DMARC lookups.")
            .addresses("servers", &DnsConfig::servers, {}, 53, Reload::Restart,
                       "Recursive resolvers as \"ip\" or \"ip:port\"; [] = those in "
                       "/etc/resolv.conf.")
            .default_doc("those in /etc/resolv.conf")
            .integer("timeout_ms", &DnsConfig::timeout_ms, 2000, 10, 60000, Reload::Restart,
                     "Time to wait for one answer, in milliseconds, before the next try.")
            .integer("tries", &DnsConfig::tries, 2, 1, 10, Reload::Restart,
                     "Attempts per query and server.")
            .build());

    auto smtpd = section(&Config::smtpd, "smtpd",
                         "The SMTP daemon: inbound MX, submission and implicit-TLS submission.");
    smtpd
        .addresses("mx", &SmtpdConfig::mx, both_stacks(25), 0, Reload::Restart,
                   "Listeners for mail from other servers (RFC 5321); [] = none.")
        .addresses("submission", &SmtpdConfig::submission, both_stacks(587), 0, Reload::Restart,
                   "Listeners for clients, STARTTLS before AUTH (RFC 6409).")
        .addresses("submissions", &SmtpdConfig::submissions, both_stacks(465), 0, Reload::Restart,
                   "Listeners for clients over implicit TLS (RFC 8314 §3.3).");
    add_limits(smtpd, {1000, 20, 300,
                       "Close a session idle this long (RFC 5321 §4.5.3.2: at least 5 minutes).",
                       4096, 1000,
                       "Longest line in bytes, CRLF included (RFC 5321 §4.5.3.1.6 requires "
                       "1000)."});
    smtpd
        .integer("max_message_size", &SmtpdConfig::max_message_size, 52428800, 1024,
                 int64_t{2147483648}, Reload::Live,
                 "Largest message accepted, in bytes, announced as SIZE (RFC 1870).")
        .integer("max_recipients", &SmtpdConfig::max_recipients, 1000, 100, 100000, Reload::Live,
                 "Most RCPT TO per message (RFC 5321 §4.5.3.1.8: at least 100).");
    out.push_back(smtpd.build());

    auto imapd = section(&Config::imapd, "imapd", "The IMAP daemon (RFC 9051, RFC 3501).");
    imapd
        .addresses("imap", &ImapdConfig::imap, both_stacks(143), 0, Reload::Restart,
                   "Listeners with STARTTLS; [] = none.")
        .addresses("imaps", &ImapdConfig::imaps, both_stacks(993), 0, Reload::Restart,
                   "Listeners with implicit TLS (RFC 8314).");
    add_limits(imapd, {10000, 50, 1800,
                       "Log out a client idle this long (RFC 9051 §5.4: at least 30 minutes).",
                       65536, 1000, "Longest command line in bytes, literals excluded."});
    out.push_back(imapd.build());

    auto pop3d = section(&Config::pop3d, "pop3d", "The POP3 daemon (RFC 1939).");
    pop3d
        .addresses("pop3", &Pop3dConfig::pop3, both_stacks(110), 0, Reload::Restart,
                   "Listeners with STLS (RFC 2595); [] = none.")
        .addresses("pop3s", &Pop3dConfig::pop3s, both_stacks(995), 0, Reload::Restart,
                   "Listeners with implicit TLS (RFC 8314).");
    add_limits(pop3d,
               {1000, 20, 600, "Close a session idle this long (RFC 1939 §3: at least 10 minutes).",
                1024, 512, "Longest command line in bytes (RFC 2449 §4: 255 per word)."});
    pop3d
        .boolean("allow_plaintext_auth_from_loopback",
                 &Pop3dConfig::allow_plaintext_auth_from_loopback, false, Reload::Live,
                 "Allow USER/PASS and AUTH without TLS from 127.0.0.0/8 and ::1 (RFC 2595 §4).")
        .integer("max_errors", &Pop3dConfig::max_errors, 10, 0, 1000, Reload::Live,
                 "Close a session after this many bad commands or failed logins; 0 = never.")
        .duration("auth_failure_delay", &Pop3dConfig::auth_failure_delay, 1, 0, 60, Reload::Live,
                  "Delay before a failed login is answered; doubles per failure, up to 16x.")
        .string("expire", &Pop3dConfig::expire, "", Reload::Live,
                "EXPIRE capability (RFC 2449 §6.7): \"\" = not announced, NEVER, or days.",
                [](const std::string& v) -> std::optional<std::string> {
                    if (v.empty() || v == "NEVER" ||
                        (v.size() <= 5 && v.find_first_not_of("0123456789") == std::string::npos)) {
                        return std::nullopt;
                    }
                    return "must be \"\", NEVER or a number of days";
                })
        .duration("login_delay", &Pop3dConfig::login_delay, 0, 0, kDay, Reload::Live,
                  "LOGIN-DELAY (RFC 2449 §6.8): least time between logins of a user; 0 = none.");
    out.push_back(pop3d.build());

    return out;
}

}  // namespace

const KeySpec* SectionSpec::find(std::string_view key) const {
    for (const auto& k : keys) {
        if (k.name == key) {
            return &k;
        }
    }
    return nullptr;
}

const std::vector<SectionSpec>& schema() {
    static const std::vector<SectionSpec> table = build_schema();
    return table;
}

const SectionSpec* find_section(std::string_view name) {
    for (const auto& s : schema()) {
        if (s.name == name) {
            return &s;
        }
    }
    return nullptr;
}

Config unresolved_defaults() {
    Config c;
    for (const auto& s : schema()) {
        for (const auto& k : s.keys) {
            k.set(c, k.default_value);
        }
    }
    return c;
}

std::string SocketAddress::to_string() const {
    if (ipv6) {
        return fmt::format("[{}]:{}", ip, port);
    }
    return fmt::format("{}:{}", ip, port);
}

tl::expected<SocketAddress, std::string> parse_socket_address(std::string_view text,
                                                              uint16_t default_port) {
    const std::string expect = default_port != 0 ? "must be \"ip\", \"ip:port\" or \"[ipv6]:port\""
                                                 : "must be \"ip:port\" or \"[ipv6]:port\"";
    std::string_view host;
    std::string_view port;
    bool bracketed = false;
    if (!text.empty() && text.front() == '[') {
        size_t close = text.find(']');
        if (close == std::string_view::npos) {
            return tl::unexpected(expect);
        }
        host = text.substr(1, close - 1);
        std::string_view rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                return tl::unexpected(expect);
            }
            port = rest.substr(1);
            if (port.empty()) {
                return tl::unexpected(expect);
            }
        }
        bracketed = true;
    } else if (std::count(text.begin(), text.end(), ':') == 1) {
        size_t colon = text.find(':');
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (port.empty()) {
            return tl::unexpected(expect);
        }
    } else {
        host = text;  // IPv4 without port, or a bare IPv6 address
    }

    SocketAddress out;
    out.ip = std::string(host);
    unsigned char buf[16];
    if (inet_pton(AF_INET, out.ip.c_str(), buf) == 1 && !bracketed) {
        out.ipv6 = false;
    } else if (inet_pton(AF_INET6, out.ip.c_str(), buf) == 1) {
        out.ipv6 = true;
        if (!bracketed && !port.empty()) {
            return tl::unexpected(expect);
        }
    } else {
        return tl::unexpected(fmt::format("{}, with a numeric IP address", expect));
    }
    // Canonical text ("2001:DB8:0::1" → "2001:db8::1") so equal addresses compare equal.
    char canonical[INET6_ADDRSTRLEN] = {};
    if (inet_ntop(out.ipv6 ? AF_INET6 : AF_INET, buf, canonical, sizeof(canonical)) != nullptr) {
        out.ip = canonical;
    }
    if (port.empty()) {
        if (default_port == 0) {
            return tl::unexpected(expect);
        }
        out.port = default_port;
    } else {
        auto p = parse_u64(port);
        if (!p || *p > 65535) {
            return tl::unexpected(std::string("port must be between 0 and 65535"));
        }
        out.port = static_cast<uint16_t>(*p);
    }
    return out;
}

std::optional<int64_t> parse_duration(std::string_view text) {
    int64_t unit = 1;
    if (!text.empty()) {
        switch (text.back()) {
            case 's':
                unit = 1;
                break;
            case 'm':
                unit = 60;
                break;
            case 'h':
                unit = 3600;
                break;
            case 'd':
                unit = kDay;
                break;
            default:
                unit = 0;
                break;
        }
        if (unit != 0) {
            text.remove_suffix(1);
        } else {
            unit = 1;
        }
    }
    auto n = parse_u64(text);
    // Bound before multiplying; the schema's max is far below this.
    if (!n || *n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max() / kDay)) {
        return std::nullopt;
    }
    return static_cast<int64_t>(*n) * unit;
}

std::string format_duration(int64_t seconds) {
    if (seconds != 0) {
        if (seconds % kDay == 0) {
            return fmt::format("{}d", seconds / kDay);
        }
        if (seconds % 3600 == 0) {
            return fmt::format("{}h", seconds / 3600);
        }
        if (seconds % 60 == 0) {
            return fmt::format("{}m", seconds / 60);
        }
    }
    return fmt::format("{}s", seconds);
}

}  // namespace yubin::config
