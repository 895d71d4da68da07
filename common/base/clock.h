// An injectable clock: protocol code and schedulers ask a Clock for the time
// so tests can drive time by hand (STYLE.md: hermetic tests, injected clock).
// SystemClock is thread-safe; ManualClock is for single-threaded tests.
#pragma once

#include <cstdint>

namespace yubin {

class Clock {
public:
    virtual ~Clock() = default;
    // Wall-clock time, microseconds since the Unix epoch.
    virtual int64_t now_us() const = 0;
    // Monotonic time for timeouts and durations, microseconds from an arbitrary origin.
    virtual int64_t monotonic_us() const = 0;

    int64_t now_seconds() const { return now_us() / 1000000; }
};

class SystemClock final : public Clock {
public:
    int64_t now_us() const override;
    int64_t monotonic_us() const override;
    static const SystemClock& instance();
};

class ManualClock final : public Clock {
public:
    explicit ManualClock(int64_t start_us = 1700000000LL * 1000000) : now_(start_us) {}
    int64_t now_us() const override { return now_; }
    int64_t monotonic_us() const override { return now_; }
    void advance_us(int64_t delta) { now_ += delta; }
    void set_us(int64_t t) { now_ = t; }

private:
    int64_t now_;
};

}  // namespace yubin
