// Private to common/store: what the pieces of the LMDB backend share. The
// backend is split by concern over lmdb_env.cc (environment, map size,
// migrations), lmdb_writer.cc (group-commit writer), lmdb_directory.cc,
// lmdb_mailbox.cc, lmdb_queue.cc, lmdb_blobs.cc and lmdb_check.cc.
//
// LMDB backend of the mail store. One environment per store directory, opened
// once per process with MDB_NOTLS (read transactions are not tied to threads);
// one writer thread per process batches write operations into one transaction
// each (group commit); if an operation fails, the batch is replayed with every
// operation in its own nested transaction so that the failing one fails alone. Layouts:
// docs/store.md.
//
// Map size: LMDB needs no transaction of this process to be live while the map
// is resized, so every transaction holds env_mutex_ shared and a resize (own
// growth on MDB_MAP_FULL, or adopting another process's growth on
// MDB_MAP_RESIZED with mdb_env_set_mapsize(env, 0)) takes it exclusively.
#pragma once

#include "common/store/lmdb_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "common/base/clock.h"
#include "common/base/strings.h"
#include "common/store/change_listener.h"
#include "common/store/codec.h"

namespace yubin::store::lmdb_detail {

using codec::Decoder;
using codec::Encoder;

constexpr uint8_t kRecordVersion = 1;
constexpr int kMaxAliasDepth = 8;
constexpr uint64_t kMaxMapSize = 1ULL << 40;  // 1 TiB of address space
constexpr unsigned kMaxDbs = 32;
constexpr size_t kMaxStagingThreads = 16;
constexpr time_t kOrphanAgeSeconds = 3600;

struct DefaultMailbox {
    const char* name;
    const char* special_use;
};
constexpr DefaultMailbox kDefaultMailboxes[] = {
    {"INBOX", ""},        {"Sent", "\\Sent"}, {"Drafts", "\\Drafts"},
    {"Trash", "\\Trash"}, {"Junk", "\\Junk"}, {"Archive", "\\Archive"},
};

// ---------- small LMDB helpers ----------

MDB_val to_val(std::string_view s);
std::string_view to_sv(const MDB_val& v);

Error lmdb_error(int rc, std::string_view what);

struct CursorCloser {
    void operator()(MDB_cursor* c) const noexcept { mdb_cursor_close(c); }
};
using CursorPtr = std::unique_ptr<MDB_cursor, CursorCloser>;

// A transaction plus the table handles; shared by read and write code paths.
// map_full is set when any put hit MDB_MAP_FULL, so the writer can grow the
// map and replay the batch instead of failing the operation.
struct Tx {
    MDB_txn* txn = nullptr;
    const Tables* t = nullptr;
    bool map_full = false;

    Result<std::optional<std::string_view>> get(MDB_dbi dbi, std::string_view key) {
        MDB_val k = to_val(key);
        MDB_val v{};
        int rc = mdb_get(txn, dbi, &k, &v);
        if (rc == MDB_NOTFOUND) {
            return std::optional<std::string_view>{};
        }
        if (rc != 0) {
            return fail(lmdb_error(rc, "get"));
        }
        return std::optional<std::string_view>{to_sv(v)};
    }
    Result<void> put(MDB_dbi dbi, std::string_view key, std::string_view value,
                     unsigned flags = 0) {
        MDB_val k = to_val(key);
        MDB_val v = to_val(value);
        int rc = mdb_put(txn, dbi, &k, &v, flags);
        if (rc == MDB_MAP_FULL) {
            map_full = true;
        }
        if (rc != 0) {
            return fail(lmdb_error(rc, "put"));
        }
        return {};
    }
    // Deletes key (or the one key/value pair of a DUPSORT table); false if absent.
    Result<bool> del(MDB_dbi dbi, std::string_view key,
                     std::optional<std::string_view> value = std::nullopt) {
        MDB_val k = to_val(key);
        MDB_val v{};
        if (value) {
            v = to_val(*value);
        }
        int rc = mdb_del(txn, dbi, &k, value ? &v : nullptr);
        if (rc == MDB_NOTFOUND) {
            return false;
        }
        if (rc == MDB_MAP_FULL) {
            map_full = true;
        }
        if (rc != 0) {
            return fail(lmdb_error(rc, "del"));
        }
        return true;
    }
    Result<CursorPtr> cursor(MDB_dbi dbi) {
        MDB_cursor* c = nullptr;
        int rc = mdb_cursor_open(txn, dbi, &c);
        if (rc != 0) {
            return fail(lmdb_error(rc, "cursor"));
        }
        return CursorPtr(c);
    }
    // Calls fn(key, value) for each entry with key >= from whose key starts with
    // prefix, until fn returns false. Views are valid during fn only.
    template <typename Fn>
    Result<void> scan(MDB_dbi dbi, std::string_view prefix, std::string_view from, Fn&& fn) {
        auto cur = cursor(dbi);
        if (!cur) {
            return fail(cur.error());
        }
        MDB_val k = to_val(from);
        MDB_val v{};
        int rc = from.empty() ? mdb_cursor_get(cur->get(), &k, &v, MDB_FIRST)
                              : mdb_cursor_get(cur->get(), &k, &v, MDB_SET_RANGE);
        while (rc == 0) {
            std::string_view key = to_sv(k);
            if (key.substr(0, prefix.size()) != prefix) {
                break;
            }
            if (!fn(key, to_sv(v))) {
                break;
            }
            rc = mdb_cursor_get(cur->get(), &k, &v, MDB_NEXT);
        }
        if (rc != 0 && rc != MDB_NOTFOUND) {
            return fail(lmdb_error(rc, "cursor_get"));
        }
        return {};
    }
    template <typename Fn>
    Result<void> scan_prefix(MDB_dbi dbi, std::string_view prefix, Fn&& fn) {
        return scan(dbi, prefix, prefix, std::forward<Fn>(fn));
    }
};

// Write-side context of one operation.
struct WriteCtx : Tx {
    int64_t now = 0;
    std::string staged_file;  // large body already on disk for this op
    std::vector<Change> changes;
    std::vector<std::string> unlink_after_commit;
    const StoreOptions* options = nullptr;

    void changed_mailbox(uint64_t id) {
        Change c{Change::Kind::Mailbox, id};
        if (std::find(changes.begin(), changes.end(), c) == changes.end()) {
            changes.push_back(c);
        }
    }
    void changed(Change::Kind kind) {
        Change c{kind, 0};
        if (std::find(changes.begin(), changes.end(), c) == changes.end()) {
            changes.push_back(c);
        }
    }
};

#define YUBIN_TRY(expr)                        \
    do {                                       \
        auto yubin_try_r_ = (expr);            \
        if (!yubin_try_r_) {                   \
            return fail(yubin_try_r_.error()); \
        }                                      \
    } while (0)

// ---------- addresses and keys ----------

struct Addr {
    std::string local;
    std::string domain;
    std::string full() const { return local + "@" + domain; }
    std::string key() const { return domain + '\0' + local; }  // users, aliases
};

// Lower-cases and splits at the last '@'. An empty local part is allowed only
// for catch-all alias sources ("@domain").
std::optional<Addr> parse_addr(std::string_view address, bool allow_empty_local = false);

std::string addr_from_key(std::string_view key);

// INBOX is case-insensitive (RFC 9051 §5.1); every other name is kept as given.
std::string normalize_mailbox(std::string_view name);

std::string mailbox_key(std::string_view user, std::string_view name);

int64_t due_time(const QueueEntry& e);

// ---------- record codecs ----------

std::string encode_user(const UserRecord& u);

Result<UserRecord> decode_user(std::string_view key, std::string_view v);

std::string encode_mailbox(const MailboxRecord& m);

Result<MailboxRecord> decode_mailbox(std::string_view v);

struct MsgValue {
    MessageRecord rec;
    std::string prefix;
};

std::string encode_msg(const MessageRecord& m, std::string_view prefix);

Result<MsgValue> decode_msg(std::string_view key, std::string_view v);

struct BlobRef {
    uint32_t refcount = 0;
    uint64_t size = 0;
    std::string file;  // empty = inline in blob_data
};

std::string encode_blob_ref(const BlobRef& b);

Result<BlobRef> decode_blob_ref(std::string_view v);

std::string encode_queue(const QueueEntry& q);

Result<QueueEntry> decode_queue(std::string_view key, std::string_view v);

// ---------- files for large bodies ----------

std::string blob_file_path(const std::string& root, std::string_view name);

Result<void> fsync_path(const std::string& path, bool directory);

Result<std::string> random_name();

// Writes and fsyncs the body file; the caller fsyncs its directory before the
// LMDB commit that references it.
Result<void> write_file(const std::string& path, std::string_view data);

Result<std::string> read_file(const std::string& path);

Result<void> make_dir(const std::string& path);

// ---------- domain logic on a transaction ----------

Result<uint64_t> next_counter(Tx& tx, std::string_view name);

Result<bool> domain_exists(Tx& tx, std::string_view domain);

Result<std::optional<UserRecord>> load_user(Tx& tx, const Addr& a);

Result<void> save_user(Tx& tx, const UserRecord& u);

Result<std::optional<MailboxRecord>> load_mailbox(Tx& tx, std::string_view user,
                                                  std::string_view name);

Result<MailboxRecord> load_mailbox_by_id(Tx& tx, uint64_t id);

Result<void> save_mailbox(Tx& tx, const MailboxRecord& m);

Result<std::vector<MailboxRecord>> user_mailboxes(Tx& tx, std::string_view user);

Result<MailboxRecord> create_mailbox_tx(WriteCtx& tx, std::string_view user, std::string_view name,
                                        std::string_view special_use, bool subscribed);

Result<BlobRef> load_blob_ref(Tx& tx, uint64_t blob_id);

// Stores a body once with refcount 0; references are added per message/queue
// entry. The body is inline unless the writer staged it as a file.
Result<uint64_t> store_blob(WriteCtx& tx, std::string_view body, std::string_view structure);

// Adjusts a body's reference count; at 0 the body, its structure and (after
// the commit) its file go away.
Result<void> blob_adjust(WriteCtx& tx, uint64_t blob_id, int delta);

// Adds a message to a loaded mailbox (the caller saves mailbox and user).
Result<MessageRecord> insert_msg(WriteCtx& tx, MailboxRecord& mb, UserRecord* user,
                                 uint64_t blob_id, uint64_t blob_size, uint32_t flags,
                                 std::vector<std::string> keywords, int64_t internaldate,
                                 std::string_view prefix);

// Removes one message: record, modseq entry (replaced by an expunge tombstone
// for CONDSTORE/QRESYNC), counters, quota, body reference.
Result<void> remove_msg(WriteCtx& tx, MailboxRecord& mb, UserRecord* user, const MsgValue& mv,
                        bool tombstone);

Result<std::optional<MsgValue>> load_msg(Tx& tx, uint64_t mailbox_id, uint32_t uid);

// Deletes a whole mailbox with its messages (no tombstones: the id is gone).
Result<void> drop_mailbox(WriteCtx& tx, MailboxRecord mb, UserRecord* user);

Result<uint64_t> enqueue_tx(WriteCtx& tx, QueueEntry entry, uint64_t blob_id, uint64_t size);

Result<QueueEntry> load_queue(Tx& tx, uint64_t id);

// Reads a body (inline or file) into out.
Result<void> append_blob(Tx& tx, const std::string& root, uint64_t blob_id, std::string& out);

// ---------- write operations ----------

class WriteOp {
public:
    virtual ~WriteOp() = default;
    virtual bool apply(WriteCtx& ctx) = 0;  // true = succeeded
    virtual void set_error(Error e) = 0;
    virtual void reset() = 0;
    virtual void finish(const Error* batch_error) noexcept = 0;

    const std::string* body_to_stage = nullptr;  // set if the body goes to a file
    std::string staged_file;
    bool prepared_failed = false;
    bool committed = false;  // its nested transaction was committed into the batch
    std::vector<Change> changes;
    std::vector<std::string> unlink_after_commit;
};

template <typename T>
class FnOp final : public WriteOp {
public:
    FnOp(std::function<Result<T>(WriteCtx&)> fn, Callback<T> cb)
        : fn_(std::move(fn)), cb_(std::move(cb)) {}
    bool apply(WriteCtx& ctx) override {
        result_.emplace(fn_(ctx));
        return result_->has_value();
    }
    void set_error(Error e) override { result_.emplace(fail(std::move(e))); }
    void reset() override { result_.reset(); }
    void finish(const Error* batch_error) noexcept override {
        try {
            if (batch_error != nullptr) {
                cb_(fail(*batch_error));
            } else if (result_) {
                cb_(std::move(*result_));
            } else {
                cb_(fail(ErrorCode::Internal, "operation never ran"));
            }
        } catch (...) {
            // A callback must not throw into the writer; nothing sensible to do.
        }
    }

private:
    std::function<Result<T>(WriteCtx&)> fn_;
    Callback<T> cb_;
    std::optional<Result<T>> result_;
};

// One open store per path per process (LMDB forbids opening an environment
// twice in one process). Keyed by real path; the pid makes a forked child's
// inherited copy of the registry harmless.
extern std::mutex g_registry_mutex;
extern std::map<std::string, pid_t> g_open_paths;

class LmdbStore final : public Store {
public:
    LmdbStore(StoreOptions options, std::string real_path)
        : options_(std::move(options)),
          real_path_(std::move(real_path)),
          notifier_(options_.path + "/notify") {}

    ~LmdbStore() override;

    Result<void> init(const std::vector<Migration>& migrations);

    // ---------- directory ----------

    Result<void> add_domain(std::string_view domain) override;

    Result<void> remove_domain(std::string_view domain) override;

    Result<std::vector<std::string>> list_domains() override;

    Result<bool> is_local_domain(std::string_view domain) override;

    Result<UserRecord> add_user(std::string_view address, std::string_view password_hash,
                                uint64_t quota_bytes) override;

    Result<UserRecord> get_user(std::string_view address) override;

    Result<void> modify_user(std::string_view address, std::function<void(UserRecord&)> change);

    Result<void> set_password_hash(std::string_view address, std::string_view hash) override;
    Result<void> set_user_quota(std::string_view address, uint64_t quota_bytes) override;
    Result<void> set_user_flags(std::string_view address, uint32_t flags) override;

    Result<std::vector<UserRecord>> list_users(std::string_view domain) override;

    Result<void> remove_user(std::string_view address) override;

    Result<void> add_alias(std::string_view source, std::string_view target) override;

    Result<void> remove_alias(std::string_view source, std::string_view target) override;

    Result<std::vector<AliasRecord>> list_aliases(std::string_view domain) override;

    Result<std::vector<ResolvedRecipient>> resolve_recipient(std::string_view address) override;

    // ---------- reads ----------

    Result<std::vector<MailboxRecord>> list_mailboxes(std::string_view user) override;

    Result<MailboxRecord> get_mailbox(std::string_view user, std::string_view name) override;

    Result<MailboxRecord> get_mailbox_by_id(uint64_t mailbox_id) override;

    Result<std::vector<MessageRecord>> list_messages(uint64_t mailbox_id, uint32_t first_uid,
                                                     uint32_t last_uid) override;

    Result<std::string> read_message(uint64_t mailbox_id, uint32_t uid) override;

    Result<std::string> get_structure(uint64_t blob_id) override;

    Result<MailboxChanges> changes_since(uint64_t mailbox_id, uint64_t modseq) override;

    Result<QuotaUsage> quota_usage(std::string_view user) override;

    Result<std::vector<QueueEntry>> list_due(int64_t now_seconds, size_t limit) override;

    Result<std::vector<QueueEntry>> list_queue() override;

    Result<QueueEntry> get_queue_entry(uint64_t id) override;

    Result<std::string> read_queue_message(uint64_t id) override;

    // ---------- writes ----------

    void deliver_async(Delivery delivery, Callback<DeliveryResult> done) override;

    void append_async(std::string_view user, std::string_view mailbox, std::string body,
                      std::string structure, uint32_t flags, std::vector<std::string> keywords,
                      int64_t internaldate, Callback<TargetResult> done) override;

    void store_flags_async(FlagUpdate update, Callback<FlagResult> done) override;

    void expunge_async(uint64_t mailbox_id, std::vector<uint32_t> uids,
                       Callback<std::vector<uint32_t>> done) override;

    void copy_async(uint64_t source_mailbox_id, std::vector<uint32_t> uids,
                    uint64_t dest_mailbox_id, bool move, Callback<CopyResult> done) override;

    void create_mailbox_async(std::string_view user, std::string_view name,
                              std::string_view special_use, Callback<MailboxRecord> done) override;

    void rename_mailbox_async(std::string_view user, std::string_view from, std::string_view to,
                              Callback<void> done) override;

    void delete_mailbox_async(std::string_view user, std::string_view name,
                              Callback<void> done) override;

    void subscribe_mailbox_async(std::string_view user, std::string_view name, bool subscribed,
                                 Callback<void> done) override;

    void update_queue_entry_async(QueueEntry entry, Callback<void> done) override;

    void remove_queue_entry_async(uint64_t id, Callback<void> done) override;

    // ---------- maintenance ----------

    Result<int> check_stale_readers() override;

    Result<uint32_t> schema_version() override;

    Result<ConsistencyReport> check_consistency() override;

    bool on_writer_thread() const override;

    StoreStats stats() const override;

private:
    struct EnvCloser {
        void operator()(MDB_env* e) const noexcept { mdb_env_close(e); }
    };

    Result<void> open_tables(const std::vector<Migration>& migrations);

    // A process killed between staging a large body's file and committing the
    // transaction that references it leaves an orphan file. Files that no blob
    // references and that are older than kOrphanAgeSeconds (so that another
    // process's delivery in flight is never touched) are removed at open.
    void sweep_orphan_files();

    // One short read transaction on the calling thread.
    template <typename T, typename Fn>
    Result<T> read(Fn&& fn) {
        for (int attempt = 0;; ++attempt) {
            std::shared_lock lk(env_mutex_);
            MDB_txn* txn = nullptr;
            int rc = mdb_txn_begin(env_.get(), nullptr, MDB_RDONLY, &txn);
            if (rc == MDB_MAP_RESIZED && attempt < 3) {
                lk.unlock();
                adopt_map_size();
                continue;
            }
            if (rc != 0) {
                return fail(lmdb_error(rc, "txn_begin(read)"));
            }
            Tx tx{txn, &tables_};
            Result<T> r = fn(tx);
            mdb_txn_abort(txn);
            return r;
        }
    }

    template <typename T>
    Result<T> write_sync(std::function<Result<T>(WriteCtx&)> fn) {
        if (std::this_thread::get_id() == writer_id_) {
            return fail(ErrorCode::Internal, "blocking store call on the writer thread");
        }
        std::mutex m;
        std::condition_variable cv;
        std::optional<Result<T>> out;
        submit(std::make_unique<FnOp<T>>(std::move(fn), [&](Result<T> r) {
            std::lock_guard lk(m);
            out.emplace(std::move(r));
            cv.notify_one();
        }));
        std::unique_lock lk(m);
        cv.wait(lk, [&] { return out.has_value(); });
        return std::move(*out);
    }

    void submit(std::unique_ptr<WriteOp> op);

    void adopt_map_size();

    Result<void> grow_map();

    void writer_main();
    // Runs one batch; on success fills the ops' results. Returns an error that
    // applies to the whole batch (commit failure).
    Result<void> run_batch(std::vector<std::unique_ptr<WriteOp>>& batch);

    static Result<DeliveryResult> deliver_tx(WriteCtx& tx, const Delivery& d);
    static Result<FlagResult> store_flags_tx(WriteCtx& tx, const FlagUpdate& u);
    static Result<std::vector<uint32_t>> expunge_tx(WriteCtx& tx, uint64_t mailbox_id,
                                                    const std::vector<uint32_t>& uids);
    static Result<CopyResult> copy_tx(WriteCtx& tx, uint64_t src, const std::vector<uint32_t>& uids,
                                      uint64_t dst, bool move);
    static Result<void> rename_tx(WriteCtx& tx, const std::string& user, const std::string& from,
                                  const std::string& to);

    StoreOptions options_;
    std::string real_path_;
    std::unique_ptr<MDB_env, EnvCloser> env_;
    Tables tables_;
    std::shared_mutex env_mutex_;

    std::mutex queue_mutex_;
    std::condition_variable queue_cv_;
    std::deque<std::unique_ptr<WriteOp>> queue_;
    bool stopping_ = false;
    std::thread writer_;
    std::atomic<std::thread::id> writer_id_{};
    Notifier notifier_;
    std::atomic<uint64_t> commits_{0};
    std::atomic<uint64_t> operations_{0};
    std::atomic<uint64_t> failed_operations_{0};
    std::atomic<uint64_t> map_grows_{0};
};

}  // namespace yubin::store::lmdb_detail
