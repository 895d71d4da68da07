// A listening TCP socket and the accept policy in front of the protocols:
// concurrent-connection limits per listener and per client IP. A connection
// over a limit is not silently dropped: it goes to the "refused" handler so
// the protocol can send its busy reply (SMTP 421 4.7.0, IMAP "* BYE", POP3
// "-ERR") before closing, e.g. with Connection::close_detached().
//
// bind() creates, binds and listens synchronously (so errors such as
// EADDRINUSE or EACCES are reported there), which lets a daemon bind
// privileged ports as root, drop privileges, and only then call start().
// IPv6 sockets get IPV6_V6ONLY so "0.0.0.0:25" and "[::]:25" can both be bound.
//
// Ownership: the daemon owns the listener and each accepted Connection. A
// connection keeps its slot in the counts until it is closed or destroyed,
// even if the listener is gone (graceful shutdown: stop_accepting() or destroy
// the listener; existing connections carry on).
// Threads: loop thread only.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include <uv.h>

#include "common/base/error.h"
#include "common/io/address.h"
#include "common/io/connection.h"
#include "common/io/loop.h"

namespace yubin::io {

struct ListenerOptions {
    std::string address;      // "0.0.0.0:25", "[::]:993", "127.0.0.1:0"
    bool reuse_port = false;  // SO_REUSEPORT: several processes share the port
    int backlog = 511;
    size_t max_connections = 0;  // 0 = unlimited
    size_t max_per_ip = 0;       // 0 = unlimited
};

class TcpListener {
public:
    using AcceptHandler = std::function<void(std::unique_ptr<Connection>)>;

    static Result<std::unique_ptr<TcpListener>> bind(Loop& loop, const ListenerOptions& options);
    ~TcpListener();
    TcpListener(const TcpListener&) = delete;
    TcpListener& operator=(const TcpListener&) = delete;

    // Starts accepting. on_refused gets connections over a limit; without
    // it they are closed at once.
    [[nodiscard]] Result<void> start(AcceptHandler on_accept, AcceptHandler on_refused = {});
    // Closes the listening socket; accepted connections are unaffected.
    void stop_accepting();
    bool accepting() const { return tcp_ != nullptr && started_; }

    // New limits apply to the next accepted connection (config reload).
    void set_limits(size_t max_connections, size_t max_per_ip);

    // The bound address, with the real port when 0 was asked for.
    const SocketAddress& local_address() const { return local_; }
    size_t active_connections() const;
    size_t active_from(const std::string& ip) const;

private:
    struct Counts {
        size_t total = 0;
        std::unordered_map<std::string, size_t> per_ip;
        size_t max_total = 0;
        size_t max_per_ip = 0;
    };
    struct Slot;

    explicit TcpListener(Loop& loop) : loop_(loop) {}
    static void on_connection(uv_stream_t* server, int status) noexcept;
    void accept_one();

    Loop& loop_;
    UvHandle<uv_tcp_t> tcp_;
    SocketAddress local_;
    int backlog_ = 511;
    bool started_ = false;
    std::shared_ptr<Counts> counts_ = std::make_shared<Counts>();
    AcceptHandler on_accept_;
    AcceptHandler on_refused_;
};

}  // namespace yubin::io
