#include "common/log/id.h"

#include <unistd.h>

#include <algorithm>

namespace yubin::log {

namespace {

constexpr char kAlphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
constexpr int kCounterBits = 10;
constexpr int kPidBits = 22;
constexpr int kTimeBits = 42;
constexpr int kChars = 15;  // 75 bits, the top one always 0

// The 74-bit value is held as hi = (ms << 10 | counter) (52 bits) and
// lo = pid (22 bits); bit k of the whole is bit k-22 of hi or bit k of lo.
int bit(uint64_t hi, uint64_t lo, int k) {
    return k >= kPidBits ? static_cast<int>((hi >> (k - kPidBits)) & 1)
                         : static_cast<int>((lo >> k) & 1);
}

int char_value(char c) {
    for (int i = 0; i < 32; ++i) {
        if (kAlphabet[i] == c) {
            return i;
        }
    }
    return -1;
}

}  // namespace

std::string IdGenerator::next(char prefix) {
    int64_t ms = clock_.now_us() / 1000 - kIdEpochMs;
    ms = std::clamp<int64_t>(ms, 0, (int64_t{1} << kTimeBits) - 1);
    const uint64_t floor = static_cast<uint64_t>(ms) << kCounterBits;
    uint64_t last = last_.load(std::memory_order_relaxed);
    uint64_t mine = 0;
    do {
        mine = std::max(last + 1, floor);
    } while (!last_.compare_exchange_weak(last, mine, std::memory_order_relaxed));

    const uint64_t pid =
        (pid_ != 0 ? pid_ : static_cast<uint64_t>(::getpid())) & ((uint64_t{1} << kPidBits) - 1);
    std::string out(kIdLength, '0');
    out[0] = prefix;
    for (int c = 0; c < kChars; ++c) {
        int value = 0;
        int top = (kChars - c) * 5 - 1;  // most significant bit of this character
        for (int k = top; k > top - 5; --k) {
            value = (value << 1) | bit(mine, pid, k);
        }
        out[static_cast<size_t>(c) + 1] = kAlphabet[value];
    }
    return out;
}

std::optional<IdParts> parse_id(std::string_view id) {
    if (id.size() != kIdLength) {
        return std::nullopt;
    }
    uint64_t hi = 0;
    uint64_t lo = 0;
    for (int c = 0; c < kChars; ++c) {
        int v = char_value(id[static_cast<size_t>(c) + 1]);
        if (v < 0) {
            return std::nullopt;
        }
        for (int b = 4; b >= 0; --b) {
            int k = (kChars - c) * 5 - 1 - (4 - b);
            int bitv = (v >> b) & 1;
            if (k == kChars * 5 - 1) {
                if (bitv != 0) {
                    return std::nullopt;  // the unused top bit
                }
            } else if (k >= kPidBits) {
                hi |= static_cast<uint64_t>(bitv) << (k - kPidBits);
            } else {
                lo |= static_cast<uint64_t>(bitv) << k;
            }
        }
    }
    IdParts parts;
    parts.prefix = id[0];
    parts.time_ms = static_cast<int64_t>(hi >> kCounterBits) + kIdEpochMs;
    parts.counter = static_cast<uint32_t>(hi & ((1u << kCounterBits) - 1));
    parts.pid = static_cast<uint32_t>(lo);
    return parts;
}

namespace {
IdGenerator& process_generator() {
    static IdGenerator generator;
    return generator;
}
}  // namespace

std::string new_session_id() {
    return process_generator().next('S');
}
std::string new_queue_id() {
    return process_generator().next('Q');
}

}  // namespace yubin::log
