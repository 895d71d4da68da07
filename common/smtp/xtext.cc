#include "common/smtp/xtext.h"

namespace yubin::smtp {

namespace {

constexpr char kHexDigits[] = "0123456789ABCDEF";

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

bool is_xchar(unsigned char c) noexcept {
    return c >= 33 && c <= 126 && c != '+' && c != '=';
}

}  // namespace

std::string xtext_encode(std::string_view raw) {
    std::string out;
    out.reserve(raw.size());
    for (char ch : raw) {
        auto c = static_cast<unsigned char>(ch);
        if (is_xchar(c)) {
            out.push_back(ch);
        } else {
            out.push_back('+');
            out.push_back(kHexDigits[c >> 4]);
            out.push_back(kHexDigits[c & 0x0f]);
        }
    }
    return out;
}

Result<std::string> xtext_decode(std::string_view xtext) {
    std::string out;
    out.reserve(xtext.size());
    for (size_t i = 0; i < xtext.size(); ++i) {
        auto c = static_cast<unsigned char>(xtext[i]);
        if (c == '+') {
            if (i + 2 >= xtext.size()) {
                return fail(ErrorCode::Invalid, "xtext: truncated +XX escape");
            }
            int hi = hex_value(xtext[i + 1]);
            int lo = hex_value(xtext[i + 2]);
            if (hi < 0 || lo < 0) {
                return fail(ErrorCode::Invalid, "xtext: bad hex digits after +");
            }
            out.push_back(static_cast<char>((hi << 4) | lo));
            i += 2;
        } else if (is_xchar(c)) {
            out.push_back(static_cast<char>(c));
        } else {
            return fail(ErrorCode::Invalid, "xtext: octet not allowed");
        }
    }
    return out;
}

bool is_xtext(std::string_view text) noexcept {
    for (size_t i = 0; i < text.size(); ++i) {
        auto c = static_cast<unsigned char>(text[i]);
        if (c == '+') {
            if (i + 2 >= text.size() || hex_value(text[i + 1]) < 0 || hex_value(text[i + 2]) < 0) {
                return false;
            }
            i += 2;
        } else if (!is_xchar(c)) {
            return false;
        }
    }
    return true;
}

}  // namespace yubin::smtp
