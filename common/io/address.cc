#include "common/io/address.h"

#include <arpa/inet.h>

#include <cstring>

#include "common/base/strings.h"

namespace yubin::io {

Result<HostPort> split_host_port(std::string_view text) {
    HostPort out;
    std::string_view port_text;
    if (!text.empty() && text.front() == '[') {
        size_t close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            return fail(ErrorCode::Invalid,
                        "expected [address]:port, got '" + std::string(text) + "'");
        }
        out.host = std::string(text.substr(1, close - 1));
        port_text = text.substr(close + 2);
    } else {
        size_t colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon) {
            return fail(ErrorCode::Invalid,
                        "expected host:port (IPv6 in brackets), got '" + std::string(text) + "'");
        }
        out.host = std::string(text.substr(0, colon));
        port_text = text.substr(colon + 1);
    }
    auto port = parse_u64(port_text);
    if (!port || *port > 65535 || out.host.empty()) {
        return fail(ErrorCode::Invalid, "bad host or port in '" + std::string(text) + "'");
    }
    out.port = static_cast<uint16_t>(*port);
    return out;
}

Result<SocketAddress> SocketAddress::from_ip(std::string_view ip, uint16_t port) {
    SocketAddress a;
    std::string host(ip);
    auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage_);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
    if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        return a;
    }
    a.storage_ = {};
    if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        return a;
    }
    return fail(ErrorCode::Invalid, "not a numeric IP address: '" + host + "'");
}

Result<SocketAddress> SocketAddress::parse(std::string_view text) {
    auto hp = split_host_port(text);
    if (!hp) {
        return fail(hp.error());
    }
    return from_ip(hp->host, hp->port);
}

SocketAddress SocketAddress::from_sockaddr(const sockaddr* sa) {
    SocketAddress a;
    if (sa == nullptr) {
        return a;
    }
    if (sa->sa_family == AF_INET) {
        std::memcpy(&a.storage_, sa, sizeof(sockaddr_in));
    } else if (sa->sa_family == AF_INET6) {
        std::memcpy(&a.storage_, sa, sizeof(sockaddr_in6));
    }
    return a;
}

socklen_t SocketAddress::raw_size() const {
    return family() == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

std::string SocketAddress::ip() const {
    char buf[INET6_ADDRSTRLEN] = {};
    if (family() == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf,
                  sizeof buf);
    } else if (family() == AF_INET6) {
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf,
                  sizeof buf);
    }
    return buf;
}

uint16_t SocketAddress::port() const {
    if (family() == AF_INET) {
        return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
    }
    if (family() == AF_INET6) {
        return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
    }
    return 0;
}

std::string SocketAddress::to_string() const {
    if (family() == AF_INET6) {
        return "[" + ip() + "]:" + std::to_string(port());
    }
    return ip() + ":" + std::to_string(port());
}

}  // namespace yubin::io
