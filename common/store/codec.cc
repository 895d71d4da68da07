#include "common/store/codec.h"

namespace yubin::store::codec {

void put_be32(std::string& out, uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) {
        out.push_back(static_cast<char>((v >> shift) & 0xff));
    }
}

void put_be64(std::string& out, uint64_t v) {
    for (int shift = 56; shift >= 0; shift -= 8) {
        out.push_back(static_cast<char>((v >> shift) & 0xff));
    }
}

uint32_t get_be32(std::string_view in, size_t pos) {
    uint32_t v = 0;
    for (size_t i = 0; i < 4 && pos + i < in.size(); ++i) {
        v = (v << 8) | static_cast<uint8_t>(in[pos + i]);
    }
    return v;
}

uint64_t get_be64(std::string_view in, size_t pos) {
    uint64_t v = 0;
    for (size_t i = 0; i < 8 && pos + i < in.size(); ++i) {
        v = (v << 8) | static_cast<uint8_t>(in[pos + i]);
    }
    return v;
}

std::string be64_key(uint64_t v) {
    std::string k;
    put_be64(k, v);
    return k;
}

std::string be64_pair_key(uint64_t a, uint64_t b) {
    std::string k;
    put_be64(k, a);
    put_be64(k, b);
    return k;
}

std::string be64_be32_key(uint64_t a, uint32_t b) {
    std::string k;
    put_be64(k, a);
    put_be32(k, b);
    return k;
}

Encoder& Encoder::u8(uint8_t v) {
    out_.push_back(static_cast<char>(v));
    return *this;
}
Encoder& Encoder::u32(uint32_t v) {
    put_be32(out_, v);
    return *this;
}
Encoder& Encoder::u64(uint64_t v) {
    put_be64(out_, v);
    return *this;
}
Encoder& Encoder::str(std::string_view s) {
    put_be32(out_, static_cast<uint32_t>(s.size()));
    out_.append(s);
    return *this;
}
Encoder& Encoder::strs(const std::vector<std::string>& v) {
    put_be32(out_, static_cast<uint32_t>(v.size()));
    for (const auto& s : v) {
        str(s);
    }
    return *this;
}

bool Decoder::need(size_t n) {
    if (!ok_ || in_.size() - pos_ < n) {
        ok_ = false;
        return false;
    }
    return true;
}

uint8_t Decoder::u8() {
    if (!need(1)) {
        return 0;
    }
    return static_cast<uint8_t>(in_[pos_++]);
}

uint32_t Decoder::u32() {
    if (!need(4)) {
        return 0;
    }
    uint32_t v = get_be32(in_, pos_);
    pos_ += 4;
    return v;
}

uint64_t Decoder::u64() {
    if (!need(8)) {
        return 0;
    }
    uint64_t v = get_be64(in_, pos_);
    pos_ += 8;
    return v;
}

std::string Decoder::str() {
    uint32_t n = u32();
    if (!need(n)) {
        return {};
    }
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
}

std::vector<std::string> Decoder::strs() {
    uint32_t n = u32();
    std::vector<std::string> v;
    // Each string needs at least its 4-byte length: bound n before reserving.
    if (!need(static_cast<size_t>(n) * 4)) {
        return v;
    }
    v.reserve(n);
    for (uint32_t i = 0; i < n && ok_; ++i) {
        v.push_back(str());
    }
    return v;
}

}  // namespace yubin::store::codec
