// Listener and Connection over real loopback sockets: clients are either
// plain blocking sockets on a helper thread, another Connection on the same
// loop, or `openssl s_client` as a real TLS client.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <thread>
#include <vector>

#include "common/io/address.h"
#include "common/io/connection.h"
#include "common/io/tcp_listener.h"
#include "common/proto/line_reader.h"
#include "tests/unit/io/test_support.h"

namespace yubin::io {
namespace {

using testing::run_until;
using testing::TestCerts;

// A blocking client socket for helper threads.
class Client {
public:
    Client(const std::string& ip, uint16_t port, const std::string& source_ip = "") {
        auto addr = SocketAddress::from_ip(ip, port);
        fd_ = ::socket(addr->family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (!source_ip.empty()) {
            auto src = SocketAddress::from_ip(source_ip, 0);
            ::bind(fd_, src->raw(), src->raw_size());
        }
        connected_ = ::connect(fd_, addr->raw(), addr->raw_size()) == 0;
    }
    ~Client() { ::close(fd_); }
    bool connected() const { return connected_; }
    void send(std::string_view s) {
        while (!s.empty()) {
            ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
            if (n <= 0) {
                return;
            }
            s.remove_prefix(static_cast<size_t>(n));
        }
    }
    // Reads until `needle` is seen, EOF, or the timeout.
    std::string read_until(std::string_view needle, int timeout_ms = 5000) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        while (needle.empty() || buf_.find(needle) == std::string::npos) {
            int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            deadline - std::chrono::steady_clock::now())
                                            .count());
            if (left <= 0) {
                break;
            }
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, left) <= 0) {
                break;
            }
            char tmp[65536];
            ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
            if (n <= 0) {
                eof_ = n == 0;
                break;
            }
            buf_.append(tmp, static_cast<size_t>(n));
        }
        return buf_;
    }
    std::string read_to_eof(int timeout_ms = 5000) { return read_until("", timeout_ms); }
    size_t read_exactly(size_t n, int timeout_ms = 10000) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        while (buf_.size() < n && !eof_ && std::chrono::steady_clock::now() < deadline) {
            read_until("\x01never\x02", 100);
        }
        return buf_.size();
    }
    bool eof() const { return eof_; }

private:
    int fd_ = -1;
    bool connected_ = false;
    bool eof_ = false;
    std::string buf_;
};

std::unique_ptr<Loop> new_loop() {
    auto loop = Loop::create();
    EXPECT_TRUE(loop.has_value());
    return std::move(*loop);
}

std::unique_ptr<TcpListener> listen_on(Loop& loop, ListenerOptions o) {
    auto l = TcpListener::bind(loop, o);
    EXPECT_TRUE(l.has_value()) << (l ? "" : l.error().message);
    return l ? std::move(*l) : nullptr;
}

std::shared_ptr<const TlsContext> server_tls() {
    const auto& c = TestCerts::get();
    TlsServerOptions o;
    o.certs = {{c.path("server.crt"), c.path("server.key")}};
    return *TlsContext::server(o);
}

std::shared_ptr<const TlsContext> client_tls() {
    TlsClientOptions o;
    o.ca_file = TestCerts::get().path("ca.crt");
    o.use_system_cas = false;
    o.verify = true;
    return *TlsContext::client(o);
}

TEST(Address, ParsesListenStrings) {
    auto a = SocketAddress::parse("0.0.0.0:25");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->family(), AF_INET);
    EXPECT_EQ(a->port(), 25);
    auto b = SocketAddress::parse("[::]:993");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->family(), AF_INET6);
    EXPECT_EQ(b->to_string(), "[::]:993");
    EXPECT_EQ(SocketAddress::parse("127.0.0.1:0")->to_string(), "127.0.0.1:0");
    EXPECT_FALSE(SocketAddress::parse("::1:25"));  // v6 needs brackets
    EXPECT_FALSE(SocketAddress::parse("1.2.3.4:65536"));
    EXPECT_FALSE(SocketAddress::parse("1.2.3.4"));
    EXPECT_FALSE(SocketAddress::parse("mail.example:25"));  // listen needs numeric
    auto hp = split_host_port("mx.example.org:2525");
    ASSERT_TRUE(hp);
    EXPECT_EQ(hp->host, "mx.example.org");
    EXPECT_EQ(hp->port, 2525);
}

TEST(TcpListener, LoopbackExchangeWithARealClientSocket) {
    auto loop = new_loop();
    auto l = listen_on(*loop, {.address = "127.0.0.1:0"});
    const uint16_t port = l->local_address().port();
    ASSERT_NE(port, 0);
    std::unique_ptr<Connection> server;
    std::string received;
    bool closed = false;
    ASSERT_TRUE(l->start([&](std::unique_ptr<Connection> c) {
        server = std::move(c);
        EXPECT_EQ(server->peer_address().ip(), "127.0.0.1");
        EXPECT_EQ(server->local_address().port(), port);
        server->on_data([&](std::string_view d) {
            received += d;
            if (received.find("QUIT\r\n") != std::string::npos) {
                server->write("221 bye\r\n");
                server->close();
            }
        });
        server->on_close([&](const std::optional<Error>& e) {
            EXPECT_FALSE(e.has_value());
            closed = true;
        });
        server->write("220 ready\r\n");
        server->start();
    }));
    std::promise<std::string> result;
    std::thread client([&] {
        Client c("127.0.0.1", port);
        std::string greeting = c.read_until("\r\n");
        c.send("NOOP\r\nQUIT\r\n");
        result.set_value(greeting + "|" + c.read_to_eof());
    });
    EXPECT_TRUE(run_until(*loop, [&] { return closed; }));
    client.join();
    EXPECT_EQ(result.get_future().get(), "220 ready\r\n|220 ready\r\n221 bye\r\n");
    EXPECT_EQ(received, "NOOP\r\nQUIT\r\n");
}

TEST(TcpListener, BindsIpv4AndIpv6OnTheSamePort) {
    auto loop = new_loop();
    auto v4 = listen_on(*loop, {.address = "0.0.0.0:0"});
    const uint16_t port = v4->local_address().port();
    int probe = ::socket(AF_INET6, SOCK_STREAM, 0);
    if (probe < 0) {
        GTEST_SKIP() << "no IPv6 on this machine";
    }
    ::close(probe);
    auto v6 = TcpListener::bind(*loop, {.address = "[::]:" + std::to_string(port)});
    ASSERT_TRUE(v6.has_value()) << v6.error().message;  // IPV6_V6ONLY makes this work
    EXPECT_EQ((*v6)->local_address().port(), port);
    std::unique_ptr<Connection> server;
    ASSERT_TRUE((*v6)->start([&](std::unique_ptr<Connection> c) { server = std::move(c); }));
    std::thread t([port] { Client c("::1", port); });
    EXPECT_TRUE(run_until(*loop, [&] { return server != nullptr; }));
    t.join();
    EXPECT_EQ(server->peer_address().ip(), "::1");
    EXPECT_EQ(server->local_address().to_string(), "[::1]:" + std::to_string(port));
    // Same address again: the error comes from bind(), not later.
    auto again = TcpListener::bind(*loop, {.address = "0.0.0.0:" + std::to_string(port)});
    EXPECT_FALSE(again.has_value());
}

TEST(TcpListener, ReusePortLetsTwoListenersShare) {
    auto loop = new_loop();
    auto a = listen_on(*loop, {.address = "127.0.0.1:0", .reuse_port = true});
    std::string addr = "127.0.0.1:" + std::to_string(a->local_address().port());
    auto b = TcpListener::bind(*loop, {.address = addr, .reuse_port = true});
    EXPECT_TRUE(b.has_value());
}

TEST(TcpListener, PerIpAndTotalLimitsCallTheRefusedHook) {
    auto loop = new_loop();
    auto l = listen_on(*loop, {.address = "127.0.0.1:0", .max_connections = 3, .max_per_ip = 2});
    const uint16_t port = l->local_address().port();
    std::vector<std::unique_ptr<Connection>> accepted;
    std::vector<std::string> refused_ips;
    ASSERT_TRUE(l->start(
        [&](std::unique_ptr<Connection> c) {
            c->write("220 welcome\r\n");
            c->start();
            accepted.push_back(std::move(c));
        },
        [&](std::unique_ptr<Connection> c) {
            refused_ips.push_back(c->peer_address().ip());
            c->write("421 4.7.0 too many connections\r\n");
            Connection::close_detached(std::move(c));
        }));

    // Each client connects and reads its first line; runs on a helper thread.
    auto greet = [&](const std::string& source) {
        auto c = std::make_shared<Client>("127.0.0.1", port, source);
        std::promise<std::string> p;
        auto f = p.get_future();
        std::thread t([c, p = std::move(p)]() mutable { p.set_value(c->read_until("\r\n")); });
        EXPECT_TRUE(run_until(*loop, [&] {
            return f.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
        }));
        t.join();
        return std::make_pair(c, f.get());
    };
    auto c1 = greet("127.0.0.1");
    auto c2 = greet("127.0.0.1");
    auto c3 = greet("127.0.0.1");  // third from the same IP: over max_per_ip
    EXPECT_EQ(c1.second, "220 welcome\r\n");
    EXPECT_EQ(c2.second, "220 welcome\r\n");
    EXPECT_EQ(c3.second, "421 4.7.0 too many connections\r\n");
    EXPECT_EQ(l->active_from("127.0.0.1"), 2u);
    auto c4 = greet("127.0.0.2");  // another IP: fits (3 in total)
    EXPECT_EQ(c4.second, "220 welcome\r\n");
    auto c5 = greet("127.0.0.3");  // over max_connections
    EXPECT_EQ(c5.second, "421 4.7.0 too many connections\r\n");
    EXPECT_EQ(refused_ips, (std::vector<std::string>{"127.0.0.1", "127.0.0.3"}));
    EXPECT_EQ(l->active_connections(), 3u);

    // Config reload raises the limit; closing a connection frees its slot.
    l->set_limits(4, 2);
    auto c6 = greet("127.0.0.3");
    EXPECT_EQ(c6.second, "220 welcome\r\n");
    EXPECT_EQ(l->active_connections(), 4u);
    accepted.front()->abort();
    EXPECT_TRUE(run_until(*loop, [&] { return l->active_connections() == 3; }));
    accepted.pop_back();  // destroying also frees the slot
    EXPECT_EQ(l->active_connections(), 2u);
    EXPECT_EQ(l->active_from("127.0.0.3"), 0u);
}

TEST(TcpListener, StopAcceptingKeepsExistingConnections) {
    auto loop = new_loop();
    auto l = listen_on(*loop, {.address = "127.0.0.1:0"});
    const uint16_t port = l->local_address().port();
    std::unique_ptr<Connection> server;
    std::string got;
    ASSERT_TRUE(l->start([&](std::unique_ptr<Connection> c) {
        server = std::move(c);
        server->on_data([&](std::string_view d) {
            got += d;
            server->write(d);
        });
        server->start();
    }));
    std::atomic<int> stage{0};
    std::string echoed;
    bool second_connected = true;
    std::thread t([&] {
        Client c("127.0.0.1", port);
        c.send("one\r\n");
        c.read_until("one\r\n");
        stage = 1;
        while (stage != 2) {
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        c.send("two\r\n");
        echoed = c.read_until("two\r\n");
        Client late("127.0.0.1", port);
        second_connected = late.connected();
        stage = 3;
    });
    EXPECT_TRUE(run_until(*loop, [&] { return stage == 1; }));
    l->stop_accepting();
    EXPECT_FALSE(l->accepting());
    stage = 2;
    EXPECT_TRUE(run_until(*loop, [&] { return stage == 3; }));
    t.join();
    EXPECT_EQ(echoed, "one\r\ntwo\r\n");
    EXPECT_FALSE(second_connected);
}

TEST(Connection, IdleTimeoutFiresTheHook) {
    auto loop = new_loop();
    auto l = listen_on(*loop, {.address = "127.0.0.1:0"});
    const uint16_t port = l->local_address().port();
    std::unique_ptr<Connection> server;
    int timeouts = 0;
    bool closed = false;
    uint64_t started = 0;
    uint64_t fired_at = 0;
    ASSERT_TRUE(l->start([&](std::unique_ptr<Connection> c) {
        server = std::move(c);
        server->on_idle_timeout([&] {
            ++timeouts;
            fired_at = loop->now_ms();
            server->write("421 4.4.2 idle timeout\r\n");
            server->close();
        });
        server->on_close([&](const std::optional<Error>&) { closed = true; });
        server->set_idle_timeout(150);
        started = loop->now_ms();
        server->on_data([](std::string_view) {});
        server->start();
    }));
    std::string got;
    std::thread t([&] {
        Client c("127.0.0.1", port);
        std::this_thread::sleep_for(std::chrono::milliseconds(80));
        c.send("NOOP\r\n");  // activity resets the timer
        got = c.read_to_eof();
    });
    EXPECT_TRUE(run_until(*loop, [&] { return closed; }));
    t.join();
    EXPECT_EQ(got, "421 4.4.2 idle timeout\r\n");
    EXPECT_EQ(timeouts, 1);
    EXPECT_GE(fired_at - started, 150u + 60u);  // reset by the NOOP at ~80 ms
}

TEST(Connection, CloseFlushesLargeWritesAndBackPressureDrains) {
    auto loop = new_loop();
    auto l = listen_on(*loop, {.address = "127.0.0.1:0"});
    const uint16_t port = l->local_address().port();
    std::unique_ptr<Connection> server;
    size_t queued_peak = 0;
    int drained = 0;
    bool closed = false;
    std::string big(8 * 1024 * 1024, 'x');
    ASSERT_TRUE(l->start([&](std::unique_ptr<Connection> c) {
        server = std::move(c);
        server->on_drained([&] { ++drained; });
        server->on_close([&](const std::optional<Error>& e) {
            EXPECT_FALSE(e.has_value()) << e->message;
            closed = true;
        });
        server->start();
        server->write(big);
        queued_peak = server->write_queue_size();
        server->write("END\r\n");
        server->close();
    }));
    size_t got = 0;
    std::thread t([&] {
        Client c("127.0.0.1", port);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let the queue build
        got = c.read_to_eof(10000).size();
    });
    EXPECT_TRUE(run_until(
        *loop, [&] { return closed; }, 15000));
    t.join();
    EXPECT_GT(queued_peak, 0u);  // the kernel could not take 8 MiB at once
    EXPECT_EQ(got, big.size() + 5);
    EXPECT_EQ(drained, 0);  // closing: no drained callbacks
}

TEST(Connection, DrainedFiresWhenTheQueueEmpties) {
    auto loop = new_loop();
    auto l = listen_on(*loop, {.address = "127.0.0.1:0"});
    std::unique_ptr<Connection> server;
    int drained = 0;
    size_t peak = 0;
    ASSERT_TRUE(l->start([&](std::unique_ptr<Connection> c) {
        server = std::move(c);
        server->on_drained([&] { ++drained; });
        server->start();
        server->write(std::string(8 * 1024 * 1024, 'y'));
        peak = server->write_queue_size();
    }));
    std::atomic<bool> done{false};
    std::thread t([&, port = l->local_address().port()] {
        Client c("127.0.0.1", port);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        EXPECT_EQ(c.read_exactly(8u * 1024 * 1024), 8u * 1024 * 1024);
        done = true;
    });
    EXPECT_TRUE(run_until(
        *loop, [&] { return done && drained > 0; }, 15000));
    t.join();
    EXPECT_GT(peak, 0u);
    EXPECT_GE(drained, 1);
    EXPECT_EQ(server->write_queue_size(), 0u);
}

TEST(Connection, ConnectOutgoingAndRefused) {
    auto loop = new_loop();
    auto l = listen_on(*loop, {.address = "127.0.0.1:0"});
    const uint16_t port = l->local_address().port();
    std::unique_ptr<Connection> server;
    ASSERT_TRUE(l->start([&](std::unique_ptr<Connection> c) {
        server = std::move(c);
        server->write("220 mx.test ESMTP\r\n");
        server->start();
    }));
    std::unique_ptr<Connection> client;
    std::string banner;
    Connection::connect(*loop, "localhost:" + std::to_string(port), 5000,
                        [&](Result<std::unique_ptr<Connection>> r) {
                            ASSERT_TRUE(r.has_value()) << r.error().message;
                            client = std::move(*r);
                            client->on_data([&](std::string_view d) { banner += d; });
                            client->start();
                        });
    EXPECT_TRUE(run_until(*loop, [&] { return banner == "220 mx.test ESMTP\r\n"; }));
    EXPECT_EQ(client->peer_address().port(), port);

    // A port nobody listens on: stop the listener and reuse its port.
    l->stop_accepting();
    loop->run_once(false);
    std::optional<Error> error;
    Connection::connect(*loop, "127.0.0.1:" + std::to_string(port), 5000,
                        [&](Result<std::unique_ptr<Connection>> r) {
                            ASSERT_FALSE(r.has_value());
                            error = r.error();
                        });
    EXPECT_TRUE(run_until(*loop, [&] { return error.has_value(); }));
    EXPECT_NE(error->message.find("refused"), std::string::npos) << error->message;
}

TEST(Connection, PauseStopsDeliveryUntilResume) {
    auto loop = new_loop();
    auto l = listen_on(*loop, {.address = "127.0.0.1:0"});
    std::unique_ptr<Connection> server;
    std::string got;
    ASSERT_TRUE(l->start([&](std::unique_ptr<Connection> c) {
        server = std::move(c);
        server->on_data([&](std::string_view d) {
            got += d;
            server->pause_reading();  // e.g. waiting for a recipient lookup
        });
        server->start();
    }));
    std::atomic<int> stage{0};
    std::thread t([&, port = l->local_address().port()] {
        Client c("127.0.0.1", port);
        c.send("RCPT TO:<a@x.test>\r\n");
        while (stage != 1) {
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        c.send("RCPT TO:<b@x.test>\r\n");
        while (stage != 2) {
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    });
    EXPECT_TRUE(run_until(*loop, [&] { return !got.empty(); }));
    EXPECT_EQ(got, "RCPT TO:<a@x.test>\r\n");
    EXPECT_FALSE(server->reading());
    stage = 1;
    // Paused: the second command waits in the kernel, not in our memory.
    EXPECT_FALSE(run_until(*loop, [&] { return got.size() > 20; }, 200));
    server->resume_reading();
    EXPECT_TRUE(run_until(*loop, [&] { return got.size() > 20; }));
    EXPECT_EQ(got, "RCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n");
    stage = 2;
    t.join();
}

TEST(Connection, ConnectTimesOut) {
    // A listening socket nobody accepts from, with its queue filled: the
    // kernel then drops further SYNs, so a connect can only time out.
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    auto any = SocketAddress::from_ip("127.0.0.1", 0);
    ASSERT_EQ(::bind(fd, any->raw(), any->raw_size()), 0);
    ASSERT_EQ(::listen(fd, 0), 0);
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    const uint16_t port = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&ss)).port();
    std::vector<int> fillers;
    for (int i = 0; i < 4; ++i) {
        int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        auto addr = SocketAddress::from_ip("127.0.0.1", port);
        ::connect(c, addr->raw(), addr->raw_size());
        fillers.push_back(c);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto loop = new_loop();
    std::optional<Error> error;
    uint64_t start = loop->now_ms();
    Connection::connect(*loop, "127.0.0.1:" + std::to_string(port), 300,
                        [&](Result<std::unique_ptr<Connection>> r) {
                            ASSERT_FALSE(r.has_value());
                            error = r.error();
                        });
    EXPECT_TRUE(run_until(*loop, [&] { return error.has_value(); }));
    EXPECT_NE(error->message.find("timed out"), std::string::npos) << error->message;
    EXPECT_GE(loop->now_ms() - start, 290u);
    for (int c : fillers) {
        ::close(c);
    }
    ::close(fd);
}

TEST(Connection, OwnerMayDestroyItInsideACallback) {
    auto loop = new_loop();
    auto l = listen_on(*loop, {.address = "127.0.0.1:0"});
    std::unique_ptr<Connection> server;
    int calls = 0;
    ASSERT_TRUE(l->start([&](std::unique_ptr<Connection> c) {
        server = std::move(c);
        server->on_data([&](std::string_view) {
            ++calls;
            server.reset();  // e.g. the session decided to drop the client
        });
        server->on_close([&](const std::optional<Error>&) { ++calls; });  // must not run
        server->start();
    }));
    std::thread t([port = l->local_address().port()] {
        Client c("127.0.0.1", port);
        c.send("QUIT\r\n");
        c.read_to_eof();
    });
    EXPECT_TRUE(run_until(*loop, [&] { return calls > 0 && !server; }));
    t.join();
    loop->run_once(false);
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(l->active_connections(), 0u);
}

TEST(Connection, TlsEchoOfLargeDataAndCloseNotify) {
    auto loop = new_loop();
    auto l = listen_on(*loop, {.address = "127.0.0.1:0"});
    std::unique_ptr<Connection> server;
    std::optional<std::optional<Error>> server_closed;
    ASSERT_TRUE(l->start([&](std::unique_ptr<Connection> c) {
        server = std::move(c);
        ASSERT_TRUE(server->start_tls_server(server_tls()));
        server->on_data([&](std::string_view d) { server->write(d); });
        server->on_close([&](const std::optional<Error>& e) { server_closed = e; });
        server->start();
    }));
    std::string payload;
    for (int i = 0; payload.size() < 2 * 1024 * 1024; ++i) {
        payload += std::to_string(i) + ",";
    }
    std::unique_ptr<Connection> client;
    std::string echoed;
    Connection::connect(*loop, "127.0.0.1:" + std::to_string(l->local_address().port()), 5000,
                        [&](Result<std::unique_ptr<Connection>> r) {
                            ASSERT_TRUE(r.has_value());
                            client = std::move(*r);
                            ASSERT_TRUE(client->start_tls_client(client_tls(), "localhost"));
                            client->on_data([&](std::string_view d) { echoed += d; });
                            client->start();
                            client->write(payload);  // queued until the handshake ends
                        });
    EXPECT_TRUE(run_until(*loop, [&] { return echoed.size() >= payload.size(); }, 20000));
    EXPECT_TRUE(echoed == payload);
    EXPECT_TRUE(client->tls_info()->peer_verified);
    client->close();  // close_notify: the server sees an orderly end
    EXPECT_TRUE(run_until(*loop, [&] { return server_closed.has_value(); }));
    EXPECT_FALSE(server_closed->has_value());
}

// The server side of a STARTTLS exchange driven through a proto::Reader, as
// a daemon's driver would.
struct StarttlsServer {
    std::unique_ptr<Connection> conn;
    proto::Reader reader;
    std::vector<std::string> lines;
    size_t discarded = 0;
    std::shared_ptr<const TlsContext> tls = server_tls();

    void attach(std::unique_ptr<Connection> c) {
        conn = std::move(c);
        conn->on_data([this](std::string_view d) {
            reader.feed(d);
            for (auto ev = reader.next(); ev.kind != proto::EventKind::NeedMore;
                 ev = reader.next()) {
                std::string line(ev.data);
                lines.push_back(line);
                if (line == "STARTTLS") {
                    conn->write("220 2.0.0 ready\r\n");
                    ASSERT_TRUE(conn->start_tls_server(tls).has_value());
                    // RFC 3207 §4.2: nothing received before the handshake counts.
                    discarded = reader.discard_buffered();
                } else if (conn->tls_established()) {
                    conn->write("250 " + line + " over " + conn->tls_info()->version + "\r\n");
                } else {
                    conn->write("250 " + line + "\r\n");
                }
            }
        });
        conn->start();
    }
};

TEST(Connection, StarttlsUpgradeDiscardsPipelinedPlaintext) {
    auto loop = new_loop();
    auto l = listen_on(*loop, {.address = "127.0.0.1:0"});
    StarttlsServer server;
    ASSERT_TRUE(l->start([&](std::unique_ptr<Connection> c) { server.attach(std::move(c)); }));

    std::unique_ptr<Connection> client;
    std::string plain_replies;
    std::string tls_replies;
    bool handshake_ok = false;
    Connection::connect(
        *loop, "127.0.0.1:" + std::to_string(l->local_address().port()), 5000,
        [&](Result<std::unique_ptr<Connection>> r) {
            ASSERT_TRUE(r.has_value());
            client = std::move(*r);
            client->on_data([&](std::string_view d) {
                if (client->tls_started()) {
                    tls_replies += d;
                    return;
                }
                plain_replies += d;
                if (plain_replies.find("220 2.0.0 ready\r\n") != std::string::npos) {
                    ASSERT_TRUE(client->start_tls_client(client_tls(), "mail.example.test"));
                }
            });
            client->on_tls_done([&](const Result<void>& ok) {
                ASSERT_TRUE(ok.has_value()) << ok.error().message;
                handshake_ok = true;
                client->write("EHLO after\r\n");
            });
            client->start();
            // An injection attempt: a command pipelined behind STARTTLS in
            // the same packet (CVE-2011-0411 style).
            client->write("EHLO before\r\nSTARTTLS\r\nMAIL FROM:<evil@x.test>\r\n");
        });
    EXPECT_TRUE(run_until(*loop, [&] { return tls_replies.find("\r\n") != std::string::npos; }));
    EXPECT_TRUE(handshake_ok);
    EXPECT_EQ(plain_replies, "250 EHLO before\r\n220 2.0.0 ready\r\n");
    EXPECT_EQ(tls_replies, "250 EHLO after over TLSv1.3\r\n");
    EXPECT_EQ(server.lines, (std::vector<std::string>{"EHLO before", "STARTTLS", "EHLO after"}));
    EXPECT_EQ(server.discarded, std::string("MAIL FROM:<evil@x.test>\r\n").size());
    ASSERT_NE(client->tls_info(), nullptr);
    EXPECT_TRUE(client->tls_info()->peer_verified);
    EXPECT_EQ(server.conn->tls_info()->server_name, "mail.example.test");
}

TEST(Connection, FailedHandshakeClosesWithAnError) {
    auto loop = new_loop();
    auto l = listen_on(*loop, {.address = "127.0.0.1:0"});
    std::unique_ptr<Connection> server;
    std::optional<Error> server_error;
    bool server_closed = false;
    int tls_failures = 0;
    ASSERT_TRUE(l->start([&](std::unique_ptr<Connection> c) {
        server = std::move(c);
        ASSERT_TRUE(server->start_tls_server(server_tls()));
        server->on_tls_done([&](const Result<void>& r) { tls_failures += r ? 0 : 1; });
        server->on_close([&](const std::optional<Error>& e) {
            server_error = e;
            server_closed = true;
        });
        server->start();
    }));
    std::thread t([port = l->local_address().port()] {
        Client c("127.0.0.1", port);
        c.send("EHLO this is not TLS\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n");
        c.read_to_eof();
    });
    EXPECT_TRUE(run_until(*loop, [&] { return server_closed; }));
    t.join();
    EXPECT_EQ(tls_failures, 1);
    ASSERT_TRUE(server_error.has_value());
    EXPECT_EQ(server_error->code, ErrorCode::Tls);
}

TEST(Connection, ImplicitTlsWithOpensslSClient) {
    auto loop = new_loop();
    auto l = listen_on(*loop, {.address = "127.0.0.1:0"});
    std::unique_ptr<Connection> server;
    proto::Reader reader;
    std::string seen_version;
    std::string seen_sni;
    ASSERT_TRUE(l->start([&](std::unique_ptr<Connection> c) {
        server = std::move(c);
        ASSERT_TRUE(server->start_tls_server(server_tls()));  // implicit TLS: at accept
        server->write("* OK IMAP4rev2 ready\r\n");            // sent once the handshake ends
        server->on_tls_done([&](const Result<void>& r) {
            ASSERT_TRUE(r.has_value()) << r.error().message;
            seen_version = server->tls_info()->version;
            seen_sni = server->tls_info()->server_name;
        });
        server->on_data([&](std::string_view d) {
            reader.feed(d);
            for (auto ev = reader.next(); ev.kind != proto::EventKind::NeedMore;
                 ev = reader.next()) {
                if (ev.data == "a1 LOGOUT") {
                    server->write("* BYE logging out\r\na1 OK LOGOUT completed\r\n");
                    server->close();
                }
            }
        });
        server->start();
    }));
    const std::string cmd =
        "printf 'a1 LOGOUT\\r\\n' | timeout 10 openssl s_client -connect 127.0.0.1:" +
        std::to_string(l->local_address().port()) + " -servername mail.example.test -CAfile " +
        TestCerts::get().path("ca.crt") + " -verify_return_error -quiet -ign_eof 2>/dev/null";
    std::promise<std::string> out;
    auto fut = out.get_future();
    std::thread t([&] {
        std::string text;
        if (FILE* f = ::popen(cmd.c_str(), "r")) {
            char buf[4096];
            size_t n = 0;
            while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
                text.append(buf, n);
            }
            ::pclose(f);
        }
        out.set_value(text);
    });
    EXPECT_TRUE(run_until(
        *loop, [&] { return fut.wait_for(std::chrono::seconds(0)) == std::future_status::ready; },
        15000));
    t.join();
    EXPECT_EQ(fut.get(), "* OK IMAP4rev2 ready\r\n* BYE logging out\r\na1 OK LOGOUT completed\r\n");
    EXPECT_EQ(seen_version, "TLSv1.3");
    EXPECT_EQ(seen_sni, "mail.example.test");
}

}  // namespace
}  // namespace yubin::io
