// libFuzzer target for common/mime: parses the input fed in chunks whose
// sizes come from the input itself, and checks the invariants the store and
// IMAP rely on: the tree is well formed (offsets inside the message, children
// inside their parent), chunking does not change the tree, and the tree
// survives serialize → deserialize unchanged. Also runs the header helpers
// (RFC 2047 decoding, address lists) over the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/mime/encoded_words.h"
#include "common/mime/header_fields.h"
#include "common/mime/mime_parser.h"
#include "common/mime/serialize.h"

namespace {

void require(bool ok) {
    if (!ok) {
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace yubin::mime;
    std::string_view msg(reinterpret_cast<const char*>(data), size);

    // Small limits now and then, so the limit paths get exercised too.
    ParserLimits limits;
    if (size > 0 && (data[0] & 0x0F) == 0) {
        limits.max_depth = 1 + data[0] % 5;
        limits.max_parts = 1 + (size > 1 ? data[1] % 8 : 0);
        limits.max_header_size = 16 + (size > 2 ? data[2] : 0);
        limits.max_boundary_length = 1 + (size > 3 ? data[3] % 16 : 0);
        limits.max_total_header_size = 64 + (size > 4 ? data[4] * 4 : 0);
    }

    PartTree whole = parse_message(msg, limits);

    // Chunk sizes from a tiny generator seeded by the input's hash.
    uint32_t state = 2166136261u;
    for (uint8_t b : msg.substr(0, 64)) {
        state = (state ^ b) * 16777619u;
    }
    MimeParser parser(limits);
    size_t pos = 0;
    while (pos < size) {
        state = state * 1103515245u + 12345u;
        size_t n = (state >> 16) % 97;  // 0..96, empty chunks included
        n = n > size - pos ? size - pos : n;
        parser.feed(msg.substr(pos, n));
        pos += n;
    }
    PartTree chunked = parser.finish();
    require(chunked == whole);

    require(whole.message_size == size);
    require(check_tree(whole).has_value());
    require(whole.parts.size() <= limits.max_parts);

    auto back = deserialize(serialize(whole));
    require(back.has_value());
    require(*back == whole);

    // Deserializing arbitrary bytes must never crash.
    auto junk = deserialize(msg);
    if (junk) {
        require(check_tree(*junk).has_value());
    }

    std::string_view head = msg.substr(0, 4096);
    std::string decoded = decode_encoded_words(head);
    require(is_valid_utf8(decoded));
    (void)parse_address_list(head);
    (void)parse_content_type(head);
    return 0;
}
