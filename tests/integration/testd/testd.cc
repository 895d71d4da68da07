// yubin-testd: a tiny line-protocol daemon built on the daemon skeleton
// (common/daemon) and the runtime core (common/io, common/proto), so the
// integration tests can prove, with real processes and real TLS clients, what
// every daemon inherits: bind-then-drop privileges, graceful SIGTERM, SIGHUP
// reload of certificates and limits, idle timeouts and connection limits.
// It borrows the [smtpd] listener keys: `mx` is plain text with STARTTLS,
// `submissions` is implicit TLS. Not installed; tests only.
//
// Protocol: greeting "+OK testd ready"; PING → "+OK PONG"; STARTTLS → "+OK go"
// then TLS; TLS → "+OK tls=<version> cipher=<name>" or "-ERR plain"; SLOW n →
// "+OK slow done" after n ms (a transaction in flight); QUIT → "+OK bye".
#include <list>
#include <memory>

#include "common/base/strings.h"
#include "common/daemon/daemon.h"
#include "common/io/tcp_listener.h"
#include "common/log/id.h"
#include "common/log/log.h"
#include "common/proto/line_reader.h"

namespace {

using namespace yubin;

class TestService;

class Session {
public:
    Session(TestService& service, std::unique_ptr<io::Connection> conn, bool implicit_tls);
    void begin();
    bool busy() const { return slow_timer_ != nullptr; }
    void close_when_idle();

private:
    void on_bytes(std::string_view bytes);
    void drain();
    void handle_line(std::string_view line);
    void reply(std::string_view text) { conn_->write(std::string(text) + "\r\n"); }
    void finish();

    TestService& service_;
    std::unique_ptr<io::Connection> conn_;
    proto::Reader reader_{proto::ReaderLimits{256, false}};
    std::unique_ptr<io::Timer> slow_timer_;
    std::string id_;
    bool implicit_tls_;
    bool closing_ = false;
};

class TestService final : public daemon::Service {
public:
    Result<void> bind(daemon::Runtime& rt) override {
        rt_ = &rt;
        auto cfg = rt.config();
        for (const auto& addr : cfg->smtpd.mx) {
            if (auto r = add_listener(rt, addr.to_string(), false); !r) {
                return r;
            }
        }
        for (const auto& addr : cfg->smtpd.submissions) {
            if (auto r = add_listener(rt, addr.to_string(), true); !r) {
                return r;
            }
        }
        return {};
    }

    Result<void> start(daemon::Runtime&) override {
        for (auto& l : listeners_) {
            bool implicit = l.implicit_tls;
            auto r = l.listener->start(
                [this, implicit](std::unique_ptr<io::Connection> c) { accept(std::move(c), implicit); },
                [](std::unique_ptr<io::Connection> c) {
                    c->write("-ERR busy\r\n");
                    io::Connection::close_detached(std::move(c));
                });
            if (!r) {
                return r;
            }
            log::info({}, "listening", {{"address", l.listener->local_address().to_string()},
                                        {"tls", implicit}});
        }
        return {};
    }

    void reload(daemon::Runtime& rt) override {
        auto cfg = rt.config();
        for (auto& l : listeners_) {
            l.listener->set_limits(cfg->smtpd.max_connections, cfg->smtpd.max_connections_per_ip);
        }
    }

    void shutdown(daemon::Runtime&, std::function<void()> done) override {
        for (auto& l : listeners_) {
            l.listener->stop_accepting();
        }
        done_ = std::move(done);
        // Copy: close_when_idle may remove sessions from the list.
        std::vector<Session*> current;
        for (auto& s : sessions_) {
            current.push_back(s.get());
        }
        for (auto* s : current) {
            s->close_when_idle();
        }
        maybe_done();
    }

    void teardown(daemon::Runtime&) override {
        sessions_.clear();
        listeners_.clear();
    }

    daemon::Runtime& runtime() { return *rt_; }

    void remove(Session* session) {
        // Deferred: the session may be deep in its own callback.
        rt_->loop().post([this, session] {
            sessions_.remove_if([session](const auto& p) { return p.get() == session; });
            maybe_done();
        });
    }

private:
    struct Listening {
        std::unique_ptr<io::TcpListener> listener;
        bool implicit_tls;
    };

    Result<void> add_listener(daemon::Runtime& rt, const std::string& address, bool implicit_tls) {
        io::ListenerOptions options;
        options.address = address;
        options.max_connections = rt.config()->smtpd.max_connections;
        options.max_per_ip = rt.config()->smtpd.max_connections_per_ip;
        auto l = io::TcpListener::bind(rt.loop(), options);
        if (!l) {
            return fail(l.error());
        }
        listeners_.push_back({std::move(*l), implicit_tls});
        return {};
    }

    void accept(std::unique_ptr<io::Connection> conn, bool implicit_tls) {
        sessions_.push_back(std::make_unique<Session>(*this, std::move(conn), implicit_tls));
        sessions_.back()->begin();
    }

    void maybe_done() {
        if (done_ && sessions_.empty()) {
            auto done = std::move(done_);
            done_ = nullptr;
            done();
        }
    }

    daemon::Runtime* rt_ = nullptr;
    std::vector<Listening> listeners_;
    std::list<std::unique_ptr<Session>> sessions_;
    std::function<void()> done_;
};

Session::Session(TestService& service, std::unique_ptr<io::Connection> conn, bool implicit_tls)
    : service_(service), conn_(std::move(conn)), id_(log::new_session_id()), implicit_tls_(implicit_tls) {}

void Session::begin() {
    log::info(id_, "connect", {{"client", conn_->peer_address().to_string()}});
    conn_->on_data([this](std::string_view b) { on_bytes(b); });
    conn_->on_close([this](const std::optional<Error>&) { finish(); });
    conn_->on_idle_timeout([this] {
        log::info(id_, "idle_timeout", {});
        reply("-ERR timeout");
        closing_ = true;
        conn_->close();
    });
    auto cfg = service_.runtime().config();
    conn_->set_idle_timeout(static_cast<uint64_t>(cfg->smtpd.idle_timeout.count()) * 1000);
    if (implicit_tls_) {
        if (auto r = conn_->start_tls_server(service_.runtime().server_tls()); !r) {
            conn_->abort();
            return;
        }
    }
    reply("+OK testd ready");
    conn_->start();
}

void Session::on_bytes(std::string_view bytes) {
    reader_.feed(bytes);
    drain();
}

void Session::drain() {
    // A SLOW command in flight: later pipelined lines wait their turn.
    while (!busy() && !closing_) {
        proto::Event ev = reader_.next();
        if (ev.kind == proto::EventKind::NeedMore) {
            return;
        }
        if (ev.kind == proto::EventKind::LineTooLong) {
            reply("-ERR line too long");
            continue;
        }
        if (ev.kind == proto::EventKind::Line) {
            handle_line(ev.data);
        }
    }
}

void Session::handle_line(std::string_view line) {
    if (iequals(line, "PING")) {
        reply("+OK PONG");
    } else if (iequals(line, "STARTTLS")) {
        if (conn_->tls_started()) {
            reply("-ERR already");
            return;
        }
        reply("+OK go");
        size_t dropped = reader_.discard_buffered();  // RFC 3207 §4.2
        if (dropped > 0) {
            log::warn(id_, "plaintext_after_starttls_dropped", {{"bytes", dropped}});
        }
        if (auto r = conn_->start_tls_server(service_.runtime().server_tls()); !r) {
            conn_->abort();
        }
    } else if (iequals(line, "TLS")) {
        if (const auto* info = conn_->tls_info()) {
            reply("+OK tls=" + info->version + " cipher=" + info->cipher);
        } else {
            reply("-ERR plain");
        }
    } else if (istarts_with(line, "SLOW ")) {
        uint64_t ms = parse_u64(line.substr(5)).value_or(0);
        slow_timer_ = std::make_unique<io::Timer>(service_.runtime().loop(), [this] {
            reply("+OK slow done");
            // The timer cannot be destroyed inside its own callback's frame
            // safely for our state; finish the transaction on the next turn.
            service_.runtime().loop().post([this] {
                slow_timer_.reset();
                drain();
                if (service_.runtime().stopping()) {
                    close_when_idle();
                }
            });
        });
        slow_timer_->start(ms);
    } else if (iequals(line, "QUIT")) {
        reply("+OK bye");
        closing_ = true;
        conn_->close();
    } else {
        reply("-ERR unknown command");
    }
}

void Session::close_when_idle() {
    if (busy() || closing_) {
        return;
    }
    reply("-ERR shutting down");
    closing_ = true;
    conn_->close();
}

void Session::finish() {
    log::info(id_, "disconnect", {});
    service_.remove(this);
}

}  // namespace

int main(int argc, char** argv) {
    TestService service;
    return yubin::daemon::run_daemon(argc, argv, "yubin-testd", service);
}
