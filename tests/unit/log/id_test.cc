#include "common/log/id.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_set>
#include <vector>

#include <gtest/gtest.h>

namespace yubin::log {
namespace {

constexpr int64_t kT = 1764345600000000;  // 2025-11-28T16:00:00Z in microseconds

bool well_formed(const std::string& id, char prefix) {
    if (id.size() != kIdLength || id[0] != prefix) {
        return false;
    }
    return std::all_of(id.begin() + 1, id.end(), [](char c) {
        return std::string_view("0123456789abcdefghjkmnpqrstvwxyz").find(c) !=
               std::string_view::npos;
    });
}

TEST(Ids, ShapeAndDecoding) {
    ManualClock clock(kT + 123456);
    IdGenerator gen(clock, 4194303);  // the largest pid
    std::string id = gen.next('S');
    EXPECT_TRUE(well_formed(id, 'S')) << id;
    auto parts = parse_id(id);
    ASSERT_TRUE(parts);
    EXPECT_EQ(parts->prefix, 'S');
    EXPECT_EQ(parts->time_ms, kT / 1000 + 123);
    EXPECT_EQ(parts->counter, 0u);
    EXPECT_EQ(parts->pid, 4194303u);
    auto second = parse_id(gen.next('Q'));
    ASSERT_TRUE(second);
    EXPECT_EQ(second->prefix, 'Q');
    EXPECT_EQ(second->time_ms, kT / 1000 + 123);
    EXPECT_EQ(second->counter, 1u);

    EXPECT_FALSE(parse_id("S123"));
    EXPECT_FALSE(parse_id("S0000000000000il"));  // letters outside the alphabet
    EXPECT_FALSE(parse_id("Szzzzzzzzzzzzzzz"));  // the unused top bit set
}

TEST(Ids, FrozenClockStillUniqueAndIncreasing) {
    ManualClock clock(kT);
    IdGenerator gen(clock, 42);
    std::string prev;
    std::set<std::string> seen;
    for (int i = 0; i < 5000; ++i) {  // more than 1024 per millisecond
        std::string id = gen.next('S');
        EXPECT_GT(id.substr(1), prev.empty() ? "" : prev.substr(1));
        EXPECT_TRUE(seen.insert(id).second) << id;
        prev = id;
    }
    // The time part ran ahead: the 5000th id is 4 milliseconds and 903 ids on.
    auto last = parse_id(prev);
    ASSERT_TRUE(last);
    EXPECT_EQ(last->time_ms, kT / 1000 + 4);
    EXPECT_EQ(last->counter, 4999u - 4 * 1024);
    // When the clock moves on past the run-ahead, the counter starts over.
    clock.advance_us(10 * 1000);
    auto fresh = parse_id(gen.next('S'));
    ASSERT_TRUE(fresh);
    EXPECT_EQ(fresh->time_ms, kT / 1000 + 10);
    EXPECT_EQ(fresh->counter, 0u);
}

TEST(Ids, ProcessesDifferByPidAndRestartsByTime) {
    ManualClock clock(kT);
    IdGenerator a(clock, 100);
    IdGenerator b(clock, 101);
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
        EXPECT_TRUE(seen.insert(a.next('S')).second);
        EXPECT_TRUE(seen.insert(b.next('S')).second);
    }
    // A restarted process reusing pid 100 one millisecond later.
    clock.advance_us(1000);
    IdGenerator restarted(clock, 100);
    for (int i = 0; i < 1000; ++i) {
        EXPECT_TRUE(seen.insert(restarted.next('S')).second);
    }
}

TEST(Ids, SortByTimeAcrossProcesses) {
    ManualClock clock(kT);
    std::string early = IdGenerator(clock, 4000000).next('Q');
    clock.advance_us(1000);
    std::string late = IdGenerator(clock, 1).next('Q');
    EXPECT_LT(early, late);
}

TEST(Ids, UniqueAcrossThreads) {
    IdGenerator gen;  // real clock, real pid
    constexpr int kThreads = 4;
    constexpr int kEach = 50000;
    std::vector<std::vector<std::string>> ids(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            ids[t].reserve(kEach);
            for (int i = 0; i < kEach; ++i) {
                ids[t].push_back(gen.next('S'));
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    std::unordered_set<std::string> all;
    for (const auto& v : ids) {
        for (size_t i = 0; i < v.size(); ++i) {
            EXPECT_TRUE(all.insert(v[i]).second) << v[i];
            if (i > 0) {
                EXPECT_LT(v[i - 1], v[i]);  // increasing within each thread too
            }
        }
    }
    EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kEach));
    auto parts = parse_id(ids[0][0]);
    ASSERT_TRUE(parts);
    EXPECT_EQ(parts->pid, static_cast<uint32_t>(getpid()));
}

TEST(Ids, ProcessWideGeneratorsAndFork) {
    std::string s = new_session_id();
    std::string q = new_queue_id();
    EXPECT_TRUE(well_formed(s, 'S')) << s;
    EXPECT_TRUE(well_formed(q, 'Q')) << q;
    EXPECT_NE(s.substr(1), q.substr(1));

    // A child forked right after inherits the generator's state but not its pid.
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        std::string id = new_session_id();
        ssize_t n = ::write(fds[1], id.data(), id.size());
        _exit(n == static_cast<ssize_t>(id.size()) ? 0 : 1);
    }
    std::string parent_id = new_session_id();
    char buf[kIdLength] = {};
    ASSERT_EQ(read(fds[0], buf, sizeof(buf)), static_cast<ssize_t>(kIdLength));
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    close(fds[0]);
    close(fds[1]);
    std::string child_id(buf, kIdLength);
    EXPECT_NE(child_id, parent_id);
    auto child = parse_id(child_id);
    ASSERT_TRUE(child);
    EXPECT_EQ(child->pid, static_cast<uint32_t>(pid));
}

}  // namespace
}  // namespace yubin::log
