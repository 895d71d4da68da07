#include "common/smtp/address.h"

#include <arpa/inet.h>

#include <algorithm>

#include "common/base/strings.h"

namespace yubin::smtp {

namespace {

bool is_alpha(unsigned char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}
bool is_digit(unsigned char c) noexcept {
    return c >= '0' && c <= '9';
}
bool is_non_ascii(unsigned char c) noexcept {
    return c >= 0x80;
}

// RFC 5322 §3.2.3 atext, which RFC 5321 §4.1.2 reuses for Atom.
bool is_atext(unsigned char c) noexcept {
    if (is_alpha(c) || is_digit(c)) {
        return true;
    }
    constexpr std::string_view kSpecials = "!#$%&'*+-/=?^_`{|}~";
    return kSpecials.find(static_cast<char>(c)) != std::string_view::npos;
}

// RFC 5321 §4.1.2 qtextSMTP: printable ASCII and space, minus '"' and '\'.
bool is_qtext(unsigned char c) noexcept {
    return c >= 32 && c <= 126 && c != '"' && c != '\\';
}

bool has_non_ascii(std::string_view s) noexcept {
    for (char c : s) {
        if (is_non_ascii(static_cast<unsigned char>(c))) {
            return true;
        }
    }
    return false;
}

// Snum "." Snum "." Snum "." Snum, each Snum 1*3DIGIT with a value ≤ 255.
bool is_ipv4_literal(std::string_view s) noexcept {
    auto parts = split(s, '.');
    if (parts.size() != 4) {
        return false;
    }
    for (auto part : parts) {
        if (part.empty() || part.size() > 3) {
            return false;
        }
        auto value = parse_u64(part);
        if (!value || *value > 255) {
            return false;
        }
    }
    return true;
}

// Scans a Quoted-string starting at text[pos] == '"'; returns the index just
// after the closing quote, or npos. Appends the unquoted content to `out`.
size_t scan_quoted(std::string_view text, size_t pos, bool allow_utf8, std::string* out) {
    for (size_t i = pos + 1; i < text.size(); ++i) {
        auto c = static_cast<unsigned char>(text[i]);
        if (c == '"') {
            return i + 1;
        }
        if (c == '\\') {
            // quoted-pairSMTP = %d92 %d32-126 (no UTF-8 after a backslash).
            if (i + 1 >= text.size()) {
                return std::string_view::npos;
            }
            auto next = static_cast<unsigned char>(text[i + 1]);
            if (next < 32 || next > 126) {
                return std::string_view::npos;
            }
            if (out != nullptr) {
                out->push_back(static_cast<char>(next));
            }
            ++i;
            continue;
        }
        if (!is_qtext(c) && !(allow_utf8 && is_non_ascii(c))) {
            return std::string_view::npos;
        }
        if (out != nullptr) {
            out->push_back(static_cast<char>(c));
        }
    }
    return std::string_view::npos;
}

tl::unexpected<Error> invalid(std::string message) {
    return fail(ErrorCode::Invalid, std::move(message));
}

}  // namespace

bool is_valid_utf8(std::string_view text) noexcept {
    size_t i = 0;
    while (i < text.size()) {
        auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t len = 0;
        uint32_t cp = 0;
        uint32_t min = 0;
        if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
            min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
            min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return false;
        }
        if (i + len > text.size()) {
            return false;
        }
        for (size_t k = 1; k < len; ++k) {
            auto cc = static_cast<unsigned char>(text[i + k]);
            if ((cc & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (cc & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += len;
    }
    return true;
}

bool is_dot_string(std::string_view text, bool allow_utf8) noexcept {
    if (text.empty() || text.front() == '.' || text.back() == '.') {
        return false;
    }
    char prev = 0;
    for (char ch : text) {
        auto c = static_cast<unsigned char>(ch);
        if (ch == '.') {
            if (prev == '.') {
                return false;
            }
        } else if (!is_atext(c) && !(allow_utf8 && is_non_ascii(c))) {
            return false;
        }
        prev = ch;
    }
    return true;
}

bool is_domain(std::string_view text, bool allow_utf8) noexcept {
    if (text.empty() || text.size() > kMaxDomain) {
        return false;
    }
    auto labels = split(text, '.');
    // RFC 3696 §2: a top-level label is never all-numeric, which keeps a bare
    // IPv4 address ("EHLO 203.0.113.7") from passing as a domain name.
    if (std::all_of(labels.back().begin(), labels.back().end(), is_digit)) {
        return false;
    }
    for (auto label : labels) {
        // RFC 1035 §2.3.4: a label is at most 63 octets. With SMTPUTF8 the
        // U-label is checked against the same octet limit, a conservative
        // stand-in for its A-label length.
        if (label.empty() || label.size() > 63) {
            return false;
        }
        auto let_dig = [&](unsigned char c) {
            return is_alpha(c) || is_digit(c) || (allow_utf8 && is_non_ascii(c));
        };
        if (!let_dig(static_cast<unsigned char>(label.front())) ||
            !let_dig(static_cast<unsigned char>(label.back()))) {
            return false;
        }
        for (char ch : label) {
            auto c = static_cast<unsigned char>(ch);
            if (!let_dig(c) && c != '-') {
                return false;
            }
        }
    }
    return true;
}

bool is_address_literal(std::string_view text) noexcept {
    if (text.size() < 3 || text.front() != '[' || text.back() != ']') {
        return false;
    }
    std::string_view inner = text.substr(1, text.size() - 2);
    if (istarts_with(inner, "IPv6:")) {
        std::string addr(inner.substr(5));
        in6_addr out{};
        return inet_pton(AF_INET6, addr.c_str(), &out) == 1;
    }
    // General-address-literal needs an IANA-registered tag (§4.1.3); none
    // but IPv6 exists, so anything else is refused.
    return is_ipv4_literal(inner);
}

std::string Mailbox::to_string() const {
    std::string out;
    if (is_dot_string(local, true)) {
        out = local;
    } else {
        out.push_back('"');
        for (char c : local) {
            if (c == '"' || c == '\\') {
                out.push_back('\\');
            }
            out.push_back(c);
        }
        out.push_back('"');
    }
    out.push_back('@');
    out += domain;
    return out;
}

std::string Path::to_string() const {
    switch (kind) {
        case Kind::Null:
            return "<>";
        case Kind::Postmaster:
            return "<Postmaster>";
        case Kind::Mailbox:
            break;
    }
    return "<" + mailbox.to_string() + ">";
}

Result<Mailbox> parse_mailbox(std::string_view text, const AddressOptions& options) {
    if (has_non_ascii(text)) {
        if (!options.smtputf8) {
            // RFC 6531 §3.4: without SMTPUTF8 the address must be ASCII.
            return fail(ErrorCode::Perm, "non-ASCII address without SMTPUTF8");
        }
        if (!is_valid_utf8(text)) {
            return invalid("address is not valid UTF-8");
        }
    }
    Mailbox box;
    size_t at = 0;
    if (!text.empty() && text.front() == '"') {
        size_t end = scan_quoted(text, 0, options.smtputf8, &box.local);
        if (end == std::string_view::npos) {
            return invalid("bad quoted local part");
        }
        if (end >= text.size() || text[end] != '@') {
            return invalid("missing @ after quoted local part");
        }
        at = end;
    } else {
        at = text.find('@');
        if (at == std::string_view::npos) {
            return invalid("missing @ in address");
        }
        std::string_view local = text.substr(0, at);
        if (!is_dot_string(local, options.smtputf8)) {
            return invalid("bad local part");
        }
        box.local = std::string(local);
    }
    if (at > options.max_local_part) {
        return fail(ErrorCode::Limit, "local part too long");
    }
    std::string_view domain = text.substr(at + 1);
    if (domain.size() > kMaxDomain) {
        return fail(ErrorCode::Limit, "domain longer than 255 octets");
    }
    if (!domain.empty() && domain.front() == '[') {
        if (!is_address_literal(domain)) {
            return invalid("bad address literal");
        }
        box.domain_is_literal = true;
    } else if (!is_domain(domain, options.smtputf8)) {
        return invalid("bad domain");
    }
    box.domain = std::string(domain);
    return box;
}

size_t find_path_end(std::string_view text) noexcept {
    if (text.empty() || text.front() != '<') {
        return std::string_view::npos;
    }
    for (size_t i = 1; i < text.size(); ++i) {
        char c = text[i];
        if (c == '"') {
            // Quoted strings may contain '>' and spaces; skip them whole.
            size_t end = scan_quoted(text, i, true, nullptr);
            if (end == std::string_view::npos) {
                return std::string_view::npos;
            }
            i = end - 1;
        } else if (c == '>') {
            return i + 1;
        }
    }
    return std::string_view::npos;
}

namespace {

Result<Path> parse_path(std::string_view text, const AddressOptions& options, bool reverse) {
    if (text.size() > kMaxPath) {
        return fail(ErrorCode::Limit, "path longer than 256 octets");
    }
    Path path;
    if (text.empty() || text.front() != '<') {
        if (!options.allow_missing_brackets || text.empty()) {
            return invalid("path must be enclosed in <>");
        }
        auto box = parse_mailbox(text, options);
        if (!box) {
            return fail(box.error());
        }
        path.kind = Path::Kind::Mailbox;
        path.mailbox = std::move(*box);
        return path;
    }
    if (find_path_end(text) != text.size()) {
        return invalid("unbalanced <> or text after path");
    }
    std::string_view inner = text.substr(1, text.size() - 2);
    if (inner.empty()) {
        if (!reverse) {
            return invalid("null forward-path");
        }
        path.kind = Path::Kind::Null;
        return path;
    }
    if (!reverse && iequals(inner, "postmaster")) {
        path.kind = Path::Kind::Postmaster;
        return path;
    }
    if (inner.front() == '@') {
        // A-d-l ":" — a source route. RFC 5321 §4.1.2 / Appendix C: accept
        // and ignore it, delivering to the final mailbox.
        size_t colon = inner.find(':');
        if (colon == std::string_view::npos) {
            return invalid("source route without ':'");
        }
        for (auto hop : split(inner.substr(0, colon), ',')) {
            if (hop.size() < 2 || hop.front() != '@' || !is_domain(hop.substr(1))) {
                return invalid("bad source route");
            }
        }
        inner = inner.substr(colon + 1);
    }
    auto box = parse_mailbox(inner, options);
    if (!box) {
        return fail(box.error());
    }
    path.kind = Path::Kind::Mailbox;
    path.mailbox = std::move(*box);
    return path;
}

}  // namespace

Result<Path> parse_reverse_path(std::string_view text, const AddressOptions& options) {
    return parse_path(text, options, true);
}

Result<Path> parse_forward_path(std::string_view text, const AddressOptions& options) {
    return parse_path(text, options, false);
}

}  // namespace yubin::smtp
