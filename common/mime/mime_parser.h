// One-pass streaming MIME parser (RFC 5322, RFC 2045-2049). The SMTP server
// feeds the message in chunks of any size as it arrives; finish() returns the
// part tree (part_tree.h). The message is never re-read and bodies are never
// buffered: memory is bounded by ParserLimits (one header of at most
// max_header_size, one line prefix of max_boundary_length + a few bytes, one
// boundary per open multipart, and the tree itself: at most max_parts parts
// whose strings come from at most max_total_header_size header bytes).
//
// It never fails: malformed mail gets a best-effort structure, and beyond a
// limit the parser stops descending and treats the rest as an opaque body
// (docs/mime.md lists what happens where).
//
// We hand-write this instead of using GMime (libgmime-3.0): GMime parses from
// a seekable stream or a whole buffer, not pushed chunks with bounded memory,
// and its offsets do not follow the boundary rules IMAP clients expect.
//
// A MimeParser is a plain object owned by its caller (one per message); it is
// not thread-safe but may move between threads between calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/mime/part_tree.h"

namespace yubin::mime {

struct ParserLimits {
    // Nesting of multipart and message/rfc822 parts; the root is depth 1.
    uint32_t max_depth = 32;
    // Parts in the whole tree, the root included.
    uint32_t max_parts = 2000;
    // Bytes of one part's header kept for parsing; the rest of a longer
    // header is still skipped as header, but its fields are not read.
    size_t max_header_size = 64 * 1024;
    // RFC 2046 §5.1.1 allows 70; real mail sometimes has more.
    size_t max_boundary_length = 200;
    // Header bytes kept over all parts together, so that many parts with
    // big headers cannot grow the tree (and the stored structure) without
    // bound. Beyond it, headers are skipped as if truncated.
    size_t max_total_header_size = 1024 * 1024;
};

class MimeParser {
  public:
    explicit MimeParser(ParserLimits limits = {});

    // Feeds the next bytes of the message; chunks may split anything,
    // including CRLF pairs and boundary lines.
    void feed(std::string_view chunk);
    // Ends the message and returns its tree. The parser is spent afterwards.
    PartTree finish();

    // Bytes of message data held right now (line prefix, header being read,
    // boundaries): what ParserLimits bounds; never grows with body size.
    size_t buffered_bytes() const;

  private:
    struct Open {
        uint32_t index = 0;  // into tree_.parts
        bool in_header = true;
        std::string header;  // raw header bytes kept so far (≤ max_header_size)
        uint64_t header_lf_start = 0;
        uint64_t header_bare_start = 0;
        uint64_t body_lf_start = 0;
        uint64_t body_bare_start = 0;
        std::string boundary;   // "--" + boundary, non-empty while children are possible
        bool epilogue = false;  // the close delimiter was seen
        bool digest = false;    // multipart/digest: children default to message/rfc822
    };

    void append_to_line(std::string_view segment);
    void end_line();
    // Index in stack_ of the multipart whose boundary the current line is,
    // or -1; sets *close when it is the close delimiter.
    int match_boundary(bool* close) const;
    // Closes every open part above stack level `keep` at offset `end`, with
    // the LF counters as they stand at `end`.
    void close_above(size_t keep, uint64_t end, uint64_t lf_at_end, uint64_t bare_at_end);
    void close_header(Open& open, uint64_t end, uint64_t lf_at_end, uint64_t bare_at_end,
                      bool ended_by_empty_line);
    void apply_header(Open& open);
    // Starts a part whose header begins at `offset`; false if max_parts is hit.
    bool open_part(int32_t parent, uint64_t offset, bool default_rfc822);
    // After a header ends: set up children for multipart and message parts.
    void start_body(Open& open);

    ParserLimits limits_;
    PartTree tree_;
    std::vector<Open> stack_;
    bool finished_ = false;

    uint64_t offset_ = 0;    // bytes fed so far
    uint64_t lf_count_ = 0;  // LF bytes in completed lines
    uint64_t bare_lf_count_ = 0;

    // The current line.
    uint64_t line_start_ = 0;
    uint64_t line_len_ = 0;
    std::string line_prefix_;  // its first bytes, enough to recognise a boundary
    size_t prefix_cap_ = 0;
    size_t header_mark_ = 0;   // size of the top header before this line
    size_t header_total_ = 0;  // header bytes kept over all parts
    char last_byte_ = 0;
    char byte_before_last_ = 0;

    // The line before it.
    uint64_t prev_term_len_ = 0;  // 0 (none), 1 (LF) or 2 (CRLF)
};

// Convenience: parses a whole message held in memory.
PartTree parse_message(std::string_view message, ParserLimits limits = {});

}  // namespace yubin::mime
