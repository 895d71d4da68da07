// Plain value types of the mail store's public API. They say what the daemons
// and the admin CLI need (users, mailboxes, messages, queue entries), never how
// a backend lays them out: no LMDB type or key appears here, so a PostgreSQL
// backend can be added behind the same API (ARCHITECTURE.md, "The store").
// All types are plain values, owned by whoever holds them; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/base/error.h"

namespace yubin::store {

struct StoreOptions {
    // A directory, created if missing. Holds data.mdb/lock.mdb, blobs/ and notify/.
    std::string path;
    // Initial map size. The map grows by doubling on MDB_MAP_FULL, so this is only
    // a starting point; it is address space, not disk.
    uint64_t map_size_bytes = 1ULL << 30;
    // LMDB reader slots shared by every process on the store.
    unsigned max_readers = 512;
    // Bodies of at least this many bytes are stored as fsynced files referenced
    // from LMDB instead of inside it, so a huge message does not hold the single
    // write lock for long (docs/store.md). 0 = every body is a file.
    uint64_t large_body_bytes = 1ULL << 20;
    // Upper bound on write operations committed in one transaction.
    unsigned max_batch_ops = 512;
    // What kind of process opens the store ("cli", "imapd"...): informational, and
    // the natural role to pass to ChangeListener::open.
    std::string role = "proc";
};

// IMAP system flags (RFC 9051 §2.3.2), as a bitmask.
enum MessageFlag : uint32_t {
    kFlagSeen = 1U << 0,
    kFlagAnswered = 1U << 1,
    kFlagFlagged = 1U << 2,
    kFlagDeleted = 1U << 3,
    kFlagDraft = 1U << 4,
};

// Per-user flags.
enum UserFlag : uint32_t {
    kUserBulk = 1U << 0,  // may send bulk/campaign mail
    kUserDisabled = 1U << 1,
};

struct UserRecord {
    std::string address;        // canonical (lower-case)
    std::string password_hash;  // crypt(3) string, e.g. "$y$..."; hashed elsewhere
    uint64_t quota_bytes = 0;   // 0 = unlimited
    uint64_t quota_used_bytes = 0;
    uint32_t flags = 0;   // UserFlag bits
    int64_t created = 0;  // unix seconds
};

struct AliasRecord {
    std::string source;  // "user@domain" or "@domain" (catch-all)
    std::string target;  // any address, local or external
};

struct ResolvedRecipient {
    std::string address;  // local user address, or the external address if external
    std::string mailbox;  // mailbox name for local users ("INBOX" unless plus-addressed)
    bool external = false;
};

struct MailboxRecord {
    uint64_t id = 0;
    std::string user;
    std::string name;
    uint32_t uidvalidity = 0;
    uint32_t uidnext = 1;
    uint64_t highestmodseq = 1;
    uint32_t messages = 0;
    uint32_t unseen = 0;
    uint64_t size_bytes = 0;
    std::string special_use;  // "\\Sent" ... or empty (RFC 6154)
    bool subscribed = false;
};

struct MessageRecord {
    uint64_t mailbox_id = 0;
    uint32_t uid = 0;
    uint64_t blob_id = 0;
    uint32_t flags = 0;  // MessageFlag bits
    std::vector<std::string> keywords;
    int64_t internaldate = 0;  // unix seconds
    uint64_t size = 0;         // header prefix + blob
    uint64_t modseq = 0;
    uint32_t prefix_size = 0;  // per-recipient header prefix length
};

// One local target of a Delivery.
struct DeliveryTarget {
    std::string user;  // local user address
    std::string mailbox = "INBOX";
    uint32_t flags = 0;
    std::vector<std::string> keywords;
    // Logically prepended to the shared blob for this recipient only
    // ("Return-Path: ...\r\nDelivered-To: ...\r\n"); counted in size.
    std::string header_prefix;
    // A vanished mailbox (deleted since resolution) falls back to INBOX. APPEND sets
    // this false: a missing mailbox is then NotFound (IMAP [TRYCREATE]).
    bool fallback_to_inbox = true;
    // Over-quota targets fail individually with ErrorCode::Limit.
    bool enforce_quota = true;
};

enum class RecipientStatus : uint8_t { Pending = 0, Delivered = 1, Failed = 2, Deferred = 3 };

// DSN NOTIFY (RFC 3461 §4.1) bits.
enum DsnNotify : uint8_t {
    kNotifyNever = 1U << 0,
    kNotifySuccess = 1U << 1,
    kNotifyFailure = 1U << 2,
    kNotifyDelay = 1U << 3,
};

enum class DsnRet : uint8_t { Unspecified = 0, Full = 1, Headers = 2 };

struct QueueRecipient {
    std::string address;
    RecipientStatus status = RecipientStatus::Pending;
    uint32_t attempts = 0;
    std::string last_error;
    uint8_t notify = 0;  // DsnNotify bits; 0 = not given
    std::string orcpt;   // RFC 3461 §4.2, "rfc822;user@example.com"
};

struct QueueEntry {
    uint64_t id = 0;     // assigned by the store
    std::string sender;  // "" = null reverse-path
    std::vector<QueueRecipient> recipients;
    std::string envid;  // RFC 3461 §4.4
    DsnRet ret = DsnRet::Unspecified;
    int64_t hold_until = 0;    // unix seconds; not due before this
    int64_t created = 0;       // unix seconds; set by the store if 0
    int64_t next_attempt = 0;  // unix seconds
    uint64_t blob_id = 0;      // assigned by the store
    uint64_t size = 0;         // body size
};

// One write transaction: one body stored once, a message per local target, and
// queue entries for remote recipients (ARCHITECTURE.md, "One message inbound").
struct Delivery {
    std::string body;          // the whole message as it will be served (CRLF lines)
    std::string structure;     // opaque serialized MIME part tree (common/mime)
    int64_t internaldate = 0;  // unix seconds; now if 0
    std::vector<DeliveryTarget> targets;
    std::vector<QueueEntry> queue;
};

struct TargetResult {
    std::optional<Error> error;  // set if this target failed; others still delivered
    uint64_t mailbox_id = 0;
    uint32_t uidvalidity = 0;
    uint32_t uid = 0;
};

struct DeliveryResult {
    uint64_t blob_id = 0;               // 0 if nothing referenced the body
    std::vector<TargetResult> targets;  // same order as Delivery::targets
    std::vector<uint64_t> queue_ids;    // same order as Delivery::queue
};

enum class FlagOp : uint8_t { Set, Add, Remove };

struct FlagUpdate {
    uint64_t mailbox_id = 0;
    std::vector<uint32_t> uids;
    FlagOp op = FlagOp::Add;
    uint32_t flags = 0;
    std::vector<std::string> keywords;
    // CONDSTORE UNCHANGEDSINCE (RFC 7162 §3.1.3): messages whose modseq is higher
    // are left alone and reported in FlagResult::modified.
    std::optional<uint64_t> unchanged_since;
};

struct FlagResult {
    std::vector<MessageRecord> updated;  // new state of each changed message
    std::vector<uint32_t> modified;      // failed the UNCHANGEDSINCE test
};

struct CopyResult {
    uint32_t dest_uidvalidity = 0;
    std::vector<uint32_t> source_uids;  // RFC 4315 COPYUID, in pairs with dest_uids
    std::vector<uint32_t> dest_uids;
};

struct MailboxChanges {
    uint64_t highestmodseq = 0;
    std::vector<MessageRecord> changed;  // modseq > since, uid order
    std::vector<uint32_t> expunged;      // expunged with modseq > since
};

struct QuotaUsage {
    uint64_t used_bytes = 0;
    uint64_t limit_bytes = 0;  // 0 = unlimited
};

// Result of Store::check_consistency(): recomputed from the message and queue
// records and compared with the stored counters.
struct ConsistencyReport {
    uint64_t mailboxes = 0;
    uint64_t messages = 0;
    uint64_t blobs = 0;
    uint64_t queue_entries = 0;
    std::vector<std::string> problems;  // empty = consistent
};

// Counters of this process's writer since open (for operators and benchmarks).
struct StoreStats {
    uint64_t commits = 0;            // write transactions committed
    uint64_t operations = 0;         // operations in those commits (successful or not)
    uint64_t failed_operations = 0;  // operations that failed alone inside a batch
    uint64_t map_grows = 0;          // map doublings after MDB_MAP_FULL
};

// What a change notification carries (a hint; the store is the truth).
struct Change {
    enum class Kind : uint8_t { Mailbox = 1, Queue = 2, Directory = 3, All = 4 };
    Kind kind = Kind::All;
    uint64_t id = 0;  // mailbox id for Kind::Mailbox
    bool operator==(const Change&) const = default;
};

}  // namespace yubin::store
