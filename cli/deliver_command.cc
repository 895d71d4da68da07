#include "cli/deliver_command.h"

#include <unistd.h>

#include <ctime>
#include <iostream>

#include "common/base/strings.h"
#include "common/mime/mime_parser.h"
#include "common/mime/serialize.h"

namespace yubin::cli {
namespace {

constexpr int kExitDataErr = 65;
constexpr int kExitNoUser = 67;
constexpr int kExitTempFail = 75;

struct DeliverArgs {
    std::vector<std::string> recipients;
    std::string sender;
    std::string mailbox;
    uint64_t max_size = 0;
};

Result<std::string> read_stdin(uint64_t max_size) {
    std::string data;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return fail(ErrorCode::Io, "reading the message from stdin failed");
        }
        if (n == 0) {
            break;
        }
        data.append(buf, static_cast<size_t>(n));
        if (max_size > 0 && data.size() > max_size) {
            return fail(ErrorCode::Limit, "message larger than the limit");
        }
    }
    return data;
}

// Drops a leading mbox "From " separator line, which is not part of the message.
std::string_view strip_mbox_from(std::string_view text) {
    if (text.rfind("From ", 0) == 0) {
        size_t eol = text.find('\n');
        return eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    }
    return text;
}

int deliver(Context& context, const DeliverArgs& args) {
    auto cfg = context.config();
    if (!cfg) {
        report_error(cfg.error());
        return kExitTempFail;
    }
    uint64_t limit = args.max_size > 0 ? args.max_size : (*cfg)->smtpd.max_message_size;
    auto raw = read_stdin(limit);
    if (!raw) {
        report_error(raw.error());
        return raw.error().code == ErrorCode::Limit ? kExitDataErr : kExitTempFail;
    }
    auto store = context.store();
    if (!store) {
        report_error(store.error());
        return kExitTempFail;
    }
    store::Delivery delivery;
    delivery.body = to_crlf(strip_mbox_from(*raw));
    mime::MimeParser parser;
    parser.feed(delivery.body);
    delivery.structure = mime::serialize(parser.finish());
    delivery.internaldate = static_cast<int64_t>(::time(nullptr));

    std::string return_path = "Return-Path: <" + args.sender + ">\r\n";
    for (const auto& rcpt : args.recipients) {
        auto resolved = (*store)->resolve_recipient(canonical_address(rcpt));
        if (!resolved) {
            report_error({resolved.error().code, rcpt + ": " + resolved.error().message});
            return resolved.error().code == ErrorCode::Temp || resolved.error().code == ErrorCode::Io
                       ? kExitTempFail
                       : kExitNoUser;
        }
        for (const auto& target : *resolved) {
            if (target.external) {
                std::cerr << "yubin: " << rcpt << " forwards to external " << target.address
                          << "; the local delivery agent does not relay (skipped)\n";
                continue;
            }
            store::DeliveryTarget t;
            t.user = target.address;
            t.mailbox = args.mailbox.empty() ? target.mailbox : args.mailbox;
            t.header_prefix = return_path + "Delivered-To: " + canonical_address(rcpt) + "\r\n";
            delivery.targets.push_back(std::move(t));
        }
    }
    if (delivery.targets.empty()) {
        report_error({ErrorCode::NotFound, "no local recipient"});
        return kExitNoUser;
    }
    std::vector<std::string> users;
    for (const auto& t : delivery.targets) {
        users.push_back(t.user + "/" + t.mailbox);
    }
    auto result = (*store)->deliver(std::move(delivery));
    if (!result) {
        report_error(result.error());
        return kExitTempFail;
    }
    int status = 0;
    for (size_t i = 0; i < result->targets.size(); ++i) {
        const auto& r = result->targets[i];
        if (r.error) {
            std::cerr << "yubin: " << users[i] << ": " << r.error->message << "\n";
            status = r.error->code == ErrorCode::Limit ? kExitTempFail : kExitNoUser;
        } else if (!context.json) {
            std::cout << "delivered to " << users[i] << " uid " << r.uid << "\n";
        }
    }
    return status;
}

}  // namespace

std::string to_crlf(std::string_view text) {
    std::string out;
    out.reserve(text.size() + text.size() / 32);
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '\n' && (i == 0 || text[i - 1] != '\r')) {
            out += '\r';
        }
        out += c;
    }
    return out;
}

void add_deliver_command(CLI::App& app, Context& context, Action& action) {
    static DeliverArgs args;
    auto* cmd = app.add_subcommand(
        "deliver", "Local delivery agent: store the message on stdin for local recipients");
    cmd->add_option("recipients", args.recipients, "Local addresses (aliases and +tags resolve)")
        ->required();
    cmd->add_option("-f,--from", args.sender, "Envelope sender, for Return-Path (default: <>)");
    cmd->add_option("-m,--mailbox", args.mailbox, "Store into this mailbox instead of INBOX");
    cmd->add_option("--max-size", args.max_size,
                    "Largest message in bytes (default: [smtpd] max_message_size)");
    cmd->callback([&] { action = [&] { return deliver(context, args); }; });
}

}  // namespace yubin::cli
