// Several processes on one store: schema migration at open, stale reader
// slots, change notification, concurrent delivering/reading processes, and
// crash safety under SIGKILL. Children are forked while the parent has no
// store open (LMDB must not be used across fork) and always leave with _exit.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "common/store/change_listener.h"
#include "common/store/codec.h"
#include "common/store/lmdb_store.h"
#include "test_util.h"

namespace yubin::store::testing {
namespace {

int64_t mono_us() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

void write_all(int fd, const std::string& s) {
    size_t done = 0;
    while (done < s.size()) {
        ssize_t n = ::write(fd, s.data() + done, s.size() - done);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            return;
        }
        done += static_cast<size_t>(n);
    }
}

std::string read_all(int fd) {
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return out;
        }
        out.append(buf, static_cast<size_t>(n));
    }
}

std::vector<std::string> lines(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty()) {
            out.push_back(line);
        }
    }
    return out;
}

void setup_store(const StoreOptions& o) {
    auto s = open_or_die(o);
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->add_domain("example.com"));
    ASSERT_TRUE(s->add_user("alice@example.com", "h", 0));
    ASSERT_TRUE(s->add_user("bob@example.com", "h", 0));
}

// Every message body in the users' INBOXes, with how often each occurs.
std::map<std::string, int> bodies_of(Store& s, const std::string& user) {
    std::map<std::string, int> out;
    auto mb = s.get_mailbox(user, "INBOX");
    EXPECT_TRUE(mb);
    if (!mb) {
        return out;
    }
    auto msgs = s.list_messages(mb->id);
    EXPECT_TRUE(msgs);
    for (const auto& m : *msgs) {
        auto body = s.read_message(mb->id, m.uid);
        EXPECT_TRUE(body) << body.error().to_string();
        if (body) {
            out[body->substr(0, body->find('|'))]++;
        }
    }
    return out;
}

std::atomic<int> g_migration_runs{0};

TEST(Schema, MigrationRunsOnceAtOpen) {
    TempDir dir;
    auto o = options_for(dir.path());
    {
        auto fresh = open_or_die(o);
        ASSERT_TRUE(fresh);
        EXPECT_EQ(*fresh->schema_version(), kSchemaVersion);
    }
    std::vector<Migration> next = builtin_migrations();
    next.push_back([](MigrationContext& mc) -> Result<void> {
        g_migration_runs++;
        MDB_val k{6, const_cast<char*>("marker")};
        MDB_val v{2, const_cast<char*>("v2")};
        int rc = mdb_put(mc.txn, mc.tables.meta, &k, &v, 0);
        if (rc != 0) {
            return fail(ErrorCode::Io, mdb_strerror(rc));
        }
        return {};
    });
    for (int i = 0; i < 3; ++i) {
        auto s = open_lmdb_store(o, next);
        ASSERT_TRUE(s) << s.error().to_string();
        EXPECT_EQ(*(*s)->schema_version(), kSchemaVersion + 1);
    }
    EXPECT_EQ(g_migration_runs.load(), 1);
    // Older code refuses a newer store instead of misreading it.
    auto old = Store::open(o);
    ASSERT_FALSE(old);
    EXPECT_EQ(old.error().code, ErrorCode::Perm);

    // A failing migration leaves the store at its old version.
    TempDir dir2;
    auto o2 = options_for(dir2.path());
    std::vector<Migration> broken = builtin_migrations();
    broken.push_back(
        [](MigrationContext&) -> Result<void> { return fail(ErrorCode::Internal, "boom"); });
    auto b = open_lmdb_store(o2, broken);
    ASSERT_FALSE(b);
    // Opening with no migrations at all shows what is on disk: version 0, i.e.
    // not even the 0→1 step that ran before the failing one was committed.
    {
        auto raw = open_lmdb_store(o2, {});
        ASSERT_TRUE(raw) << raw.error().to_string();
        EXPECT_EQ(*(*raw)->schema_version(), 0u) << "nothing of the failed open was committed";
    }
    auto ok = Store::open(o2);
    ASSERT_TRUE(ok) << ok.error().to_string();
    EXPECT_EQ(*(*ok)->schema_version(), kSchemaVersion);
}

TEST(StaleReaders, SlotOfKilledReaderIsCleared) {
    TempDir dir;
    auto o = options_for(dir.path());
    setup_store(o);
    auto store = open_or_die(o);
    ASSERT_TRUE(store);
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        // Child: a raw LMDB reader that holds its read transaction until killed.
        MDB_env* env = nullptr;
        MDB_txn* txn = nullptr;
        if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 32) != 0 ||
            mdb_env_open(env, o.path.c_str(), MDB_NOTLS | MDB_RDONLY, 0660) != 0 ||
            mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn) != 0) {
            ::_exit(1);
        }
        write_all(ready[1], "r");
        for (;;) {
            ::pause();
        }
    }
    ::close(ready[1]);
    char c = 0;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
    ::close(ready[0]);
    EXPECT_EQ(*store->check_stale_readers(), 0) << "a live reader is not stale";
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    auto cleared = store->check_stale_readers();
    ASSERT_TRUE(cleared);
    EXPECT_EQ(*cleared, 1);
    EXPECT_EQ(*store->check_stale_readers(), 0);
}

TEST(Notification, ReachesAnotherProcessWithinMilliseconds) {
    TempDir dir;
    auto o = options_for(dir.path());
    setup_store(o);
    int ready[2];
    int report[2];
    ASSERT_EQ(::pipe(ready), 0);
    ASSERT_EQ(::pipe(report), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        auto l = ChangeListener::open(o.path, "child");
        if (!l) {
            ::_exit(1);
        }
        write_all(ready[1], "r");
        pollfd p{(*l)->fd(), POLLIN, 0};
        if (::poll(&p, 1, 10000) != 1) {
            ::_exit(2);
        }
        int64_t t = mono_us();
        std::string out = std::to_string(t);
        for (const auto& c : (*l)->drain()) {
            out += " " + std::to_string(static_cast<int>(c.kind)) + ":" + std::to_string(c.id);
        }
        write_all(report[1], out + "\n");
        ::_exit(0);
    }
    ::close(ready[1]);
    ::close(report[1]);
    char c = 0;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);

    // A listener that died without cleaning up: its socket file stays, and the
    // first send removes it (ECONNREFUSED).
    std::string dead = o.path + "/notify/dead-1.sock";
    {
        int fd = ::socket(AF_UNIX, SOCK_DGRAM, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, dead.c_str(), sizeof(addr.sun_path) - 1);
        ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
        ::close(fd);
    }
    ASSERT_TRUE(std::filesystem::exists(dead));

    auto store = open_or_die(o);
    ASSERT_TRUE(store);
    auto self = ChangeListener::open(o.path, "self");
    ASSERT_TRUE(self);
    uint64_t box = store->get_mailbox("alice@example.com", "INBOX")->id;
    int64_t t0 = mono_us();
    Delivery d;
    d.body = "hello";
    d.targets.push_back(DeliveryTarget{"alice@example.com"});
    ASSERT_TRUE(store->deliver(d));
    int64_t t1 = mono_us();  // commit, fsync and callback done
    std::string got = read_all(report[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
    std::istringstream in(got);
    int64_t t_recv = 0;
    in >> t_recv;
    std::string rest;
    std::getline(in, rest);
    EXPECT_NE(rest.find("1:" + std::to_string(box)), std::string::npos) << rest;
    int64_t latency = t_recv - t0;
    EXPECT_GE(latency, 0);
    // The hint is sent right after the commit, before the callbacks, so it
    // normally arrives before deliver() even returns; allow scheduling slack on
    // a loaded machine, but not a poll interval.
    EXPECT_LT(t_recv - t1, 50000) << "hint arrived " << (t_recv - t1) << " us after the ack";
    std::printf("notification: %lld us after submission (commit included), %lld us after ack\n",
                static_cast<long long>(latency), static_cast<long long>(t_recv - t1));
    EXPECT_FALSE(std::filesystem::exists(dead)) << "dead listener's socket removed";

    // In-process listener too, with de-duplication of repeated hints.
    auto changes = (*self)->drain();
    EXPECT_NE(std::find(changes.begin(), changes.end(), Change{Change::Kind::Mailbox, box}),
              changes.end());
    EXPECT_TRUE((*self)->drain().empty());
    ASSERT_TRUE(store->deliver(d));
    ASSERT_TRUE(store->deliver(d));
    changes = (*self)->drain();
    EXPECT_EQ(changes.size(), 1u);
    ::close(ready[0]);
    ::close(report[0]);
}

// Child body: open the store, deliver `count` messages from `threads` threads
// (each waiting for its ack), reporting each acknowledged token on fd. With
// forever = true it loops until killed.
[[noreturn]] void delivering_child(const StoreOptions& o, const std::string& tag, int threads,
                                   int count, bool forever, int fd) {
    auto s = Store::open(o);
    if (!s) {
        ::_exit(3);
    }
    std::atomic<bool> failed{false};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
        ts.emplace_back([&, t] {
            for (int i = 0; forever || i < count; ++i) {
                std::string token = fmt::format("{}:{}:{}", tag, t, i);
                Delivery d;
                // Every 7th body is large enough to go to a file.
                d.body = token + "|" + std::string(i % 7 == 0 ? 3000 : 200, 'x');
                d.targets.push_back(DeliveryTarget{"alice@example.com"});
                d.targets.push_back(DeliveryTarget{"bob@example.com"});
                auto r = (*s)->deliver(std::move(d));
                if (!r) {
                    failed = true;
                    return;
                }
                write_all(fd, token + "\n");  // atomic: shorter than PIPE_BUF
            }
        });
    }
    for (auto& t : ts) {
        t.join();
    }
    s->reset();
    ::_exit(failed ? 4 : 0);
}

TEST(MultiProcess, ConcurrentDeliveriesAndReadsFindEveryAckExactlyOnce) {
    TempDir dir;
    auto o = options_for(dir.path());
    o.large_body_bytes = 2048;
    setup_store(o);
    constexpr int kProcs = 3;
    constexpr int kPerThread = 40;
    constexpr int kThreads = 4;
    std::vector<pid_t> pids;
    std::vector<int> fds;
    for (int p = 0; p < kProcs; ++p) {
        int fd[2];
        ASSERT_EQ(::pipe(fd), 0);
        pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            ::close(fd[0]);
            delivering_child(o, "p" + std::to_string(p), kThreads, kPerThread, false, fd[1]);
        }
        ::close(fd[1]);
        pids.push_back(pid);
        fds.push_back(fd[0]);
    }
    // Meanwhile this process reads: counts never go backwards and every listed
    // message can be read.
    {
        auto s = open_or_die(o);
        ASSERT_TRUE(s);
        uint64_t box = s->get_mailbox("alice@example.com", "INBOX")->id;
        uint32_t last = 0;
        int rounds = 0;
        while (last < kProcs * kThreads * kPerThread && rounds < 20000) {
            rounds++;
            auto mb = s->get_mailbox_by_id(box);
            ASSERT_TRUE(mb);
            ASSERT_GE(mb->messages, last);
            last = mb->messages;
            auto msgs = s->list_messages(box, mb->uidnext > 5 ? mb->uidnext - 5 : 1);
            ASSERT_TRUE(msgs);
            for (const auto& m : *msgs) {
                auto body = s->read_message(box, m.uid);
                ASSERT_TRUE(body) << body.error().to_string();
                ASSERT_EQ(body->size(), m.size);
            }
        }
    }
    std::vector<std::string> acked;
    for (int p = 0; p < kProcs; ++p) {
        std::string out = read_all(fds[p]);
        ::close(fds[p]);
        int status = 0;
        ::waitpid(pids[p], &status, 0);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child " << p;
        for (auto& l : lines(out)) {
            acked.push_back(l);
        }
    }
    EXPECT_EQ(acked.size(), static_cast<size_t>(kProcs * kThreads * kPerThread));
    auto s = open_or_die(o);
    ASSERT_TRUE(s);
    for (const char* user : {"alice@example.com", "bob@example.com"}) {
        auto bodies = bodies_of(*s, user);
        EXPECT_EQ(bodies.size(), acked.size());
        for (const auto& token : acked) {
            EXPECT_EQ(bodies[token], 1) << user << " " << token;
        }
    }
    auto rep = s->check_consistency();
    ASSERT_TRUE(rep);
    EXPECT_TRUE(rep->problems.empty()) << rep->problems.front();
    EXPECT_EQ(rep->blobs, acked.size());
}

TEST(CrashSafety, AcknowledgedDeliveriesSurviveSigkill) {
    TempDir dir;
    auto o = options_for(dir.path());
    o.large_body_bytes = 2048;
    o.map_size_bytes = 1 << 20;  // growth happens during the rounds too
    setup_store(o);
    std::mt19937 rng(12345);
    std::vector<std::string> acked;
    int total_acked_rounds = 0;
    for (int round = 0; round < 5; ++round) {
        int fd[2];
        ASSERT_EQ(::pipe(fd), 0);
        pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            ::close(fd[0]);
            delivering_child(o, "r" + std::to_string(round), 4, 0, true, fd[1]);
        }
        ::close(fd[1]);
        // Kill at a random point once it has acknowledged something.
        std::string out;
        char buf[4096];
        int64_t deadline = mono_us() + 10000000;
        int64_t kill_after = -1;
        while (mono_us() < deadline) {
            pollfd p{fd[0], POLLIN, 0};
            if (::poll(&p, 1, 10) == 1) {
                ssize_t n = ::read(fd[0], buf, sizeof(buf));
                if (n > 0) {
                    out.append(buf, static_cast<size_t>(n));
                }
            }
            if (kill_after < 0 && !out.empty()) {
                kill_after = mono_us() + std::uniform_int_distribution<int>(5000, 150000)(rng);
            }
            if (kill_after >= 0 && mono_us() >= kill_after) {
                break;
            }
        }
        ::kill(pid, SIGKILL);
        int status = 0;
        ::waitpid(pid, &status, 0);
        EXPECT_TRUE(WIFSIGNALED(status)) << "child ended on its own: " << status;
        out += read_all(fd[0]);
        ::close(fd[0]);
        auto round_acks = lines(out);
        if (!round_acks.empty()) {
            total_acked_rounds++;
        }
        acked.insert(acked.end(), round_acks.begin(), round_acks.end());

        // After each crash: opens, is consistent, and has every ack exactly once.
        auto s = open_or_die(o);
        ASSERT_TRUE(s);
        auto rep = s->check_consistency();
        ASSERT_TRUE(rep);
        for (const auto& p : rep->problems) {
            ADD_FAILURE() << "round " << round << ": " << p;
        }
        for (const char* user : {"alice@example.com", "bob@example.com"}) {
            auto bodies = bodies_of(*s, user);
            for (const auto& [token, n] : bodies) {
                EXPECT_EQ(n, 1) << "duplicate " << token;
            }
            for (const auto& token : acked) {
                EXPECT_EQ(bodies[token], 1) << "round " << round << " lost " << token;
            }
        }
    }
    EXPECT_EQ(total_acked_rounds, 5);
    EXPECT_GT(acked.size(), 20u);
}

}  // namespace
}  // namespace yubin::store::testing
