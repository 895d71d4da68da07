#include "pop3d/message_format.h"

namespace yubin::pop3d {

namespace {

// Walks the message line by line (LF-terminated; the last line may lack one)
// and reports each line's content without its line end. Stops early when the
// visitor returns false.
template <typename Visit>
void for_each_line(std::string_view message, Visit&& visit) {
    size_t pos = 0;
    while (pos < message.size()) {
        size_t lf = message.find('\n', pos);
        size_t end = lf == std::string_view::npos ? message.size() : lf;
        size_t next = lf == std::string_view::npos ? message.size() : lf + 1;
        // "CRLF" and bare "LF" both end a line; the CR is not content.
        size_t content_end = end;
        if (lf != std::string_view::npos && end > pos && message[end - 1] == '\r') {
            content_end = end - 1;
        }
        if (!visit(message.substr(pos, content_end - pos))) {
            return;
        }
        pos = next;
    }
}

void append_line(std::string_view line, std::string& out) {
    if (!line.empty() && line.front() == '.') {
        out.push_back('.');
    }
    out.append(line);
    out.append("\r\n");
}

}  // namespace

uint64_t encoded_size(std::string_view message) {
    uint64_t total = 0;
    for_each_line(message, [&total](std::string_view line) {
        total += line.size() + 2 + ((!line.empty() && line.front() == '.') ? 1 : 0);
        return true;
    });
    return total;
}

void encode_message(std::string_view message, std::string& out) {
    out.reserve(out.size() + message.size() + message.size() / 32 + 2);
    for_each_line(message, [&out](std::string_view line) {
        append_line(line, out);
        return true;
    });
}

void encode_top(std::string_view message, uint64_t body_lines, std::string& out) {
    bool in_header = true;
    uint64_t sent_body = 0;
    for_each_line(message, [&](std::string_view line) {
        if (in_header) {
            append_line(line, out);
            if (line.empty()) {
                in_header = false;
            }
            return true;
        }
        if (sent_body >= body_lines) {
            return false;
        }
        append_line(line, out);
        ++sent_body;
        return true;
    });
}

}  // namespace yubin::pop3d
