#include "common/mime/header_fields.h"

#include <algorithm>
#include <map>
#include <set>

#include "common/base/strings.h"
#include "common/mime/encoded_words.h"

namespace yubin::mime {
namespace {

bool is_wsp(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// RFC 2045 §5.1 tspecials, which end a token.
bool is_tspecial(char c) noexcept {
    constexpr std::string_view kTSpecials = "()<>@,;:\\\"/[]?=";
    return kTSpecials.find(c) != std::string_view::npos;
}

// A cursor over a structured field value that skips CFWS (RFC 5322 §3.2.2).
class Lexer {
  public:
    explicit Lexer(std::string_view text) : text_(text) {}

    bool at_end() {
        skip_cfws();
        return pos_ >= text_.size();
    }
    char peek() {
        skip_cfws();
        return pos_ < text_.size() ? text_[pos_] : '\0';
    }
    void advance() { ++pos_; }
    bool consume(char c) {
        if (peek() == c && pos_ < text_.size()) {
            ++pos_;
            return true;
        }
        return false;
    }
    // A MIME token (RFC 2045 §5.1); empty if none here.
    std::string_view token() {
        skip_cfws();
        size_t start = pos_;
        while (pos_ < text_.size()) {
            char c = text_[pos_];
            if (is_wsp(c) || is_tspecial(c) || static_cast<unsigned char>(c) < 0x20) {
                break;
            }
            ++pos_;
        }
        return text_.substr(start, pos_ - start);
    }
    // A quoted string starting at the cursor, unescaped; tolerates a missing
    // closing quote (runs to the end).
    std::string quoted() {
        std::string out;
        ++pos_;  // opening quote
        while (pos_ < text_.size()) {
            char c = text_[pos_++];
            if (c == '"') {
                return out;
            }
            if (c == '\\' && pos_ < text_.size()) {
                c = text_[pos_++];
            }
            if (c != '\r' && c != '\n') {
                out.push_back(c);
            }
        }
        return out;
    }
    // A parameter value: a quoted string, or anything up to the next ";"
    // (real mail has unquoted values with spaces, "/" or "=", e.g.
    // name=My File.pdf; Dovecot and mutt accept them the same way).
    std::string value() {
        skip_cfws();
        if (pos_ < text_.size() && text_[pos_] == '"') {
            return quoted();
        }
        // A proper token, maybe followed by a comment ("us-ascii (Plain)").
        size_t start = pos_;
        std::string_view tok = token();
        if (!tok.empty() && (at_end() || peek() == ';')) {
            return std::string(tok);
        }
        pos_ = start;
        while (pos_ < text_.size() && text_[pos_] != ';') {
            ++pos_;
        }
        return std::string(trim(text_.substr(start, pos_ - start)));
    }
    void skip_to(char c) {
        bool in_quote = false;
        while (pos_ < text_.size()) {
            char ch = text_[pos_];
            if (ch == '"') {
                in_quote = !in_quote;
            } else if (ch == '\\' && in_quote) {
                ++pos_;
            } else if (ch == c && !in_quote) {
                return;
            }
            ++pos_;
        }
    }

  private:
    void skip_cfws() {
        while (pos_ < text_.size()) {
            char c = text_[pos_];
            if (is_wsp(c)) {
                ++pos_;
            } else if (c == '(') {
                skip_comment();
            } else {
                return;
            }
        }
    }
    void skip_comment() {
        int depth = 0;
        while (pos_ < text_.size()) {
            char c = text_[pos_++];
            if (c == '\\') {
                ++pos_;
            } else if (c == '(') {
                ++depth;
            } else if (c == ')' && --depth == 0) {
                return;
            }
        }
    }

    std::string_view text_;
    size_t pos_ = 0;
};

int hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = ascii_lower(c);
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

// RFC 2231 §4: %XX escapes in an extended value.
std::string percent_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && hex_digit(s[i + 1]) >= 0 &&
            hex_digit(s[i + 2]) >= 0) {
            out.push_back(static_cast<char>(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2])));
            i += 2;
        } else {
            out.push_back(s[i]);
        }
    }
    return out;
}

// RFC 2231 §7 attribute-char: what may stay unescaped in an extended value.
bool is_attribute_char(char c) noexcept {
    auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7F && !is_tspecial(c) && c != '*' && c != '\'' && c != '%';
}

std::string percent_encode(std::string_view bytes) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(bytes.size());
    for (char c : bytes) {
        if (is_attribute_char(c)) {
            out.push_back(c);
        } else {
            auto u = static_cast<unsigned char>(c);
            out.push_back('%');
            out.push_back(kHex[u >> 4]);
            out.push_back(kHex[u & 0x0F]);
        }
    }
    return out;
}

struct RawParam {
    std::string name;  // lower-cased, as written (may contain "*0*")
    std::string value;
};

std::vector<RawParam> lex_params(Lexer& lex) {
    std::vector<RawParam> out;
    while (!lex.at_end()) {
        if (!lex.consume(';')) {
            // Garbage between parameters: skip to the next ";".
            lex.skip_to(';');
            if (!lex.consume(';')) {
                break;
            }
        }
        if (lex.at_end()) {
            break;
        }
        std::string_view name = lex.token();
        if (name.empty()) {
            continue;
        }
        if (!lex.consume('=')) {
            continue;  // a parameter without a value is dropped
        }
        out.push_back(RawParam{to_lower(name), lex.value()});
    }
    return out;
}

// Joins RFC 2231 §3 continuations and decodes §4 extended values. A name
// given both plainly and in RFC 2231 form keeps the RFC 2231 value (it is the
// one that can carry the full text), placed where the plain one was.
std::vector<Param> build_params(const std::vector<RawParam>& raw) {
    struct Segment {
        std::string value;
        bool encoded = false;
    };
    struct Pending {
        std::map<unsigned, Segment> segments;
        bool single_extended = false;  // name*=...
        std::string single_value;
    };
    std::vector<std::string> order;
    std::set<std::string> seen;  // a header may hold thousands of params
    std::map<std::string, std::string> plain;
    std::map<std::string, Pending> extended;
    auto note = [&](const std::string& name) {
        if (seen.insert(name).second) {
            order.push_back(name);
        }
    };
    for (const RawParam& p : raw) {
        size_t star = p.name.find('*');
        if (star == std::string::npos) {
            note(p.name);
            plain.emplace(p.name, p.value);
            continue;
        }
        std::string base = p.name.substr(0, star);
        std::string_view rest = std::string_view(p.name).substr(star + 1);
        if (base.empty()) {
            continue;
        }
        Pending& pending = extended[base];
        note(base);
        if (rest.empty()) {
            pending.single_extended = true;
            pending.single_value = p.value;
            continue;
        }
        bool encoded = !rest.empty() && rest.back() == '*';
        if (encoded) {
            rest.remove_suffix(1);
        }
        auto index = parse_u64(rest);
        // RFC 2231 §3: no leading zeros; cap the index so a hostile
        // "name*4000000000" cannot make us allocate.
        if (!index || *index > 999 || (rest.size() > 1 && rest[0] == '0')) {
            continue;
        }
        pending.segments.emplace(static_cast<unsigned>(*index), Segment{p.value, encoded});
    }
    std::vector<Param> out;
    for (const std::string& name : order) {
        auto ext = extended.find(name);
        if (ext == extended.end()) {
            out.push_back(Param{name, plain[name], false, {}, {}, {}});
            continue;
        }
        Pending& pending = ext->second;
        std::string charset;
        std::string language;
        std::string bytes;
        bool any_encoded = false;
        auto split_charset = [&](std::string_view v) -> std::string_view {
            // charset'language'value (RFC 2231 §4); tolerate missing quotes.
            size_t q1 = v.find('\'');
            if (q1 == std::string_view::npos) {
                return v;
            }
            size_t q2 = v.find('\'', q1 + 1);
            if (q2 == std::string_view::npos) {
                return v;
            }
            charset = std::string(v.substr(0, q1));
            language = std::string(v.substr(q1 + 1, q2 - q1 - 1));
            return v.substr(q2 + 1);
        };
        if (pending.single_extended) {
            bytes = percent_decode(split_charset(pending.single_value));
            any_encoded = true;
        } else if (!pending.segments.empty()) {
            // Join segments 0, 1, 2... and stop at the first gap.
            unsigned expect = 0;
            for (auto& [index, seg] : pending.segments) {
                if (index != expect) {
                    break;
                }
                std::string_view v = seg.value;
                if (seg.encoded) {
                    any_encoded = true;
                    if (index == 0) {
                        v = split_charset(v);
                    }
                    bytes.append(percent_decode(v));
                } else {
                    bytes.append(v);
                }
                ++expect;
            }
            if (expect == 0) {
                // No segment 0: fall back to the plain value if any.
                if (plain.count(name) != 0) {
                    out.push_back(Param{name, plain[name], false, {}, {}, {}});
                }
                continue;
            }
        } else {
            continue;
        }
        Param param;
        param.name = name;
        if (!any_encoded) {
            // Only plain continuations (name*0="a"; name*1="b"): the
            // joined value is a plain value (RFC 2231 §3).
            param.value = std::move(bytes);
            out.push_back(std::move(param));
            continue;
        }
        param.extended = true;
        param.language = language;
        param.charset = charset;
        param.value = charset_to_utf8(charset, bytes);
        param.rfc2231 = charset + "'" + language + "'" + percent_encode(bytes);
        out.push_back(std::move(param));
    }
    return out;
}

// ---- address lists -------------------------------------------------------

struct Token {
    enum class Kind { Atom, Quoted, Comment, Special, Literal };
    Kind kind;
    std::string text;
    bool space_before = false;
};

std::vector<Token> tokenize_addresses(std::string_view s) {
    std::vector<Token> out;
    bool space = false;
    size_t i = 0;
    while (i < s.size()) {
        char c = s[i];
        if (is_wsp(c)) {
            space = true;
            ++i;
            continue;
        }
        Token tok{Token::Kind::Atom, {}, space};
        space = false;
        if (c == '"') {
            tok.kind = Token::Kind::Quoted;
            ++i;
            while (i < s.size() && s[i] != '"') {
                if (s[i] == '\\' && i + 1 < s.size()) {
                    ++i;
                }
                tok.text.push_back(s[i]);
                ++i;
            }
            ++i;  // closing quote (or past the end)
        } else if (c == '(') {
            tok.kind = Token::Kind::Comment;
            int depth = 0;
            while (i < s.size()) {
                char ch = s[i++];
                if (ch == '\\' && i < s.size()) {
                    tok.text.push_back(s[i++]);
                    continue;
                }
                if (ch == '(') {
                    if (depth++ == 0) {
                        continue;
                    }
                } else if (ch == ')') {
                    if (--depth == 0) {
                        break;
                    }
                }
                tok.text.push_back(ch);
            }
        } else if (c == '[') {
            tok.kind = Token::Kind::Literal;
            while (i < s.size()) {
                char ch = s[i++];
                tok.text.push_back(ch);
                if (ch == ']') {
                    break;
                }
            }
        } else if (c == '<' || c == '>' || c == '@' || c == ',' || c == ';' || c == ':' ||
                   c == '.' || c == ')' || c == '\\') {
            tok.kind = Token::Kind::Special;
            tok.text.push_back(c);
            ++i;
        } else {
            while (i < s.size()) {
                char ch = s[i];
                if (is_wsp(ch) || ch == '"' || ch == '(' || ch == ')' || ch == '<' || ch == '>' ||
                    ch == '@' || ch == ',' || ch == ';' || ch == ':' || ch == '.' || ch == '[' ||
                    ch == '\\') {
                    break;
                }
                tok.text.push_back(ch);
                ++i;
            }
        }
        out.push_back(std::move(tok));
    }
    return out;
}

bool is_special(const Token& t, char c) {
    return t.kind == Token::Kind::Special && t.text.size() == 1 && t.text[0] == c;
}

// A phrase: words joined with one space where the source had whitespace.
std::string join_phrase(const std::vector<const Token*>& toks) {
    std::string out;
    for (const Token* t : toks) {
        if (t->kind == Token::Kind::Comment) {
            continue;
        }
        if (!out.empty() && t->space_before) {
            out.push_back(' ');
        }
        out.append(t->text);
    }
    return out;
}

std::string quote_local(const std::string& text) {
    std::string out = "\"";
    for (char c : text) {
        if (c == '"' || c == '\\') {
            out.push_back('\\');
        }
        out.push_back(c);
    }
    out.push_back('"');
    return out;
}

// An addr-spec from tokens: local-part "@" domain, split at the last "@".
void fill_addr_spec(const std::vector<const Token*>& toks, Address& addr) {
    size_t at = toks.size();
    for (size_t k = 0; k < toks.size(); ++k) {
        if (is_special(*toks[k], '@')) {
            at = k;
        }
    }
    std::string local;
    for (size_t k = 0; k < at; ++k) {
        const Token* t = toks[k];
        if (t->kind == Token::Kind::Comment) {
            continue;
        }
        if (t->kind == Token::Kind::Quoted) {
            local.append(quote_local(t->text));
        } else {
            local.append(t->text);
        }
    }
    std::string host;
    for (size_t k = at + 1; k < toks.size(); ++k) {
        if (toks[k]->kind != Token::Kind::Comment) {
            host.append(toks[k]->text);
        }
    }
    addr.mailbox = std::move(local);
    addr.host = std::move(host);
}

class AddressListParser {
  public:
    explicit AddressListParser(std::string_view value) : tokens_(tokenize_addresses(value)) {}

    std::vector<Address> run() {
        for (size_t i = 0; i < tokens_.size(); ++i) {
            const Token& t = tokens_[i];
            if (angle_) {
                if (is_special(t, '>')) {
                    angle_ = false;
                } else {
                    angle_toks_.push_back(&t);
                }
                continue;
            }
            if (is_special(t, '<')) {
                angle_ = true;
                had_angle_ = true;
            } else if (is_special(t, ',')) {
                flush();
            } else if (is_special(t, ';')) {
                flush();
                if (in_group_) {
                    out_.push_back(Address{Address::Kind::GroupEnd, {}, {}, {}, {}});
                    in_group_ = false;
                }
            } else if (is_special(t, ':') && !in_group_ && !had_angle_ && !phrase_has_at_) {
                Address start;
                start.kind = Address::Kind::GroupStart;
                start.mailbox = join_phrase(phrase_);
                out_.push_back(std::move(start));
                phrase_.clear();
                phrase_has_at_ = false;
                in_group_ = true;
            } else {
                phrase_.push_back(&t);
                phrase_has_at_ = phrase_has_at_ || is_special(t, '@');
            }
        }
        flush();
        if (in_group_) {
            out_.push_back(Address{Address::Kind::GroupEnd, {}, {}, {}, {}});
        }
        return std::move(out_);
    }

  private:
    void flush() {
        Address addr;
        if (had_angle_) {
            addr.name = join_phrase(phrase_);
            // Obsolete route: "@a,@b:" before the addr-spec (RFC 5322 §4.4).
            std::vector<const Token*> spec = angle_toks_;
            if (!spec.empty() && is_special(*spec.front(), '@')) {
                for (size_t k = 0; k < spec.size(); ++k) {
                    if (is_special(*spec[k], ':')) {
                        std::string route;
                        for (size_t r = 0; r < k; ++r) {
                            route.append(spec[r]->text);
                        }
                        addr.route = std::move(route);
                        spec.erase(spec.begin(), spec.begin() + static_cast<long>(k) + 1);
                        break;
                    }
                }
            }
            fill_addr_spec(spec, addr);
        } else {
            bool any = std::any_of(phrase_.begin(), phrase_.end(),
                                   [](const Token* t) { return t->kind != Token::Kind::Comment; });
            if (!any) {
                reset();
                return;
            }
            fill_addr_spec(phrase_, addr);
            // "user@host (Full Name)": the comment stands in for the name.
            for (const Token* t : phrase_) {
                if (t->kind == Token::Kind::Comment) {
                    addr.name = std::string(trim(t->text));
                    break;
                }
            }
        }
        if (!addr.name.empty() || !addr.mailbox.empty() || !addr.host.empty()) {
            out_.push_back(std::move(addr));
        }
        reset();
    }
    void reset() {
        phrase_.clear();
        phrase_has_at_ = false;
        angle_toks_.clear();
        angle_ = false;
        had_angle_ = false;
    }

    std::vector<Token> tokens_;
    std::vector<Address> out_;
    std::vector<const Token*> phrase_;
    std::vector<const Token*> angle_toks_;
    bool angle_ = false;
    bool had_angle_ = false;
    bool phrase_has_at_ = false;
    bool in_group_ = false;
};

}  // namespace

std::vector<HeaderField> split_header_fields(std::string_view header) {
    std::vector<HeaderField> fields;
    size_t pos = 0;
    std::string_view current;  // raw text of the field being gathered
    auto finish = [&] {
        if (current.empty()) {
            return;
        }
        size_t colon = current.find(':');
        HeaderField field;
        if (colon != std::string_view::npos) {
            field.name = trim(current.substr(0, colon));
            field.value = unfold(current.substr(colon + 1));
        } else {
            field.value = unfold(current);
        }
        fields.push_back(std::move(field));
        current = {};
    };
    while (pos < header.size()) {
        size_t eol = header.find('\n', pos);
        size_t next = eol == std::string_view::npos ? header.size() : eol + 1;
        std::string_view line = header.substr(pos, next - pos);
        std::string_view content = line;
        while (!content.empty() && (content.back() == '\n' || content.back() == '\r')) {
            content.remove_suffix(1);
        }
        if (content.empty()) {
            break;  // the empty line ends the header
        }
        if ((line[0] == ' ' || line[0] == '\t') && !current.empty()) {
            // Continuation: extend the view (the lines are contiguous).
            current = std::string_view(current.data(), current.size() + line.size());
        } else {
            finish();
            current = line;
        }
        pos = next;
    }
    finish();
    return fields;
}

std::string unfold(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c != '\r' && c != '\n') {
            out.push_back(c);
        }
    }
    return std::string(trim(out));
}

std::vector<Param> parse_params(std::string_view text) {
    Lexer lex(text);
    return build_params(lex_params(lex));
}

std::optional<ContentType> parse_content_type(std::string_view value) {
    Lexer lex(value);
    std::string_view type = lex.token();
    if (type.empty() || !lex.consume('/')) {
        return std::nullopt;
    }
    std::string_view subtype = lex.token();
    if (subtype.empty()) {
        return std::nullopt;
    }
    ContentType ct;
    ct.type = to_lower(type);
    ct.subtype = to_lower(subtype);
    ct.params = build_params(lex_params(lex));
    return ct;
}

std::optional<ContentDisposition> parse_content_disposition(std::string_view value) {
    Lexer lex(value);
    std::string_view type = lex.token();
    if (type.empty()) {
        return std::nullopt;
    }
    ContentDisposition cd;
    cd.type = to_lower(type);
    cd.params = build_params(lex_params(lex));
    return cd;
}

std::optional<std::string> parse_token(std::string_view value) {
    Lexer lex(value);
    std::string_view tok = lex.token();
    if (tok.empty()) {
        return std::nullopt;
    }
    return to_lower(tok);
}

std::vector<std::string> parse_language(std::string_view value) {
    std::vector<std::string> out;
    Lexer lex(value);
    while (!lex.at_end()) {
        std::string_view tok = lex.token();
        if (!tok.empty()) {
            out.emplace_back(tok);
        } else if (!lex.consume(',')) {
            lex.advance();  // skip any other stray byte
        }
    }
    return out;
}

std::vector<Address> parse_address_list(std::string_view value) {
    return AddressListParser(value).run();
}

}  // namespace yubin::mime
