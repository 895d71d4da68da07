// Storing and showing a part tree.
//
// serialize()/deserialize(): the compact binary form the store keeps per
// message (ARCHITECTURE.md, `structure` table); IMAP reads it back to answer
// ENVELOPE and BODYSTRUCTURE. The bytes come from disk, so deserialize()
// trusts nothing: it checks a version, a CRC-32 (zlib) over the whole record,
// every length against the bytes left, and the tree's invariants
// (check_tree()), and returns an error instead of a broken tree.
// Format (docs/mime.md): "YMT" + version byte, LEB128 varints and
// length-prefixed strings, parts in pre-order, CRC-32 little-endian last.
//
// to_json(): a stable, pretty-printed view for goldens and debugging.
//
// Pure functions; any thread may call them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/base/error.h"
#include "common/mime/part_tree.h"

namespace yubin::mime {

inline constexpr uint8_t kSerializeVersion = 1;

std::string serialize(const PartTree& tree);
Result<PartTree> deserialize(std::string_view bytes);

// The invariants every tree from the parser satisfies: at least one part,
// parts in pre-order (parent index below the child's), children lists
// matching parents, header and body inside the message and inside the
// parent's body, body right after the header, counts no larger than sizes.
Result<void> check_tree(const PartTree& tree);

std::string to_json(const PartTree& tree);

}  // namespace yubin::mime
