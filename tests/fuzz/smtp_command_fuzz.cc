// libFuzzer target for common/smtp: the command parser, the reply parser and
// xtext, checked against invariants rather than just for crashes:
//   - a parsed command written back with format_command() parses to the same
//     command, and a MAIL/RCPT path written back with to_string() to the
//     same path; an error reply has a code the parser may give and survives
//     to_wire() → ReplyParser unchanged;
//   - the reply parser gives the same replies (and the same error) whether
//     the input arrives whole or split at an arbitrary point, and a reply
//     whose lines fit in 512 octets survives to_wire() → parse unchanged;
//   - xtext_decode(xtext_encode(x)) == x, and decoding is stable.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/smtp/command.h"
#include "common/smtp/reply.h"
#include "common/smtp/xtext.h"

using namespace yubin::smtp;

namespace {

void check(bool ok) {
    if (!ok) {
        abort();
    }
}

std::vector<Reply> parse_all(std::string_view wire, size_t cut, bool* failed) {
    ReplyParser parser(ReplyParserLimits{.max_line = 1024, .max_lines = 64});
    std::vector<Reply> out;
    *failed = false;
    auto drain = [&]() {
        for (;;) {
            auto r = parser.next();
            if (!r) {
                *failed = true;
                return false;
            }
            if (!r->has_value()) {
                return true;
            }
            out.push_back(std::move(**r));
        }
    };
    parser.feed(wire.substr(0, cut));
    if (drain()) {
        parser.feed(wire.substr(cut));
        drain();
    }
    return out;
}

void check_command(std::string_view line, const CommandOptions& options) {
    auto r = parse_command(line, options);
    if (!r) {
        int c = r.error().code;
        check(c == 500 || c == 501 || c == 553 || c == 555);
        bool failed = false;
        auto back = parse_all(r.error().to_wire(), 0, &failed);
        check(!failed && back.size() == 1 && back[0] == r.error());
        return;
    }
    // The client's formatter writes it back so that it parses to the same.
    auto reparsed = parse_command(format_command(*r), options);
    check(reparsed.has_value() && *reparsed == *r);
    if (r->verb == Verb::Mail || r->verb == Verb::Rcpt) {
        AddressOptions ao;
        ao.smtputf8 = r->verb == Verb::Mail ? r->mail.smtputf8 : options.smtputf8_transaction;
        std::string text = r->path.to_string();
        auto again =
            r->verb == Verb::Mail ? parse_reverse_path(text, ao) : parse_forward_path(text, ao);
        check(again.has_value() && *again == r->path);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);

    // Command parser: each line, strict and lax.
    CommandOptions strict;
    strict.allow_space_after_colon = false;
    CommandOptions lax;
    lax.allow_missing_brackets = true;
    lax.smtputf8_transaction = true;
    size_t start = 0;
    for (int n = 0; n < 64 && start <= input.size(); ++n) {
        size_t end = input.find('\n', start);
        std::string_view line = input.substr(
            start, end == std::string_view::npos ? std::string_view::npos : end - start);
        check_command(line, CommandOptions{});
        check_command(line, strict);
        check_command(line, lax);
        if (end == std::string_view::npos) {
            break;
        }
        start = end + 1;
    }

    // Reply parser: whole vs. split at a point chosen by the input.
    bool failed_whole = false;
    auto whole = parse_all(input, input.size(), &failed_whole);
    size_t cut = size == 0 ? 0 : data[0] % (size + 1);
    bool failed_split = false;
    auto split = parse_all(input, cut, &failed_split);
    check(whole == split && failed_whole == failed_split);
    for (const auto& reply : whole) {
        bool fits = true;
        for (const auto& l : reply.lines) {
            fits = fits && l.size() + 20 < kMaxReplyLine;
        }
        if (!fits) {
            continue;
        }
        bool failed = false;
        auto back = parse_all(reply.to_wire(), 0, &failed);
        check(!failed && back.size() == 1 && back[0] == reply);
    }
    if (!whole.empty() && whole.front().code == 250) {
        (void)parse_ehlo_reply(whole.front());
    }

    // xtext.
    std::string enc = xtext_encode(input);
    auto dec = xtext_decode(enc);
    check(dec.has_value() && *dec == input && is_xtext(enc));
    auto direct = xtext_decode(input);
    check(direct.has_value() == is_xtext(input));
    if (direct) {
        auto again = xtext_decode(xtext_encode(*direct));
        check(again.has_value() && *again == *direct);
    }
    return 0;
}
