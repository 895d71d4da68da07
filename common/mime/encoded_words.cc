#include "common/mime/encoded_words.h"

#include <iconv.h>

#include <cerrno>
#include <memory>
#include <optional>

#include "common/base/base64.h"
#include "common/base/strings.h"

namespace yubin::mime {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the valid UTF-8 sequence starting at s[i], or 0 if invalid
// (overlongs, surrogates and code points above U+10FFFF are invalid).
size_t utf8_sequence_length(std::string_view s, size_t i) noexcept {
    auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = byte(i);
    if (c < 0x80) {
        return 1;
    }
    size_t len = 0;
    uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (i + len > s.size()) {
        return 0;
    }
    for (size_t k = 1; k < len; ++k) {
        unsigned char cc = byte(i + k);
        if ((cc & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

void append_latin1(std::string& out, std::string_view bytes) {
    for (char ch : bytes) {
        auto c = static_cast<unsigned char>(ch);
        if (c < 0x80) {
            out.push_back(ch);
        } else {
            out.push_back(static_cast<char>(0xC0 | (c >> 6)));
            out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
        }
    }
}

struct IconvCloser {
    void operator()(void* cd) const noexcept { iconv_close(static_cast<iconv_t>(cd)); }
};
using IconvPtr = std::unique_ptr<void, IconvCloser>;

std::optional<std::string> iconv_to_utf8(std::string_view charset, std::string_view bytes) {
    std::string name(charset);
    iconv_t cd = iconv_open("UTF-8", name.c_str());
    if (cd == reinterpret_cast<iconv_t>(-1)) {
        return std::nullopt;
    }
    IconvPtr guard(cd);
    std::string out;
    out.reserve(bytes.size() * 2 + 16);
    std::string in(bytes);  // iconv wants a mutable char**
    char* in_ptr = in.data();
    size_t in_left = in.size();
    char buf[1024];
    while (in_left > 0) {
        char* out_ptr = buf;
        size_t out_left = sizeof(buf);
        size_t rc = iconv(cd, &in_ptr, &in_left, &out_ptr, &out_left);
        out.append(buf, sizeof(buf) - out_left);
        if (rc != static_cast<size_t>(-1)) {
            continue;
        }
        if (errno == E2BIG) {
            continue;
        }
        // EILSEQ or EINVAL (truncated sequence at the end): replace one byte
        // and go on, resetting the shift state.
        out.append(kReplacement);
        ++in_ptr;
        --in_left;
        iconv(cd, nullptr, nullptr, nullptr, nullptr);
    }
    // Flush any shift sequence of stateful encodings.
    char* out_ptr = buf;
    size_t out_left = sizeof(buf);
    iconv(cd, nullptr, nullptr, &out_ptr, &out_left);
    out.append(buf, sizeof(buf) - out_left);
    return sanitize_utf8(out);
}

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = ascii_lower(c);
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

// RFC 2047 §4.2: "_" is a space, "=XX" a byte; a malformed "=" is kept.
std::string decode_q(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '_') {
            out.push_back(' ');
        } else if (c == '=' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 &&
                   hex_value(text[i + 2]) >= 0) {
            out.push_back(static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2])));
            i += 2;
        } else {
            out.push_back(c);
        }
    }
    return out;
}

struct EncodedWord {
    size_t length = 0;    // bytes of "=?...?="
    std::string charset;  // without the RFC 2231 language suffix, lower-cased
    std::string bytes;    // decoded, still in `charset`
};

// Parses an encoded word at the start of `s` (which begins with "=?").
std::optional<EncodedWord> parse_encoded_word(std::string_view s) {
    // =?charset?E?text?=  — no spaces or '?' inside the text (RFC 2047 §2).
    size_t q1 = s.find('?', 2);
    if (q1 == std::string_view::npos || q1 == 2 || q1 + 2 >= s.size() || s[q1 + 2] != '?') {
        return std::nullopt;
    }
    char enc = ascii_lower(s[q1 + 1]);
    if (enc != 'b' && enc != 'q') {
        return std::nullopt;
    }
    size_t text_start = q1 + 3;
    // The text holds no "?" (RFC 2047 §4), so the word ends at the next
    // "?", which must be followed by "=". Stopping there also keeps a
    // header full of unterminated "=?" from costing quadratic time.
    size_t end = s.find('?', text_start);
    if (end == std::string_view::npos || end + 1 >= s.size() || s[end + 1] != '=') {
        return std::nullopt;
    }
    std::string_view text = s.substr(text_start, end - text_start);
    for (char c : text) {
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            return std::nullopt;
        }
    }
    std::string_view charset = s.substr(2, q1 - 2);
    for (char c : charset) {
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            return std::nullopt;
        }
    }
    if (size_t star = charset.find('*'); star != std::string_view::npos) {
        charset = charset.substr(0, star);  // RFC 2231 §5 language suffix
    }
    EncodedWord word;
    word.length = end + 2;
    word.charset = to_lower(charset);
    word.bytes = enc == 'b' ? base64_decode_lenient(text) : decode_q(text);
    return word;
}

bool is_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

}  // namespace

bool is_valid_utf8(std::string_view bytes) noexcept {
    for (size_t i = 0; i < bytes.size();) {
        size_t len = utf8_sequence_length(bytes, i);
        if (len == 0) {
            return false;
        }
        i += len;
    }
    return true;
}

std::string sanitize_utf8(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    for (size_t i = 0; i < bytes.size();) {
        size_t len = utf8_sequence_length(bytes, i);
        if (len == 0) {
            out.append(kReplacement);
            ++i;
        } else {
            out.append(bytes.substr(i, len));
            i += len;
        }
    }
    return out;
}

std::string charset_to_utf8(std::string_view charset, std::string_view bytes) {
    std::string cs = to_lower(trim(charset));
    if (cs.empty() || cs == "utf-8" || cs == "utf8" || cs == "us-ascii" || cs == "ascii") {
        // 8-bit bytes labelled US-ASCII are common; if they are UTF-8, keep
        // them (that is what the sender meant), else replace them.
        return sanitize_utf8(bytes);
    }
    if (cs == "iso-8859-1" || cs == "latin1" || cs == "iso8859-1" || cs == "iso_8859-1") {
        std::string out;
        out.reserve(bytes.size() * 2);
        append_latin1(out, bytes);
        return out;
    }
    if (auto converted = iconv_to_utf8(cs, bytes)) {
        return std::move(*converted);
    }
    return sanitize_utf8(bytes);
}

std::string decode_encoded_words(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    // Pending decoded bytes of a run of adjacent encoded words in one charset.
    std::string pending_charset;
    std::string pending;
    auto flush = [&] {
        if (!pending.empty()) {
            out.append(charset_to_utf8(pending_charset, pending));
            pending.clear();
        }
    };
    size_t i = 0;
    size_t plain_start = 0;
    bool last_was_word = false;
    while (i < value.size()) {
        if (value[i] == '=' && i + 1 < value.size() && value[i + 1] == '?') {
            if (auto word = parse_encoded_word(value.substr(i))) {
                std::string_view between = value.substr(plain_start, i - plain_start);
                bool only_space = true;
                for (char c : between) {
                    only_space = only_space && is_space(c);
                }
                if (!(last_was_word && only_space)) {
                    flush();
                    out.append(sanitize_utf8(between));
                } else if (word->charset != pending_charset) {
                    flush();
                }
                pending_charset = word->charset;
                pending.append(word->bytes);
                i += word->length;
                plain_start = i;
                last_was_word = true;
                continue;
            }
        }
        ++i;
    }
    flush();
    out.append(sanitize_utf8(value.substr(plain_start)));
    return out;
}

}  // namespace yubin::mime
