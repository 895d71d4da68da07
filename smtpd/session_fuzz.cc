// libFuzzer target for the sans-I/O SMTP server session: arbitrary client
// bytes go through a real proto::Reader into the session, with a driver that
// answers every request from the input's own bytes (so the fuzzer explores
// local/remote/unknown recipients, good and bad credentials, failed
// deliveries). Checks, beyond not crashing: the same input fed whole and at
// split points derived from the data gives identical replies and requests;
// every reply line is a well-formed SMTP reply (3 digits, then ' ' or '-').
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "common/proto/line_reader.h"
#include "smtpd/smtp_session.h"

namespace {

using namespace yubin;

struct Transcript {
    std::string output;
    std::string requests;  // request kinds in order; MessageData pieces are not listed
    std::string bodies;    // the MessageData bytes: piece boundaries depend on the feeding
};

void answer(smtpd::Session& s, const smtpd::Request& r, uint8_t choice, Transcript& t) {
    if (r.kind == smtpd::RequestKind::MessageData) {
        t.bodies += r.data;
        return;
    }
    t.requests += std::to_string(static_cast<int>(r.kind)) + ";";
    switch (r.kind) {
        case smtpd::RequestKind::CheckSender:
            s.sender_done(
                {choice % 4 == 0 ? smtpd::SenderStatus::Rejected : smtpd::SenderStatus::Ok,
                 std::nullopt});
            break;
        case smtpd::RequestKind::CheckRecipient: {
            smtpd::RecipientResult res;
            static constexpr smtpd::RecipientStatus kinds[] = {
                smtpd::RecipientStatus::Local, smtpd::RecipientStatus::Remote,
                smtpd::RecipientStatus::Unknown, smtpd::RecipientStatus::TempFailure};
            res.status = kinds[choice % 4];
            if (res.status == smtpd::RecipientStatus::Local) {
                res.local_users = {"user@example.test"};
            }
            s.recipient_done(res);
            break;
        }
        case smtpd::RequestKind::VerifyCredentials:
            s.credentials_done(choice % 3 == 0
                                   ? smtpd::AuthStatus::Ok
                                   : (choice % 3 == 1 ? smtpd::AuthStatus::Invalid
                                                      : smtpd::AuthStatus::TempFailure));
            break;
        case smtpd::RequestKind::StartTls:
            s.tls_started({"TLSv1.3", "TLS_AES_128_GCM_SHA256"});
            break;
        case smtpd::RequestKind::EndMessage:
            s.message_done({choice % 5 == 0 ? smtpd::DeliveryStatus::TempFailure
                                            : smtpd::DeliveryStatus::Delivered,
                            "Q1", std::nullopt});
            break;
        default:
            break;  // BeginMessage, MessageData, AbortMessage need no answer
    }
}

Transcript run(std::string_view input, uint8_t flags, size_t step) {
    smtpd::SessionOptions options;
    options.hostname = "mx.example.test";
    options.listener = (flags & 1) ? smtpd::ListenerKind::Submission : smtpd::ListenerKind::Mx;
    options.tls_available = (flags & 2) != 0;
    options.offer_auth = (flags & 4) != 0;
    options.plaintext_auth = (flags & 8) != 0;
    options.client_trusted = (flags & 16) != 0;
    options.max_message_size = 4096;
    options.max_recipients = 5;
    smtpd::Session session(options);
    proto::Reader reader(proto::ReaderLimits{512, false});
    Transcript t;
    session.start();
    size_t pos = 0;
    size_t answers = 0;
    while (!session.closing()) {
        // Drain everything the reader can give, answering requests as they come.
        for (;;) {
            while (auto request = session.take_request()) {
                // Only requests that wait take a choice: how many MessageData
                // pieces there are depends on the feeding.
                bool waits = request->kind != smtpd::RequestKind::MessageData &&
                             request->kind != smtpd::RequestKind::BeginMessage &&
                             request->kind != smtpd::RequestKind::AbortMessage;
                uint8_t choice = 0;
                if (waits && !input.empty()) {
                    choice = static_cast<uint8_t>(input[answers++ % input.size()]);
                }
                answer(session, *request, choice, t);
            }
            if (session.waiting() || session.closing()) {
                break;
            }
            proto::Event ev = reader.next();
            if (ev.kind == proto::EventKind::NeedMore) {
                break;
            }
            session.on_event(ev, reader);
        }
        t.output += session.take_output();
        if (pos >= input.size() || session.waiting()) {
            break;
        }
        size_t n = std::min(step, input.size() - pos);
        reader.feed(input.substr(pos, n));
        pos += n;
    }
    t.output += session.take_output();
    return t;
}

void check_replies(const std::string& out) {
    size_t start = 0;
    while (start < out.size()) {
        size_t end = out.find("\r\n", start);
        if (end == std::string::npos) {
            __builtin_trap();  // a reply line without CRLF
        }
        std::string_view line(out.data() + start, end - start);
        if (line.size() < 4 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
            line[2] < '0' || line[2] > '9' || (line[3] != ' ' && line[3] != '-') ||
            line.size() > 510) {
            __builtin_trap();
        }
        start = end + 2;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) {
        return 0;
    }
    uint8_t flags = data[0];
    size_t step = 1 + data[1] % 64;
    std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);
    Transcript whole = run(input, flags, input.size() + 1);
    Transcript split = run(input, flags, step);
    if (whole.output != split.output || whole.requests != split.requests ||
        whole.bodies != split.bodies) {
        // Reproduce with: smtpd_session_fuzz CRASH_FILE (prints both transcripts).
        std::fprintf(
            stderr,
            "whole output:\n%s\nwhole requests: %s\nsplit output:\n%s\nsplit requests: %s\n",
            whole.output.c_str(), whole.requests.c_str(), split.output.c_str(),
            split.requests.c_str());
        __builtin_trap();
    }
    check_replies(whole.output);
    return 0;
}
