#include "common/mime/mime_parser.h"

#include <algorithm>
#include <cstring>

#include "common/base/strings.h"
#include "common/mime/header_fields.h"

namespace yubin::mime {

const std::string* Part::param(std::string_view name) const {
    for (const Param& p : params) {
        if (iequals(p.name, name)) {
            return &p.value;
        }
    }
    return nullptr;
}

namespace {

void set_default_type(Part& part, bool default_rfc822) {
    part.content_type_given = false;
    part.params.clear();
    if (default_rfc822) {
        // RFC 2046 §5.1.5: in a digest, the default is message/rfc822.
        part.type = "message";
        part.subtype = "rfc822";
    } else {
        // RFC 2045 §5.2, also for a syntactically invalid Content-Type.
        part.type = "text";
        part.subtype = "plain";
        part.params.push_back(Param{"charset", "us-ascii", false, {}, {}, {}});
    }
}

void fill_envelope(Envelope& env, const std::vector<HeaderField>& fields) {
    auto set = [](std::optional<std::string>& slot, const HeaderField& f) {
        if (!slot) {
            slot = f.value;
        }
    };
    for (const HeaderField& f : fields) {
        const std::string_view n = f.name;
        if (iequals(n, "date")) {
            set(env.date, f);
        } else if (iequals(n, "subject")) {
            set(env.subject, f);
        } else if (iequals(n, "from")) {
            set(env.from, f);
        } else if (iequals(n, "sender")) {
            set(env.sender, f);
        } else if (iequals(n, "reply-to")) {
            set(env.reply_to, f);
        } else if (iequals(n, "to")) {
            set(env.to, f);
        } else if (iequals(n, "cc")) {
            set(env.cc, f);
        } else if (iequals(n, "bcc")) {
            set(env.bcc, f);
        } else if (iequals(n, "in-reply-to")) {
            set(env.in_reply_to, f);
        } else if (iequals(n, "message-id")) {
            set(env.message_id, f);
        }
    }
    auto addrs = [](const std::optional<std::string>& raw) {
        return raw ? parse_address_list(*raw) : std::vector<Address>{};
    };
    env.from_addrs = addrs(env.from);
    env.sender_addrs = addrs(env.sender);
    env.reply_to_addrs = addrs(env.reply_to);
    env.to_addrs = addrs(env.to);
    env.cc_addrs = addrs(env.cc);
    env.bcc_addrs = addrs(env.bcc);
}

}  // namespace

MimeParser::MimeParser(ParserLimits limits) : limits_(limits) {
    limits_.max_depth = std::clamp<uint32_t>(limits_.max_depth, 1, kMaxTreeDepth);
    if (limits_.max_parts == 0) {
        limits_.max_parts = 1;
    }
    // "--" + boundary + "--" is all a boundary test ever looks at.
    prefix_cap_ = limits_.max_boundary_length + 4;
    open_part(-1, 0, false);
}

bool MimeParser::open_part(int32_t parent, uint64_t offset, bool default_rfc822) {
    if (tree_.parts.size() >= limits_.max_parts) {
        return false;
    }
    auto index = static_cast<uint32_t>(tree_.parts.size());
    Part part;
    part.parent = parent;
    part.header_offset = offset;
    set_default_type(part, default_rfc822);
    tree_.parts.push_back(std::move(part));
    if (parent >= 0) {
        tree_.parts[static_cast<size_t>(parent)].children.push_back(index);
    }
    Open open;
    open.index = index;
    open.header_lf_start = lf_count_;
    open.header_bare_start = bare_lf_count_;
    stack_.push_back(std::move(open));
    return true;
}

void MimeParser::feed(std::string_view chunk) {
    if (finished_) {
        return;
    }
    while (!chunk.empty()) {
        const void* nl = std::memchr(chunk.data(), '\n', chunk.size());
        size_t n = nl == nullptr
                       ? chunk.size()
                       : static_cast<size_t>(static_cast<const char*>(nl) - chunk.data()) + 1;
        append_to_line(chunk.substr(0, n));
        chunk.remove_prefix(n);
        if (nl != nullptr) {
            end_line();
        }
    }
}

void MimeParser::append_to_line(std::string_view segment) {
    Open& top = stack_.back();
    if (line_len_ == 0) {
        line_start_ = offset_;
        line_prefix_.clear();
        header_mark_ = top.header.size();
    }
    if (line_prefix_.size() < prefix_cap_) {
        line_prefix_.append(segment.substr(0, prefix_cap_ - line_prefix_.size()));
    }
    Part& part = tree_.parts[top.index];
    if (top.in_header) {
        size_t room =
            limits_.max_header_size - std::min(limits_.max_header_size, top.header.size());
        room = std::min(room, limits_.max_total_header_size -
                                  std::min(limits_.max_total_header_size, header_total_));
        if (segment.size() > room) {
            part.flags |= kFlagHeaderTruncated;
        }
        size_t kept = std::min(room, segment.size());
        top.header.append(segment.substr(0, kept));
        header_total_ += kept;
    }
    if (std::memchr(segment.data(), '\0', segment.size()) != nullptr) {
        part.flags |= kFlagHasNul;
    }
    if (segment.size() >= 2) {
        byte_before_last_ = segment[segment.size() - 2];
    } else {
        byte_before_last_ = last_byte_;
    }
    last_byte_ = segment.back();
    offset_ += segment.size();
    line_len_ += segment.size();
}

int MimeParser::match_boundary(bool* close) const {
    if (line_prefix_.size() < 3 || line_prefix_[0] != '-' || line_prefix_[1] != '-') {
        return -1;
    }
    // Like Dovecot: a line matches when it starts with "--boundary"; among
    // several matching boundaries the longest wins, and among equal ones the
    // innermost (RFC 2046 §5.1.2 lets nested parts reuse an outer boundary
    // only by mistake, but then the inner one is meant).
    int best = -1;
    size_t best_len = 0;
    for (size_t k = stack_.size(); k-- > 0;) {
        const Open& o = stack_[k];
        if (o.boundary.empty() || o.epilogue) {
            continue;
        }
        if (o.boundary.size() <= line_prefix_.size() &&
            line_prefix_.compare(0, o.boundary.size(), o.boundary) == 0 &&
            o.boundary.size() > best_len) {
            best = static_cast<int>(k);
            best_len = o.boundary.size();
        }
    }
    if (best >= 0) {
        std::string_view rest = std::string_view(line_prefix_).substr(best_len);
        *close = rest.size() >= 2 && rest[0] == '-' && rest[1] == '-';
    }
    return best;
}

void MimeParser::end_line() {
    const bool has_lf = last_byte_ == '\n';
    const bool has_cr = has_lf && line_len_ >= 2 && byte_before_last_ == '\r';
    const uint64_t term_len = has_lf ? (has_cr ? 2 : 1) : 0;
    const uint64_t lf_before = lf_count_;
    const uint64_t bare_before = bare_lf_count_;
    if (has_lf) {
        ++lf_count_;
        if (!has_cr) {
            ++bare_lf_count_;
        }
    }
    const uint64_t line_end = line_start_ + line_len_;

    bool close = false;
    int level = match_boundary(&close);
    if (level >= 0) {
        // RFC 2046 §5.1.1: the line break before the boundary belongs to it.
        uint64_t end = line_start_ - prev_term_len_;
        uint64_t lf_at_end = lf_before - (prev_term_len_ > 0 ? 1 : 0);
        uint64_t bare_at_end = bare_before - (prev_term_len_ == 1 ? 1 : 0);
        Open& top = stack_.back();
        if (top.in_header && top.header.size() > header_mark_) {
            header_total_ -= top.header.size() - header_mark_;
            top.header.resize(header_mark_);
        }
        auto keep = static_cast<size_t>(level);
        close_above(keep, end, lf_at_end, bare_at_end);
        Open& multipart = stack_[keep];
        if (close) {
            multipart.epilogue = true;
        } else if (!open_part(static_cast<int32_t>(multipart.index), line_end, multipart.digest)) {
            // Part limit: the rest of this multipart is an opaque body.
            tree_.parts[multipart.index].flags |= kFlagPartLimit;
            stack_[keep].boundary.clear();
        }
    } else {
        Open& top = stack_.back();
        if (top.in_header) {
            // Only "CRLF" or "LF" ends a header (RFC 5322 §2.1); a line of
            // spaces is a (broken) continuation, as in Dovecot.
            if (has_lf && line_len_ == term_len) {
                close_header(top, line_end, lf_count_, bare_lf_count_, true);
                start_body(stack_.back());
            }
        }
    }
    prev_term_len_ = term_len;
    line_len_ = 0;
}

void MimeParser::close_header(Open& open, uint64_t end, uint64_t lf_at_end, uint64_t bare_at_end,
                              bool ended_by_empty_line) {
    Part& part = tree_.parts[open.index];
    if (end > part.header_offset) {
        part.header_size = end - part.header_offset;
        part.header_lines = lf_at_end - open.header_lf_start;
        part.header_bare_lf = bare_at_end - open.header_bare_start;
    } else {
        part.header_offset = end;  // see close_above()
        part.header_size = 0;
    }
    if (!ended_by_empty_line) {
        part.flags |= kFlagNoHeaderEnd;
    }
    part.body_offset = part.header_offset + part.header_size;
    open.in_header = false;
    open.body_lf_start = lf_at_end;
    open.body_bare_start = bare_at_end;
    apply_header(open);
    std::string().swap(open.header);  // free it: only one header is held at a time
}

void MimeParser::apply_header(Open& open) {
    Part& part = tree_.parts[open.index];
    std::vector<HeaderField> fields = split_header_fields(open.header);
    for (char c : open.header) {
        if (static_cast<unsigned char>(c) >= 0x80) {
            part.flags |= kFlagEightBitHeader;
            break;
        }
    }
    bool seen_type = false;
    bool seen_disposition = false;
    for (const HeaderField& f : fields) {
        const std::string_view n = f.name;
        if (n.empty() || !istarts_with(n, "content-")) {
            continue;
        }
        if (iequals(n, "content-type")) {
            if (seen_type) {
                continue;
            }
            seen_type = true;
            if (auto ct = parse_content_type(f.value)) {
                part.type = std::move(ct->type);
                part.subtype = std::move(ct->subtype);
                part.params = std::move(ct->params);
                part.content_type_given = true;
            }
        } else if (iequals(n, "content-disposition")) {
            if (seen_disposition) {
                continue;
            }
            seen_disposition = true;
            if (auto cd = parse_content_disposition(f.value)) {
                part.disposition = std::move(cd->type);
                part.disposition_params = std::move(cd->params);
            }
        } else if (iequals(n, "content-transfer-encoding")) {
            if (!part.transfer_encoding) {
                part.transfer_encoding = parse_token(f.value);
            }
        } else if (iequals(n, "content-id")) {
            if (!part.content_id) {
                part.content_id = f.value;
            }
        } else if (iequals(n, "content-description")) {
            if (!part.description) {
                part.description = f.value;
            }
        } else if (iequals(n, "content-language")) {
            if (part.language.empty()) {
                part.language = parse_language(f.value);
            }
        } else if (iequals(n, "content-location")) {
            if (!part.location) {
                part.location = f.value;
            }
        } else if (iequals(n, "content-md5")) {
            if (!part.md5) {
                part.md5 = f.value;
            }
        }
    }
    // The root and the child of a message/* part are messages: keep their
    // envelope fields.
    bool is_message_root =
        part.parent < 0 || tree_.parts[static_cast<size_t>(part.parent)].is_message();
    if (is_message_root) {
        Envelope env;
        fill_envelope(env, fields);
        part.envelope = std::move(env);
    }
}

void MimeParser::start_body(Open& open) {
    Part& part = tree_.parts[open.index];
    const bool can_descend = stack_.size() < limits_.max_depth;
    if (part.is_multipart()) {
        const std::string* boundary = part.param("boundary");
        if (boundary == nullptr || boundary->empty()) {
            part.flags |= kFlagMissingBoundary;
        } else if (boundary->size() > limits_.max_boundary_length) {
            part.flags |= kFlagBoundaryTooLong;
        } else if (!can_descend) {
            part.flags |= kFlagDepthLimit;
        } else {
            open.boundary = "--" + *boundary;
            open.digest = part.subtype == "digest";
        }
        return;
    }
    if (part.is_message()) {
        // An encoded message/rfc822 body is not a message we can read in
        // one pass (RFC 2046 §5.2.1 forbids encodings other than 7bit,
        // 8bit and binary); keep it opaque, as Dovecot does.
        const auto& cte = part.transfer_encoding;
        bool identity = !cte || *cte == "7bit" || *cte == "8bit" || *cte == "binary";
        if (!identity) {
            return;
        }
        if (!can_descend) {
            part.flags |= kFlagDepthLimit;
            return;
        }
        uint64_t body_offset = part.body_offset;
        int32_t parent = static_cast<int32_t>(open.index);
        if (!open_part(parent, body_offset, false)) {
            // `part` may dangle after push_back in open_part: index again.
            tree_.parts[static_cast<size_t>(parent)].flags |= kFlagPartLimit;
        }
    }
}

void MimeParser::close_above(size_t keep, uint64_t end, uint64_t lf_at_end, uint64_t bare_at_end) {
    while (stack_.size() > keep + 1) {
        Open& open = stack_.back();
        if (open.in_header) {
            close_header(open, end, lf_at_end, bare_at_end, false);
        }
        Part& part = tree_.parts[open.index];
        // A part never reaches past the point where its enclosing part ends.
        // When the boundary line follows at once, the line break before it
        // belongs to the boundary (RFC 2046 §5.1.1) even if that break ended
        // the header's empty line, or the previous boundary line; the part
        // then shrinks to end there.
        if (end < part.header_offset) {
            part.header_offset = end;
            part.header_size = 0;
            part.header_lines = 0;
            part.header_bare_lf = 0;
            part.body_offset = end;
        } else if (end < part.body_offset) {
            part.header_size = end - part.header_offset;
            part.header_lines = lf_at_end - open.header_lf_start;
            part.header_bare_lf = bare_at_end - open.header_bare_start;
            part.body_offset = end;
        }
        part.body_size = end - part.body_offset;
        if (part.body_size > 0) {
            part.body_lines = lf_at_end - open.body_lf_start;
            part.body_bare_lf = bare_at_end - open.body_bare_start;
        } else {
            part.body_lines = 0;
            part.body_bare_lf = 0;
        }
        if (!open.boundary.empty() && !open.epilogue) {
            part.flags |= kFlagMissingFinalBoundary;
        }
        if (part.header_bare_lf > 0 || part.body_bare_lf > 0) {
            part.flags |= kFlagBareLf;
        }
        stack_.pop_back();
    }
}

PartTree MimeParser::finish() {
    if (finished_) {
        return {};
    }
    if (line_len_ > 0) {
        end_line();
    }
    // Everything still open ends with the message. close_above(keep) keeps
    // stack_[keep]; close the root too by closing above a virtual level.
    stack_.insert(stack_.begin(), Open{});
    close_above(0, offset_, lf_count_, bare_lf_count_);
    stack_.clear();
    finished_ = true;
    tree_.message_size = offset_;
    tree_.message_lines = lf_count_;
    tree_.limits_hit = 0;
    for (const Part& p : tree_.parts) {
        tree_.limits_hit |= p.flags;
    }
    return std::move(tree_);
}

size_t MimeParser::buffered_bytes() const {
    size_t n = line_prefix_.size();
    for (const Open& open : stack_) {
        n += open.header.size() + open.boundary.size();
    }
    return n;
}

PartTree parse_message(std::string_view message, ParserLimits limits) {
    MimeParser parser(limits);
    parser.feed(message);
    return parser.finish();
}

}  // namespace yubin::mime
