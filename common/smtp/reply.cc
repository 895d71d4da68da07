#include "common/smtp/reply.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/base/strings.h"

namespace yubin::smtp {

namespace {

bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}

std::optional<uint16_t> parse_1to3_digits(std::string_view s) noexcept {
    if (s.empty() || s.size() > 3) {
        return std::nullopt;
    }
    auto v = parse_u64(s);
    if (!v) {
        return std::nullopt;
    }
    return static_cast<uint16_t>(*v);
}

// Splits text on CR, LF or CRLF, so that no text can add a reply line of its
// own making.
std::vector<std::string_view> split_text_lines(std::string_view text) {
    std::vector<std::string_view> out;
    size_t start = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\r' || text[i] == '\n') {
            out.push_back(text.substr(start, i - start));
            if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
                ++i;
            }
            start = i + 1;
        }
    }
    out.push_back(text.substr(start));
    return out;
}

// Appends `text` to `out` in pieces of at most `width` octets, breaking at
// the last space that fits, else at a UTF-8 character boundary.
void wrap(std::string_view text, size_t width, std::vector<std::string_view>* out) {
    while (text.size() > width) {
        size_t cut = text.rfind(' ', width);
        size_t next = cut + 1;
        if (cut == std::string_view::npos || cut == 0) {
            cut = width;
            while (cut > 1 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) {
                --cut;
            }
            next = cut;
        }
        out->push_back(text.substr(0, cut));
        text.remove_prefix(next);
    }
    out->push_back(text);
}

// Strips a leading enhanced code matching the reply's class from a line's
// text (RFC 2034 §3: "status-code SP text").
std::pair<std::optional<EnhancedCode>, std::string_view> split_enhanced(int code,
                                                                        std::string_view text) {
    size_t sp = text.find(' ');
    std::string_view first = text.substr(0, sp);
    auto enh = EnhancedCode::parse(first);
    if (!enh || enh->klass != code / 100) {
        return {std::nullopt, text};
    }
    std::string_view rest = sp == std::string_view::npos ? std::string_view{} : text.substr(sp + 1);
    return {enh, rest};
}

}  // namespace

std::string EnhancedCode::to_string() const {
    return fmt::format("{}.{}.{}", klass, subject, detail);
}

std::optional<EnhancedCode> EnhancedCode::parse(std::string_view text) noexcept {
    // class "." subject "." detail, class 2/4/5 (RFC 3463 §2).
    if (text.size() < 5 || (text[0] != '2' && text[0] != '4' && text[0] != '5') || text[1] != '.') {
        return std::nullopt;
    }
    std::string_view rest = text.substr(2);
    size_t dot = rest.find('.');
    if (dot == std::string_view::npos) {
        return std::nullopt;
    }
    auto subject = parse_1to3_digits(rest.substr(0, dot));
    auto detail = parse_1to3_digits(rest.substr(dot + 1));
    if (!subject || !detail) {
        return std::nullopt;
    }
    return EnhancedCode{static_cast<uint8_t>(text[0] - '0'), *subject, *detail};
}

Reply::Reply(int c, std::optional<EnhancedCode> e, std::string text)
    : code(c), enhanced(e), lines{std::move(text)} {}

Reply::Reply(const ReplyTemplate& t)
    : code(t.code),
      enhanced(t.enhanced.klass == 0 ? std::nullopt : std::optional<EnhancedCode>(t.enhanced)),
      lines{std::string(t.text)} {}

Reply make_reply(const ReplyTemplate& t, std::string_view prefix) {
    Reply r(t);
    r.lines.front() = std::string(prefix) + r.lines.front();
    return r;
}

std::string Reply::text() const {
    std::string out;
    for (const auto& line : lines) {
        if (!out.empty()) {
            out.push_back(' ');
        }
        out += line;
    }
    return out;
}

std::string Reply::to_wire() const {
    std::string enh = enhanced ? enhanced->to_string() : std::string();
    // "ddd-" + "c.s.d " + text + CRLF ≤ 512.
    size_t overhead = 4 + (enh.empty() ? 0 : enh.size() + 1) + 2;
    size_t width = kMaxReplyLine - overhead;
    std::vector<std::string_view> pieces;
    for (const auto& line : lines) {
        for (auto part : split_text_lines(line)) {
            wrap(part, width, &pieces);
        }
    }
    if (pieces.empty()) {
        pieces.emplace_back();
    }
    std::string out;
    int c = std::clamp(code, 0, 999);
    for (size_t i = 0; i < pieces.size(); ++i) {
        bool last = i + 1 == pieces.size();
        out += fmt::format("{:03d}", c);
        if (!last) {
            out.push_back('-');
        }
        if (!enh.empty()) {
            if (last) {
                out.push_back(' ');
            }
            out += enh;
            if (!pieces[i].empty()) {
                out.push_back(' ');
            }
        } else if (last && !pieces[i].empty()) {
            out.push_back(' ');
        }
        out += pieces[i];
        out += "\r\n";
    }
    return out;
}

Result<ReplyLine> parse_reply_line(std::string_view line) {
    // RFC 5321 §4.2: Reply-code [ ("-" / SP) textstring ]; the code is
    // %x32-35 %x30-35 %x30-39. We accept any second digit: a server sending
    // 260 is odd, but refusing to read it helps nobody.
    if (line.size() < 3 || line[0] < '2' || line[0] > '5' || !is_digit(line[1]) ||
        !is_digit(line[2])) {
        return fail(ErrorCode::Invalid, "reply line does not start with a reply code");
    }
    ReplyLine out;
    out.code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (line.size() == 3) {
        return out;
    }
    if (line[3] == '-') {
        out.last = false;
    } else if (line[3] != ' ') {
        return fail(ErrorCode::Invalid, "reply code not followed by space or hyphen");
    }
    out.text = line.substr(4);
    for (char c : out.text) {
        if (c == '\0' || c == '\r' || c == '\n') {
            return fail(ErrorCode::Invalid, "control character in reply text");
        }
    }
    return out;
}

Result<std::optional<Reply>> ReplyParser::next() {
    if (error_) {
        return fail(*error_);
    }
    auto set_error = [this](ErrorCode code, std::string message) {
        error_ = Error{code, std::move(message)};
        return fail(*error_);
    };
    for (;;) {
        // Resume the LF search where the last call stopped, so that a long
        // line fed byte by byte costs linear time, not quadratic.
        size_t lf = buffer_.find('\n', pos_ + scanned_);
        if (lf == std::string::npos) {
            if (buffer_.size() - pos_ > limits_.max_line) {
                return set_error(ErrorCode::Limit, "reply line too long");
            }
            // Keep only the unfinished line.
            buffer_.erase(0, pos_);
            pos_ = 0;
            scanned_ = buffer_.size();
            return std::optional<Reply>{};
        }
        scanned_ = 0;
        std::string_view line(buffer_.data() + pos_, lf - pos_);
        if (line.size() > limits_.max_line) {
            return set_error(ErrorCode::Limit, "reply line too long");
        }
        pos_ = lf + 1;
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        auto parsed = parse_reply_line(line);
        if (!parsed) {
            return set_error(parsed.error().code, parsed.error().message);
        }
        if (pending_.lines.empty()) {
            pending_.code = parsed->code;
        } else if (pending_.code != parsed->code) {
            return set_error(ErrorCode::Invalid, "reply code changed within a multi-line reply");
        }
        if (pending_.lines.size() >= limits_.max_lines) {
            return set_error(ErrorCode::Limit, "too many lines in one reply");
        }
        auto [enh, text] = split_enhanced(parsed->code, parsed->text);
        if (pending_.lines.empty()) {
            pending_.enhanced = enh;
        } else if (pending_.enhanced && (!enh || *enh != *pending_.enhanced)) {
            // Lines disagree; keep the text intact rather than guess.
            text = parsed->text;
        }
        if (!pending_.enhanced) {
            text = parsed->text;
        }
        pending_.lines.emplace_back(text);
        if (parsed->last) {
            Reply done = std::move(pending_);
            pending_ = Reply{};
            return std::optional<Reply>(std::move(done));
        }
    }
}

bool Capabilities::has(std::string_view keyword) const {
    return keywords.find(to_upper(keyword)) != keywords.end();
}

Result<Capabilities> parse_ehlo_reply(const Reply& reply) {
    if (reply.code != 250 || reply.lines.empty()) {
        return fail(ErrorCode::Invalid, fmt::format("EHLO answered {}", reply.code));
    }
    Capabilities caps;
    caps.greeting = reply.lines.front();
    auto add_mechs = [&caps](const std::vector<std::string>& mechs) {
        for (const auto& m : mechs) {
            std::string upper = to_upper(m);
            if (std::find(caps.auth_mechanisms.begin(), caps.auth_mechanisms.end(), upper) ==
                caps.auth_mechanisms.end()) {
                caps.auth_mechanisms.push_back(std::move(upper));
            }
        }
    };
    for (size_t i = 1; i < reply.lines.size(); ++i) {
        std::vector<std::string> words;
        for (auto w : split(reply.lines[i], ' ')) {
            if (!w.empty()) {
                words.emplace_back(w);
            }
        }
        if (words.empty()) {
            continue;
        }
        std::string keyword = to_upper(words.front());
        std::vector<std::string> params(words.begin() + 1, words.end());
        if (istarts_with(keyword, "AUTH=")) {
            // Pre-RFC 2554 form: "AUTH=LOGIN PLAIN".
            std::vector<std::string> mechs{keyword.substr(5)};
            mechs.insert(mechs.end(), params.begin(), params.end());
            add_mechs(mechs);
            continue;
        }
        // ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")  (§4.1.1.1)
        bool valid = std::all_of(keyword.begin(), keyword.end(), [](char c) {
            return (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-';
        });
        if (!valid || keyword.front() == '-') {
            continue;
        }
        if (keyword == "PIPELINING") {
            caps.pipelining = true;
        } else if (keyword == "CHUNKING") {
            caps.chunking = true;
        } else if (keyword == "BINARYMIME") {
            caps.binarymime = true;
        } else if (keyword == "8BITMIME") {
            caps.eightbitmime = true;
        } else if (keyword == "SMTPUTF8") {
            caps.smtputf8 = true;
        } else if (keyword == "DSN") {
            caps.dsn = true;
        } else if (keyword == "STARTTLS") {
            caps.starttls = true;
        } else if (keyword == "ENHANCEDSTATUSCODES") {
            caps.enhanced_status_codes = true;
        } else if (keyword == "REQUIRETLS") {
            caps.requiretls = true;
        } else if (keyword == "SIZE") {
            if (params.empty()) {
                caps.size = 0;
            } else if (auto n = parse_u64(params.front())) {
                caps.size = *n;
            }
        } else if (keyword == "AUTH") {
            add_mechs(params);
        } else if (keyword == "FUTURERELEASE" && params.size() >= 2) {
            if (auto n = parse_u64(params[0])) {
                caps.future_release_max_interval = *n;
                caps.future_release_max_datetime = params[1];
            }
        }
        caps.keywords[keyword] = std::move(params);
    }
    return caps;
}

}  // namespace yubin::smtp
