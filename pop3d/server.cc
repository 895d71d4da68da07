#include "pop3d/server.h"

#include <algorithm>

#include "common/auth/password.h"
#include "common/base/strings.h"
#include "common/log/id.h"
#include "common/log/log.h"
#include "common/proto/line_reader.h"
#include "pop3d/message_format.h"
#include "pop3d/thread_pool.h"

namespace yubin::pop3d {

namespace {

// Octet-count cache bound (entries of 24 bytes + map overhead: a few MiB).
constexpr size_t kOctetsCacheMax = 200000;

bool is_loopback(const io::SocketAddress& address) {
    std::string ip = address.ip();
    return ip.rfind("127.", 0) == 0 || ip == "::1" || ip.rfind("::ffff:127.", 0) == 0;
}

}  // namespace

// One client: io::Connection ↔ proto::Reader ↔ Session (see server.h).
class Pop3Connection {
public:
    Pop3Connection(Pop3Service& service, std::unique_ptr<io::Connection> conn, bool implicit_tls)
        : service_(service),
          conn_(std::move(conn)),
          id_(log::new_session_id()),
          implicit_tls_(implicit_tls),
          session_(make_options()) {}

    void begin() {
        log::info(id_, "connect",
                  {{"client", conn_->peer_address().to_string()}, {"tls", implicit_tls_}});
        conn_->on_data([this](std::string_view bytes) {
            reader_.feed(bytes);
            pump();
        });
        conn_->on_close([this](const std::optional<Error>& error) { finish(error); });
        conn_->on_idle_timeout([this] {
            log::info(id_, "idle_timeout", {{"user", session_.user()}});
            session_.idle_timeout();
            pump();
        });
        conn_->on_drained([this] {
            if (draining_) {
                draining_ = false;
                pump();
            }
        });
        apply_limits();
        if (implicit_tls_) {
            if (auto r = conn_->start_tls_server(service_.runtime().server_tls()); !r) {
                conn_->abort();
                return;
            }
        }
        session_.start();
        pump();
    }

    void apply_limits() {
        auto cfg = service_.runtime().config();
        conn_->set_idle_timeout(static_cast<uint64_t>(cfg->pop3d.idle_timeout.count()) * 1000);
        reader_.set_limits(
            proto::ReaderLimits{std::max<size_t>(cfg->pop3d.max_line_length, 64), false});
    }

    // Shutdown: close now unless a request is in flight (then after it).
    void close_when_idle() {
        session_.shutting_down();
        pump();
    }

    bool alive() const { return !finished_; }

private:
    SessionOptions make_options() const {
        auto cfg = service_.runtime().config();
        SessionOptions o;
        o.hostname = cfg->server.hostname;
        o.tls_active = implicit_tls_;
        o.stls_available = !implicit_tls_;
        o.plaintext_auth =
            cfg->pop3d.allow_plaintext_auth_from_loopback && is_loopback(conn_->peer_address());
        o.max_errors = cfg->pop3d.max_errors;
        o.expire = cfg->pop3d.expire;
        if (cfg->pop3d.login_delay.count() > 0) {
            o.login_delay = static_cast<uint32_t>(cfg->pop3d.login_delay.count());
        }
        return o;
    }

    // Moves output to the socket, carries out requests and feeds buffered
    // lines until the session waits, the reader needs more bytes, or too much
    // output is queued (back-pressure for pipelined RETRs).
    void pump() {
        if (finished_ || closed_) {
            return;
        }
        for (;;) {
            if (session_.has_output()) {
                conn_->write(session_.take_output());
            }
            Request request = session_.take_request();
            if (request.kind != RequestKind::None) {
                if (!carry_out(std::move(request))) {
                    break;  // async: the completion calls pump() again
                }
                continue;
            }
            if (session_.closing()) {
                closed_ = true;
                conn_->close();
                return;
            }
            if (session_.waiting()) {
                break;
            }
            if (service_.runtime().stopping()) {
                session_.shutting_down();
                continue;
            }
            if (conn_->write_queue_size() > service_.limits().max_write_queue) {
                draining_ = true;
                break;
            }
            proto::Event ev = reader_.next();
            if (ev.kind == proto::EventKind::NeedMore) {
                break;
            }
            if (ev.kind == proto::EventKind::LineTooLong) {
                session_.feed_line_too_long();
            } else if (ev.kind == proto::EventKind::Line) {
                session_.feed_line(ev.data);
            }
        }
        if (closed_) {
            return;
        }
        // Stop reading while we cannot consume: the reader's buffer must not
        // grow with what a client keeps sending (line_reader.h).
        if (session_.waiting() || draining_) {
            conn_->pause_reading();
        } else if (!conn_->reading()) {
            conn_->resume_reading();
        }
    }

    // Returns true when the request completed synchronously.
    bool carry_out(Request request) {
        switch (request.kind) {
            case RequestKind::StartTls: {
                // RFC 2595 §4 / RFC 3207 §4.2: plaintext pipelined behind STLS
                // must not be read as if it came through TLS.
                size_t dropped = reader_.discard_buffered();
                if (dropped > 0) {
                    log::warn(id_, "plaintext_after_stls_dropped", {{"bytes", dropped}});
                }
                if (auto r = conn_->start_tls_server(service_.runtime().server_tls()); !r) {
                    log::warn(id_, "stls_failed", {{"error", r.error().message}});
                    closed_ = true;
                    conn_->abort();
                    return false;
                }
                session_.tls_started();
                return true;
            }
            case RequestKind::Login:
                login(std::move(request));
                return false;
            case RequestKind::Retrieve: {
                auto message = service_.store().read_message(request.mailbox_id, request.uid);
                if (!message) {
                    log::warn(id_, "retrieve_failed",
                              {{"uid", request.uid}, {"error", message.error().message}});
                }
                session_.retrieve_done(std::move(message));
                return true;
            }
            case RequestKind::Update:
                update(std::move(request));
                return false;
            case RequestKind::None:
                return true;
        }
        return true;
    }

    void login(Request request) {
        std::string user = canonical_address(request.user);
        auto record = service_.store().get_user(user);
        bool known = record.has_value() && (record->flags & store::kUserDisabled) == 0;
        if (!record && record.error().code != ErrorCode::NotFound) {
            log::error(id_, "user_lookup_failed", {{"error", record.error().message}});
            session_.login_done(LoginResult{LoginStatus::TempFailure, {}});
            service_.runtime().loop().post(guard([this] { pump(); }));
            return;
        }
        auto verified = std::make_shared<bool>(false);
        std::string hash = known ? record->password_hash : service_.dummy_hash();
        auto password = std::make_shared<std::string>(std::move(request.password));
        auto started = run_on_pool(
            service_.runtime().loop(),
            [verified, password, hash = std::move(hash)] {
                *verified = auth::verify_password(*password, hash);
            },
            [this, alive = std::weak_ptr<char>(alive_), verified, known, user](bool cancelled) {
                if (alive.expired()) {
                    return;
                }
                login_verified(user, known && *verified && !cancelled);
            });
        if (!started) {
            log::error(id_, "pool_failed", {{"error", started.error().message}});
            session_.login_done(LoginResult{LoginStatus::TempFailure, {}});
            service_.runtime().loop().post(guard([this] { pump(); }));
        }
    }

    void login_verified(const std::string& user, bool ok) {
        if (!ok) {
            // A delay growing per failure on this connection slows password
            // guessing down; the reply waits, the loop does not.
            uint32_t failures = session_.failed_logins();
            uint64_t base = static_cast<uint64_t>(
                                service_.runtime().config()->pop3d.auth_failure_delay.count()) *
                            1000;
            uint64_t cap = base * service_.limits().auth_failure_delay_max_factor;
            uint64_t delay = base;
            for (uint32_t i = 0; i < failures && delay < cap; ++i) {
                delay *= 2;
            }
            delay = std::min(delay, cap);
            log::info(id_, "login_failed", {{"user", user}, {"delay_ms", delay}});
            delay_timer_ = std::make_unique<io::Timer>(service_.runtime().loop(), [this] {
                service_.runtime().loop().post(guard([this] {
                    delay_timer_.reset();
                    session_.login_done(LoginResult{LoginStatus::BadCredentials, {}});
                    pump();
                }));
            });
            delay_timer_->start(delay);
            return;
        }
        if (service_.login_too_soon(user)) {
            log::info(id_, "login_delay", {{"user", user}});
            session_.login_done(LoginResult{LoginStatus::LoginDelay, {}});
            pump();
            return;
        }
        auto lock = service_.locks().acquire(user);
        if (!lock) {
            bool in_use = lock.error().code == ErrorCode::Exists;
            log::info(id_, in_use ? "maildrop_in_use" : "maildrop_lock_failed",
                      {{"user", user}, {"error", lock.error().message}});
            session_.login_done(
                LoginResult{in_use ? LoginStatus::InUse : LoginStatus::TempFailure, {}});
            pump();
            return;
        }
        auto drop = service_.snapshot(user);
        if (!drop) {
            log::error(id_, "maildrop_list_failed",
                       {{"user", user}, {"error", drop.error().message}});
            session_.login_done(LoginResult{drop.error().code == ErrorCode::NotFound
                                                ? LoginStatus::PermFailure
                                                : LoginStatus::TempFailure,
                                            {}});
            pump();
            return;
        }
        lock_ = std::move(*lock);
        log::info(id_, "login",
                  {{"user", user},
                   {"messages", static_cast<uint64_t>(drop->messages.size())},
                   {"tls", conn_->tls_started()}});
        session_.login_done(LoginResult{LoginStatus::Ok, std::move(*drop)});
        pump();
    }

    void update(Request request) {
        size_t count = request.uids.size();
        auto poster = service_.runtime().loop().poster();
        // The lock travels with the callback: if the client vanishes now, the
        // maildrop stays locked until the expunge has committed.
        service_.store().expunge_async(
            request.mailbox_id, std::move(request.uids),
            [this, poster, alive = std::weak_ptr<char>(alive_), lock = lock_, id = id_,
             count](Result<std::vector<uint32_t>> result) {
                poster.post([this, alive, lock, id, count, result = std::move(result)]() mutable {
                    if (!result) {
                        log::error(id, "update_failed", {{"error", result.error().message}});
                    } else {
                        log::info(id, "update",
                                  {{"marked", static_cast<uint64_t>(count)},
                                   {"expunged", static_cast<uint64_t>(result->size())}});
                    }
                    if (alive.expired()) {
                        return;
                    }
                    session_.update_done(result ? Result<void>{}
                                                : Result<void>(fail(result.error())));
                    pump();
                });
            });
    }

    template <typename Fn>
    std::function<void()> guard(Fn fn) {
        return [alive = std::weak_ptr<char>(alive_), fn = std::move(fn)] {
            if (!alive.expired()) {
                fn();
            }
        };
    }

    void finish(const std::optional<Error>& error) {
        if (finished_) {
            return;
        }
        finished_ = true;
        log::info(id_, "disconnect",
                  {{"user", session_.user()}, {"error", error ? error->message : std::string()}});
        lock_.reset();
        service_.remove(this);
    }

    Pop3Service& service_;
    std::unique_ptr<io::Connection> conn_;
    std::string id_;
    bool implicit_tls_;
    Session session_;
    proto::Reader reader_;
    std::shared_ptr<MaildropLock> lock_;
    std::unique_ptr<io::Timer> delay_timer_;
    bool draining_ = false;
    bool closed_ = false;
    bool finished_ = false;
    std::shared_ptr<char> alive_ = std::make_shared<char>();
};

Pop3Service::Pop3Service() = default;
Pop3Service::~Pop3Service() = default;

void Pop3Service::teardown(daemon::Runtime&) {
    // Connections first (they use the store and the locks), then the store,
    // whose destructor waits for its writer thread; callbacks it posts to the
    // loop after this find their connection gone (weak_ptr guards).
    connections_.clear();
    listeners_.clear();
    reader_check_timer_.reset();
    store_.reset();
    done_ = nullptr;
}

Result<void> Pop3Service::add_listener(daemon::Runtime& runtime, const std::string& address,
                                       bool implicit_tls) {
    io::ListenerOptions options;
    options.address = address;
    options.reuse_port = true;  // several pop3d processes may share the port
    options.max_connections = runtime.config()->pop3d.max_connections;
    options.max_per_ip = runtime.config()->pop3d.max_connections_per_ip;
    auto l = io::TcpListener::bind(runtime.loop(), options);
    if (!l) {
        return fail(l.error());
    }
    listeners_.push_back({std::move(*l), implicit_tls});
    return {};
}

Result<void> Pop3Service::bind(daemon::Runtime& runtime) {
    runtime_ = &runtime;
    auto cfg = runtime.config();
    for (const auto& a : cfg->pop3d.pop3) {
        if (auto r = add_listener(runtime, a.to_string(), false); !r) {
            return r;
        }
    }
    for (const auto& a : cfg->pop3d.pop3s) {
        if (auto r = add_listener(runtime, a.to_string(), true); !r) {
            return r;
        }
    }
    return {};
}

Result<void> Pop3Service::start(daemon::Runtime& runtime) {
    auto r = start_serving(runtime);
    if (!r) {
        // The daemon exits; destroy the listeners while the loop can still
        // free their handles (the service outlives the loop).
        listeners_.clear();
        reader_check_timer_.reset();
    }
    return r;
}

Result<void> Pop3Service::start_serving(daemon::Runtime& runtime) {
    auto cfg = runtime.config();
    store::StoreOptions options;
    options.path = cfg->store.path;
    options.map_size_bytes = cfg->store.map_size_mb << 20;
    options.max_readers = cfg->store.max_readers;
    options.large_body_bytes = cfg->store.large_body_kb << 10;
    auto opened = store::Store::open(options);
    if (!opened) {
        return fail(opened.error().code,
                    "cannot open the store at " + options.path + ": " + opened.error().message);
    }
    store_ = std::move(*opened);
    locks_ = std::make_unique<MaildropLocks>(cfg->server.state_dir + "/pop3-locks");
    auto dummy = auth::hash_password("yubin-pop3d: no such user");
    if (!dummy) {
        return fail(dummy.error());
    }
    dummy_hash_ = std::move(*dummy);

    uint64_t check_ms = static_cast<uint64_t>(cfg->store.reader_check_interval.count()) * 1000;
    if (check_ms > 0) {
        reader_check_timer_ = std::make_unique<io::Timer>(runtime.loop(), [this] {
            auto cleared = store_->check_stale_readers();
            if (!cleared) {
                log::warn({}, "reader_check_failed", {{"error", cleared.error().message}});
            } else if (*cleared > 0) {
                log::info({}, "stale_readers_cleared", {{"count", *cleared}});
            }
        });
        reader_check_timer_->start(check_ms, check_ms);
    }

    for (auto& l : listeners_) {
        bool implicit = l.implicit_tls;
        auto r = l.listener->start(
            [this, implicit](std::unique_ptr<io::Connection> c) { accept(std::move(c), implicit); },
            [](std::unique_ptr<io::Connection> c) {
                // Over a connection limit: RFC 2449 §8.1.2 [SYS/TEMP], then close.
                c->write("-ERR [SYS/TEMP] too many connections, try again later\r\n");
                io::Connection::close_detached(std::move(c));
            });
        if (!r) {
            return r;
        }
        log::info({}, "listening",
                  {{"address", l.listener->local_address().to_string()}, {"tls", implicit}});
    }
    return {};
}

void Pop3Service::reload(daemon::Runtime& runtime) {
    auto cfg = runtime.config();
    for (auto& l : listeners_) {
        l.listener->set_limits(cfg->pop3d.max_connections, cfg->pop3d.max_connections_per_ip);
    }
    for (auto& c : connections_) {
        if (c->alive()) {
            c->apply_limits();
        }
    }
}

void Pop3Service::shutdown(daemon::Runtime&, std::function<void()> done) {
    for (auto& l : listeners_) {
        l.listener->stop_accepting();
    }
    // Destroyed while the loop still runs, so libuv can close its handle
    // (the service outlives the loop).
    reader_check_timer_.reset();
    done_ = std::move(done);
    std::vector<Pop3Connection*> current;
    for (auto& c : connections_) {
        current.push_back(c.get());
    }
    for (auto* c : current) {
        if (c->alive()) {
            c->close_when_idle();
        }
    }
    maybe_done();
}

void Pop3Service::accept(std::unique_ptr<io::Connection> conn, bool implicit_tls) {
    connections_.push_back(std::make_unique<Pop3Connection>(*this, std::move(conn), implicit_tls));
    connections_.back()->begin();
}

void Pop3Service::remove(Pop3Connection* connection) {
    runtime_->loop().post([this, connection] {
        connections_.remove_if([connection](const auto& p) { return p.get() == connection; });
        maybe_done();
    });
}

void Pop3Service::maybe_done() {
    if (done_ && connections_.empty()) {
        auto done = std::move(done_);
        done_ = nullptr;
        done();
    }
}

bool Pop3Service::login_too_soon(const std::string& user) {
    uint64_t delay_ms = static_cast<uint64_t>(runtime_->config()->pop3d.login_delay.count()) * 1000;
    uint64_t now = runtime_->loop().now_ms();
    if (delay_ms == 0) {
        last_login_ms_.clear();
        return false;
    }
    auto it = last_login_ms_.find(user);
    if (it != last_login_ms_.end() && now - it->second < delay_ms) {
        return true;
    }
    // Forget entries that no longer matter, so the map stays small.
    if (last_login_ms_.size() > 100000) {
        std::erase_if(last_login_ms_, [&](const auto& e) { return now - e.second >= delay_ms; });
    }
    last_login_ms_[user] = now;
    return false;
}

Result<Maildrop> Pop3Service::snapshot(const std::string& user) {
    auto inbox = store_->get_mailbox(user, "INBOX");
    if (!inbox) {
        return fail(inbox.error());
    }
    auto records = store_->list_messages(inbox->id);
    if (!records) {
        return fail(records.error());
    }
    Maildrop drop;
    drop.mailbox_id = inbox->id;
    drop.uidvalidity = inbox->uidvalidity;
    drop.messages.reserve(records->size());
    if (octets_cache_.size() > kOctetsCacheMax) {
        octets_cache_.clear();
    }
    for (const auto& m : *records) {
        auto key = std::make_pair(inbox->id, m.uid);
        auto it = octets_cache_.find(key);
        uint64_t octets = 0;
        if (it != octets_cache_.end()) {
            octets = it->second;
        } else {
            // The exact wire size needs the bytes (dot-stuffing, line ends):
            // read once per message and remembered.
            auto body = store_->read_message(inbox->id, m.uid);
            if (!body) {
                if (body.error().code == ErrorCode::NotFound) {
                    continue;  // expunged between the listing and now
                }
                return fail(body.error());
            }
            octets = encoded_size(*body);
            octets_cache_.emplace(key, octets);
        }
        drop.messages.push_back(MaildropMessage{m.uid, octets});
    }
    return drop;
}

}  // namespace yubin::pop3d
