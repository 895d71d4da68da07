#include "common/io/connection.h"

#include <netdb.h>

#include <string>
#include <utility>

namespace yubin::io {

namespace {

// Used when close() is called with no idle timeout set: how long a peer that
// does not take our last bytes may keep the socket.
constexpr uint64_t kDefaultCloseTimeoutMs = 30'000;
constexpr size_t kReadBufferSize = 64 * 1024;

}  // namespace

struct Connection::WriteReq {
    uv_write_t req{};
    std::string data;
};

Connection::Connection(Loop& loop, uv_tcp_t* tcp) : loop_(loop) {
    tcp->data = this;
    tcp_.reset(tcp);
    auto* t = new uv_timer_t();
    uv_timer_init(loop.raw(), t);
    t->data = this;
    idle_timer_.reset(t);
    sockaddr_storage ss{};
    int len = sizeof ss;
    if (uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
        peer_ = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
    }
    len = sizeof ss;
    if (uv_tcp_getsockname(tcp, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
        local_ = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
    }
    // Replies are small and latency-bound (pipelined SMTP, IMAP tagged
    // responses): do not let Nagle hold them back.
    uv_tcp_nodelay(tcp, 1);
}

Connection::~Connection() = default;  // the handle closers close the socket

std::unique_ptr<Connection> Connection::adopt(Loop& loop, uv_tcp_t* tcp,
                                              std::unique_ptr<ConnectionSlot> slot) {
    std::unique_ptr<Connection> c(new Connection(loop, tcp));
    c->slot_ = std::move(slot);
    return c;
}

void Connection::close_detached(std::unique_ptr<Connection> conn) {
    if (!conn) {
        return;
    }
    Connection* c = conn.release();
    c->on_data_ = nullptr;
    c->on_close_ = nullptr;
    c->on_idle_ = nullptr;
    c->on_tls_done_ = nullptr;
    c->on_drained_ = nullptr;
    c->self_owned_ = true;
    if (c->state_ == State::Closed && !c->tcp_) {
        delete c;  // already fully closed
        return;
    }
    c->close();  // no-op when already closing; closed() deletes it
}

// ---- reading ----

void Connection::on_alloc(uv_handle_t*, size_t, uv_buf_t* buf) noexcept {
    // One loop thread, and each read is consumed before the next alloc, so a
    // single buffer per thread serves every connection.
    thread_local char storage[kReadBufferSize];
    *buf = uv_buf_init(storage, sizeof storage);
}

void Connection::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept {
    auto* self = static_cast<Connection*>(s->data);
    if (self == nullptr) {
        return;
    }
    guarded("Connection::read", [&] {
        if (nread > 0) {
            self->handle_bytes(std::string_view(buf->base, static_cast<size_t>(nread)));
        } else if (nread == UV_EOF) {
            self->handle_eof();
        } else if (nread < 0) {
            self->fail(uv_error("read", static_cast<int>(nread)));
        }
    });
}

void Connection::handle_bytes(std::string_view bytes) {
    if (state_ != State::Open) {
        return;
    }
    touch();
    if (tls_) {
        tls_->feed_ciphertext(bytes);
        pump_tls();
        return;
    }
    if (on_data_) {
        on_data_(bytes);  // may destroy us: nothing after this
    }
}

void Connection::handle_eof() {
    if (state_ != State::Open) {
        return;
    }
    close();
}

void Connection::pause_reading() {
    want_read_ = false;
    if (state_ == State::Open) {
        uv_read_stop(stream());
    }
}

void Connection::resume_reading() {
    want_read_ = true;
    if (state_ != State::Open) {
        return;
    }
    int rc = uv_read_start(stream(), &Connection::on_alloc, &Connection::on_read);
    if (rc != 0 && rc != UV_EALREADY) {
        fail(uv_error("read start", rc));
        return;
    }
    touch();
}

// ---- TLS ----

Result<void> Connection::start_tls_server(std::shared_ptr<const TlsContext> ctx) {
    if (tls_) {
        return yubin::fail(ErrorCode::Invalid, "TLS already started");
    }
    if (state_ != State::Open) {
        return yubin::fail(ErrorCode::Io, "connection is closing");
    }
    auto engine = TlsEngine::server(std::move(ctx));
    if (!engine) {
        return yubin::fail(engine.error());
    }
    tls_ = std::move(*engine);
    return {};
}

Result<void> Connection::start_tls_client(std::shared_ptr<const TlsContext> ctx,
                                          std::string_view server_name) {
    if (tls_) {
        return yubin::fail(ErrorCode::Invalid, "TLS already started");
    }
    if (state_ != State::Open) {
        return yubin::fail(ErrorCode::Io, "connection is closing");
    }
    auto engine = TlsEngine::client(std::move(ctx), server_name);
    if (!engine) {
        return yubin::fail(engine.error());
    }
    tls_ = std::move(*engine);
    // Sends the ClientHello; results arrive through on_read. Deferred to the
    // loop so that on_tls_done never runs inside this call.
    std::weak_ptr<char> weak = alive_;
    loop_.post([this, weak] {
        if (!weak.expired() && state_ == State::Open) {
            pump_tls();
        }
    });
    return {};
}

bool Connection::pump_tls() {
    std::weak_ptr<char> weak = alive_;
    auto r = tls_->process();
    if (tls_->has_ciphertext()) {
        raw_write(tls_->take_ciphertext());
    }
    if (!r) {
        if (!tls_reported_) {
            tls_reported_ = true;
            if (on_tls_done_) {
                on_tls_done_(Result<void>(yubin::fail(r.error())));
                if (weak.expired()) {
                    return false;
                }
            }
        }
        // The alert (if any) is queued: close gracefully so it is sent.
        if (!close_error_) {
            close_error_ = r.error();
        }
        close();
        return true;
    }
    if (tls_->handshake_done() && !tls_reported_) {
        tls_reported_ = true;
        if (on_tls_done_) {
            on_tls_done_(Result<void>());
            if (weak.expired()) {
                return false;
            }
        }
    }
    if (tls_->has_plaintext() && state_ == State::Open) {
        std::string plain = tls_->take_plaintext();
        if (on_data_) {
            on_data_(plain);
            if (weak.expired()) {
                return false;
            }
        }
    }
    if (tls_ && tls_->peer_closed() && state_ == State::Open) {
        handle_eof();
    }
    return true;
}

// ---- writing ----

void Connection::write(std::string_view bytes) {
    if (state_ != State::Open || bytes.empty()) {
        return;
    }
    if (!tls_) {
        raw_write(std::string(bytes));
        return;
    }
    tls_->write_plaintext(bytes);
    auto r = tls_->process();
    if (tls_->has_ciphertext()) {
        raw_write(tls_->take_ciphertext());
    }
    if (!r || tls_->has_plaintext()) {
        // Errors and stray plaintext are handled by the reading path, not
        // inside the caller's write(): no callback may run from here.
        std::weak_ptr<char> weak = alive_;
        loop_.post([this, weak] {
            if (!weak.expired() && state_ == State::Open && tls_) {
                pump_tls();
            }
        });
    }
}

void Connection::raw_write(std::string bytes) {
    if (!tcp_ || state_ == State::Closed || bytes.empty()) {
        return;
    }
    auto* w = new WriteReq();
    w->data = std::move(bytes);
    w->req.data = w;
    uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
    int rc = uv_write(&w->req, stream(), &buf, 1, &Connection::on_write_done);
    if (rc != 0) {
        delete w;
        fail(uv_error("write", rc));
    }
}

void Connection::on_write_done(uv_write_t* req, int status) noexcept {
    std::unique_ptr<WriteReq> w(static_cast<WriteReq*>(req->data));
    auto* self = static_cast<Connection*>(req->handle->data);
    if (self == nullptr) {
        return;
    }
    guarded("Connection::write", [&] {
        if (status < 0) {
            if (status != UV_ECANCELED) {
                self->fail(uv_error("write", status));
            }
            return;
        }
        self->touch();
        if (self->state_ == State::Open && self->on_drained_ && self->write_queue_size() == 0) {
            self->on_drained_();
        }
    });
}

size_t Connection::write_queue_size() const {
    size_t n = tls_ ? tls_->pending_plaintext() : 0;
    if (tcp_) {
        n += uv_stream_get_write_queue_size(reinterpret_cast<const uv_stream_t*>(tcp_.get()));
    }
    return n;
}

// ---- timers ----

void Connection::set_idle_timeout(uint64_t ms) {
    idle_ms_ = ms;
    touch();
}

void Connection::touch() {
    if (state_ != State::Open || !idle_timer_) {
        return;
    }
    if (idle_ms_ > 0) {
        uv_timer_start(idle_timer_.get(), &Connection::on_idle_timer, idle_ms_, 0);
    } else {
        uv_timer_stop(idle_timer_.get());
    }
}

void Connection::on_idle_timer(uv_timer_t* t) noexcept {
    auto* self = static_cast<Connection*>(t->data);
    if (self == nullptr) {
        return;
    }
    guarded("Connection::idle", [&] {
        if (self->state_ == State::Open) {
            if (self->on_idle_) {
                self->on_idle_();
            } else {
                self->close();
            }
        } else if (self->state_ == State::Closing) {
            self->abort();  // the peer did not take our last bytes in time
        }
    });
}

// ---- closing ----

void Connection::close() {
    if (state_ != State::Open) {
        return;
    }
    state_ = State::Closing;
    uv_read_stop(stream());
    uv_timer_start(idle_timer_.get(), &Connection::on_idle_timer,
                   idle_ms_ > 0 ? idle_ms_ : kDefaultCloseTimeoutMs, 0);
    if (tls_ && tls_->handshake_done() && !tls_->failed()) {
        tls_->close();
        (void)tls_->process();  // an error here changes nothing: we are closing
        if (tls_->has_ciphertext()) {
            raw_write(tls_->take_ciphertext());
        }
    }
    // uv_shutdown completes after every queued write has been written.
    auto* req = new uv_shutdown_t();
    int rc = uv_shutdown(req, stream(), &Connection::on_shutdown_done);
    if (rc != 0) {
        delete req;
        finish(std::nullopt);
    }
}

void Connection::on_shutdown_done(uv_shutdown_t* req, int) noexcept {
    auto* self = static_cast<Connection*>(req->handle->data);
    delete req;
    if (self == nullptr) {
        return;
    }
    guarded("Connection::shutdown", [&] { self->finish(std::nullopt); });
}

void Connection::abort() {
    if (state_ == State::Closed) {
        return;
    }
    state_ = State::Closed;
    uv_timer_stop(idle_timer_.get());
    auto* h = reinterpret_cast<uv_handle_t*>(tcp_.get());
    if (tcp_ && uv_is_closing(h) == 0) {
        // RST tells the peer at once that the data it sent was not taken.
        if (uv_tcp_close_reset(tcp_.get(), &Connection::on_tcp_closed) != 0) {
            uv_close(h, &Connection::on_tcp_closed);
        }
    }
}

void Connection::fail(Error error) {
    if (!close_error_) {
        close_error_ = std::move(error);
    }
    abort();
}

void Connection::finish(std::optional<Error> error) {
    if (error && !close_error_) {
        close_error_ = std::move(error);
    }
    if (state_ == State::Closed) {
        return;
    }
    state_ = State::Closed;
    uv_timer_stop(idle_timer_.get());
    auto* h = reinterpret_cast<uv_handle_t*>(tcp_.get());
    if (tcp_ && uv_is_closing(h) == 0) {
        uv_close(h, &Connection::on_tcp_closed);
    }
}

void Connection::on_tcp_closed(uv_handle_t* h) noexcept {
    auto* self = static_cast<Connection*>(h->data);
    if (self != nullptr) {
        (void)self->tcp_.release();  // freed just below, as libuv requires
    }
    delete reinterpret_cast<uv_tcp_t*>(h);
    if (self != nullptr) {
        guarded("Connection::close", [&] { self->closed(); });
    }
}

void Connection::closed() {
    slot_.reset();  // give the listener's slot back before anyone reacts
    std::weak_ptr<char> weak = alive_;
    if (on_close_) {
        CloseHandler handler = std::move(on_close_);
        on_close_ = nullptr;
        handler(close_error_);
        if (weak.expired()) {
            return;
        }
    }
    if (self_owned_) {
        delete this;
    }
}

// ---- connect ----

namespace {

struct ConnectOp {
    Loop* loop = nullptr;
    Connection::ConnectHandler on_done;
    std::string target;
    uv_getaddrinfo_t gai{};
    uv_connect_t req{};
    uv_tcp_t* tcp = nullptr;  // owned here until the Connection adopts it
    UvHandle<uv_timer_t> timer;
    bool resolving = false;
    bool timed_out = false;

    void complete(Result<std::unique_ptr<Connection>> result) {
        Connection::ConnectHandler handler = std::move(on_done);
        delete this;
        if (handler) {
            handler(std::move(result));
        }
    }

    void close_tcp() {
        if (tcp != nullptr) {
            uv_close(reinterpret_cast<uv_handle_t*>(tcp),
                     [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
            tcp = nullptr;
        }
    }

    Error timeout_error() const {
        return Error{ErrorCode::Temp, "connect to " + target + ": timed out"};
    }

    void start_connect(const SocketAddress& addr) {
        tcp = new uv_tcp_t();
        int rc = uv_tcp_init(loop->raw(), tcp);
        if (rc != 0) {
            delete tcp;
            tcp = nullptr;
            complete(fail(uv_error("connect to " + target, rc)));
            return;
        }
        req.data = this;
        rc = uv_tcp_connect(&req, tcp, addr.raw(), &ConnectOp::on_connect);
        if (rc != 0) {
            close_tcp();
            complete(fail(uv_error("connect to " + target, rc)));
        }
    }

    static void on_connect(uv_connect_t* req, int status) noexcept {
        auto* op = static_cast<ConnectOp*>(req->data);
        guarded("Connection::connect", [&] {
            if (op->timed_out || op->tcp == nullptr) {
                op->complete(fail(op->timeout_error()));
            } else if (status < 0) {
                op->close_tcp();
                op->complete(fail(uv_error("connect to " + op->target, status)));
            } else {
                uv_tcp_t* connected = std::exchange(op->tcp, nullptr);
                op->complete(Connection::adopt(*op->loop, connected, nullptr));
            }
        });
    }

    static void on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* res) noexcept {
        auto* op = static_cast<ConnectOp*>(req->data);
        guarded("Connection::resolve", [&] {
            op->resolving = false;
            SocketAddress addr;
            if (status == 0 && res != nullptr) {
                addr = SocketAddress::from_sockaddr(res->ai_addr);
            }
            uv_freeaddrinfo(res);
            if (op->timed_out) {
                op->complete(fail(op->timeout_error()));
            } else if (status != 0 || !addr.valid()) {
                op->complete(fail(
                    Error{ErrorCode::Dns, "resolve " + op->target + ": " + uv_strerror(status)}));
            } else {
                op->start_connect(addr);
            }
        });
    }

    static void on_timeout(uv_timer_t* t) noexcept {
        auto* op = static_cast<ConnectOp*>(t->data);
        if (op == nullptr) {
            return;
        }
        op->timed_out = true;
        if (op->resolving) {
            // If the lookup already runs, it completes and sees timed_out.
            uv_cancel(reinterpret_cast<uv_req_t*>(&op->gai));
        } else {
            op->close_tcp();  // on_connect then runs with UV_ECANCELED
        }
    }
};

}  // namespace

void Connection::connect(Loop& loop, std::string_view host_port, uint64_t timeout_ms,
                         ConnectHandler on_done) {
    auto hp = split_host_port(host_port);
    if (!hp) {
        loop.post([cb = std::move(on_done), e = hp.error()] { cb(yubin::fail(e)); });
        return;
    }
    auto* op = new ConnectOp();
    op->loop = &loop;
    op->on_done = std::move(on_done);
    op->target = std::string(host_port);
    auto* t = new uv_timer_t();
    uv_timer_init(loop.raw(), t);
    t->data = op;
    op->timer.reset(t);
    if (timeout_ms > 0) {
        uv_timer_start(t, &ConnectOp::on_timeout, timeout_ms, 0);
    }
    auto numeric = SocketAddress::from_ip(hp->host, hp->port);
    if (numeric) {
        // Deferred so that on_done never runs inside connect() itself.
        loop.post([op, addr = *numeric] {
            if (op->timed_out) {
                op->complete(yubin::fail(op->timeout_error()));
            } else {
                op->start_connect(addr);
            }
        });
        return;
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    op->gai.data = op;
    op->resolving = true;
    std::string port = std::to_string(hp->port);
    int rc = uv_getaddrinfo(loop.raw(), &op->gai, &ConnectOp::on_resolved, hp->host.c_str(),
                            port.c_str(), &hints);
    if (rc != 0) {
        op->resolving = false;
        Error e = uv_error("resolve " + op->target, rc);
        loop.post([op, e] { op->complete(yubin::fail(e)); });
    }
}

}  // namespace yubin::io
