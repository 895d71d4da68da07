#include "cli/password_input.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

namespace yubin::cli {
namespace {

constexpr size_t kMaxPassword = 255;  // SASL PLAIN's limit in common/auth

Result<std::string> read_line(int fd) {
    std::string line;
    char c;
    for (;;) {
        ssize_t n = ::read(fd, &c, 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0 || c == '\n') {
            if (n <= 0 && line.empty()) {
                return fail(ErrorCode::Invalid, "no password given on standard input");
            }
            break;
        }
        line += c;
        if (line.size() > kMaxPassword + 1) {
            return fail(ErrorCode::Invalid, "password longer than 255 bytes");
        }
    }
    if (!line.empty() && line.back() == '\r') {
        line.pop_back();
    }
    return line;
}

Result<std::string> read_from_tty(const char* prompt) {
    int tty = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (tty < 0) {
        return fail(ErrorCode::Io, "cannot open /dev/tty to ask for the password");
    }
    termios saved{};
    ::tcgetattr(tty, &saved);
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(tty, TCSAFLUSH, &quiet);
    (void)!::write(tty, prompt, std::char_traits<char>::length(prompt));
    auto line = read_line(tty);
    ::tcsetattr(tty, TCSAFLUSH, &saved);
    (void)!::write(tty, "\n", 1);
    ::close(tty);
    return line;
}

}  // namespace

Result<std::string> read_password_once(const char* prompt) {
    if (::isatty(STDIN_FILENO)) {
        return read_from_tty(prompt);
    }
    return read_line(STDIN_FILENO);
}

Result<std::string> read_new_password() {
    if (!::isatty(STDIN_FILENO)) {
        auto pw = read_line(STDIN_FILENO);
        if (pw && pw->empty()) {
            return fail(ErrorCode::Invalid, "empty password");
        }
        return pw;
    }
    auto first = read_from_tty("New password: ");
    if (!first) {
        return first;
    }
    if (first->empty()) {
        return fail(ErrorCode::Invalid, "empty password");
    }
    auto second = read_from_tty("Repeat password: ");
    if (!second) {
        return second;
    }
    if (*first != *second) {
        return fail(ErrorCode::Invalid, "the passwords differ");
    }
    return first;
}

std::string random_password(size_t length) {
    // No 0/O, 1/l/I: the quick start prints it for people to type.
    static constexpr char kAlphabet[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    constexpr size_t kSize = sizeof(kAlphabet) - 1;
    std::string out;
    while (out.size() < length) {
        unsigned char byte;
        if (RAND_bytes(&byte, 1) != 1) {
            continue;
        }
        // Reject bytes that would bias the modulo.
        if (byte >= 256 - (256 % kSize)) {
            continue;
        }
        out += kAlphabet[byte % kSize];
    }
    return out;
}

}  // namespace yubin::cli
