#include "common/io/loop.h"

#include <atomic>
#include <cstdio>
#include <exception>
#include <string>

namespace yubin::io {

namespace {

void default_error_handler(std::string_view where, std::string_view what) noexcept {
    std::fprintf(stderr, "yubin: exception escaped a callback in %.*s: %.*s\n",
                 static_cast<int>(where.size()), where.data(), static_cast<int>(what.size()),
                 what.data());
}

std::atomic<CallbackErrorHandler> g_error_handler{&default_error_handler};

}  // namespace

void set_callback_error_handler(CallbackErrorHandler handler) noexcept {
    g_error_handler.store(handler != nullptr ? handler : &default_error_handler);
}

void report_callback_exception(std::string_view where) noexcept {
    std::string what = "unknown exception";
    try {
        throw;
    } catch (const std::exception& e) {
        try {
            what = e.what();
        } catch (...) {
        }
    } catch (...) {
    }
    g_error_handler.load()(where, what);
}

Error uv_error(std::string_view what, int code) {
    return Error{ErrorCode::Io, std::string(what) + ": " + uv_strerror(code)};
}

bool Poster::post(std::function<void()> fn) const {
    if (!shared_) {
        return false;
    }
    std::lock_guard<std::mutex> lock(shared_->mu);
    if (shared_->async == nullptr) {
        return false;
    }
    shared_->queue.push_back(std::move(fn));
    // Under the lock, so the Loop cannot close the handle in between.
    uv_async_send(shared_->async);
    return true;
}

Result<std::unique_ptr<Loop>> Loop::create() {
    std::unique_ptr<Loop> loop(new Loop());
    int rc = uv_loop_init(&loop->loop_);
    if (rc != 0) {
        return fail(uv_error("uv_loop_init", rc));
    }
    loop->initialized_ = true;
    loop->post_ = std::make_shared<Poster::Shared>();
    auto* async = new uv_async_t();
    rc = uv_async_init(&loop->loop_, async, &Loop::on_async);
    if (rc != 0) {
        delete async;
        return fail(uv_error("uv_async_init", rc));
    }
    async->data = loop->post_.get();
    // Posting is a side channel: it must not keep run() from returning.
    uv_unref(reinterpret_cast<uv_handle_t*>(async));
    loop->post_->async = async;
    return loop;
}

void Loop::on_async(uv_async_t* handle) noexcept {
    auto* shared = static_cast<Poster::Shared*>(handle->data);
    if (shared == nullptr) {
        return;
    }
    std::vector<std::function<void()>> batch;
    {
        std::lock_guard<std::mutex> lock(shared->mu);
        batch.swap(shared->queue);
    }
    for (auto& fn : batch) {
        guarded("Loop::post", [&] { fn(); });
    }
}

Loop::~Loop() {
    if (!initialized_) {
        return;
    }
    {
        std::lock_guard<std::mutex> lock(post_->mu);
        if (post_->async != nullptr) {
            UvHandleCloser<uv_async_t>()(post_->async);
            post_->async = nullptr;
        }
        post_->queue.clear();
    }
    // Let pending close callbacks (ours and those of objects already
    // destroyed) run, which frees their handles.
    int rc = UV_EBUSY;
    for (int i = 0; i < 16; ++i) {
        rc = uv_loop_close(&loop_);
        if (rc != UV_EBUSY) {
            break;
        }
        uv_run(&loop_, UV_RUN_NOWAIT);
    }
    if (rc == UV_EBUSY) {
        // Something outlived the loop: a bug in its owner. Close what is left
        // so the loop can go; the handles' memory is leaked, not freed twice.
        uv_walk(
            &loop_,
            [](uv_handle_t* h, void*) {
                if (uv_is_closing(h) == 0) {
                    uv_close(h, nullptr);
                }
            },
            nullptr);
        uv_run(&loop_, UV_RUN_NOWAIT);
        uv_loop_close(&loop_);
    }
}

void Loop::run() {
    uv_run(&loop_, UV_RUN_DEFAULT);
}

bool Loop::run_once(bool wait) {
    return uv_run(&loop_, wait ? UV_RUN_ONCE : UV_RUN_NOWAIT) != 0;
}

void Loop::stop() {
    uv_stop(&loop_);
}

Timer::Timer(Loop& loop, std::function<void()> on_fire) : on_fire_(std::move(on_fire)) {
    auto* t = new uv_timer_t();
    uv_timer_init(loop.raw(), t);  // cannot fail: it only links the handle
    t->data = this;
    handle_.reset(t);
}

void Timer::start(uint64_t timeout_ms, uint64_t repeat_ms) {
    uv_timer_start(handle_.get(), &Timer::on_timer, timeout_ms, repeat_ms);
}

void Timer::stop() {
    uv_timer_stop(handle_.get());
}

bool Timer::active() const {
    return uv_is_active(reinterpret_cast<const uv_handle_t*>(handle_.get())) != 0;
}

void Timer::on_timer(uv_timer_t* handle) noexcept {
    auto* self = static_cast<Timer*>(handle->data);
    if (self == nullptr || !self->on_fire_) {
        return;
    }
    // The callback may destroy the Timer: copy nothing back after it.
    guarded("Timer", [&] { self->on_fire_(); });
}

Result<std::unique_ptr<SignalWatcher>> SignalWatcher::create(Loop& loop, int signum,
                                                             std::function<void(int)> on_signal) {
    std::unique_ptr<SignalWatcher> w(new SignalWatcher());
    w->on_signal_ = std::move(on_signal);
    auto* s = new uv_signal_t();
    int rc = uv_signal_init(loop.raw(), s);
    if (rc != 0) {
        delete s;
        return fail(uv_error("uv_signal_init", rc));
    }
    s->data = w.get();
    w->handle_.reset(s);
    rc = uv_signal_start(s, &SignalWatcher::on_signal, signum);
    if (rc != 0) {
        return fail(uv_error("uv_signal_start", rc));
    }
    // A signal watcher alone should not keep a finished daemon running.
    uv_unref(reinterpret_cast<uv_handle_t*>(s));
    return w;
}

void SignalWatcher::on_signal(uv_signal_t* handle, int signum) noexcept {
    auto* self = static_cast<SignalWatcher*>(handle->data);
    if (self == nullptr || !self->on_signal_) {
        return;
    }
    guarded("SignalWatcher", [&] { self->on_signal_(signum); });
}

}  // namespace yubin::io
