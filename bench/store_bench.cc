// store_bench: durable deliveries per second through the group-commit writer
// (1 and 32 concurrent sessions, each waiting for its ack before the next
// delivery), next to the disk's own rate for one new file + fsync per message,
// measured in the same run; bodies inside LMDB vs as files; read rates; peak
// RSS. Usage: store_bench [work-dir] [seconds-per-case] [case-filter]. Figures go to
// docs/store.md.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "common/store/store.h"

namespace {

using Clock = std::chrono::steady_clock;
using yubin::store::Delivery;
using yubin::store::DeliveryTarget;
using yubin::store::Store;
using yubin::store::StoreOptions;

constexpr int kUsers = 8;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string make_body(size_t size, uint64_t n) {
    std::string body = fmt::format("Message-ID: <{}@bench>\r\nSubject: bench\r\n\r\n", n);
    while (body.size() < size) {
        body += "Lorem ipsum dolor sit amet, consectetur adipiscing elit 0123456789.\r\n";
    }
    body.resize(size);
    return body;
}

// One new file + write + fsync per message: what a maildir-style store pays.
double fsync_per_message_rate(const std::string& dir, size_t size, double seconds) {
    std::filesystem::create_directories(dir);
    std::string body = make_body(size, 0);
    auto t0 = Clock::now();
    uint64_t n = 0;
    while (seconds_since(t0) < seconds) {
        std::string path = fmt::format("{}/{}", dir, n);
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        if (fd < 0 || ::write(fd, body.data(), body.size()) != static_cast<ssize_t>(body.size()) ||
            ::fsync(fd) != 0) {
            std::perror("fsync baseline");
            std::exit(1);
        }
        ::close(fd);
        n++;
    }
    double rate = static_cast<double>(n) / seconds_since(t0);
    std::filesystem::remove_all(dir);
    return rate;
}

std::unique_ptr<Store> open_store(const std::string& path, uint64_t large_body_bytes) {
    std::filesystem::remove_all(path);
    StoreOptions o;
    o.path = path;
    o.map_size_bytes = 1ULL << 30;
    o.large_body_bytes = large_body_bytes;
    auto s = Store::open(o);
    if (!s) {
        std::fprintf(stderr, "open: %s\n", s.error().to_string().c_str());
        std::exit(1);
    }
    (void)(*s)->add_domain("bench.test");
    for (int u = 0; u < kUsers; ++u) {
        (void)(*s)->add_user(fmt::format("user{}@bench.test", u), "$y$x", 0);
    }
    return std::move(*s);
}

struct DeliverResult {
    double rate = 0;
    double p99_ms = 0;
    uint64_t count = 0;
};

DeliverResult deliver_rate(Store& store, size_t size, int sessions, double seconds) {
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> total{0};
    std::atomic<bool> failed{false};
    std::vector<std::vector<double>> latencies(static_cast<size_t>(sessions));
    std::vector<std::thread> threads;
    auto t0 = Clock::now();
    for (int s = 0; s < sessions; ++s) {
        threads.emplace_back([&, s] {
            uint64_t i = 0;
            while (!stop.load(std::memory_order_relaxed)) {
                Delivery d;
                d.body = make_body(size, static_cast<uint64_t>(s) << 32 | i);
                d.structure = std::string(200, 's');
                DeliveryTarget t;
                t.user = fmt::format("user{}@bench.test", (s + i) % kUsers);
                t.header_prefix = "Delivered-To: " + t.user + "\r\n";
                d.targets.push_back(std::move(t));
                auto start = Clock::now();
                auto r = store.deliver(std::move(d));
                if (!r) {
                    std::fprintf(stderr, "deliver: %s\n", r.error().to_string().c_str());
                    failed = true;
                    return;
                }
                latencies[static_cast<size_t>(s)].push_back(seconds_since(start) * 1000);
                total++;
                i++;
            }
        });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    for (auto& t : threads) {
        t.join();
    }
    double elapsed = seconds_since(t0);
    if (failed) {
        std::exit(1);
    }
    std::vector<double> all;
    for (auto& v : latencies) {
        all.insert(all.end(), v.begin(), v.end());
    }
    std::sort(all.begin(), all.end());
    DeliverResult r;
    r.count = total;
    r.rate = static_cast<double>(total) / elapsed;
    r.p99_ms = all.empty() ? 0 : all[all.size() * 99 / 100];
    return r;
}

// Random whole-message reads (prefix + body copied out) from 2 threads.
double read_rate(Store& store, double seconds) {
    std::vector<std::pair<uint64_t, uint32_t>> ids;
    for (int u = 0; u < kUsers; ++u) {
        auto mb = store.get_mailbox(fmt::format("user{}@bench.test", u), "INBOX");
        auto msgs = store.list_messages(mb->id);
        for (const auto& m : *msgs) {
            ids.emplace_back(mb->id, m.uid);
        }
    }
    if (ids.empty()) {
        return 0;
    }
    std::atomic<uint64_t> total{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    auto t0 = Clock::now();
    for (int t = 0; t < 2; ++t) {
        threads.emplace_back([&, t] {
            std::mt19937_64 rng(static_cast<uint64_t>(t) + 1);
            while (!stop.load(std::memory_order_relaxed)) {
                auto [box, uid] = ids[rng() % ids.size()];
                auto body = store.read_message(box, uid);
                if (!body || body->empty()) {
                    std::fprintf(stderr, "read failed\n");
                    std::exit(1);
                }
                total++;
            }
        });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    for (auto& t : threads) {
        t.join();
    }
    return static_cast<double>(total) / seconds_since(t0);
}

long peak_rss_kib() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

}  // namespace

int main(int argc, char** argv) {
    std::string dir = argc > 1 ? argv[1] : "/var/tmp/yubin-store-bench";
    double seconds = argc > 2 ? std::atof(argv[2]) : 3.0;
    // Optional third argument: run only the store cases whose label contains it.
    std::string only = argc > 3 ? argv[3] : "";
    std::filesystem::create_directories(dir);

    std::printf("store_bench: %s, %.1f s per case, %d users, 1 recipient per delivery\n\n",
                dir.c_str(), seconds, kUsers);
    double base4 = fsync_per_message_rate(dir + "/fsync", 4096, seconds);
    double base100 = fsync_per_message_rate(dir + "/fsync", 100 * 1024, seconds);
    std::printf("%-44s %12s %10s %10s %10s\n", "case", "msgs/s", "p99 ms", "x fsync", "ops/commit");
    std::printf("%-44s %12.0f %10s %10s\n", "new file + fsync per message, 4 KiB", base4, "-",
                "1.0");
    std::printf("%-44s %12.0f %10s %10s\n", "new file + fsync per message, 100 KiB", base100, "-",
                "1.0");

    struct Case {
        const char* label;
        size_t size;
        int sessions;
        uint64_t large_body_bytes;
    };
    const Case cases[] = {
        {"store, bodies in LMDB, 4 KiB, 1 session", 4096, 1, 1ULL << 20},
        {"store, bodies in LMDB, 4 KiB, 32 sessions", 4096, 32, 1ULL << 20},
        {"store, bodies in LMDB, 100 KiB, 1 session", 100 * 1024, 1, 1ULL << 20},
        {"store, bodies in LMDB, 100 KiB, 32 sessions", 100 * 1024, 32, 1ULL << 20},
        {"store, bodies as files, 4 KiB, 32 sessions", 4096, 32, 0},
        {"store, bodies as files, 100 KiB, 32 sessions", 100 * 1024, 32, 0},
    };
    std::vector<std::pair<std::string, double>> reads;
    for (const auto& c : cases) {
        if (!only.empty() && std::string(c.label).find(only) == std::string::npos) {
            continue;
        }
        auto store = open_store(dir + "/store", c.large_body_bytes);
        auto before = store->stats();
        auto r = deliver_rate(*store, c.size, c.sessions, seconds);
        auto after = store->stats();
        double per_commit =
            static_cast<double>(after.operations - before.operations) /
            static_cast<double>(std::max<uint64_t>(1, after.commits - before.commits));
        double base = c.size == 4096 ? base4 : base100;
        std::printf("%-44s %12.0f %10.2f %10.1f %10.1f\n", c.label, r.rate, r.p99_ms, r.rate / base,
                    per_commit);
        std::fflush(stdout);
        if (c.sessions == 32) {
            reads.emplace_back(c.label, read_rate(*store, seconds / 2));
        }
        store.reset();
        std::filesystem::remove_all(dir + "/store");
    }
    std::printf("\n%-44s %12s\n", "random whole-message reads (2 threads)", "reads/s");
    for (const auto& [label, rate] : reads) {
        std::printf("%-44s %12.0f\n", label.c_str(), rate);
    }
    std::printf("\npeak RSS: %ld MiB\n", peak_rss_kib() / 1024);
    std::filesystem::remove_all(dir);
    return 0;
}
