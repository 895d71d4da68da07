#include "common/log/log.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace yubin::log {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kT = 1700000000123456;  // 2023-11-14T22:13:20.123456Z
const LineContext kCtx{kT, "yubin-smtpd", 1234};

std::vector<std::string> read_lines(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<std::string> out;
    std::string line;
    while (std::getline(in, line)) {
        out.push_back(line);
    }
    return out;
}

class TempDir {
  public:
    TempDir() {
        std::string templ = (fs::temp_directory_path() / "yubin-log-XXXXXX").string();
        path_ = mkdtemp(templ.data());
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

  private:
    std::string path_;
};

config::LogConfig file_config(const std::string& path, LogLevel level = LogLevel::Info,
                              LogFormat format = LogFormat::Text) {
    config::LogConfig c;
    c.level = level;
    c.format = format;
    c.file = path;
    return c;
}

// Every test that init()s leaves logging pointed at stderr again.
class LogToFile : public ::testing::Test {
  protected:
    void TearDown() override { ASSERT_TRUE(init("yubin", config::LogConfig{})); }
    TempDir dir_;
    ManualClock clock_{kT};
};

// ---- formatting -----------------------------------------------------------

TEST(LogFormat, Timestamp) {
    EXPECT_EQ(format_timestamp(kT), "2023-11-14T22:13:20.123Z");
    EXPECT_EQ(format_timestamp(0), "1970-01-01T00:00:00.000Z");
    EXPECT_EQ(format_timestamp(1709164800999999), "2024-02-29T00:00:00.999Z");
}

TEST(LogFormat, TextLine) {
    EXPECT_EQ(format_line(LogFormat::Text, kCtx, LogLevel::Info, "S1a2b3c", "connect",
                          {{"client", "203.0.113.5:51234"}, {"tls", false}}),
              "2023-11-14T22:13:20.123Z yubin-smtpd[1234] info S1a2b3c connect "
              "client=203.0.113.5:51234 tls=no");
    EXPECT_EQ(format_line(LogFormat::Text, kCtx, LogLevel::Warn, "", "startup", {}),
              "2023-11-14T22:13:20.123Z yubin-smtpd[1234] warn - startup");
    std::string owned = "bob@example.org";
    EXPECT_EQ(format_line(LogFormat::Text, kCtx, LogLevel::Error, "Q9", "deliver",
                          {{"rcpt", owned},
                           {"size", uint64_t{18446744073709551615u}},
                           {"delta", -5},
                           {"ok", true},
                           {"sv", std::string_view("x")}}),
              "2023-11-14T22:13:20.123Z yubin-smtpd[1234] error Q9 deliver rcpt=bob@example.org "
              "size=18446744073709551615 delta=-5 ok=yes sv=x");
}

TEST(LogFormat, JsonLine) {
    EXPECT_EQ(format_line(LogFormat::Json, kCtx, LogLevel::Debug, "S1a2b3c", "connect",
                          {{"client", "203.0.113.5:51234"},
                           {"tls", false},
                           {"n", 42},
                           {"big", uint64_t{1} << 63}}),
              "{\"time\":\"2023-11-14T22:13:20.123Z\",\"daemon\":\"yubin-smtpd\",\"pid\":1234,"
              "\"level\":\"debug\",\"id\":\"S1a2b3c\",\"event\":\"connect\","
              "\"client\":\"203.0.113.5:51234\",\"tls\":false,\"n\":42,"
              "\"big\":9223372036854775808}");
}

TEST(LogFormat, TextValuesAreQuotedAndEscapedWhenNeeded) {
    auto value = [](std::string_view v) {
        std::string line = format_line(LogFormat::Text, kCtx, LogLevel::Info, "S", "e", {{"k", v}});
        return line.substr(line.find(" k=") + 3);
    };
    EXPECT_EQ(value("plain"), "plain");
    EXPECT_EQ(value(""), "\"\"");
    EXPECT_EQ(value("two words"), "\"two words\"");
    EXPECT_EQ(value("a=b"), "\"a=b\"");
    EXPECT_EQ(value("say \"hi\""), "\"say \\\"hi\\\"\"");
    EXPECT_EQ(value("back\\slash"), "\"back\\\\slash\"");
    EXPECT_EQ(value("line1\r\nline2\tx"), "\"line1\\r\\nline2\\tx\"");
    EXPECT_EQ(value(std::string_view("nul\0bel\x07", 8)), "\"nul\\x00bel\\x07\"");
    EXPECT_EQ(value("caf\xc3\xa9"), "\"caf\xc3\xa9\"");       // valid UTF-8 kept
    EXPECT_EQ(value("bad\xff\xc3("), "\"bad\\xff\\xc3(\"");   // invalid bytes escaped
    EXPECT_EQ(value("\xed\xa0\x80"), "\"\\xed\\xa0\\x80\"");  // a surrogate is not UTF-8
    std::string long_value(kMaxValueBytes + 100, 'a');
    EXPECT_EQ(value(long_value), "\"" + std::string(kMaxValueBytes, 'a') + "...\"");
}

TEST(LogFormat, TokensCannotBreakTheLine) {
    std::string line =
        format_line(LogFormat::Text, kCtx, LogLevel::Info, "S 1\n", "two words", {{"k e=y", "v"}});
    EXPECT_EQ(line, "2023-11-14T22:13:20.123Z yubin-smtpd[1234] info S_1_ two_words k_e_y=v");
}

TEST(LogFormat, JsonIsValidForHostileInput) {
    std::string nasty("\"\\\n\r\t\x01\x7f caf\xc3\xa9 \xff\xfe end");
    std::string line = format_line(LogFormat::Json, kCtx, LogLevel::Info, nasty, nasty,
                                   {{"v", nasty}, {nasty, 1}});
    EXPECT_EQ(line.find('\n'), std::string::npos);
    auto j = nlohmann::json::parse(line);  // throws (fails the test) if invalid
    std::string expected = "\"\\\n\r\t\x01\x7f caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd end";
    EXPECT_EQ(j["v"].get<std::string>(), expected);
    EXPECT_EQ(j["id"].get<std::string>(), expected);
    EXPECT_EQ(j["event"].get<std::string>(), expected);
    EXPECT_EQ(j[expected].get<int>(), 1);
    EXPECT_EQ(j["pid"].get<int>(), 1234);
    EXPECT_EQ(j["level"].get<std::string>(), "info");
}

// ---- writing --------------------------------------------------------------

TEST_F(LogToFile, WritesTextLinesAndFiltersByLevel) {
    const std::string path = dir_.file("yubin.log");
    ASSERT_TRUE(init("yubin-smtpd", file_config(path, LogLevel::Info), clock_));
    debug("S1", "hidden");
    info("S1", "connect", {{"client", "192.0.2.1:4000"}});
    clock_.advance_us(1500);
    warn("S1", "slow", {{"ms", 1500}});
    error("Q2", "bounce");
    trace("S1", "hidden_too");
    const std::string prefix = "yubin-smtpd[" + std::to_string(getpid()) + "] ";
    EXPECT_EQ(read_lines(path),
              (std::vector<std::string>{
                  "2023-11-14T22:13:20.123Z " + prefix + "info S1 connect client=192.0.2.1:4000",
                  "2023-11-14T22:13:20.124Z " + prefix + "warn S1 slow ms=1500",
                  "2023-11-14T22:13:20.124Z " + prefix + "error Q2 bounce"}));
    EXPECT_FALSE(enabled(LogLevel::Debug));
    EXPECT_TRUE(enabled(LogLevel::Info));
    set_level(LogLevel::Trace);
    trace("S1", "now_visible");
    EXPECT_EQ(read_lines(path).size(), 4u);
    EXPECT_EQ(level(), LogLevel::Trace);
}

TEST_F(LogToFile, JsonLinesParse) {
    const std::string path = dir_.file("yubin.json");
    ASSERT_TRUE(init("yubin-imapd", file_config(path, LogLevel::Debug, LogFormat::Json), clock_));
    debug("S7", "login", {{"user", "bob"}, {"ok", true}});
    info("S7", "logout");
    auto lines = read_lines(path);
    ASSERT_EQ(lines.size(), 2u);
    auto j = nlohmann::json::parse(lines[0]);
    EXPECT_EQ(j["daemon"], "yubin-imapd");
    EXPECT_EQ(j["pid"], getpid());
    EXPECT_EQ(j["level"], "debug");
    EXPECT_EQ(j["id"], "S7");
    EXPECT_EQ(j["event"], "login");
    EXPECT_EQ(j["user"], "bob");
    EXPECT_EQ(j["ok"], true);
    EXPECT_EQ(j["time"], "2023-11-14T22:13:20.123Z");
    EXPECT_EQ(nlohmann::json::parse(lines[1])["event"], "logout");
}

TEST_F(LogToFile, EmptyFileMeansStderr) {
    const std::string path = dir_.file("stderr.txt");
    int saved = dup(STDERR_FILENO);
    ASSERT_GE(saved, 0);
    FILE* capture = std::fopen(path.c_str(), "w");
    ASSERT_NE(capture, nullptr);
    ASSERT_GE(dup2(fileno(capture), STDERR_FILENO), 0);
    auto r = init("yubin-pop3d", file_config(""), clock_);
    info("S3", "to_stderr", {{"k", "v"}});
    auto reopened = reopen();  // a no-op for stderr, and stderr stays open
    info("S3", "still_stderr");
    dup2(saved, STDERR_FILENO);
    close(saved);
    std::fclose(capture);
    ASSERT_TRUE(r);
    ASSERT_TRUE(reopened);
    const std::string prefix =
        "2023-11-14T22:13:20.123Z yubin-pop3d[" + std::to_string(getpid()) + "] info S3 ";
    EXPECT_EQ(read_lines(path),
              (std::vector<std::string>{prefix + "to_stderr k=v", prefix + "still_stderr"}));
}

TEST_F(LogToFile, ReopenFollowsLogrotate) {
    const std::string path = dir_.file("yubin.log");
    ASSERT_TRUE(init("yubin-queue", file_config(path), clock_));
    info("Q1", "before");
    fs::rename(path, path + ".1");  // what logrotate does
    info("Q1", "still_old_file");
    ASSERT_TRUE(reopen());
    info("Q1", "after");
    auto old_lines = read_lines(path + ".1");
    auto new_lines = read_lines(path);
    ASSERT_EQ(old_lines.size(), 2u);
    EXPECT_NE(old_lines[1].find(" still_old_file"), std::string::npos);
    ASSERT_EQ(new_lines.size(), 1u);
    EXPECT_NE(new_lines[0].find(" Q1 after"), std::string::npos);
}

TEST_F(LogToFile, ReopenAppendsToAnExistingFile) {
    const std::string path = dir_.file("yubin.log");
    std::ofstream(path) << "earlier line\n";
    ASSERT_TRUE(init("yubin-queue", file_config(path), clock_));
    info("Q1", "x");
    ASSERT_TRUE(reopen());
    info("Q1", "y");
    auto lines = read_lines(path);
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines[0], "earlier line");
}

TEST_F(LogToFile, ReconfigureSwitchesFormatLevelAndFile) {
    const std::string a = dir_.file("a.log");
    const std::string b = dir_.file("b.log");
    ASSERT_TRUE(init("yubin-pop3d", file_config(a), clock_));
    debug("S1", "dropped");
    info("S1", "text_line");
    ASSERT_TRUE(reconfigure(file_config(a, LogLevel::Debug, LogFormat::Json)));
    debug("S1", "json_line");
    ASSERT_TRUE(reconfigure(file_config(b, LogLevel::Warn)));
    info("S1", "dropped_again");
    warn("S1", "in_b");
    auto la = read_lines(a);
    ASSERT_EQ(la.size(), 2u);
    EXPECT_NE(la[0].find("yubin-pop3d["), std::string::npos);
    EXPECT_EQ(nlohmann::json::parse(la[1])["event"], "json_line");
    auto lb = read_lines(b);
    ASSERT_EQ(lb.size(), 1u);
    EXPECT_NE(lb[0].find(" warn S1 in_b"), std::string::npos);
}

TEST_F(LogToFile, FailedInitKeepsTheOldSink) {
    const std::string path = dir_.file("ok.log");
    ASSERT_TRUE(init("yubin-smtpd", file_config(path), clock_));
    auto r = init("yubin-smtpd", file_config(dir_.file("no/such/dir/x.log")), clock_);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::Io);
    EXPECT_NE(r.error().message.find("no/such/dir/x.log"), std::string::npos);
    EXPECT_FALSE(reconfigure(file_config(dir_.file("no/such/dir/x.log"))));
    info("S1", "still_here");
    EXPECT_EQ(read_lines(path).size(), 1u);
}

// Lines from many threads must never interleave.
TEST_F(LogToFile, ThreadsNeverTearLines) {
    const std::string path = dir_.file("threads.log");
    ASSERT_TRUE(init("yubin-smtpd", file_config(path), clock_));
    constexpr int kThreads = 4;
    constexpr int kLines = 2000;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([t] {
            std::string payload(100 + t * 50, static_cast<char>('a' + t));
            for (int i = 0; i < kLines; ++i) {
                info("T" + std::to_string(t), "line", {{"i", i}, {"p", payload}});
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    auto lines = read_lines(path);
    ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads * kLines));
    const std::string prefix =
        "2023-11-14T22:13:20.123Z yubin-smtpd[" + std::to_string(getpid()) + "] info T";
    std::vector<int> next(kThreads, 0);
    for (const auto& l : lines) {
        ASSERT_EQ(l.rfind(prefix, 0), 0u) << l.substr(0, 200);
        int t = l[prefix.size()] - '0';
        ASSERT_TRUE(t >= 0 && t < kThreads) << l.substr(0, 200);
        // Each thread's lines arrive whole and in that thread's order.
        EXPECT_EQ(l, prefix + std::to_string(t) + " line i=" + std::to_string(next[t]++) +
                         " p=" + std::string(100 + t * 50, static_cast<char>('a' + t)));
    }
    EXPECT_EQ(next, std::vector<int>(kThreads, kLines));
}

// Several daemons append to one file: long lines (beyond stdio's buffer) stay whole.
TEST_F(LogToFile, ProcessesSharingAFileNeverTearLines) {
    const std::string path = dir_.file("shared.log");
    constexpr int kChildren = 3;
    constexpr int kLines = 300;
    std::vector<pid_t> children;
    for (int c = 0; c < kChildren; ++c) {
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            if (!init("yubin-child", file_config(path))) {
                _exit(2);
            }
            std::string payload(kMaxValueBytes, static_cast<char>('a' + c));
            for (int i = 0; i < kLines; ++i) {
                // Five long values: each line is over 10 KB.
                info("C" + std::to_string(c), "line",
                     {{"a", payload},
                      {"b", payload},
                      {"c", payload},
                      {"d", payload},
                      {"e", payload}});
            }
            _exit(0);
        }
        children.push_back(pid);
    }
    for (pid_t pid : children) {
        int status = 0;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    auto lines = read_lines(path);
    ASSERT_EQ(lines.size(), static_cast<size_t>(kChildren * kLines));
    for (const auto& l : lines) {
        size_t at = l.find(" info C");
        ASSERT_NE(at, std::string::npos) << l.substr(0, 100);
        int c = l[at + 7] - '0';
        std::string p(kMaxValueBytes, static_cast<char>('a' + c));
        EXPECT_EQ(l.substr(at), " info C" + std::to_string(c) + " line a=" + p + " b=" + p +
                                    " c=" + p + " d=" + p + " e=" + p);
    }
}

}  // namespace
}  // namespace yubin::log
