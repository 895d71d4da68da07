#include "common/mime/serialize.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <random>

#include "common/mime/mime_parser.h"

namespace yubin::mime {
namespace {

// A tree with every optional field set, so the round trip covers them all.
PartTree full_tree() {
    std::string msg =
        "From: \"A\" <a@x>, G: b@y;\r\nSender: s@x\r\nReply-To: r@x\r\nTo: t@x\r\nCc: c@x\r\n"
        "Bcc: <@r:b@x>\r\nSubject: s\r\nDate: d\r\nIn-Reply-To: <i@x>\r\nMessage-ID: <m@x>\r\n"
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        "Content-Type: text/plain; name*0*=utf-8'en'%C3%A9; name*1=x\r\n"
        "Content-Disposition: attachment; filename=f\r\nContent-Language: en, de\r\n"
        "Content-Location: l\r\nContent-ID: <c@x>\r\nContent-Description: desc\r\n"
        "Content-Transfer-Encoding: 8bit\r\nContent-MD5: md5\r\n\r\nbody\n--b\r\n"
        "Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nx\r\n--b--\r\n";
    return parse_message(msg);
}

std::string fix_crc(std::string bytes) {
    // Recompute the trailing CRC-32 so structural checks are reached.
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data()),
                static_cast<uInt>(bytes.size() - 4));
    for (int k = 0; k < 4; ++k) {
        bytes[bytes.size() - 4 + k] = static_cast<char>((crc >> (8 * k)) & 0xFF);
    }
    return bytes;
}

TEST(Serialize, RoundTripsEveryField) {
    PartTree t = full_tree();
    ASSERT_EQ(t.parts.size(), 4u);  // root, text, message/rfc822, inner
    const Part& p = t.parts[1];
    ASSERT_TRUE(p.md5 && p.location && p.content_id && p.description && p.disposition);
    ASSERT_EQ(p.params.at(0).value, "éx");
    ASSERT_EQ(t.root().envelope->from_addrs.size(), 4u);
    auto back = deserialize(serialize(t));
    ASSERT_TRUE(back.has_value()) << back.error().to_string();
    EXPECT_EQ(*back, t);
}

TEST(Serialize, StartsWithMagicAndVersion) {
    std::string bytes = serialize(full_tree());
    EXPECT_EQ(bytes.substr(0, 3), "YMT");
    EXPECT_EQ(static_cast<uint8_t>(bytes[3]), kSerializeVersion);
}

TEST(Serialize, RejectsOtherVersionsAndGarbage) {
    std::string bytes = serialize(full_tree());
    std::string v2 = bytes;
    v2[3] = 2;
    auto r = deserialize(fix_crc(v2));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, ErrorCode::Invalid);
    EXPECT_NE(r.error().message.find("version"), std::string::npos);
    EXPECT_FALSE(deserialize("").has_value());
    EXPECT_FALSE(deserialize("YMT").has_value());
    EXPECT_FALSE(deserialize("not a structure at all").has_value());
    EXPECT_FALSE(deserialize(bytes + "x").has_value());
}

TEST(Serialize, CorruptionWithAValidCrcNeverYieldsABrokenTree) {
    // With the CRC fixed up, damage reaches the parser of the format: it must
    // either reject the bytes or return a tree that passes check_tree().
    std::string bytes = serialize(full_tree());
    std::mt19937 rng(42);
    int rejected = 0;
    for (int round = 0; round < 3000; ++round) {
        std::string bad = bytes;
        int edits = 1 + static_cast<int>(rng() % 3);
        for (int e = 0; e < edits; ++e) {
            size_t pos = 4 + rng() % (bad.size() - 8);
            bad[pos] = static_cast<char>(rng());
        }
        auto r = deserialize(fix_crc(bad));
        if (!r) {
            ++rejected;
            continue;
        }
        EXPECT_TRUE(check_tree(*r).has_value());
    }
    EXPECT_GT(rejected, 0);
}

TEST(Serialize, HugeCountsDoNotAllocate) {
    // A part count of 2^60 must be refused before any allocation.
    std::string bytes = "YMT";
    bytes.push_back(static_cast<char>(kSerializeVersion));
    bytes += std::string("\x0a\x01\x00", 3);  // size 10, lines 1, limits 0
    bytes += std::string("\x80\x80\x80\x80\x80\x80\x80\x80\x10", 9);
    bytes += std::string(4, '\0');
    auto r = deserialize(fix_crc(bytes));
    EXPECT_FALSE(r.has_value());
}

TEST(CheckTree, CatchesBrokenInvariants) {
    PartTree good = full_tree();
    ASSERT_TRUE(check_tree(good).has_value());

    PartTree t = good;
    t.parts.clear();
    EXPECT_FALSE(check_tree(t).has_value());

    t = good;
    t.parts[2].body_size = t.message_size;  // runs past the message
    EXPECT_FALSE(check_tree(t).has_value());

    t = good;
    t.parts[2].body_offset += 1;  // no longer right after its header
    EXPECT_FALSE(check_tree(t).has_value());

    t = good;
    t.parts[1].header_offset = 0;  // child before its parent's body
    t.parts[1].body_offset = t.parts[1].header_size;
    EXPECT_FALSE(check_tree(t).has_value());

    t = good;
    t.parts[1].body_lines = t.parts[1].body_size + 1;
    EXPECT_FALSE(check_tree(t).has_value());

    t = good;
    t.parts[0].children.pop_back();  // children list disagrees with parents
    EXPECT_FALSE(check_tree(t).has_value());

    t = good;
    t.limits_hit = kFlagPartLimit;  // summary disagrees with the parts
    EXPECT_FALSE(check_tree(t).has_value());

    t = good;
    t.parts[1].envelope = Envelope{};  // envelope on a non-message part
    EXPECT_FALSE(check_tree(t).has_value());
}

TEST(CheckTree, RejectsTreesDeeperThanTheMaximum) {
    PartTree t;
    t.message_size = 0;
    for (uint32_t i = 0; i <= kMaxTreeDepth; ++i) {
        Part p;
        p.parent = static_cast<int32_t>(i) - 1;
        p.type = "message";
        p.subtype = "rfc822";
        if (i > 0) {
            t.parts[i - 1].children.push_back(i);
        }
        t.parts.push_back(p);
    }
    auto r = check_tree(t);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find("deep"), std::string::npos);
    t.parts.pop_back();
    t.parts.back().children.clear();
    EXPECT_TRUE(check_tree(t).has_value());
}

TEST(Json, IsStableAndEscapes) {
    PartTree t = parse_message("Subject: a \"q\" \\ \x01 \xff\r\n\r\n");
    std::string json = to_json(t);
    EXPECT_EQ(json, to_json(t));
    EXPECT_NE(json.find(R"("subject": "a \"q\" \\ \u0001 )"
                        "\xEF\xBF\xBD"
                        R"(")"),
              std::string::npos)
        << json;
    EXPECT_EQ(json.back(), '\n');
}

}  // namespace
}  // namespace yubin::mime
