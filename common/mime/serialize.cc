#include "common/mime/serialize.h"

#include <zlib.h>

#include <fmt/format.h>

#include "common/mime/encoded_words.h"

namespace yubin::mime {
namespace {

constexpr std::string_view kMagic = "YMT";
// A part takes at least this many bytes when serialized (its fixed varints,
// one byte each at minimum), so a count can be checked against what is left.
constexpr size_t kMinPartBytes = 20;
constexpr size_t kMinStringBytes = 1;

// ---- writing --------------------------------------------------------------

class Writer {
  public:
    void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
    void varint(uint64_t v) {
        while (v >= 0x80) {
            out_.push_back(static_cast<char>((v & 0x7F) | 0x80));
            v >>= 7;
        }
        out_.push_back(static_cast<char>(v));
    }
    void str(std::string_view s) {
        varint(s.size());
        out_.append(s);
    }
    void opt(const std::optional<std::string>& s) {
        u8(s ? 1 : 0);
        if (s) {
            str(*s);
        }
    }
    void params(const std::vector<Param>& ps) {
        varint(ps.size());
        for (const Param& p : ps) {
            str(p.name);
            str(p.value);
            u8(p.extended ? 1 : 0);
            if (p.extended) {
                str(p.charset);
                str(p.language);
                str(p.rfc2231);
            }
        }
    }
    void addresses(const std::vector<Address>& as) {
        varint(as.size());
        for (const Address& a : as) {
            u8(static_cast<uint8_t>(a.kind));
            str(a.name);
            str(a.route);
            str(a.mailbox);
            str(a.host);
        }
    }
    std::string& out() { return out_; }

  private:
    std::string out_;
};

// ---- reading --------------------------------------------------------------

class Reader {
  public:
    explicit Reader(std::string_view in) : in_(in) {}

    bool ok() const { return ok_; }
    size_t left() const { return in_.size() - pos_; }

    uint8_t u8() {
        if (!ok_ || pos_ >= in_.size()) {
            ok_ = false;
            return 0;
        }
        return static_cast<uint8_t>(in_[pos_++]);
    }
    uint64_t varint() {
        uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            uint8_t b = u8();
            if (!ok_) {
                return 0;
            }
            if (shift == 63 && b > 1) {
                ok_ = false;  // would overflow 64 bits
                return 0;
            }
            v |= static_cast<uint64_t>(b & 0x7F) << shift;
            if ((b & 0x80) == 0) {
                return v;
            }
        }
        ok_ = false;
        return 0;
    }
    // A count of items, each at least `min_bytes` long: rejected if the
    // bytes left could not hold them (so no huge allocation on corrupt data).
    size_t count(size_t min_bytes) {
        uint64_t n = varint();
        if (!ok_ || n > left() / min_bytes) {
            ok_ = false;
            return 0;
        }
        return static_cast<size_t>(n);
    }
    std::string str() {
        uint64_t n = varint();
        if (!ok_ || n > left()) {
            ok_ = false;
            return {};
        }
        std::string s(in_.substr(pos_, static_cast<size_t>(n)));
        pos_ += static_cast<size_t>(n);
        return s;
    }
    bool flag() {
        uint8_t b = u8();
        if (b > 1) {
            ok_ = false;
        }
        return b == 1;
    }
    std::optional<std::string> opt() {
        if (!flag()) {
            return std::nullopt;
        }
        return str();
    }
    std::vector<Param> params() {
        std::vector<Param> ps(count(3 * kMinStringBytes));
        for (Param& p : ps) {
            p.name = str();
            p.value = str();
            p.extended = flag();
            if (p.extended) {
                p.charset = str();
                p.language = str();
                p.rfc2231 = str();
            }
        }
        return ps;
    }
    std::vector<Address> addresses() {
        std::vector<Address> as(count(1 + 4 * kMinStringBytes));
        for (Address& a : as) {
            uint8_t kind = u8();
            if (kind > 2) {
                ok_ = false;
            }
            a.kind = static_cast<Address::Kind>(kind);
            a.name = str();
            a.route = str();
            a.mailbox = str();
            a.host = str();
        }
        return as;
    }

  private:
    std::string_view in_;
    size_t pos_ = 0;
    bool ok_ = true;
};

uint32_t crc_of(std::string_view bytes) {
    uLong crc = crc32(0L, Z_NULL, 0);
    // zlib takes uInt lengths: feed in slices for inputs over 4 GiB.
    while (!bytes.empty()) {
        size_t n = std::min<size_t>(bytes.size(), 1u << 30);
        crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(n));
        bytes.remove_prefix(n);
    }
    return static_cast<uint32_t>(crc);
}

void write_envelope(Writer& w, const Envelope& e) {
    w.opt(e.date);
    w.opt(e.subject);
    w.opt(e.from);
    w.opt(e.sender);
    w.opt(e.reply_to);
    w.opt(e.to);
    w.opt(e.cc);
    w.opt(e.bcc);
    w.opt(e.in_reply_to);
    w.opt(e.message_id);
    w.addresses(e.from_addrs);
    w.addresses(e.sender_addrs);
    w.addresses(e.reply_to_addrs);
    w.addresses(e.to_addrs);
    w.addresses(e.cc_addrs);
    w.addresses(e.bcc_addrs);
}

Envelope read_envelope(Reader& r) {
    Envelope e;
    e.date = r.opt();
    e.subject = r.opt();
    e.from = r.opt();
    e.sender = r.opt();
    e.reply_to = r.opt();
    e.to = r.opt();
    e.cc = r.opt();
    e.bcc = r.opt();
    e.in_reply_to = r.opt();
    e.message_id = r.opt();
    e.from_addrs = r.addresses();
    e.sender_addrs = r.addresses();
    e.reply_to_addrs = r.addresses();
    e.to_addrs = r.addresses();
    e.cc_addrs = r.addresses();
    e.bcc_addrs = r.addresses();
    return e;
}

// ---- JSON -----------------------------------------------------------------

// A tiny pretty printer with a fixed key order: goldens must not change when
// nothing changed, and no JSON library is among our dependencies (a few
// dozen lines here beat adding one for a debugging view).
class Json {
  public:
    void open(char c) {
        out_.push_back(c);
        ++depth_;
        first_ = true;
    }
    void close(char c) {
        --depth_;
        if (!first_) {
            newline();
        }
        out_.push_back(c);
        first_ = false;
    }
    void key(std::string_view k) {
        item();
        string(k);
        out_.append(": ");
    }
    void item() {
        if (!first_) {
            out_.push_back(',');
        }
        newline();
        first_ = false;
    }
    void string(std::string_view s) {
        // Bytes that are not valid UTF-8 are shown as U+FFFD: the view is
        // for humans; the offsets say where the exact bytes are.
        std::string clean = sanitize_utf8(s);
        out_.push_back('"');
        for (char c : clean) {
            auto u = static_cast<unsigned char>(c);
            if (c == '"' || c == '\\') {
                out_.push_back('\\');
                out_.push_back(c);
            } else if (u < 0x20 || u == 0x7F) {
                out_.append(fmt::format("\\u{:04x}", u));
            } else {
                out_.push_back(c);
            }
        }
        out_.push_back('"');
    }
    void raw(std::string_view s) { out_.append(s); }
    std::string take() {
        out_.push_back('\n');
        return std::move(out_);
    }

  private:
    void newline() {
        out_.push_back('\n');
        out_.append(static_cast<size_t>(depth_) * 2, ' ');
    }

    std::string out_;
    int depth_ = 0;
    bool first_ = true;
};

void json_num(Json& j, std::string_view k, uint64_t v) {
    j.key(k);
    j.raw(fmt::format("{}", v));
}

void json_str(Json& j, std::string_view k, std::string_view v) {
    j.key(k);
    j.string(v);
}

void json_opt(Json& j, std::string_view k, const std::optional<std::string>& v) {
    j.key(k);
    if (v) {
        j.string(*v);
    } else {
        j.raw("null");
    }
}

void json_params(Json& j, std::string_view k, const std::vector<Param>& ps) {
    j.key(k);
    j.open('[');
    for (const Param& p : ps) {
        j.item();
        j.open('{');
        json_str(j, "name", p.name);
        json_str(j, "value", p.value);
        if (p.extended) {
            json_str(j, "charset", p.charset);
            json_str(j, "language", p.language);
            json_str(j, "rfc2231", p.rfc2231);
        }
        j.close('}');
    }
    j.close(']');
}

void json_addresses(Json& j, std::string_view k, const std::vector<Address>& as) {
    j.key(k);
    j.open('[');
    for (const Address& a : as) {
        j.item();
        j.open('{');
        switch (a.kind) {
            case Address::Kind::Mailbox:
                json_str(j, "name", a.name);
                json_str(j, "route", a.route);
                json_str(j, "mailbox", a.mailbox);
                json_str(j, "host", a.host);
                break;
            case Address::Kind::GroupStart:
                json_str(j, "group_start", a.mailbox);
                break;
            case Address::Kind::GroupEnd:
                j.key("group_end");
                j.raw("true");
                break;
        }
        j.close('}');
    }
    j.close(']');
}

std::string flag_names(uint32_t flags) {
    static constexpr std::pair<uint32_t, std::string_view> kNames[] = {
        {kFlagHeaderTruncated, "header_truncated"},
        {kFlagDepthLimit, "depth_limit"},
        {kFlagPartLimit, "part_limit"},
        {kFlagBoundaryTooLong, "boundary_too_long"},
        {kFlagMissingBoundary, "missing_boundary"},
        {kFlagMissingFinalBoundary, "missing_final_boundary"},
        {kFlagNoHeaderEnd, "no_header_end"},
        {kFlagHasNul, "has_nul"},
        {kFlagBareLf, "bare_lf"},
        {kFlagEightBitHeader, "eight_bit_header"},
    };
    std::string out;
    for (const auto& [bit, name] : kNames) {
        if ((flags & bit) != 0) {
            if (!out.empty()) {
                out.push_back(' ');
            }
            out.append(name);
        }
    }
    return out;
}

void json_part(Json& j, const PartTree& tree, uint32_t index) {
    const Part& p = tree.parts[index];
    j.open('{');
    json_num(j, "index", index);
    json_str(j, "content_type", p.type + "/" + p.subtype);
    j.key("content_type_given");
    j.raw(p.content_type_given ? "true" : "false");
    json_params(j, "params", p.params);
    json_num(j, "header_offset", p.header_offset);
    json_num(j, "header_size", p.header_size);
    json_num(j, "header_lines", p.header_lines);
    json_num(j, "header_bare_lf", p.header_bare_lf);
    json_num(j, "body_offset", p.body_offset);
    json_num(j, "body_size", p.body_size);
    json_num(j, "body_lines", p.body_lines);
    json_num(j, "body_bare_lf", p.body_bare_lf);
    json_opt(j, "disposition", p.disposition);
    json_params(j, "disposition_params", p.disposition_params);
    j.key("language");
    j.open('[');
    for (const std::string& l : p.language) {
        j.item();
        j.string(l);
    }
    j.close(']');
    json_opt(j, "location", p.location);
    json_opt(j, "content_id", p.content_id);
    json_opt(j, "description", p.description);
    json_opt(j, "transfer_encoding", p.transfer_encoding);
    json_opt(j, "md5", p.md5);
    json_str(j, "flags", flag_names(p.flags));
    if (p.envelope) {
        const Envelope& e = *p.envelope;
        j.key("envelope");
        j.open('{');
        json_opt(j, "date", e.date);
        json_opt(j, "subject", e.subject);
        json_opt(j, "from", e.from);
        json_opt(j, "sender", e.sender);
        json_opt(j, "reply_to", e.reply_to);
        json_opt(j, "to", e.to);
        json_opt(j, "cc", e.cc);
        json_opt(j, "bcc", e.bcc);
        json_opt(j, "in_reply_to", e.in_reply_to);
        json_opt(j, "message_id", e.message_id);
        json_addresses(j, "from_addrs", e.from_addrs);
        json_addresses(j, "sender_addrs", e.sender_addrs);
        json_addresses(j, "reply_to_addrs", e.reply_to_addrs);
        json_addresses(j, "to_addrs", e.to_addrs);
        json_addresses(j, "cc_addrs", e.cc_addrs);
        json_addresses(j, "bcc_addrs", e.bcc_addrs);
        j.close('}');
    }
    j.key("children");
    j.open('[');
    for (uint32_t child : p.children) {
        j.item();
        json_part(j, tree, child);
    }
    j.close(']');
    j.close('}');
}

}  // namespace

std::string serialize(const PartTree& tree) {
    Writer w;
    w.out().append(kMagic);
    w.u8(kSerializeVersion);
    w.varint(tree.message_size);
    w.varint(tree.message_lines);
    w.varint(tree.limits_hit);
    w.varint(tree.parts.size());
    for (const Part& p : tree.parts) {
        w.varint(static_cast<uint64_t>(static_cast<int64_t>(p.parent) + 1));
        w.varint(p.header_offset);
        w.varint(p.header_size);
        w.varint(p.header_lines);
        w.varint(p.header_bare_lf);
        w.varint(p.body_offset);
        w.varint(p.body_size);
        w.varint(p.body_lines);
        w.varint(p.body_bare_lf);
        w.varint(p.flags);
        w.str(p.type);
        w.str(p.subtype);
        w.u8(p.content_type_given ? 1 : 0);
        w.params(p.params);
        w.opt(p.disposition);
        w.params(p.disposition_params);
        w.varint(p.language.size());
        for (const std::string& l : p.language) {
            w.str(l);
        }
        w.opt(p.location);
        w.opt(p.content_id);
        w.opt(p.description);
        w.opt(p.transfer_encoding);
        w.opt(p.md5);
        w.u8(p.envelope ? 1 : 0);
        if (p.envelope) {
            write_envelope(w, *p.envelope);
        }
    }
    uint32_t crc = crc_of(w.out());
    for (int k = 0; k < 4; ++k) {
        w.u8(static_cast<uint8_t>(crc >> (8 * k)));
    }
    return std::move(w.out());
}

Result<PartTree> deserialize(std::string_view bytes) {
    if (bytes.size() < kMagic.size() + 1 + 4 || bytes.substr(0, kMagic.size()) != kMagic) {
        return fail(ErrorCode::Invalid, "mime structure: bad magic");
    }
    auto version = static_cast<uint8_t>(bytes[kMagic.size()]);
    if (version != kSerializeVersion) {
        return fail(ErrorCode::Invalid,
                    fmt::format("mime structure: unsupported version {}", version));
    }
    std::string_view body = bytes.substr(0, bytes.size() - 4);
    uint32_t stored = 0;
    for (int k = 0; k < 4; ++k) {
        stored |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[body.size() + k])) << (8 * k);
    }
    if (crc_of(body) != stored) {
        return fail(ErrorCode::Invalid, "mime structure: checksum mismatch");
    }
    Reader r(body.substr(kMagic.size() + 1));
    PartTree tree;
    tree.message_size = r.varint();
    tree.message_lines = r.varint();
    uint64_t limits = r.varint();
    tree.limits_hit = static_cast<uint32_t>(limits);
    size_t count = r.count(kMinPartBytes);
    if (!r.ok() || limits > UINT32_MAX) {
        return fail(ErrorCode::Invalid, "mime structure: bad header");
    }
    tree.parts.resize(count);
    for (size_t i = 0; i < count && r.ok(); ++i) {
        Part& p = tree.parts[i];
        uint64_t parent = r.varint();
        if (parent > i) {
            return fail(ErrorCode::Invalid, "mime structure: parent after child");
        }
        p.parent = static_cast<int32_t>(parent) - 1;
        p.header_offset = r.varint();
        p.header_size = r.varint();
        p.header_lines = r.varint();
        p.header_bare_lf = r.varint();
        p.body_offset = r.varint();
        p.body_size = r.varint();
        p.body_lines = r.varint();
        p.body_bare_lf = r.varint();
        uint64_t flags = r.varint();
        if (flags > UINT32_MAX) {
            return fail(ErrorCode::Invalid, "mime structure: bad flags");
        }
        p.flags = static_cast<uint32_t>(flags);
        p.type = r.str();
        p.subtype = r.str();
        p.content_type_given = r.flag();
        p.params = r.params();
        p.disposition = r.opt();
        p.disposition_params = r.params();
        p.language.resize(r.count(kMinStringBytes));
        for (std::string& l : p.language) {
            l = r.str();
        }
        p.location = r.opt();
        p.content_id = r.opt();
        p.description = r.opt();
        p.transfer_encoding = r.opt();
        p.md5 = r.opt();
        if (r.flag()) {
            p.envelope = read_envelope(r);
        }
        if (p.parent >= 0) {
            tree.parts[static_cast<size_t>(p.parent)].children.push_back(static_cast<uint32_t>(i));
        }
    }
    if (!r.ok()) {
        return fail(ErrorCode::Invalid, "mime structure: truncated");
    }
    if (r.left() != 0) {
        return fail(ErrorCode::Invalid, "mime structure: trailing bytes");
    }
    if (auto ok = check_tree(tree); !ok) {
        return fail(ok.error());
    }
    return tree;
}

Result<void> check_tree(const PartTree& tree) {
    auto bad = [](std::string what) { return fail(ErrorCode::Invalid, "mime structure: " + what); };
    if (tree.parts.empty()) {
        return bad("no parts");
    }
    const uint64_t size = tree.message_size;
    // a + b <= limit without overflow.
    auto within = [](uint64_t a, uint64_t b, uint64_t limit) {
        return a <= limit && b <= limit - a;
    };
    uint32_t flags = 0;
    std::vector<uint32_t> depth(tree.parts.size(), 1);
    for (size_t i = 0; i < tree.parts.size(); ++i) {
        const Part& p = tree.parts[i];
        flags |= p.flags;
        if ((i == 0) != (p.parent < 0)) {
            return bad(fmt::format("part {}: only the root has no parent", i));
        }
        if (p.parent >= 0 && static_cast<size_t>(p.parent) >= i) {
            return bad(fmt::format("part {}: parent not before it", i));
        }
        if (p.parent >= 0) {
            depth[i] = depth[static_cast<size_t>(p.parent)] + 1;
            if (depth[i] > kMaxTreeDepth) {
                return bad(fmt::format("part {}: nested too deep", i));
            }
        }
        if (!within(p.header_offset, p.header_size, size) ||
            p.body_offset != p.header_offset + p.header_size ||
            !within(p.body_offset, p.body_size, size)) {
            return bad(fmt::format("part {}: outside the message", i));
        }
        if (p.header_lines > p.header_size || p.header_bare_lf > p.header_lines ||
            p.body_lines > p.body_size || p.body_bare_lf > p.body_lines) {
            return bad(fmt::format("part {}: line counts exceed sizes", i));
        }
        uint64_t prev_end = p.body_offset;
        for (uint32_t c : p.children) {
            if (c <= i || c >= tree.parts.size() ||
                tree.parts[c].parent != static_cast<int32_t>(i)) {
                return bad(fmt::format("part {}: bad child {}", i, c));
            }
            const Part& child = tree.parts[c];
            if (child.header_offset < prev_end ||
                child.body_offset + child.body_size > p.body_offset + p.body_size) {
                return bad(fmt::format("part {}: child {} outside its body", i, c));
            }
            prev_end = child.body_offset + child.body_size;
        }
        if (p.envelope &&
            !(p.parent < 0 || tree.parts[static_cast<size_t>(p.parent)].is_message())) {
            return bad(fmt::format("part {}: envelope on a non-message part", i));
        }
    }
    size_t child_links = 0;
    for (const Part& p : tree.parts) {
        child_links += p.children.size();
    }
    if (child_links + 1 != tree.parts.size()) {
        return bad("children lists do not match parents");
    }
    if (flags != tree.limits_hit || tree.message_lines > size) {
        return bad("summary does not match parts");
    }
    return {};
}

std::string to_json(const PartTree& tree) {
    Json j;
    j.open('{');
    json_num(j, "message_size", tree.message_size);
    json_num(j, "message_lines", tree.message_lines);
    json_str(j, "limits_hit", flag_names(tree.limits_hit));
    if (!tree.parts.empty()) {
        j.key("root");
        json_part(j, tree, 0);
    }
    j.close('}');
    return j.take();
}

}  // namespace yubin::mime
