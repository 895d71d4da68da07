// One TCP stream (accepted by a TcpListener, or outgoing via connect()) with
// an optional TLS layer. The Connection moves bytes; it knows no protocol.
// The daemon's driver feeds on_data() bytes into a proto::Reader and the
// session, and writes the session's replies back with write().
//
//   read:  socket -> [TlsEngine] -> on_data(plaintext)
//   write: write(plaintext) -> [TlsEngine] -> socket
//
// Lifecycle: open -> (close(): flush queued bytes, send close_notify, shut
// down, close) or (abort(): close at once with RST) -> on_close fires exactly
// once, whatever the reason (peer EOF, error, idle timeout with no hook,
// close(), abort(), a failed TLS handshake). The owner may destroy the
// Connection at any time, including inside one of its callbacks; after
// destruction no callback runs. To let a connection finish closing without
// keeping it, hand it to Connection::close_detached().
//
// STARTTLS (RFC 3207 §4.2, RFC 2595 §3.1, RFC 8314): after the "ready to start
// TLS" reply is written, call start_tls_server(); every byte received from
// then on goes to the TLS engine, never to on_data as plaintext. Plaintext the
// driver already holds (pipelined behind the STARTTLS command, inside its
// proto::Reader) must be dropped with Reader::discard_buffered().
//
// Threads: loop thread only. Callbacks run on the loop thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <uv.h>

#include "common/base/error.h"
#include "common/io/address.h"
#include "common/io/loop.h"
#include "common/io/tls_context.h"
#include "common/io/tls_engine.h"

namespace yubin::io {

// Accounting token a listener attaches to each connection it accepted; its
// destructor gives the slot back (see tcp_listener.h).
struct ConnectionSlot {
    virtual ~ConnectionSlot() = default;
};

class Connection {
public:
    using DataHandler = std::function<void(std::string_view plaintext)>;
    // error is empty for an orderly end (peer EOF, close(), abort()).
    using CloseHandler = std::function<void(const std::optional<Error>& error)>;
    using ConnectHandler = std::function<void(Result<std::unique_ptr<Connection>>)>;

    ~Connection();  // aborts the socket if still open; no callback runs
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Outgoing connection to "host:port" (numeric or a name resolved with
    // getaddrinfo on the thread pool; the queue passes MX addresses it
    // resolved itself). The handler runs once, on the loop thread, never
    // inside connect() itself. timeout_ms = 0: no timeout of ours.
    static void connect(Loop& loop, std::string_view host_port, uint64_t timeout_ms,
                        ConnectHandler on_done);

    // Lets a connection close gracefully and free itself when done (for busy
    // replies and shutdown). Its handlers are dropped.
    static void close_detached(std::unique_ptr<Connection> conn);

    // ---- handlers (set them before start()) ----
    void on_data(DataHandler handler) { on_data_ = std::move(handler); }
    void on_close(CloseHandler handler) { on_close_ = std::move(handler); }
    // Idle timeout expired. Without a handler the connection is closed; with
    // one, the protocol writes its reply (421 / BYE / -ERR) and calls close().
    void on_idle_timeout(std::function<void()> handler) { on_idle_ = std::move(handler); }
    // The TLS handshake finished (ok) or failed (error; the connection is
    // then closed and on_close follows).
    void on_tls_done(std::function<void(const Result<void>&)> handler) {
        on_tls_done_ = std::move(handler);
    }
    // The write queue has fully drained (for back-pressure: a session that
    // stopped producing output when write_queue_size() grew resumes here).
    void on_drained(std::function<void()> handler) { on_drained_ = std::move(handler); }

    // Starts reading (and the idle timer). Equivalent to resume_reading().
    void start() { resume_reading(); }
    void pause_reading();
    void resume_reading();
    bool reading() const { return want_read_; }

    // Queues plaintext. Never blocks; ignored once closing.
    void write(std::string_view bytes);
    // Bytes accepted by write() and not yet handed to the kernel.
    size_t write_queue_size() const;

    // 0 disables. Reset by every read and every completed write.
    void set_idle_timeout(uint64_t ms);

    // Graceful: stop reading, flush queued bytes (TLS: then close_notify),
    // shut down, close. A stuck peer is aborted after the idle timeout (or
    // 30 s when none is set).
    void close();
    // Immediate close with TCP RST; queued bytes are dropped.
    void abort();
    bool is_open() const { return state_ == State::Open; }

    const SocketAddress& peer_address() const { return peer_; }
    const SocketAddress& local_address() const { return local_; }

    // ---- TLS ----
    // Upgrades this connection; implicit TLS (465/993/995) calls this right
    // after accept. Fails if TLS is already on.
    [[nodiscard]] Result<void> start_tls_server(std::shared_ptr<const TlsContext> ctx);
    // Client side; server_name is sent as SNI and checked against the
    // certificate. The result is in tls_info() once on_tls_done reports ok;
    // whether an unverified peer is acceptable is the caller's policy.
    [[nodiscard]] Result<void> start_tls_client(std::shared_ptr<const TlsContext> ctx,
                                                std::string_view server_name);
    bool tls_started() const { return tls_ != nullptr; }
    bool tls_established() const { return tls_ != nullptr && tls_->handshake_done(); }
    // Null until the handshake is done.
    const TlsInfo* tls_info() const { return tls_established() ? &tls_->info() : nullptr; }

    // Internal: built by TcpListener and connect() from a connected handle.
    static std::unique_ptr<Connection> adopt(Loop& loop, uv_tcp_t* tcp,
                                             std::unique_ptr<ConnectionSlot> slot);

private:
    enum class State { Open, Closing, Closed };
    struct WriteReq;

    Connection(Loop& loop, uv_tcp_t* tcp);
    uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(tcp_.get()); }

    static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf) noexcept;
    static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept;
    static void on_write_done(uv_write_t* req, int status) noexcept;
    static void on_shutdown_done(uv_shutdown_t* req, int status) noexcept;
    static void on_tcp_closed(uv_handle_t* h) noexcept;
    static void on_idle_timer(uv_timer_t* t) noexcept;

    void handle_bytes(std::string_view bytes);
    void handle_eof();
    // Runs the TLS engine, sends its output, delivers plaintext and reports
    // the handshake. Returns false if `this` was destroyed meanwhile.
    bool pump_tls();
    void raw_write(std::string bytes);
    void finish(std::optional<Error> error);  // close the handle, then on_close
    void fail(Error error);                   // abort with an error
    void touch();                             // restart the idle timer
    void closed();                            // the uv_close callback arrived

    Loop& loop_;
    UvHandle<uv_tcp_t> tcp_;
    UvHandle<uv_timer_t> idle_timer_;
    std::unique_ptr<ConnectionSlot> slot_;  // the listener's count of us
    SocketAddress peer_;
    SocketAddress local_;
    State state_ = State::Open;
    bool want_read_ = false;
    bool self_owned_ = false;
    bool tls_reported_ = false;
    uint64_t idle_ms_ = 0;
    std::optional<Error> close_error_;
    std::unique_ptr<TlsEngine> tls_;
    // Destroyed with the Connection: callbacks hold a weak_ptr to notice that
    // a user handler deleted us.
    std::shared_ptr<char> alive_ = std::make_shared<char>();

    DataHandler on_data_;
    CloseHandler on_close_;
    std::function<void()> on_idle_;
    std::function<void(const Result<void>&)> on_tls_done_;
    std::function<void()> on_drained_;
};

}  // namespace yubin::io
