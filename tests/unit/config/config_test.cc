#include "common/config/config.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <toml++/toml.h>

#include "common/config/schema.h"

namespace yubin::config {
namespace {

namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream buf;
    buf << in.rdbuf();
    return buf.str();
}

// Loads `toml` and returns the error message, failing the test if it loaded.
std::string load_error(std::string_view toml) {
    auto r = load_config_string(toml, "t.toml", LoadOptions{"/etc/yubin"});
    EXPECT_FALSE(r.has_value()) << "loaded although it should not:\n" << toml;
    if (r) {
        return "";
    }
    EXPECT_EQ(r.error().code, ErrorCode::Invalid);
    return r.error().message;
}

std::shared_ptr<const Config> load_ok(std::string_view toml, std::string base = "/etc/yubin") {
    auto r = load_config_string(toml, "t.toml", LoadOptions{std::move(base)});
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
    return r ? *r : nullptr;
}

class TempDir {
  public:
    TempDir() {
        std::string templ = (fs::temp_directory_path() / "yubin-config-XXXXXX").string();
        path_ = mkdtemp(templ.data());
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

// ---- defaults -------------------------------------------------------------

TEST(ConfigDefaults, EmptyDocumentGivesEveryDefault) {
    auto c = load_ok("");
    ASSERT_TRUE(c);
    EXPECT_FALSE(c->server.hostname.empty());  // the machine's name
    EXPECT_EQ(c->server.user, "yubin");
    EXPECT_EQ(c->server.group, "");
    EXPECT_EQ(c->server.state_dir, "/var/lib/yubin");
    EXPECT_EQ(c->server.shutdown_timeout, std::chrono::seconds(30));
    EXPECT_EQ(c->log.level, LogLevel::Info);
    EXPECT_EQ(c->log.format, LogFormat::Text);
    EXPECT_EQ(c->log.file, "");
    EXPECT_EQ(c->store.path, "/var/lib/yubin/store");
    EXPECT_EQ(c->store.map_size_mb, 1024u);
    EXPECT_EQ(c->store.max_readers, 1022u);
    EXPECT_EQ(c->store.large_body_kb, 1024u);
    EXPECT_EQ(c->store.reader_check_interval, std::chrono::seconds(60));
    EXPECT_EQ(c->tls.cert, "/etc/yubin/tls/cert.pem");
    EXPECT_EQ(c->tls.key, "/etc/yubin/tls/key.pem");
    EXPECT_EQ(c->tls.min_version, TlsVersion::V1_2);
    EXPECT_NE(c->tls.ciphers.find("ECDHE"), std::string::npos);
    EXPECT_TRUE(c->tls.sni.empty());
    EXPECT_TRUE(c->dns.servers.empty());
    EXPECT_EQ(c->dns.timeout_ms, 2000u);
    EXPECT_EQ(c->dns.tries, 2u);

    ASSERT_EQ(c->smtpd.mx.size(), 2u);
    EXPECT_EQ(c->smtpd.mx[0], (SocketAddress{"0.0.0.0", 25, false}));
    EXPECT_EQ(c->smtpd.mx[1], (SocketAddress{"::", 25, true}));
    EXPECT_EQ(c->smtpd.submission[0].port, 587);
    EXPECT_EQ(c->smtpd.submissions[1].port, 465);
    EXPECT_EQ(c->smtpd.max_connections, 1000u);
    EXPECT_EQ(c->smtpd.max_connections_per_ip, 20u);
    EXPECT_EQ(c->smtpd.idle_timeout, std::chrono::seconds(300));
    EXPECT_EQ(c->smtpd.max_line_length, 4096u);
    EXPECT_EQ(c->smtpd.max_message_size, 52428800u);
    EXPECT_EQ(c->smtpd.max_recipients, 1000u);

    EXPECT_EQ(c->imapd.imap[0].port, 143);
    EXPECT_EQ(c->imapd.imaps[0].port, 993);
    EXPECT_EQ(c->imapd.max_connections, 10000u);
    EXPECT_EQ(c->imapd.max_connections_per_ip, 50u);
    EXPECT_EQ(c->imapd.idle_timeout, std::chrono::seconds(1800));
    EXPECT_EQ(c->imapd.max_line_length, 65536u);

    EXPECT_EQ(c->pop3d.pop3[0].port, 110);
    EXPECT_EQ(c->pop3d.pop3s[0].port, 995);
    EXPECT_EQ(c->pop3d.max_connections, 1000u);
    EXPECT_EQ(c->pop3d.max_connections_per_ip, 20u);
    EXPECT_EQ(c->pop3d.idle_timeout, std::chrono::seconds(600));
    EXPECT_EQ(c->pop3d.max_line_length, 1024u);
    EXPECT_EQ(c->source, "t.toml");
}

TEST(ConfigDefaults, HostnameDefaultIsTheMachinesName) {
    char buf[256] = {};
    ASSERT_EQ(gethostname(buf, sizeof(buf) - 1), 0);
    auto c = load_ok("");
    ASSERT_TRUE(c);
    // Either the short name or its qualified form starting with it.
    EXPECT_EQ(c->server.hostname.rfind(buf, 0), 0u) << c->server.hostname;
    auto explicit_name = load_ok("[server]\nhostname = \"mx.example.org\"\n");
    ASSERT_TRUE(explicit_name);
    EXPECT_EQ(explicit_name->server.hostname, "mx.example.org");
}

// Every row of the table must be self-consistent, or a default could be one
// the loader itself would reject.
TEST(ConfigSchema, DefaultsSatisfyTheirOwnRules) {
    std::set<std::string> sections;
    Config defaults = unresolved_defaults();
    for (const auto& s : schema()) {
        EXPECT_TRUE(sections.insert(s.name).second) << "duplicate section " << s.name;
        EXPECT_FALSE(s.doc.empty()) << s.name;
        std::set<std::string> keys;
        for (const auto& k : s.keys) {
            const std::string name = s.name + "." + k.name;
            EXPECT_TRUE(keys.insert(k.name).second) << "duplicate key " << name;
            EXPECT_FALSE(k.doc.empty()) << name;
            EXPECT_EQ(k.doc.find('\n'), std::string::npos) << name << ": doc must be one line";
            EXPECT_TRUE(k.set && k.get) << name;
            if (k.kind == Kind::Int || k.kind == Kind::Duration) {
                int64_t d = std::get<int64_t>(k.default_value);
                EXPECT_LE(k.min, d) << name;
                EXPECT_LE(d, k.max) << name;
            }
            if (k.kind == Kind::Enum) {
                const auto& d = std::get<std::string>(k.default_value);
                EXPECT_NE(std::find(k.allowed.begin(), k.allowed.end(), d), k.allowed.end())
                    << name;
            }
            if (k.kind == Kind::AddressList) {
                // The setter drops what does not parse: counts must agree.
                const auto& texts = std::get<std::vector<std::string>>(k.default_value);
                EXPECT_EQ(std::get<std::vector<std::string>>(k.get(defaults)).size(), texts.size())
                    << name;
            }
            // Every value read back equals the default written.
            if (k.kind != Kind::AddressList) {
                EXPECT_TRUE(k.get(defaults) == k.default_value) << name;
            }
        }
    }
}

// ---- each kind of error, with its exact line ------------------------------

TEST(ConfigErrors, WrongType) {
    EXPECT_EQ(load_error("[smtpd]\nmax_connections = \"many\"\n"),
              "t.toml:2: smtpd.max_connections: must be an integer");
    EXPECT_EQ(load_error("\n\n[server]\nuser = 5\n"), "t.toml:4: server.user: must be a string");
    EXPECT_EQ(load_error("[smtpd]\nmx = \"0.0.0.0:25\"\n"),
              "t.toml:2: smtpd.mx: must be an array of addresses like [\"0.0.0.0:25\"]");
    EXPECT_EQ(load_error("[store]\nmap_size_mb = 10.5\n"),
              "t.toml:2: store.map_size_mb: must be an integer");
    EXPECT_EQ(load_error("[server]\nshutdown_timeout = true\n"),
              "t.toml:2: server.shutdown_timeout: must be a duration (an integer of seconds, or "
              "\"5m\")");
    EXPECT_EQ(load_error("server = 5\n"), "t.toml:1: server: must be a section ([server])");
}

TEST(ConfigErrors, OutOfRange) {
    EXPECT_EQ(load_error("# limits\n[smtpd]\n\n\nmax_message_size = 10\n"),
              "t.toml:5: smtpd.max_message_size: must be between 1024 and 2147483648");
    EXPECT_EQ(load_error("[smtpd]\nmax_message_size = 2147483649\n"),
              "t.toml:2: smtpd.max_message_size: must be between 1024 and 2147483648");
    EXPECT_EQ(load_error("[dns]\ntries = -1\n"), "t.toml:2: dns.tries: must be between 1 and 10");
    EXPECT_EQ(load_error("[imapd]\nidle_timeout = \"2d\"\n"),
              "t.toml:2: imapd.idle_timeout: must be between 1s and 1d");
    EXPECT_EQ(load_error("[smtpd]\nmx = [\"0.0.0.0:65536\"]\n"),
              "t.toml:2: smtpd.mx[0]: port must be between 0 and 65535");
}

TEST(ConfigErrors, BoundsThemselvesAreAccepted) {
    auto c = load_ok("[smtpd]\nmax_message_size = 1024\n[dns]\ntries = 10\n");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->smtpd.max_message_size, 1024u);
    EXPECT_EQ(c->dns.tries, 10u);
    c = load_ok("[smtpd]\nmax_message_size = 2147483648\n");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->smtpd.max_message_size, 2147483648u);
}

TEST(ConfigErrors, UnknownKey) {
    EXPECT_EQ(load_error("[server]\nuser = \"mail\"\nhostnme = \"mx.example.org\"\n"),
              "t.toml:3: server.hostnme: unknown key");
    EXPECT_EQ(load_error("[tls]\nsni = [{cert = \"a.pem\", key = \"a.key\", pass = \"x\"}]\n"),
              "t.toml:2: tls.sni[0].pass: unknown key");
}

TEST(ConfigErrors, UnknownSection) {
    EXPECT_EQ(load_error("[server]\nuser = \"mail\"\n\n[smtp]\nmax_connections = 5\n"),
              "t.toml:4: smtp: unknown section");
    EXPECT_EQ(load_error("hostname = \"x\"\n"), "t.toml:1: hostname: unknown section");
}

TEST(ConfigErrors, BadEnumValue) {
    EXPECT_EQ(load_error("[log]\nlevel = \"verbose\"\n"),
              "t.toml:2: log.level: must be one of \"trace\", \"debug\", \"info\", \"warn\", "
              "\"error\"");
    EXPECT_EQ(load_error("[tls]\nmin_version = \"1.1\"\n"),
              "t.toml:2: tls.min_version: must be one of \"1.2\", \"1.3\"");
    EXPECT_EQ(load_error("[log]\nformat = \"JSON\"\n"),
              "t.toml:2: log.format: must be one of \"text\", \"json\"");
}

TEST(ConfigErrors, SyntaxErrorHasItsLine) {
    std::string msg = load_error("[server]\nuser = \"mail\"\ngroup = = \"x\"\n");
    EXPECT_EQ(msg.rfind("t.toml:3: syntax error: ", 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    msg = load_error("[server]\nuser = \"a\"\n[log]\n[server]\n");  // table defined twice
    EXPECT_EQ(msg.rfind("t.toml:4: syntax error: ", 0), 0u) << msg;
    msg = load_error("[server\n");
    EXPECT_EQ(msg.rfind("t.toml:1: syntax error: ", 0), 0u) << msg;
}

TEST(ConfigErrors, EveryProblemIsReportedInLineOrder) {
    const char* doc =
        "[server]\n"                                    // 1
        "hostnme = \"x\"\n"                             // 2 unknown key
        "shutdown_timeout = \"soon\"\n"                 // 3 bad duration
        "[smtpd]\n"                                     // 4
        "max_recipients = 5\n"                          // 5 range
        "mx = [\"0.0.0.0:25\", 7, \"localhost:25\"]\n"  // 6 two bad items
        "[log]\n"                                       // 7
        "level = \"loud\"\n"                            // 8 enum
        "[smtp]\n"                                      // 9 unknown section
        "x = 1\n";                                      // 10
    EXPECT_EQ(load_error(doc),
              "t.toml:2: server.hostnme: unknown key\n"
              "t.toml:3: server.shutdown_timeout: must be a duration: seconds, or a number with "
              "s, m, h or d (\"90s\", \"5m\")\n"
              "t.toml:5: smtpd.max_recipients: must be between 100 and 100000\n"
              "t.toml:6: smtpd.mx[1]: must be a string\n"
              "t.toml:6: smtpd.mx[2]: must be \"ip:port\" or \"[ipv6]:port\", with a numeric IP "
              "address\n"
              "t.toml:8: log.level: must be one of \"trace\", \"debug\", \"info\", \"warn\", "
              "\"error\"\n"
              "t.toml:9: smtp: unknown section");
}

TEST(ConfigErrors, CustomChecks) {
    EXPECT_EQ(load_error("[server]\nhostname = \"mail example\"\n"),
              "t.toml:2: server.hostname: must be a host name like mail.example.org");
    EXPECT_EQ(load_error("[server]\nuser = \"\"\n"), "t.toml:2: server.user: must not be empty");
    EXPECT_EQ(load_error("[tls]\nciphers = \"NO-SUCH-CIPHER\"\n"),
              "t.toml:2: tls.ciphers: OpenSSL accepts no cipher in this list");
    EXPECT_EQ(load_error("[tls]\ncert = \"\"\n"), "t.toml:2: tls.cert: must not be empty");
}

TEST(ConfigErrors, MissingFileIsAnIoError) {
    auto r = load_config_file("/nonexistent/yubin.toml");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::Io);
    EXPECT_EQ(r.error().message.rfind("/nonexistent/yubin.toml: cannot read", 0), 0u);
}

TEST(ConfigErrors, DirectoryIsAnIoError) {
    TempDir dir;
    auto r = load_config_file(dir.path());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::Io);
    EXPECT_EQ(r.error().message.rfind(dir.path() + ": ", 0), 0u) << r.error().message;
}

TEST(ConfigErrors, FileErrorsNameTheFileAsGiven) {
    TempDir dir;
    std::string path = dir.path() + "/bad.toml";
    std::ofstream(path) << "[server]\nuser = \"x\"\nshutdown_timeout = -1\n";
    auto r = load_config_file(path);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message, path + ":3: server.shutdown_timeout: must be between 0s and 1h");
}

// ---- value forms ----------------------------------------------------------

TEST(ConfigValues, Durations) {
    auto c = load_ok(
        "[server]\nshutdown_timeout = \"2m\"\n[smtpd]\nidle_timeout = 90\n"
        "[imapd]\nidle_timeout = \"1h\"\n[pop3d]\nidle_timeout = \"45s\"\n"
        "[store]\nreader_check_interval = \"1d\"\n");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->server.shutdown_timeout, std::chrono::seconds(120));
    EXPECT_EQ(c->smtpd.idle_timeout, std::chrono::seconds(90));
    EXPECT_EQ(c->imapd.idle_timeout, std::chrono::seconds(3600));
    EXPECT_EQ(c->pop3d.idle_timeout, std::chrono::seconds(45));
    EXPECT_EQ(c->store.reader_check_interval, std::chrono::seconds(86400));
    for (const char* bad : {"\"5 minutes\"", "\"-5m\"", "\"m\"", "\"\"", "\"5w\"", "\"1.5h\""}) {
        std::string msg = load_error(std::string("[smtpd]\nidle_timeout = ") + bad + "\n");
        EXPECT_EQ(msg.rfind("t.toml:2: smtpd.idle_timeout: must be a duration", 0), 0u) << bad;
    }
    EXPECT_EQ(parse_duration("99999999999999999999d"), std::nullopt);
    EXPECT_EQ(format_duration(0), "0s");
    EXPECT_EQ(format_duration(90), "90s");
    EXPECT_EQ(format_duration(7200), "2h");
}

TEST(ConfigValues, Addresses) {
    auto c = load_ok(
        "[smtpd]\nmx = [\"192.0.2.1:25\", \"[2001:db8::1]:2525\"]\nsubmission = []\n"
        "[dns]\nservers = [\"127.0.0.1:5353\", \"9.9.9.9\", \"[::1]:53\", \"2001:db8::53\"]\n");
    ASSERT_TRUE(c);
    ASSERT_EQ(c->smtpd.mx.size(), 2u);
    EXPECT_EQ(c->smtpd.mx[0], (SocketAddress{"192.0.2.1", 25, false}));
    EXPECT_EQ(c->smtpd.mx[1], (SocketAddress{"2001:db8::1", 2525, true}));
    EXPECT_EQ(c->smtpd.mx[1].to_string(), "[2001:db8::1]:2525");
    EXPECT_TRUE(c->smtpd.submission.empty());
    ASSERT_EQ(c->dns.servers.size(), 4u);
    EXPECT_EQ(c->dns.servers[0], (SocketAddress{"127.0.0.1", 5353, false}));
    EXPECT_EQ(c->dns.servers[1], (SocketAddress{"9.9.9.9", 53, false}));
    EXPECT_EQ(c->dns.servers[2], (SocketAddress{"::1", 53, true}));
    EXPECT_EQ(c->dns.servers[3], (SocketAddress{"2001:db8::53", 53, true}));

    // Listeners need a port; names, unbracketed IPv6 with port, junk are refused.
    for (const char* bad : {"0.0.0.0", "[::1]", "localhost:25", "::1:25", "1.2.3:25", "[::1]25",
                            "1.2.3.4:", "1.2.3.4:x", "[1.2.3.4]:25", ""}) {
        std::string msg = load_error(std::string("[imapd]\nimap = [\"") + bad + "\"]\n");
        EXPECT_EQ(msg.rfind("t.toml:2: imapd.imap[0]: ", 0), 0u) << bad << " → " << msg;
    }
}

TEST(ConfigValues, ListenerConflicts) {
    // Against a default listener (smtpd.mx is 0.0.0.0:25 and [::]:25).
    EXPECT_EQ(load_error("[imapd]\nimap = [\"0.0.0.0:143\", \"0.0.0.0:25\"]\n"),
              "t.toml:2: imapd.imap[1]: 0.0.0.0:25 overlaps 0.0.0.0:25 in smtpd.mx");
    // A default listener overlapping an explicit one is blamed on the explicit one.
    EXPECT_EQ(load_error("\n[smtpd]\nmx = [\"[::1]:995\"]\n"),
              "t.toml:3: smtpd.mx[0]: [::1]:995 overlaps [::]:995 in pop3d.pop3s");
    // Twice in one key; a specific address under a wildcard; canonical IPv6 forms.
    EXPECT_EQ(load_error("[smtpd]\nsubmission = [\"127.0.0.1:587\", \"127.0.0.1:587\"]\n"),
              "t.toml:2: smtpd.submission[1]: 127.0.0.1:587 overlaps 127.0.0.1:587 in "
              "smtpd.submission");
    EXPECT_EQ(load_error("[smtpd]\nsubmission = [\"0.0.0.0:587\", \"192.0.2.1:587\"]\n"),
              "t.toml:2: smtpd.submission[1]: 192.0.2.1:587 overlaps 0.0.0.0:587 in "
              "smtpd.submission");
    EXPECT_EQ(load_error("[smtpd]\nsubmission = [\"[2001:DB8:0::1]:587\", "
                         "\"[2001:db8::1]:587\"]\n"),
              "t.toml:2: smtpd.submission[1]: [2001:db8::1]:587 overlaps [2001:db8::1]:587 in "
              "smtpd.submission");
    // Different families, different ports, and port 0 (tests) never conflict.
    auto c = load_ok(
        "[smtpd]\nmx = [\"127.0.0.1:0\", \"[::1]:0\"]\nsubmission = [\"127.0.0.1:0\"]\n"
        "submissions = [\"0.0.0.0:4650\", \"[::]:4650\"]\n");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->smtpd.submissions.size(), 2u);
}

TEST(ConfigValues, SniTables) {
    auto c = load_ok(
        "[tls]\ncert = \"main.pem\"\n"
        "[[tls.sni]]\ncert = \"a.pem\"\nkey = \"/keys/a.key\"\n"
        "[[tls.sni]]\ncert = \"/certs/b.pem\"\nkey = \"b.key\"\n",
        "/srv/conf");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->tls.cert, "/srv/conf/main.pem");
    ASSERT_EQ(c->tls.sni.size(), 2u);
    EXPECT_EQ(c->tls.sni[0], (TlsCertPair{"/srv/conf/a.pem", "/keys/a.key"}));
    EXPECT_EQ(c->tls.sni[1], (TlsCertPair{"/certs/b.pem", "/srv/conf/b.key"}));

    EXPECT_EQ(load_error("[tls]\n[[tls.sni]]\ncert = \"a.pem\"\n"),
              "t.toml:2: tls.sni[0].key: missing");
    EXPECT_EQ(load_error("[[tls.sni]]\ncert = \"a.pem\"\nkey = 5\n"),
              "t.toml:3: tls.sni[0].key: must be a non-empty string");
    EXPECT_EQ(load_error("[tls]\nsni = [\"a.pem\"]\n"),
              "t.toml:2: tls.sni[0]: must be a table with cert and key");
}

// ---- paths ----------------------------------------------------------------

TEST(ConfigPaths, RelativePathsResolve) {
    auto c = load_ok(
        "[server]\nstate_dir = \"state\"\n[log]\nfile = \"../log/yubin.log\"\n"
        "[tls]\ncert = \"tls/cert.pem\"\nkey = \"/abs/key.pem\"\n",
        "/etc/yubin");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->server.state_dir, "/etc/yubin/state");
    EXPECT_EQ(c->store.path, "/etc/yubin/state/store");  // relative to state_dir
    EXPECT_EQ(c->log.file, "/etc/log/yubin.log");
    EXPECT_EQ(c->tls.cert, "/etc/yubin/tls/cert.pem");
    EXPECT_EQ(c->tls.key, "/abs/key.pem");

    c = load_ok("[server]\nstate_dir = \"/srv/mail\"\n[store]\npath = \"db/../lmdb\"\n");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->store.path, "/srv/mail/lmdb");
    c = load_ok("[store]\npath = \"/data/store\"\n");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->store.path, "/data/store");
}

TEST(ConfigPaths, FileRelativePathsUseTheFilesDirectory) {
    TempDir dir;
    fs::create_directories(dir.path() + "/etc");
    std::ofstream(dir.path() + "/etc/yubin.toml")
        << "[server]\nstate_dir = \"../var\"\n[tls]\ncert = \"cert.pem\"\n";
    auto r = load_config_file(dir.path() + "/etc/yubin.toml");
    ASSERT_TRUE(r) << r.error().message;
    std::string base = fs::path(dir.path()).lexically_normal().string();
    EXPECT_EQ((*r)->server.state_dir, base + "/var");
    EXPECT_EQ((*r)->store.path, base + "/var/store");
    EXPECT_EQ((*r)->tls.cert, base + "/etc/cert.pem");
    EXPECT_EQ((*r)->source, dir.path() + "/etc/yubin.toml");
}

TEST(ConfigPaths, StringWithoutBaseUsesTheWorkingDirectory) {
    auto r = load_config_string("[server]\nstate_dir = \"var\"\n", "s");
    ASSERT_TRUE(r);
    EXPECT_EQ((*r)->server.state_dir, (fs::current_path() / "var").string());
}

TEST(ConfigPaths, FindConfigPath) {
    EXPECT_EQ(find_config_path("/x/y.toml"), "/x/y.toml");
    TempDir dir;
    fs::path old = fs::current_path();
    fs::current_path(dir.path());
    EXPECT_EQ(find_config_path(""), "/etc/yubin/yubin.toml");
    fs::create_directories("conf");
    std::ofstream("conf/yubin.toml") << "";
    EXPECT_EQ(find_config_path(""), "conf/yubin.toml");
    EXPECT_EQ(find_config_path("other.toml"), "other.toml");
    fs::current_path(old);
}

// ---- the committed files --------------------------------------------------

TEST(ConfigFiles, ConfYubinTomlLoadsAndIsTheGeneratedDefault) {
    const std::string path = std::string(YUBIN_SOURCE_DIR) + "/conf/yubin.toml";
    auto r = load_config_file(path);
    ASSERT_TRUE(r) << r.error().message;
    auto defaults = load_ok("", fs::path(path).parent_path().string());
    ASSERT_TRUE(defaults);
    Config a = **r;
    Config b = *defaults;
    a.source = b.source = "";
    EXPECT_EQ(render_config_toml(a), render_config_toml(b));
    EXPECT_EQ(read_file(path), default_config_toml())
        << "conf/yubin.toml is stale: run yubin_config_gen <source dir>";
}

TEST(ConfigFiles, ConfYubinTomlHasEveryKeyOfTheSchema) {
    const std::string path = std::string(YUBIN_SOURCE_DIR) + "/conf/yubin.toml";
    toml::table root = toml::parse_file(path);
    size_t count = 0;
    for (const auto& s : schema()) {
        const toml::table* t = root[s.name].as_table();
        ASSERT_NE(t, nullptr) << "[" << s.name << "] missing";
        for (const auto& k : s.keys) {
            EXPECT_TRUE(t->contains(k.name)) << s.name << "." << k.name << " missing";
            ++count;
        }
        EXPECT_EQ(t->size(), s.keys.size()) << "[" << s.name << "]";
    }
    EXPECT_GE(count, 40u);
}

TEST(ConfigFiles, DocsHoldTheGeneratedReference) {
    const std::string docs = read_file(std::string(YUBIN_SOURCE_DIR) + "/docs/configuration.md");
    auto regenerated = replace_generated_block(docs, config_reference_markdown());
    ASSERT_TRUE(regenerated) << "markers missing in docs/configuration.md";
    EXPECT_EQ(docs, *regenerated)
        << "docs/configuration.md is stale: run yubin_config_gen <source dir>";
    for (const auto& s : schema()) {
        EXPECT_NE(docs.find("### [" + s.name + "]"), std::string::npos) << s.name;
        for (const auto& k : s.keys) {
            EXPECT_NE(docs.find("| `" + k.name + "` |"), std::string::npos) << k.name;
        }
    }
}

// ---- rendering ------------------------------------------------------------

TEST(ConfigRender, QuickstartLoads) {
    std::string toml = quickstart_config_toml("/home/ann/yubin/var", "ann");
    auto c = load_ok(toml, "/somewhere/else");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->server.state_dir, "/home/ann/yubin/var");
    EXPECT_EQ(c->server.user, "ann");
    EXPECT_EQ(c->store.path, "/home/ann/yubin/var/store");
    EXPECT_EQ(c->tls.cert, "/home/ann/yubin/var/tls/cert.pem");
    EXPECT_EQ(c->tls.key, "/home/ann/yubin/var/tls/key.pem");
    auto loopback = [](uint16_t port) {
        return std::vector<SocketAddress>{{"127.0.0.1", port, false}, {"::1", port, true}};
    };
    EXPECT_EQ(c->smtpd.mx, loopback(2525));
    EXPECT_EQ(c->smtpd.submission, loopback(2587));
    EXPECT_EQ(c->smtpd.submissions, loopback(2465));
    EXPECT_EQ(c->imapd.imap, loopback(2143));
    EXPECT_EQ(c->imapd.imaps, loopback(2993));
    EXPECT_EQ(c->pop3d.pop3, loopback(2110));
    EXPECT_EQ(c->pop3d.pop3s, loopback(2995));
    EXPECT_EQ(c->smtpd.max_message_size, 52428800u);  // the rest stays default

    // An awkward state directory survives quoting, also in the header comment.
    const std::string odd = "/tmp/my \"yubin\"\nstate\\";
    auto o = load_ok(quickstart_config_toml(odd, "ann"));
    ASSERT_TRUE(o);
    EXPECT_EQ(o->server.state_dir, odd);
    EXPECT_EQ(o->tls.key, odd + "/tls/key.pem");
}

TEST(ConfigRender, NonDefaultConfigRoundTrips) {
    const char* doc = R"(
[server]
hostname = "mx1.example.org"
user = "mail"
group = "mailgrp"
state_dir = "/srv/yubin"
shutdown_timeout = 0
[log]
level = "debug"
format = "json"
file = "/var/log/yubin \"quoted\" back\\slash é.log"
[store]
path = "/data/lmdb"
map_size_mb = 4096
max_readers = 126
large_body_kb = 256
reader_check_interval = 17
[tls]
cert = "/etc/ssl/a.pem"
key = "/etc/ssl/a.key"
min_version = "1.3"
ciphers = "ECDHE-RSA-AES128-GCM-SHA256"
[[tls.sni]]
cert = "/etc/ssl/b.pem"
key = "/etc/ssl/b.key"
[dns]
servers = ["127.0.0.1:5353", "[::1]:53"]
timeout_ms = 500
tries = 1
[smtpd]
mx = ["192.0.2.7:25"]
submission = []
submissions = ["[2001:db8::7]:465"]
max_connections = 5
max_connections_per_ip = 2
idle_timeout = "7m"
max_line_length = 1000
max_message_size = 1048576
max_recipients = 100
[imapd]
imap = []
imaps = ["127.0.0.1:10993"]
max_connections = 7
max_connections_per_ip = 3
idle_timeout = 3601
max_line_length = 8192
[pop3d]
pop3 = ["127.0.0.1:10110"]
pop3s = []
max_connections = 9
max_connections_per_ip = 4
idle_timeout = "11m"
max_line_length = 512
)";
    auto first = load_ok(doc);
    ASSERT_TRUE(first);
    EXPECT_EQ(first->log.file, "/var/log/yubin \"quoted\" back\\slash é.log");
    std::string rendered = render_config_toml(*first);
    auto second = load_ok(rendered, "/elsewhere");
    ASSERT_TRUE(second) << rendered;
    Config a = *first;
    Config b = *second;
    a.source = b.source = "";
    EXPECT_EQ(render_config_toml(a), render_config_toml(b));
    // Spot checks that the values really survived, not just their rendering.
    EXPECT_EQ(b.server.hostname, "mx1.example.org");
    EXPECT_EQ(b.server.group, "mailgrp");
    EXPECT_EQ(b.server.shutdown_timeout, std::chrono::seconds(0));
    EXPECT_EQ(b.log.level, LogLevel::Debug);
    EXPECT_EQ(b.log.format, LogFormat::Json);
    EXPECT_EQ(b.log.file, a.log.file);
    EXPECT_EQ(b.store.max_readers, 126u);
    EXPECT_EQ(b.store.reader_check_interval, std::chrono::seconds(17));
    EXPECT_EQ(b.tls.min_version, TlsVersion::V1_3);
    EXPECT_EQ(b.tls.sni, (std::vector<TlsCertPair>{{"/etc/ssl/b.pem", "/etc/ssl/b.key"}}));
    EXPECT_EQ(b.dns.servers[1], (SocketAddress{"::1", 53, true}));
    EXPECT_EQ(b.smtpd.submissions[0], (SocketAddress{"2001:db8::7", 465, true}));
    EXPECT_EQ(b.smtpd.idle_timeout, std::chrono::seconds(420));
    EXPECT_EQ(b.imapd.idle_timeout, std::chrono::seconds(3601));
    EXPECT_TRUE(b.pop3d.pop3s.empty());
    EXPECT_EQ(b.pop3d.max_line_length, 512u);
    // And that it differs from the defaults in every section.
    auto defaults = load_ok("");
    ASSERT_TRUE(defaults);
    for (const auto& s : schema()) {
        bool differs = false;
        for (const auto& k : s.keys) {
            differs = differs || !(k.get(b) == k.get(*defaults));
        }
        EXPECT_TRUE(differs) << s.name;
    }
}

TEST(ConfigRender, EveryControlCharacterSurvives) {
    std::string file = "/tmp/x";
    for (int c = 1; c < 0x20; ++c) {
        file += static_cast<char>(c);
    }
    file += "\x7f";
    Config c = unresolved_defaults();
    c.log.file = file;
    auto back = load_ok(render_config_toml(c));
    ASSERT_TRUE(back);
    EXPECT_EQ(back->log.file, file);
}

// ---- reload ---------------------------------------------------------------

TEST(ConfigReload, RestartRequiredChanges) {
    auto running = load_ok("");
    auto same = load_ok("");
    ASSERT_TRUE(running && same);
    EXPECT_TRUE(restart_required_changes(*running, *same).empty());
    auto reloaded = load_ok(
        "[log]\nlevel = \"debug\"\n[tls]\ncert = \"/new/cert.pem\"\n"
        "[smtpd]\nmax_connections = 5\nmx = [\"0.0.0.0:2525\"]\n"
        "[store]\npath = \"/elsewhere\"\n[server]\nuser = \"other\"\n");
    ASSERT_TRUE(reloaded);
    EXPECT_EQ(restart_required_changes(*running, *reloaded),
              (std::vector<std::string>{"server.user", "store.path", "smtpd.mx"}));
}

TEST(ConfigReload, EachLoadIsAFreshSnapshot) {
    auto a = load_ok("[smtpd]\nmax_connections = 5\n");
    auto b = load_ok("[smtpd]\nmax_connections = 6\n");
    ASSERT_TRUE(a && b);
    EXPECT_NE(a.get(), b.get());
    EXPECT_EQ(a->smtpd.max_connections, 5u);  // untouched by the second load
    EXPECT_EQ(b->smtpd.max_connections, 6u);
}

}  // namespace
}  // namespace yubin::config
