// libFuzzer target for the sans-I/O POP3 session (built with -DYUBIN_FUZZ=ON,
// registered in pop3d/CMakeLists.txt). The input is a client's byte stream;
// a fake driver answers every request at once (logins succeed for the
// password "pw", one message vanishes as if expunged by IMAP). It is fed once
// whole and once cut at points derived from the input; both runs must give
// byte-identical output and the same final commit. Invariants: every reply
// ends in CRLF, only known messages are ever expunged, and nothing is
// expunged unless the client said QUIT in the TRANSACTION state.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/strings.h"
#include "common/proto/line_reader.h"
#include "pop3d/message_format.h"
#include "pop3d/session.h"

namespace {

using namespace yubin;
using namespace yubin::pop3d;

void check(bool ok) {
    if (!ok) {
        std::abort();
    }
}

const std::vector<std::string>& bodies() {
    static const std::vector<std::string> b = {"Subject: a\r\n\r\nbody\r\n",
                                               "Subject: b\r\n\r\n.dot\r\n..\r\n.\r\n",
                                               "Subject: c\nbare\n\nlf\n", "no header end", ""};
    return b;
}

struct Run {
    std::string out;
    std::vector<std::vector<uint32_t>> updates;
    bool quit_seen = false;
};

Run run(std::string_view input, const std::vector<size_t>& cuts, bool stls) {
    SessionOptions o;
    o.hostname = "fuzz.example.test";
    o.tls_active = !stls;
    o.stls_available = stls;
    o.max_errors = 20;
    o.expire = "NEVER";
    Session session(o);
    proto::Reader reader(proto::ReaderLimits{128, false});
    Run r;
    bool closed = false;
    auto pump = [&] {
        for (;;) {
            r.out += session.take_output();
            Request q = session.take_request();
            switch (q.kind) {
                case RequestKind::None:
                    break;
                case RequestKind::StartTls:
                    // Unlike the daemon we keep the buffered bytes, so that
                    // the whole and split runs stay comparable.
                    session.tls_started();
                    continue;
                case RequestKind::Login: {
                    LoginResult res;
                    res.status = q.password == "pw" ? LoginStatus::Ok : LoginStatus::BadCredentials;
                    if (q.user == "busy") {
                        res.status = LoginStatus::InUse;
                    }
                    res.maildrop.mailbox_id = 1;
                    res.maildrop.uidvalidity = 9;
                    for (uint32_t i = 0; i < bodies().size(); ++i) {
                        res.maildrop.messages.push_back({i + 1, encoded_size(bodies()[i])});
                    }
                    session.login_done(std::move(res));
                    continue;
                }
                case RequestKind::Retrieve:
                    check(q.uid >= 1 && q.uid <= bodies().size());
                    if (q.uid == 3) {
                        session.retrieve_done(fail(ErrorCode::NotFound, "expunged"));
                    } else {
                        session.retrieve_done(bodies()[q.uid - 1]);
                    }
                    continue;
                case RequestKind::Update:
                    check(r.quit_seen);
                    for (size_t i = 0; i < q.uids.size(); ++i) {
                        check(q.uids[i] >= 1 && q.uids[i] <= bodies().size());
                        check(i == 0 || q.uids[i] > q.uids[i - 1]);
                    }
                    r.updates.push_back(q.uids);
                    session.update_done({});
                    continue;
            }
            if (session.closing()) {
                closed = true;
                return;
            }
            proto::Event ev = reader.next();
            if (ev.kind == proto::EventKind::NeedMore) {
                return;
            }
            if (ev.kind == proto::EventKind::LineTooLong) {
                session.feed_line_too_long();
            } else if (ev.kind == proto::EventKind::Line) {
                if (session.authenticated() &&
                    iequals(ev.data.substr(0, ev.data.find(' ')), "QUIT")) {
                    r.quit_seen = true;
                }
                session.feed_line(ev.data);
            }
        }
    };
    session.start();
    pump();
    size_t pos = 0;
    for (size_t cut : cuts) {
        if (closed) {
            break;
        }
        reader.feed(input.substr(pos, cut - pos));
        pump();
        pos = cut;
    }
    if (!closed) {
        reader.feed(input.substr(pos));
        pump();
    }
    check(r.updates.size() <= 1);
    return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) {
        return 0;
    }
    bool stls = (data[0] & 1) != 0;
    std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
    Run whole = run(input, {}, stls);
    std::vector<size_t> cuts;
    size_t pos = 0;
    for (size_t i = 0; i < input.size() && pos < input.size(); ++i) {
        pos += 1 + static_cast<unsigned char>(input[i]) % 7;
        if (pos < input.size()) {
            cuts.push_back(pos);
        }
    }
    Run split = run(input, cuts, stls);
    check(whole.out == split.out);
    check(whole.updates == split.updates);
    check(whole.out.empty() || whole.out.substr(whole.out.size() - 2) == "\r\n");
    return 0;
}
