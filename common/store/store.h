// The mail store: users, domains, aliases, mailboxes, messages, shared bodies
// and the outbound queue, shared by the separate daemon processes.
//
// Open it ONCE per process (after fork/exec) with Store::open; the returned
// object is owned by the caller and is thread-safe:
// - Reads (get_*, list_*, read_*) run one short read transaction per call on the
//   calling thread and never hold it across a wait. They copy out what they
//   return, so results stay valid after the call.
// - Writes go to the process's single writer thread, which commits many queued
//   operations in ONE transaction with one fsync (group commit). An *_async call
//   returns at once; its callback runs ON THE WRITER THREAD only after the
//   commit that holds the change returned successfully (or with the error). A
//   daemon marshals the callback to its loop (e.g. with a uv_async wake-up) and
//   must not block in it. A failing operation fails alone: the batch is then
//   replayed with each operation in its own nested transaction.
// - The blocking forms (no _async) submit and wait: for the CLI, tests and
//   threads of a pool. Never call them on the writer thread (from a callback).
//
// Only our own types appear here: the LMDB backend lives in lmdb_*.cc and
// a later backend (PostgreSQL) implements the same interface.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/error.h"
#include "common/store/types.h"

namespace yubin::store {

template <typename T>
using Callback = std::function<void(Result<T>)>;

// Separator of mailbox hierarchy levels; rename moves children too.
inline constexpr char kHierarchyDelimiter = '/';

class Store {
public:
    virtual ~Store() = default;

    // Opens (creating if needed) the store at options.path. Runs schema
    // migrations under the write lock and clears stale reader slots. Fails with
    // ErrorCode::Exists if this process already has the same store open.
    [[nodiscard]] static Result<std::unique_ptr<Store>> open(const StoreOptions& options);

    // ---- directory (admin CLI): synchronous, any thread ----
    [[nodiscard]] virtual Result<void> add_domain(std::string_view domain) = 0;
    // ErrorCode::Exists while users or aliases of the domain exist.
    [[nodiscard]] virtual Result<void> remove_domain(std::string_view domain) = 0;
    [[nodiscard]] virtual Result<std::vector<std::string>> list_domains() = 0;
    [[nodiscard]] virtual Result<bool> is_local_domain(std::string_view domain) = 0;

    // Creates the user and its default mailboxes (INBOX, Sent, Drafts, Trash, Junk,
    // Archive with RFC 6154 special-use, all subscribed). NotFound if the domain is
    // not local, Exists if the user exists.
    [[nodiscard]] virtual Result<UserRecord> add_user(std::string_view address,
                                                      std::string_view password_hash,
                                                      uint64_t quota_bytes) = 0;
    [[nodiscard]] virtual Result<UserRecord> get_user(std::string_view address) = 0;
    [[nodiscard]] virtual Result<void> set_password_hash(std::string_view address,
                                                         std::string_view hash) = 0;
    [[nodiscard]] virtual Result<void> set_user_quota(std::string_view address,
                                                      uint64_t quota_bytes) = 0;
    [[nodiscard]] virtual Result<void> set_user_flags(std::string_view address, uint32_t flags) = 0;
    [[nodiscard]] virtual Result<std::vector<UserRecord>> list_users(
        std::string_view domain = {}) = 0;
    // Removes the user, its mailboxes and messages, its aliases-as-source, and
    // releases the bodies.
    [[nodiscard]] virtual Result<void> remove_user(std::string_view address) = 0;

    // source "user@domain" or "@domain" (catch-all; the domain must be local).
    [[nodiscard]] virtual Result<void> add_alias(std::string_view source,
                                                 std::string_view target) = 0;
    // An empty target removes every target of source.
    [[nodiscard]] virtual Result<void> remove_alias(std::string_view source,
                                                    std::string_view target = {}) = 0;
    [[nodiscard]] virtual Result<std::vector<AliasRecord>> list_aliases(
        std::string_view domain = {}) = 0;

    // The one place where an envelope recipient becomes delivery targets:
    // exact user → alias (fan-out, recursive to a small depth) → plus-address
    // "user+tag" (mailbox "tag" if the user has one, case-insensitively, else
    // INBOX; aliases of "user" apply too) → catch-all "@domain". NotFound for an
    // unknown address in a local domain, Perm "not local" for other domains.
    [[nodiscard]] virtual Result<std::vector<ResolvedRecipient>> resolve_recipient(
        std::string_view address) = 0;

    // ---- mailboxes and messages: reads, any thread ----
    [[nodiscard]] virtual Result<std::vector<MailboxRecord>> list_mailboxes(
        std::string_view user) = 0;
    // name is case-sensitive except INBOX (RFC 9051 §5.1).
    [[nodiscard]] virtual Result<MailboxRecord> get_mailbox(std::string_view user,
                                                            std::string_view name) = 0;
    [[nodiscard]] virtual Result<MailboxRecord> get_mailbox_by_id(uint64_t mailbox_id) = 0;
    // Metadata of messages with first <= uid <= last, in uid order.
    [[nodiscard]] virtual Result<std::vector<MessageRecord>> list_messages(
        uint64_t mailbox_id, uint32_t first_uid = 1, uint32_t last_uid = UINT32_MAX) = 0;
    // Header prefix + body, copied out (valid after the call).
    [[nodiscard]] virtual Result<std::string> read_message(uint64_t mailbox_id, uint32_t uid) = 0;
    [[nodiscard]] virtual Result<std::string> get_structure(uint64_t blob_id) = 0;
    [[nodiscard]] virtual Result<MailboxChanges> changes_since(uint64_t mailbox_id,
                                                               uint64_t modseq) = 0;
    [[nodiscard]] virtual Result<QuotaUsage> quota_usage(std::string_view user) = 0;

    // ---- queue reads ----
    // Entries due at or before now (max(next_attempt, hold_until)), earliest first.
    [[nodiscard]] virtual Result<std::vector<QueueEntry>> list_due(int64_t now_seconds,
                                                                   size_t limit) = 0;
    [[nodiscard]] virtual Result<std::vector<QueueEntry>> list_queue() = 0;
    [[nodiscard]] virtual Result<QueueEntry> get_queue_entry(uint64_t id) = 0;
    [[nodiscard]] virtual Result<std::string> read_queue_message(uint64_t id) = 0;

    // ---- writes: group-committed (see top of file) ----
    virtual void deliver_async(Delivery delivery, Callback<DeliveryResult> done) = 0;
    // IMAP APPEND: a Delivery to one target, no fallback to INBOX.
    virtual void append_async(std::string_view user, std::string_view mailbox, std::string body,
                              std::string structure, uint32_t flags,
                              std::vector<std::string> keywords, int64_t internaldate,
                              Callback<TargetResult> done) = 0;
    virtual void store_flags_async(FlagUpdate update, Callback<FlagResult> done) = 0;
    // Removes exactly these uids (the caller picks the \Deleted ones); returns the
    // uids actually removed.
    virtual void expunge_async(uint64_t mailbox_id, std::vector<uint32_t> uids,
                               Callback<std::vector<uint32_t>> done) = 0;
    // Copies (or moves, RFC 6851) messages; bodies are shared, not copied.
    virtual void copy_async(uint64_t source_mailbox_id, std::vector<uint32_t> uids,
                            uint64_t dest_mailbox_id, bool move, Callback<CopyResult> done) = 0;
    virtual void create_mailbox_async(std::string_view user, std::string_view name,
                                      std::string_view special_use,
                                      Callback<MailboxRecord> done) = 0;
    virtual void rename_mailbox_async(std::string_view user, std::string_view from,
                                      std::string_view to, Callback<void> done) = 0;
    virtual void delete_mailbox_async(std::string_view user, std::string_view name,
                                      Callback<void> done) = 0;
    virtual void subscribe_mailbox_async(std::string_view user, std::string_view name,
                                         bool subscribed, Callback<void> done) = 0;
    // Replaces recipients, next_attempt and hold_until of entry.id (re-indexing
    // its due time).
    virtual void update_queue_entry_async(QueueEntry entry, Callback<void> done) = 0;
    // Removes the entry and releases its body.
    virtual void remove_queue_entry_async(uint64_t id, Callback<void> done) = 0;

    // Blocking forms of the writes above.
    [[nodiscard]] Result<DeliveryResult> deliver(Delivery delivery);
    [[nodiscard]] Result<TargetResult> append(std::string_view user, std::string_view mailbox,
                                              std::string body, std::string structure = {},
                                              uint32_t flags = 0,
                                              std::vector<std::string> keywords = {},
                                              int64_t internaldate = 0);
    [[nodiscard]] Result<FlagResult> store_flags(FlagUpdate update);
    [[nodiscard]] Result<std::vector<uint32_t>> expunge(uint64_t mailbox_id,
                                                        std::vector<uint32_t> uids);
    [[nodiscard]] Result<CopyResult> copy(uint64_t source_mailbox_id, std::vector<uint32_t> uids,
                                          uint64_t dest_mailbox_id, bool move = false);
    [[nodiscard]] Result<MailboxRecord> create_mailbox(std::string_view user, std::string_view name,
                                                       std::string_view special_use = {});
    [[nodiscard]] Result<void> rename_mailbox(std::string_view user, std::string_view from,
                                              std::string_view to);
    [[nodiscard]] Result<void> delete_mailbox(std::string_view user, std::string_view name);
    [[nodiscard]] Result<void> subscribe_mailbox(std::string_view user, std::string_view name,
                                                 bool subscribed);
    [[nodiscard]] Result<void> update_queue_entry(QueueEntry entry);
    [[nodiscard]] Result<void> remove_queue_entry(uint64_t id);

    // ---- maintenance ----
    // Clears reader slots left by killed processes (mdb_reader_check); a daemon
    // calls it on a timer. Returns how many were cleared.
    [[nodiscard]] virtual Result<int> check_stale_readers() = 0;
    // Recomputes counts, quota usage and body reference counts from the records
    // and reports any mismatch (an fsck for `yubin` and the crash tests).
    [[nodiscard]] virtual Result<ConsistencyReport> check_consistency() = 0;
    // Writer counters of this process; ops per commit = operations / commits.
    [[nodiscard]] virtual StoreStats stats() const = 0;
    // True on this store's writer thread (inside a completion callback), where the
    // blocking forms above would wait for themselves: they fail instead.
    [[nodiscard]] virtual bool on_writer_thread() const = 0;
    // Schema version of the open store.
    [[nodiscard]] virtual Result<uint32_t> schema_version() = 0;
};

}  // namespace yubin::store
