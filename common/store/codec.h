// Byte codecs for the LMDB backend: big-endian integers for keys (so byte order
// equals numeric order, ARCHITECTURE.md) and a small length-prefixed encoding
// for record values. Internal to common/store; no daemon includes this.
// Pure functions and value types; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace yubin::store::codec {

void put_be32(std::string& out, uint32_t v);
void put_be64(std::string& out, uint64_t v);
uint32_t get_be32(std::string_view in, size_t pos = 0);
uint64_t get_be64(std::string_view in, size_t pos = 0);

std::string be64_key(uint64_t v);
std::string be64_pair_key(uint64_t a, uint64_t b);
std::string be64_be32_key(uint64_t a, uint32_t b);

// Appends fields to a value. Strings carry a 32-bit length.
class Encoder {
  public:
    Encoder& u8(uint8_t v);
    Encoder& u32(uint32_t v);
    Encoder& u64(uint64_t v);
    Encoder& i64(int64_t v) { return u64(static_cast<uint64_t>(v)); }
    Encoder& str(std::string_view s);
    Encoder& strs(const std::vector<std::string>& v);
    std::string& data() { return out_; }
    std::string take() { return std::move(out_); }

  private:
    std::string out_;
};

// Reads fields back; any overrun sets ok() false and yields zero values, so a
// corrupt record is detected once at the end instead of at every field.
class Decoder {
  public:
    explicit Decoder(std::string_view in) : in_(in) {}
    uint8_t u8();
    uint32_t u32();
    uint64_t u64();
    int64_t i64() { return static_cast<int64_t>(u64()); }
    std::string str();
    std::vector<std::string> strs();
    bool ok() const { return ok_; }
    bool at_end() const { return pos_ == in_.size(); }

  private:
    bool need(size_t n);
    std::string_view in_;
    size_t pos_ = 0;
    bool ok_ = true;
};

}  // namespace yubin::store::codec
