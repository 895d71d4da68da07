#include "common/smtp/command.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <limits>

#include <fmt/format.h>

#include "common/base/strings.h"
#include "common/smtp/xtext.h"

namespace yubin::smtp {

namespace {

using Unexpected = tl::unexpected<Reply>;

Unexpected reply_error(const ReplyTemplate& t) {
    return Unexpected(Reply(t));
}

Unexpected reply_error(const ReplyTemplate& t, std::string text) {
    Reply r(t);
    r.lines.front() = std::move(text);
    return Unexpected(std::move(r));
}

Unexpected syntax_error(std::string text) {
    return reply_error(kSyntaxError, std::move(text));
}

bool is_alnum(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool is_space(char c) noexcept {
    return c == ' ' || c == '\t';
}

std::string_view trim_spaces(std::string_view s) noexcept {
    while (!s.empty() && is_space(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_space(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

// Words separated by one or more spaces (§4.1.1 says exactly one SP, but
// doubled spaces between parameters are common and harmless).
std::vector<std::string_view> words(std::string_view s) {
    std::vector<std::string_view> out;
    size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && is_space(s[i])) {
            ++i;
        }
        size_t start = i;
        while (i < s.size() && !is_space(s[i])) {
            ++i;
        }
        if (i > start) {
            out.push_back(s.substr(start, i - start));
        }
    }
    return out;
}

// esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")   (§4.1.2)
bool is_esmtp_keyword(std::string_view s) noexcept {
    if (s.empty() || !is_alnum(s.front())) {
        return false;
    }
    return std::all_of(s.begin(), s.end(), [](char c) { return is_alnum(c) || c == '-'; });
}

// esmtp-value = 1*(%d33-60 / %d62-126 / UTF8-non-ascii)   (§4.1.2, RFC 6531 §3.3)
bool is_esmtp_value(std::string_view s) noexcept {
    if (s.empty()) {
        return false;
    }
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c < 33 || c == '=' || c == 127) {
            return false;
        }
    }
    return is_valid_utf8(s);
}

struct Param {
    std::string keyword;  // upper-cased
    std::optional<std::string_view> value;
};

// Splits "K[=V] K[=V] ..." and refuses malformed or duplicate parameters.
tl::expected<std::vector<Param>, Reply> split_params(const std::vector<std::string_view>& items) {
    // No RFC sets a number; every defined MAIL parameter at once is 9, so
    // 32 leaves room for extensions while keeping the duplicate check cheap.
    constexpr size_t kMaxParams = 32;
    if (items.size() > kMaxParams) {
        return syntax_error("Too many parameters");
    }
    std::vector<Param> out;
    for (auto item : items) {
        size_t eq = item.find('=');
        std::string_view key = item.substr(0, eq);
        if (!is_esmtp_keyword(key)) {
            return syntax_error("Bad parameter syntax");
        }
        Param p{to_upper(key), std::nullopt};
        if (eq != std::string_view::npos) {
            std::string_view value = item.substr(eq + 1);
            if (!is_esmtp_value(value)) {
                return syntax_error("Bad parameter value syntax");
            }
            p.value = value;
        }
        for (const auto& seen : out) {
            if (seen.keyword == p.keyword) {
                return syntax_error("Duplicate parameter " + p.keyword);
            }
        }
        out.push_back(std::move(p));
    }
    return out;
}

// RFC 1870 §3: size-value ::= 1*20DIGIT. A value that does not fit 64 bits
// saturates: it is a real (absurd) size and the session's 552 is the answer.
std::optional<uint64_t> parse_size(std::string_view s) noexcept {
    if (s.empty() || s.size() > 20 ||
        !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    auto v = parse_u64(s);
    return v ? *v : std::numeric_limits<uint64_t>::max();
}

Unexpected unrecognized_param(const std::string& keyword) {
    Reply r(kUnrecognizedParameter);
    r.lines.front() = keyword + " parameter not recognized";
    return Unexpected(std::move(r));
}

tl::expected<MailParams, Reply> parse_mail_params(const std::vector<Param>& params,
                                                  uint32_t extensions) {
    MailParams mp;
    auto need_value = [](const Param& p) { return p.value.has_value(); };
    for (const auto& p : params) {
        const std::string& k = p.keyword;
        auto offered = [&](uint32_t ext) { return (extensions & ext) != 0; };
        if (k == "SIZE" && offered(kExtSize)) {
            if (!need_value(p) || !(mp.size = parse_size(*p.value))) {
                return syntax_error("Bad SIZE value");
            }
        } else if (k == "BODY" && offered(kExt8BitMime | kExtBinaryMime)) {
            if (!need_value(p)) {
                return syntax_error("BODY needs a value");
            }
            if (iequals(*p.value, "7BIT")) {
                mp.body = Body::SevenBit;
            } else if (iequals(*p.value, "8BITMIME") && offered(kExt8BitMime)) {
                mp.body = Body::EightBitMime;
            } else if (iequals(*p.value, "BINARYMIME") && offered(kExtBinaryMime)) {
                mp.body = Body::BinaryMime;
            } else {
                return syntax_error("Bad BODY value");
            }
        } else if (k == "SMTPUTF8" && offered(kExtSmtpUtf8)) {
            if (p.value) {
                return syntax_error("SMTPUTF8 takes no value");
            }
            mp.smtputf8 = true;
        } else if (k == "RET" && offered(kExtDsn)) {
            if (p.value && iequals(*p.value, "FULL")) {
                mp.ret = Ret::Full;
            } else if (p.value && iequals(*p.value, "HDRS")) {
                mp.ret = Ret::Headers;
            } else {
                return syntax_error("Bad RET value");
            }
        } else if (k == "ENVID" && offered(kExtDsn)) {
            auto decoded = p.value ? xtext_decode(*p.value) : fail(ErrorCode::Invalid, "");
            // RFC 3461 §4.4: at most 100 characters, printable US-ASCII.
            if (!decoded || decoded->size() > 100 ||
                !std::all_of(decoded->begin(), decoded->end(),
                             [](char c) { return c >= 32 && c <= 126; })) {
                return syntax_error("Bad ENVID value");
            }
            mp.envid = std::move(*decoded);
        } else if (k == "AUTH" && offered(kExtAuth)) {
            if (!p.value) {
                return syntax_error("AUTH needs a value");
            }
            if (*p.value == "<>") {
                mp.auth = std::string();  // RFC 4954 §5: identity unknown
            } else {
                auto decoded = xtext_decode(*p.value);
                if (!decoded) {
                    return syntax_error("Bad AUTH value");
                }
                mp.auth = std::move(*decoded);
            }
        } else if (k == "HOLDFOR" && offered(kExtFutureRelease)) {
            // RFC 4865 §4: holdfor-value = 1*9DIGIT.
            if (!p.value || p.value->size() > 9 || !(mp.hold_for = parse_u64(*p.value))) {
                return syntax_error("Bad HOLDFOR value");
            }
        } else if (k == "HOLDUNTIL" && offered(kExtFutureRelease)) {
            if (!p.value || !(mp.hold_until = parse_rfc3339(*p.value))) {
                return syntax_error("Bad HOLDUNTIL value");
            }
        } else if (k == "REQUIRETLS" && offered(kExtRequireTls)) {
            if (p.value) {
                return syntax_error("REQUIRETLS takes no value");
            }
            mp.requiretls = true;
        } else {
            return unrecognized_param(k);
        }
    }
    if (mp.hold_for && mp.hold_until) {
        // RFC 4865 §4: the two are mutually exclusive.
        return syntax_error("HOLDFOR and HOLDUNTIL are mutually exclusive");
    }
    return mp;
}

tl::expected<RcptParams, Reply> parse_rcpt_params(const std::vector<Param>& params,
                                                  uint32_t extensions) {
    RcptParams rp;
    for (const auto& p : params) {
        if (p.keyword == "NOTIFY" && (extensions & kExtDsn) != 0) {
            // RFC 3461 §4.1: "NEVER" alone, or a list of SUCCESS, FAILURE, DELAY.
            if (!p.value) {
                return syntax_error("NOTIFY needs a value");
            }
            for (auto item : split(*p.value, ',')) {
                if (iequals(item, "NEVER")) {
                    rp.notify |= kNotifyNever;
                } else if (iequals(item, "SUCCESS")) {
                    rp.notify |= kNotifySuccess;
                } else if (iequals(item, "FAILURE")) {
                    rp.notify |= kNotifyFailure;
                } else if (iequals(item, "DELAY")) {
                    rp.notify |= kNotifyDelay;
                } else {
                    return syntax_error("Bad NOTIFY value");
                }
            }
            if ((rp.notify & kNotifyNever) != 0 && rp.notify != kNotifyNever) {
                return syntax_error("NOTIFY=NEVER must be alone");
            }
        } else if (p.keyword == "ORCPT" && (extensions & kExtDsn) != 0) {
            // RFC 3461 §4.2: addr-type ";" xtext, addr-type an atom.
            size_t semi = p.value ? p.value->find(';') : std::string_view::npos;
            if (semi == std::string_view::npos || semi == 0) {
                return syntax_error("Bad ORCPT value");
            }
            std::string_view type = p.value->substr(0, semi);
            auto decoded = xtext_decode(p.value->substr(semi + 1));
            if (!is_dot_string(type) || type.find('.') != std::string_view::npos || !decoded ||
                decoded->empty()) {
                return syntax_error("Bad ORCPT value");
            }
            rp.orcpt = Orcpt{std::string(type), std::move(*decoded)};
        } else {
            return unrecognized_param(p.keyword);
        }
    }
    return rp;
}

// Reads "<path> params..." after "FROM:" / "TO:". Returns the path text and
// the parameter words.
tl::expected<std::pair<std::string_view, std::vector<std::string_view>>, Reply> split_path(
    std::string_view rest, const CommandOptions& options, const ReplyTemplate& bad_syntax) {
    if (!rest.empty() && is_space(rest.front())) {
        if (!options.allow_space_after_colon) {
            return reply_error(bad_syntax, "No space allowed after the colon");
        }
        rest = trim_spaces(rest);
    }
    if (rest.empty()) {
        return reply_error(bad_syntax, "Missing address");
    }
    size_t end = 0;
    if (rest.front() == '<') {
        end = find_path_end(rest);
        if (end == std::string_view::npos) {
            return reply_error(bad_syntax);
        }
    } else {
        end = std::min(rest.size(), rest.find(' '));
    }
    if (end < rest.size() && !is_space(rest[end])) {
        return reply_error(bad_syntax);
    }
    return std::make_pair(rest.substr(0, end), words(rest.substr(end)));
}

Unexpected address_error(const Error& e, const ReplyTemplate& bad_syntax) {
    switch (e.code) {
        case ErrorCode::Perm:
            return reply_error(kNonAsciiAddress);
        case ErrorCode::Limit:
            return reply_error(kPathTooLong);
        default:
            return reply_error(bad_syntax);
    }
}

CommandResult parse_mail(std::string_view rest, const CommandOptions& options) {
    if (!istarts_with(rest, "FROM:")) {
        return syntax_error("Syntax: MAIL FROM:<address>");
    }
    auto split_result = split_path(rest.substr(5), options, kBadSenderSyntax);
    if (!split_result) {
        return tl::unexpected(split_result.error());
    }
    auto params = split_params(split_result->second);
    if (!params) {
        return tl::unexpected(params.error());
    }
    Command cmd;
    cmd.verb = Verb::Mail;
    auto mp = parse_mail_params(*params, options.extensions);
    if (!mp) {
        return tl::unexpected(mp.error());
    }
    cmd.mail = std::move(*mp);
    AddressOptions ao{cmd.mail.smtputf8, options.allow_missing_brackets, options.max_local_part};
    auto path = parse_reverse_path(split_result->first, ao);
    if (!path) {
        return address_error(path.error(), kBadSenderSyntax);
    }
    cmd.path = std::move(*path);
    return cmd;
}

CommandResult parse_rcpt(std::string_view rest, const CommandOptions& options) {
    if (!istarts_with(rest, "TO:")) {
        return syntax_error("Syntax: RCPT TO:<address>");
    }
    auto split_result = split_path(rest.substr(3), options, kBadRecipientSyntax);
    if (!split_result) {
        return tl::unexpected(split_result.error());
    }
    auto params = split_params(split_result->second);
    if (!params) {
        return tl::unexpected(params.error());
    }
    Command cmd;
    cmd.verb = Verb::Rcpt;
    auto rp = parse_rcpt_params(*params, options.extensions);
    if (!rp) {
        return tl::unexpected(rp.error());
    }
    cmd.rcpt = std::move(*rp);
    AddressOptions ao{options.smtputf8_transaction, options.allow_missing_brackets,
                      options.max_local_part};
    auto path = parse_forward_path(split_result->first, ao);
    if (!path) {
        return address_error(path.error(), kBadRecipientSyntax);
    }
    cmd.path = std::move(*path);
    return cmd;
}

CommandResult parse_bdat(std::string_view rest) {
    // RFC 3030 §2: "BDAT" SP chunk-size [ SP end-marker ]. A 501 here leaves
    // the chunk's bytes to be read as commands; the session should close.
    auto w = words(rest);
    if (w.empty() || w.size() > 2 || w[0].size() > 20) {
        return syntax_error("Syntax: BDAT size [LAST]");
    }
    auto n = parse_u64(w[0]);
    if (!n) {
        return syntax_error("Syntax: BDAT size [LAST]");
    }
    Command cmd;
    cmd.verb = Verb::Bdat;
    cmd.chunk_size = *n;
    if (w.size() == 2) {
        if (!iequals(w[1], "LAST")) {
            return syntax_error("Syntax: BDAT size [LAST]");
        }
        cmd.last = true;
    }
    return cmd;
}

CommandResult parse_auth(std::string_view rest) {
    // RFC 4954 §4: "AUTH" SP sasl-mech [SP initial-response]; sasl-mech is
    // 1*20 of upper-case letters, digits, "-" and "_" (RFC 4422 §3.1).
    auto w = words(rest);
    if (w.empty() || w.size() > 2) {
        return syntax_error("Syntax: AUTH mechanism [initial-response]");
    }
    std::string mech = to_upper(w[0]);
    if (mech.size() > 20 || !std::all_of(mech.begin(), mech.end(), [](char c) {
            return is_alnum(c) || c == '-' || c == '_';
        })) {
        return syntax_error("Bad mechanism name");
    }
    Command cmd;
    cmd.verb = Verb::Auth;
    cmd.mechanism = std::move(mech);
    if (w.size() == 2) {
        std::string_view ir = w[1];
        bool ok = ir == "=" || std::all_of(ir.begin(), ir.end(), [](char c) {
                      return is_alnum(c) || c == '+' || c == '/' || c == '=';
                  });
        if (!ok) {
            // RFC 4954 §4 gives this code for an undecodable response.
            return reply_error(kSyntaxError, "Cannot Base64-decode initial response");
        }
        cmd.initial_response = std::string(ir);
    }
    return cmd;
}

CommandResult parse_xclient(std::string_view rest) {
    static constexpr std::array<std::string_view, 9> kNames = {
        "NAME", "REVERSE_NAME", "ADDR", "PORT", "PROTO", "HELO", "LOGIN", "DESTADDR", "DESTPORT"};
    auto w = words(rest);
    if (w.empty()) {
        return syntax_error("Syntax: XCLIENT attribute=value ...");
    }
    Command cmd;
    cmd.verb = Verb::XClient;
    for (auto item : w) {
        size_t eq = item.find('=');
        if (eq == std::string_view::npos) {
            return syntax_error("Bad XCLIENT attribute syntax");
        }
        XClientAttr attr;
        attr.name = to_upper(item.substr(0, eq));
        if (std::find(kNames.begin(), kNames.end(), attr.name) == kNames.end()) {
            return syntax_error("Bad XCLIENT attribute name");
        }
        for (const auto& seen : cmd.xclient) {
            if (seen.name == attr.name) {
                return syntax_error("Duplicate XCLIENT attribute");
            }
        }
        std::string_view value = item.substr(eq + 1);
        if (iequals(value, "[UNAVAILABLE]")) {
            attr.state = XClientAttr::State::Unavailable;
        } else if (iequals(value, "[TEMPUNAVAIL]")) {
            attr.state = XClientAttr::State::TempUnavailable;
        } else {
            auto decoded = xtext_decode(value);
            if (!decoded) {
                return syntax_error("Bad XCLIENT attribute value");
            }
            attr.value = std::move(*decoded);
        }
        cmd.xclient.push_back(std::move(attr));
    }
    return cmd;
}

struct VerbEntry {
    std::string_view name;
    Verb verb;
};

constexpr std::array<VerbEntry, 15> kVerbs = {{
    {"HELO", Verb::Helo},
    {"EHLO", Verb::Ehlo},
    {"MAIL", Verb::Mail},
    {"RCPT", Verb::Rcpt},
    {"DATA", Verb::Data},
    {"BDAT", Verb::Bdat},
    {"RSET", Verb::Rset},
    {"NOOP", Verb::Noop},
    {"QUIT", Verb::Quit},
    {"VRFY", Verb::Vrfy},
    {"EXPN", Verb::Expn},
    {"HELP", Verb::Help},
    {"STARTTLS", Verb::StartTls},
    {"AUTH", Verb::Auth},
    {"XCLIENT", Verb::XClient},
}};

}  // namespace

std::string_view verb_name(Verb verb) noexcept {
    for (const auto& e : kVerbs) {
        if (e.verb == verb) {
            return e.name;
        }
    }
    return "?";
}

CommandResult parse_command(std::string_view line, const CommandOptions& options) {
    // Trailing blanks are common (scripts, some bots) and meaningless.
    line = trim_spaces(line);
    for (char c : line) {
        if (c == '\0' || c == '\r' || c == '\n') {
            return reply_error(kUnrecognized, "Control characters in command");
        }
    }
    size_t sp = line.find_first_of(" \t");
    std::string_view name = line.substr(0, sp);
    std::string_view rest = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    auto entry = std::find_if(kVerbs.begin(), kVerbs.end(),
                              [&](const VerbEntry& e) { return iequals(e.name, name); });
    if (entry == kVerbs.end()) {
        return reply_error(kUnrecognized);
    }
    Command cmd;
    cmd.verb = entry->verb;
    switch (entry->verb) {
        case Verb::Helo:
        case Verb::Ehlo: {
            // §4.1.1.1: a domain or an address literal. The argument is kept
            // as sent; validity is reported, not enforced (Windows clients
            // send NetBIOS names with "_", and policy decides on those).
            std::string_view arg = trim_spaces(rest);
            if (arg.empty()) {
                return syntax_error("Syntax: " + std::string(entry->name) + " hostname");
            }
            cmd.helo = std::string(arg);
            cmd.helo_valid = is_domain(arg) || is_address_literal(arg);
            return cmd;
        }
        case Verb::Mail:
            return parse_mail(rest, options);
        case Verb::Rcpt:
            return parse_rcpt(rest, options);
        case Verb::Bdat:
            return parse_bdat(rest);
        case Verb::Auth:
            return parse_auth(rest);
        case Verb::XClient:
            return parse_xclient(rest);
        case Verb::Data:
        case Verb::Rset:
        case Verb::Quit:
        case Verb::StartTls:
            // §4.1.1.4, §4.1.1.5, §4.1.1.10, RFC 3207 §4: no parameters.
            if (!trim_spaces(rest).empty()) {
                return syntax_error(std::string(entry->name) + " takes no parameters");
            }
            return cmd;
        case Verb::Vrfy:
        case Verb::Expn:
            cmd.argument = std::string(trim_spaces(rest));
            if (cmd.argument.empty()) {
                return syntax_error("Syntax: " + std::string(entry->name) + " argument");
            }
            return cmd;
        case Verb::Noop:
        case Verb::Help:
            // §4.1.1.9: a NOOP parameter is ignored; HELP's is optional.
            cmd.argument = std::string(trim_spaces(rest));
            return cmd;
    }
    return reply_error(kUnrecognized);
}

std::optional<int64_t> parse_rfc3339(std::string_view s) noexcept {
    // date-time = full-date "T" full-time (RFC 3339 §5.6); "T" and "Z" may be
    // lower case (§5.6 NOTE).
    auto num = [&](size_t pos, size_t len) -> std::optional<int> {
        if (pos + len > s.size()) {
            return std::nullopt;
        }
        int v = 0;
        for (size_t i = pos; i < pos + len; ++i) {
            if (s[i] < '0' || s[i] > '9') {
                return std::nullopt;
            }
            v = v * 10 + (s[i] - '0');
        }
        return v;
    };
    if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':') {
        return std::nullopt;
    }
    auto year = num(0, 4);
    auto month = num(5, 2);
    auto day = num(8, 2);
    auto hour = num(11, 2);
    auto minute = num(14, 2);
    auto second = num(17, 2);
    if (!year || !month || !day || !hour || !minute || !second) {
        return std::nullopt;
    }
    std::chrono::year_month_day ymd{std::chrono::year(*year),
                                    std::chrono::month(static_cast<unsigned>(*month)),
                                    std::chrono::day(static_cast<unsigned>(*day))};
    // Second 60 is a leap second (§5.7); it is counted as the next second.
    if (!ymd.ok() || *hour > 23 || *minute > 59 || *second > 60) {
        return std::nullopt;
    }
    size_t pos = 19;
    if (s[pos] == '.') {
        ++pos;
        size_t start = pos;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
            ++pos;
        }
        if (pos == start) {
            return std::nullopt;
        }
    }
    int offset = 0;
    if (pos + 1 == s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
        offset = 0;
    } else if (pos + 6 == s.size() && (s[pos] == '+' || s[pos] == '-') && s[pos + 3] == ':') {
        auto oh = num(pos + 1, 2);
        auto om = num(pos + 4, 2);
        if (!oh || !om || *oh > 23 || *om > 59) {
            return std::nullopt;
        }
        offset = (*oh * 60 + *om) * 60 * (s[pos] == '-' ? -1 : 1);
    } else {
        return std::nullopt;
    }
    auto days = std::chrono::sys_days(ymd).time_since_epoch().count();
    return static_cast<int64_t>(days) * 86400 + *hour * 3600 + *minute * 60 + *second - offset;
}

std::string format_rfc3339(int64_t unix_seconds) {
    using namespace std::chrono;
    sys_seconds t{seconds(unix_seconds)};
    auto day = floor<days>(t);
    year_month_day ymd{day};
    hh_mm_ss hms{t - day};
    return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}Z", static_cast<int>(ymd.year()),
                       static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                       hms.hours().count(), hms.minutes().count(), hms.seconds().count());
}

namespace {

// xtext, except that a value which would read back as one of the parser's
// special tokens ("<>" for AUTH=, "[UNAVAILABLE]" for XCLIENT) gets its first
// octet escaped so that it stays an ordinary value.
std::string xtext_value(std::string_view raw, std::initializer_list<std::string_view> specials) {
    std::string out = xtext_encode(raw);
    for (auto special : specials) {
        if (iequals(out, special)) {
            // The special tokens start with an xchar, so out[0] == raw[0].
            return fmt::format("+{:02X}", static_cast<unsigned char>(raw.front())) + out.substr(1);
        }
    }
    return out;
}

}  // namespace

std::string format_command(const Command& c) {
    std::string out(verb_name(c.verb));
    switch (c.verb) {
        case Verb::Helo:
        case Verb::Ehlo:
            out += " " + c.helo;
            break;
        case Verb::Mail: {
            out += " FROM:" + c.path.to_string();
            const MailParams& m = c.mail;
            if (m.size) {
                out += fmt::format(" SIZE={}", *m.size);
            }
            switch (m.body) {
                case Body::Unspecified:
                    break;
                case Body::SevenBit:
                    out += " BODY=7BIT";
                    break;
                case Body::EightBitMime:
                    out += " BODY=8BITMIME";
                    break;
                case Body::BinaryMime:
                    out += " BODY=BINARYMIME";
                    break;
            }
            if (m.smtputf8) {
                out += " SMTPUTF8";
            }
            if (m.ret == Ret::Full) {
                out += " RET=FULL";
            } else if (m.ret == Ret::Headers) {
                out += " RET=HDRS";
            }
            if (m.envid) {
                out += " ENVID=" + xtext_encode(*m.envid);
            }
            if (m.auth) {
                out +=
                    " AUTH=" + (m.auth->empty() ? std::string("<>") : xtext_value(*m.auth, {"<>"}));
            }
            if (m.hold_for) {
                out += fmt::format(" HOLDFOR={}", *m.hold_for);
            }
            if (m.hold_until) {
                out += " HOLDUNTIL=" + format_rfc3339(*m.hold_until);
            }
            if (m.requiretls) {
                out += " REQUIRETLS";
            }
            break;
        }
        case Verb::Rcpt: {
            out += " TO:" + c.path.to_string();
            if (c.rcpt.notify != 0) {
                std::vector<std::string_view> items;
                if ((c.rcpt.notify & kNotifyNever) != 0) {
                    items.push_back("NEVER");
                }
                if ((c.rcpt.notify & kNotifySuccess) != 0) {
                    items.push_back("SUCCESS");
                }
                if ((c.rcpt.notify & kNotifyFailure) != 0) {
                    items.push_back("FAILURE");
                }
                if ((c.rcpt.notify & kNotifyDelay) != 0) {
                    items.push_back("DELAY");
                }
                out += fmt::format(" NOTIFY={}", fmt::join(items, ","));
            }
            if (c.rcpt.orcpt) {
                out +=
                    " ORCPT=" + c.rcpt.orcpt->addr_type + ";" + xtext_encode(c.rcpt.orcpt->address);
            }
            break;
        }
        case Verb::Bdat:
            out += fmt::format(" {}", c.chunk_size);
            if (c.last) {
                out += " LAST";
            }
            break;
        case Verb::Auth:
            out += " " + c.mechanism;
            if (c.initial_response) {
                out += " " + *c.initial_response;
            }
            break;
        case Verb::XClient:
            for (const auto& a : c.xclient) {
                out += " " + a.name + "=";
                switch (a.state) {
                    case XClientAttr::State::Unavailable:
                        out += "[UNAVAILABLE]";
                        break;
                    case XClientAttr::State::TempUnavailable:
                        out += "[TEMPUNAVAIL]";
                        break;
                    case XClientAttr::State::Value:
                        out += xtext_value(a.value, {"[UNAVAILABLE]", "[TEMPUNAVAIL]"});
                        break;
                }
            }
            break;
        case Verb::Noop:
        case Verb::Help:
        case Verb::Vrfy:
        case Verb::Expn:
            if (!c.argument.empty()) {
                out += " " + c.argument;
            }
            break;
        case Verb::Data:
        case Verb::Rset:
        case Verb::Quit:
        case Verb::StartTls:
            break;
    }
    return out;
}

}  // namespace yubin::smtp
