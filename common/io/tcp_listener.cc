#include "common/io/tcp_listener.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace yubin::io {

// Holds one place in the listener's counts; released when the connection
// closes or is destroyed, whichever comes first.
struct TcpListener::Slot final : ConnectionSlot {
    Slot(std::shared_ptr<Counts> c, std::string peer_ip)
        : counts(std::move(c)), ip(std::move(peer_ip)) {
        counts->total += 1;
        counts->per_ip[ip] += 1;
    }
    ~Slot() override {
        counts->total -= 1;
        auto it = counts->per_ip.find(ip);
        if (it != counts->per_ip.end() && --it->second == 0) {
            counts->per_ip.erase(it);
        }
    }
    std::shared_ptr<Counts> counts;
    std::string ip;
};

namespace {

Error errno_error(const std::string& what) {
    return Error{ErrorCode::Io, what + ": " + std::strerror(errno)};
}

}  // namespace

Result<std::unique_ptr<TcpListener>> TcpListener::bind(Loop& loop, const ListenerOptions& options) {
    auto addr = SocketAddress::parse(options.address);
    if (!addr) {
        return fail(addr.error());
    }
    const std::string where = "listen on " + options.address;
    // A raw socket rather than uv_tcp_bind: libuv defers bind errors to
    // uv_listen, and we want them here, before privileges are dropped.
    int fd = ::socket(addr->family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return fail(errno_error(where));
    }
    auto close_fd = [&] { ::close(fd); };
    int one = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (options.reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
        (addr->family() == AF_INET6 &&
         ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0)) {
        Error e = errno_error(where + ": setsockopt");
        close_fd();
        return fail(e);
    }
    if (::bind(fd, addr->raw(), addr->raw_size()) != 0 || ::listen(fd, options.backlog) != 0) {
        Error e = errno_error(where);
        close_fd();
        return fail(e);
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
        Error e = errno_error(where + ": getsockname");
        close_fd();
        return fail(e);
    }

    std::unique_ptr<TcpListener> l(new TcpListener(loop));
    auto* tcp = new uv_tcp_t();
    uv_tcp_init(loop.raw(), tcp);
    tcp->data = l.get();
    l->tcp_.reset(tcp);
    int rc = uv_tcp_open(tcp, fd);
    if (rc != 0) {
        close_fd();
        return fail(uv_error(where, rc));
    }
    l->local_ = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
    l->backlog_ = options.backlog;
    l->set_limits(options.max_connections, options.max_per_ip);
    return l;
}

TcpListener::~TcpListener() = default;

Result<void> TcpListener::start(AcceptHandler on_accept, AcceptHandler on_refused) {
    if (!tcp_) {
        return fail(ErrorCode::Invalid, "listener stopped");
    }
    on_accept_ = std::move(on_accept);
    on_refused_ = std::move(on_refused);
    int rc = uv_listen(reinterpret_cast<uv_stream_t*>(tcp_.get()), backlog_,
                       &TcpListener::on_connection);
    if (rc != 0) {
        return fail(uv_error("listen on " + local_.to_string(), rc));
    }
    started_ = true;
    return {};
}

void TcpListener::stop_accepting() {
    tcp_.reset();
    started_ = false;
}

void TcpListener::set_limits(size_t max_connections, size_t max_per_ip) {
    counts_->max_total = max_connections;
    counts_->max_per_ip = max_per_ip;
}

size_t TcpListener::active_connections() const {
    return counts_->total;
}

size_t TcpListener::active_from(const std::string& ip) const {
    auto it = counts_->per_ip.find(ip);
    return it == counts_->per_ip.end() ? 0 : it->second;
}

void TcpListener::on_connection(uv_stream_t* server, int status) noexcept {
    auto* self = static_cast<TcpListener*>(server->data);
    if (self == nullptr || status < 0) {
        return;  // e.g. EMFILE: nothing to accept now; libuv retries
    }
    guarded("TcpListener::accept", [&] { self->accept_one(); });
}

void TcpListener::accept_one() {
    auto* client = new uv_tcp_t();
    uv_tcp_init(loop_.raw(), client);
    if (uv_accept(reinterpret_cast<uv_stream_t*>(tcp_.get()),
                  reinterpret_cast<uv_stream_t*>(client)) != 0) {
        uv_close(reinterpret_cast<uv_handle_t*>(client),
                 [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
        return;
    }
    sockaddr_storage ss{};
    int len = sizeof ss;
    uv_tcp_getpeername(client, reinterpret_cast<sockaddr*>(&ss), &len);
    const std::string ip = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&ss)).ip();
    const Counts& c = *counts_;
    bool over = (c.max_total > 0 && c.total >= c.max_total) ||
                (c.max_per_ip > 0 && active_from(ip) >= c.max_per_ip);
    if (over) {
        std::unique_ptr<Connection> conn = Connection::adopt(loop_, client, nullptr);
        if (on_refused_) {
            on_refused_(std::move(conn));
        } else {
            Connection::close_detached(std::move(conn));
        }
        return;
    }
    std::unique_ptr<Connection> conn =
        Connection::adopt(loop_, client, std::make_unique<Slot>(counts_, ip));
    if (on_accept_) {
        on_accept_(std::move(conn));
    }
}

}  // namespace yubin::io
