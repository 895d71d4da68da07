#include "common/io/loop.h"

#include <gtest/gtest.h>

#include <csignal>
#include <thread>
#include <vector>

#include "tests/unit/io/test_support.h"

namespace yubin::io {
namespace {

using testing::run_until;

std::unique_ptr<Loop> new_loop() {
    auto loop = Loop::create();
    EXPECT_TRUE(loop.has_value());
    return std::move(*loop);
}

TEST(Loop, PostRunsClosuresFromAnotherThreadInOrder) {
    auto loop = new_loop();
    std::vector<int> seen;
    const std::thread::id loop_thread = std::this_thread::get_id();
    bool all_on_loop_thread = true;
    Poster poster = loop->poster();
    std::thread writer([&] {
        for (int i = 0; i < 1000; ++i) {
            ASSERT_TRUE(poster.post([&, i] {
                all_on_loop_thread &= std::this_thread::get_id() == loop_thread;
                seen.push_back(i);
            }));
        }
    });
    EXPECT_TRUE(run_until(*loop, [&] { return seen.size() == 1000; }));
    writer.join();
    ASSERT_EQ(seen.size(), 1000u);
    for (int i = 0; i < 1000; ++i) {
        ASSERT_EQ(seen[static_cast<size_t>(i)], i);
    }
    EXPECT_TRUE(all_on_loop_thread);
    loop.reset();
    EXPECT_FALSE(poster.post([] {}));  // safe after the loop is gone
}

TEST(Loop, RunReturnsWhenIdleAndStopWorksFromAPost) {
    auto loop = new_loop();
    int fired = 0;
    Timer t(*loop, [&] { ++fired; });
    t.start(10);
    loop->run();  // the post channel does not keep it alive
    EXPECT_EQ(fired, 1);

    Timer forever(*loop, [] {});
    forever.start(10, 10);
    std::thread other([p = loop->poster(), l = loop.get()] { p.post([l] { l->stop(); }); });
    loop->run();  // returns only because of the posted stop()
    other.join();
    EXPECT_TRUE(forever.active());
}

TEST(Loop, TimerRepeatsAndStops) {
    auto loop = new_loop();
    int fired = 0;
    std::unique_ptr<Timer> t;
    t = std::make_unique<Timer>(*loop, [&] {
        if (++fired == 3) {
            t.reset();  // destroying a timer inside its own callback is safe
        }
    });
    t->start(1, 1);
    EXPECT_TRUE(run_until(*loop, [&] { return fired == 3 && !t; }));
    loop->run_once(false);
    EXPECT_EQ(fired, 3);
}

TEST(Loop, ExceptionsInCallbacksAreCaught) {
    static int reported = 0;
    set_callback_error_handler([](std::string_view, std::string_view what) noexcept {
        reported += what == "boom" ? 1 : 100;
    });
    auto loop = new_loop();
    Timer t(*loop, [] { throw std::runtime_error("boom"); });
    t.start(1);
    EXPECT_TRUE(run_until(*loop, [] { return reported > 0; }));
    EXPECT_EQ(reported, 1);
    set_callback_error_handler(nullptr);
}

TEST(Loop, SignalWatcherRunsOnTheLoop) {
    auto loop = new_loop();
    int got = 0;
    auto w = SignalWatcher::create(*loop, SIGHUP, [&](int sig) { got = sig; });
    ASSERT_TRUE(w.has_value());
    std::raise(SIGHUP);
    EXPECT_TRUE(run_until(*loop, [&] { return got != 0; }));
    EXPECT_EQ(got, SIGHUP);
}

}  // namespace
}  // namespace yubin::io
