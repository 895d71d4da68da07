// Socket addresses as values: parsing "host:port" listen/connect strings and
// printing peer addresses for logs and Received headers.
// Accepted forms: "0.0.0.0:25", "127.0.0.1:0", "[::]:25", "[::1]:143".
// Plain data; any thread.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/base/error.h"

namespace yubin::io {

struct HostPort {
    std::string host;  // without brackets
    uint16_t port = 0;
};
// Splits "host:port" / "[v6]:port"; the host may be a name (for connect).
Result<HostPort> split_host_port(std::string_view text);

class SocketAddress {
public:
    SocketAddress() = default;
    // Numeric addresses only: "1.2.3.4:25", "[::1]:25".
    static Result<SocketAddress> parse(std::string_view text);
    static Result<SocketAddress> from_ip(std::string_view ip, uint16_t port);
    static SocketAddress from_sockaddr(const sockaddr* sa);

    int family() const { return storage_.ss_family; }
    bool valid() const { return family() == AF_INET || family() == AF_INET6; }
    std::string ip() const;  // "192.0.2.1", "2001:db8::1"
    uint16_t port() const;
    std::string to_string() const;  // "192.0.2.1:25", "[2001:db8::1]:25"
    const sockaddr* raw() const { return reinterpret_cast<const sockaddr*>(&storage_); }
    socklen_t raw_size() const;

private:
    sockaddr_storage storage_{};
};

}  // namespace yubin::io
