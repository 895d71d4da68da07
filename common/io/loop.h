// The event loop every daemon runs on: one libuv loop per process, one thread.
// Loop owns the uv_loop_t and a cross-thread post channel; Timer and
// SignalWatcher are small owners of one libuv handle each.
//
// Ownership: objects built on a Loop (timers, listeners, connections) must be
// destroyed before it. Their libuv handles live on the heap and are freed only
// in the uv_close callback, so destroying an owner from inside its own
// callback is safe; the Loop's destructor runs the loop briefly so that those
// close callbacks complete.
// Threads: everything here is called on the loop's thread, except
// Poster::post(), which any thread may call.
// Callbacks: user callbacks run on the loop thread; an exception escaping one
// is caught at the C boundary and reported through report_callback_exception.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include <uv.h>

#include "common/base/error.h"

namespace yubin::io {

// Closes a libuv handle and frees it in the close callback (libuv requires
// the memory to stay valid until then). handle->data is cleared first so
// callbacks still pending see that their owner is gone.
template <typename H>
struct UvHandleCloser {
    void operator()(H* handle) const noexcept {
        auto* h = reinterpret_cast<uv_handle_t*>(handle);
        h->data = nullptr;
        if (uv_is_closing(h) == 0) {
            uv_close(h, [](uv_handle_t* closed) { delete reinterpret_cast<H*>(closed); });
        }
    }
};
template <typename H>
using UvHandle = std::unique_ptr<H, UvHandleCloser<H>>;

// Called when a user callback throws: writes to stderr (the log module is
// built on top of io, so io cannot use it). Replaceable, e.g. by the daemon's
// logger; the replacement must not throw.
using CallbackErrorHandler = void (*)(std::string_view where, std::string_view what) noexcept;
void set_callback_error_handler(CallbackErrorHandler handler) noexcept;
void report_callback_exception(std::string_view where) noexcept;  // inside a catch block

// Runs `fn` and swallows/reports any exception: the trampoline every C
// callback goes through.
template <typename Fn>
void guarded(std::string_view where, Fn&& fn) noexcept {
    try {
        fn();
    } catch (...) {
        report_callback_exception(where);
    }
}

// Thread-safe handle for running closures on the loop thread (e.g. the store's
// writer thread reporting a commit). Copyable; stays safe after the loop is
// gone (post then returns false).
class Poster {
public:
    Poster() = default;
    // Queues fn to run on the loop thread, in posting order. False if the
    // loop has been destroyed.
    bool post(std::function<void()> fn) const;

private:
    friend class Loop;
    struct Shared {
        std::mutex mu;
        uv_async_t* async = nullptr;  // null once the loop is closing
        std::vector<std::function<void()>> queue;
    };
    explicit Poster(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}
    std::shared_ptr<Shared> shared_;
};

class Loop {
public:
    static Result<std::unique_ptr<Loop>> create();
    ~Loop();
    Loop(const Loop&) = delete;
    Loop& operator=(const Loop&) = delete;

    uv_loop_t* raw() { return &loop_; }
    // Runs until stop() or until nothing keeps the loop alive. The post
    // channel does not keep it alive.
    void run();
    // Runs one iteration; with wait=false returns at once if nothing is ready.
    bool run_once(bool wait = true);
    // Makes run() return after the current iteration. Loop thread only (from
    // another thread: post a closure that calls stop()).
    void stop();
    // Milliseconds since an arbitrary origin, cached per iteration.
    uint64_t now_ms() const { return uv_now(&loop_); }

    Poster poster() const { return Poster(post_); }
    // Loop thread shorthand for poster().post().
    bool post(std::function<void()> fn) const { return poster().post(std::move(fn)); }

private:
    Loop() = default;
    static void on_async(uv_async_t* handle) noexcept;

    uv_loop_t loop_{};
    bool initialized_ = false;
    std::shared_ptr<Poster::Shared> post_;
};

class Timer {
public:
    Timer(Loop& loop, std::function<void()> on_fire);
    ~Timer() = default;
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;

    // Fires after timeout_ms, then every repeat_ms if non-zero. Restarts if
    // already running.
    void start(uint64_t timeout_ms, uint64_t repeat_ms = 0);
    void stop();
    bool active() const;

private:
    static void on_timer(uv_timer_t* handle) noexcept;
    std::function<void()> on_fire_;
    UvHandle<uv_timer_t> handle_;
};

// Watches one signal (SIGTERM for graceful shutdown, SIGHUP for reload,
// SIGINT). The callback runs on the loop thread, not in signal context.
class SignalWatcher {
public:
    static Result<std::unique_ptr<SignalWatcher>> create(Loop& loop, int signum,
                                                         std::function<void(int)> on_signal);
    ~SignalWatcher() = default;

private:
    SignalWatcher() = default;
    static void on_signal(uv_signal_t* handle, int signum) noexcept;
    std::function<void(int)> on_signal_;
    UvHandle<uv_signal_t> handle_;
};

// "uv_strerror(code)" as an Error.
Error uv_error(std::string_view what, int code);

}  // namespace yubin::io
