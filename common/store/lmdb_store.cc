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

namespace yubin::store {

namespace {

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

MDB_val to_val(std::string_view s) {
    return MDB_val{s.size(), const_cast<char*>(s.data())};
}
std::string_view to_sv(const MDB_val& v) {
    return std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
}

Error lmdb_error(int rc, std::string_view what) {
    ErrorCode code = ErrorCode::Io;
    if (rc == MDB_NOTFOUND) {
        code = ErrorCode::NotFound;
    } else if (rc == MDB_KEYEXIST) {
        code = ErrorCode::Exists;
    } else if (rc == MDB_MAP_FULL) {
        code = ErrorCode::Limit;
    } else if (rc == MDB_READERS_FULL || rc == MDB_TXN_FULL || rc == MDB_MAP_RESIZED) {
        code = ErrorCode::Temp;
    }
    return Error{code, fmt::format("lmdb {}: {}", what, mdb_strerror(rc))};
}

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
std::optional<Addr> parse_addr(std::string_view address, bool allow_empty_local = false) {
    std::string canon = canonical_address(trim(address));
    size_t at = canon.rfind('@');
    if (at == std::string::npos || at + 1 >= canon.size() || (at == 0 && !allow_empty_local)) {
        return std::nullopt;
    }
    if (canon.find('\0') != std::string::npos) {
        return std::nullopt;
    }
    return Addr{canon.substr(0, at), canon.substr(at + 1)};
}

std::string addr_from_key(std::string_view key) {
    size_t nul = key.find('\0');
    if (nul == std::string_view::npos) {
        return std::string(key);
    }
    return fmt::format("{}@{}", key.substr(nul + 1), key.substr(0, nul));
}

// INBOX is case-insensitive (RFC 9051 §5.1); every other name is kept as given.
std::string normalize_mailbox(std::string_view name) {
    if (iequals(name, "INBOX")) {
        return "INBOX";
    }
    return std::string(name);
}

std::string mailbox_key(std::string_view user, std::string_view name) {
    std::string k(user);
    k.push_back('\0');
    k.append(normalize_mailbox(name));
    return k;
}

int64_t due_time(const QueueEntry& e) {
    return std::max<int64_t>({e.next_attempt, e.hold_until, 0});
}

// ---------- record codecs ----------

std::string encode_user(const UserRecord& u) {
    Encoder e;
    e.u8(kRecordVersion).str(u.password_hash).u64(u.quota_bytes).u64(u.quota_used_bytes);
    e.u32(u.flags).i64(u.created);
    return e.take();
}

Result<UserRecord> decode_user(std::string_view key, std::string_view v) {
    Decoder d(v);
    UserRecord u;
    d.u8();
    u.address = addr_from_key(key);
    u.password_hash = d.str();
    u.quota_bytes = d.u64();
    u.quota_used_bytes = d.u64();
    u.flags = d.u32();
    u.created = d.i64();
    if (!d.ok()) {
        return fail(ErrorCode::Internal, "corrupt user record " + u.address);
    }
    return u;
}

std::string encode_mailbox(const MailboxRecord& m) {
    Encoder e;
    e.u8(kRecordVersion).u64(m.id).str(m.user).str(m.name).u32(m.uidvalidity).u32(m.uidnext);
    e.u64(m.highestmodseq).u32(m.messages).u32(m.unseen).u64(m.size_bytes).str(m.special_use);
    e.u8(m.subscribed ? 1 : 0);
    return e.take();
}

Result<MailboxRecord> decode_mailbox(std::string_view v) {
    Decoder d(v);
    MailboxRecord m;
    d.u8();
    m.id = d.u64();
    m.user = d.str();
    m.name = d.str();
    m.uidvalidity = d.u32();
    m.uidnext = d.u32();
    m.highestmodseq = d.u64();
    m.messages = d.u32();
    m.unseen = d.u32();
    m.size_bytes = d.u64();
    m.special_use = d.str();
    m.subscribed = d.u8() != 0;
    if (!d.ok()) {
        return fail(ErrorCode::Internal, "corrupt mailbox record");
    }
    return m;
}

struct MsgValue {
    MessageRecord rec;
    std::string prefix;
};

std::string encode_msg(const MessageRecord& m, std::string_view prefix) {
    Encoder e;
    e.u8(kRecordVersion).u64(m.blob_id).u32(m.flags).strs(m.keywords).i64(m.internaldate);
    e.u64(m.size).u64(m.modseq).str(prefix);
    return e.take();
}

Result<MsgValue> decode_msg(std::string_view key, std::string_view v) {
    Decoder d(v);
    MsgValue mv;
    mv.rec.mailbox_id = codec::get_be64(key, 0);
    mv.rec.uid = codec::get_be32(key, 8);
    d.u8();
    mv.rec.blob_id = d.u64();
    mv.rec.flags = d.u32();
    mv.rec.keywords = d.strs();
    mv.rec.internaldate = d.i64();
    mv.rec.size = d.u64();
    mv.rec.modseq = d.u64();
    mv.prefix = d.str();
    mv.rec.prefix_size = static_cast<uint32_t>(mv.prefix.size());
    if (!d.ok() || key.size() != 12) {
        return fail(ErrorCode::Internal, "corrupt message record");
    }
    return mv;
}

struct BlobRef {
    uint32_t refcount = 0;
    uint64_t size = 0;
    std::string file;  // empty = inline in blob_data
};

std::string encode_blob_ref(const BlobRef& b) {
    Encoder e;
    e.u8(kRecordVersion).u32(b.refcount).u64(b.size).str(b.file);
    return e.take();
}

Result<BlobRef> decode_blob_ref(std::string_view v) {
    Decoder d(v);
    BlobRef b;
    d.u8();
    b.refcount = d.u32();
    b.size = d.u64();
    b.file = d.str();
    if (!d.ok()) {
        return fail(ErrorCode::Internal, "corrupt blob record");
    }
    return b;
}

std::string encode_queue(const QueueEntry& q) {
    Encoder e;
    e.u8(kRecordVersion).str(q.sender).u32(static_cast<uint32_t>(q.recipients.size()));
    for (const auto& r : q.recipients) {
        e.str(r.address).u8(static_cast<uint8_t>(r.status)).u32(r.attempts).str(r.last_error);
        e.u8(r.notify).str(r.orcpt);
    }
    e.str(q.envid).u8(static_cast<uint8_t>(q.ret)).i64(q.hold_until).i64(q.created);
    e.i64(q.next_attempt).u64(q.blob_id).u64(q.size);
    return e.take();
}

Result<QueueEntry> decode_queue(std::string_view key, std::string_view v) {
    Decoder d(v);
    QueueEntry q;
    q.id = codec::get_be64(key);
    d.u8();
    q.sender = d.str();
    uint32_t n = d.u32();
    for (uint32_t i = 0; i < n && d.ok(); ++i) {
        QueueRecipient r;
        r.address = d.str();
        r.status = static_cast<RecipientStatus>(d.u8() & 3);
        r.attempts = d.u32();
        r.last_error = d.str();
        r.notify = d.u8();
        r.orcpt = d.str();
        q.recipients.push_back(std::move(r));
    }
    q.envid = d.str();
    q.ret = static_cast<DsnRet>(d.u8() % 3);
    q.hold_until = d.i64();
    q.created = d.i64();
    q.next_attempt = d.i64();
    q.blob_id = d.u64();
    q.size = d.u64();
    if (!d.ok()) {
        return fail(ErrorCode::Internal, "corrupt queue record");
    }
    return q;
}

// ---------- files for large bodies ----------

std::string blob_file_path(const std::string& root, std::string_view name) {
    return fmt::format("{}/blobs/{}/{}", root, name.substr(0, 2), name);
}

Result<void> fsync_path(const std::string& path, bool directory) {
    int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        return fail(ErrorCode::Io, fmt::format("open {}: {}", path, std::strerror(errno)));
    }
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) {
        return fail(ErrorCode::Io, fmt::format("fsync {}: {}", path, std::strerror(err)));
    }
    return {};
}

Result<std::string> random_name() {
    unsigned char bytes[16];
    size_t got = 0;
    while (got < sizeof(bytes)) {
        ssize_t n = ::getrandom(bytes + got, sizeof(bytes) - got, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return fail(ErrorCode::Io, "getrandom failed");
        }
        got += static_cast<size_t>(n);
    }
    std::string out;
    for (unsigned char b : bytes) {
        out += fmt::format("{:02x}", b);
    }
    return out;
}

// Writes and fsyncs the body file; the caller fsyncs its directory before the
// LMDB commit that references it.
Result<void> write_file(const std::string& path, std::string_view data) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        return fail(ErrorCode::Io, fmt::format("create {}: {}", path, std::strerror(errno)));
    }
    size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            int err = errno;
            ::close(fd);
            ::unlink(path.c_str());
            return fail(ErrorCode::Io, fmt::format("write {}: {}", path, std::strerror(err)));
        }
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) {
        int err = errno;
        ::close(fd);
        ::unlink(path.c_str());
        return fail(ErrorCode::Io, fmt::format("fsync {}: {}", path, std::strerror(err)));
    }
    ::close(fd);
    return {};
}

Result<std::string> read_file(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return fail(ErrorCode::Io, fmt::format("open {}: {}", path, std::strerror(errno)));
    }
    std::string out;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int err = errno;
            ::close(fd);
            return fail(ErrorCode::Io, fmt::format("read {}: {}", path, std::strerror(err)));
        }
        if (n == 0) {
            break;
        }
        out.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return out;
}

Result<void> make_dir(const std::string& path) {
    if (::mkdir(path.c_str(), 0770) != 0 && errno != EEXIST) {
        return fail(ErrorCode::Io, fmt::format("mkdir {}: {}", path, std::strerror(errno)));
    }
    return {};
}

// ---------- domain logic on a transaction ----------

Result<uint64_t> next_counter(Tx& tx, std::string_view name) {
    auto cur = tx.get(tx.t->meta, name);
    if (!cur) {
        return fail(cur.error());
    }
    uint64_t value = *cur && (*cur)->size() == 8 ? codec::get_be64(**cur) : 1;
    YUBIN_TRY(tx.put(tx.t->meta, name, codec::be64_key(value + 1)));
    return value;
}

Result<bool> domain_exists(Tx& tx, std::string_view domain) {
    auto v = tx.get(tx.t->domains, domain);
    if (!v) {
        return fail(v.error());
    }
    return v->has_value();
}

Result<std::optional<UserRecord>> load_user(Tx& tx, const Addr& a) {
    std::string key = a.key();
    auto v = tx.get(tx.t->users, key);
    if (!v) {
        return fail(v.error());
    }
    if (!*v) {
        return std::optional<UserRecord>{};
    }
    auto u = decode_user(key, **v);
    if (!u) {
        return fail(u.error());
    }
    return std::optional<UserRecord>{std::move(*u)};
}

Result<void> save_user(Tx& tx, const UserRecord& u) {
    auto a = parse_addr(u.address);
    if (!a) {
        return fail(ErrorCode::Internal, "bad user address " + u.address);
    }
    return tx.put(tx.t->users, a->key(), encode_user(u));
}

Result<std::optional<MailboxRecord>> load_mailbox(Tx& tx, std::string_view user,
                                                  std::string_view name) {
    auto v = tx.get(tx.t->mailboxes, mailbox_key(user, name));
    if (!v) {
        return fail(v.error());
    }
    if (!*v) {
        return std::optional<MailboxRecord>{};
    }
    auto m = decode_mailbox(**v);
    if (!m) {
        return fail(m.error());
    }
    return std::optional<MailboxRecord>{std::move(*m)};
}

Result<MailboxRecord> load_mailbox_by_id(Tx& tx, uint64_t id) {
    auto k = tx.get(tx.t->mbox_ids, codec::be64_key(id));
    if (!k) {
        return fail(k.error());
    }
    if (!*k) {
        return fail(ErrorCode::NotFound, fmt::format("no mailbox {}", id));
    }
    auto v = tx.get(tx.t->mailboxes, **k);
    if (!v) {
        return fail(v.error());
    }
    if (!*v) {
        return fail(ErrorCode::Internal, fmt::format("mailbox index {} dangles", id));
    }
    return decode_mailbox(**v);
}

Result<void> save_mailbox(Tx& tx, const MailboxRecord& m) {
    return tx.put(tx.t->mailboxes, mailbox_key(m.user, m.name), encode_mailbox(m));
}

Result<std::vector<MailboxRecord>> user_mailboxes(Tx& tx, std::string_view user) {
    std::string prefix(user);
    prefix.push_back('\0');
    std::vector<MailboxRecord> out;
    Result<void> inner;
    YUBIN_TRY(tx.scan_prefix(tx.t->mailboxes, prefix, [&](std::string_view, std::string_view v) {
        auto m = decode_mailbox(v);
        if (!m) {
            inner = fail(m.error());
            return false;
        }
        out.push_back(std::move(*m));
        return true;
    }));
    YUBIN_TRY(inner);
    return out;
}

Result<MailboxRecord> create_mailbox_tx(WriteCtx& tx, std::string_view user, std::string_view name,
                                        std::string_view special_use, bool subscribed) {
    if (name.empty() || name.find('\0') != std::string_view::npos ||
        name.front() == kHierarchyDelimiter || name.back() == kHierarchyDelimiter) {
        return fail(ErrorCode::Invalid, "invalid mailbox name");
    }
    auto existing = load_mailbox(tx, user, name);
    if (!existing) {
        return fail(existing.error());
    }
    if (*existing) {
        return fail(ErrorCode::Exists, fmt::format("mailbox {} exists", name));
    }
    MailboxRecord m;
    auto id = next_counter(tx, "next_mailbox_id");
    if (!id) {
        return fail(id.error());
    }
    // A per-store counter seeded with the creation time (migration 0→1): every
    // mailbox instance, including a re-created one, gets a new UIDVALIDITY
    // (RFC 9051 §2.3.1.1).
    auto uv = next_counter(tx, "next_uidvalidity");
    if (!uv) {
        return fail(uv.error());
    }
    m.id = *id;
    m.user = std::string(user);
    m.name = normalize_mailbox(name);
    m.uidvalidity = static_cast<uint32_t>(*uv == 0 ? 1 : *uv);
    m.special_use = std::string(special_use);
    m.subscribed = subscribed;
    YUBIN_TRY(save_mailbox(tx, m));
    YUBIN_TRY(tx.put(tx.t->mbox_ids, codec::be64_key(m.id), mailbox_key(m.user, m.name)));
    tx.changed_mailbox(m.id);
    return m;
}

Result<BlobRef> load_blob_ref(Tx& tx, uint64_t blob_id) {
    auto v = tx.get(tx.t->blob_refs, codec::be64_key(blob_id));
    if (!v) {
        return fail(v.error());
    }
    if (!*v) {
        return fail(ErrorCode::NotFound, fmt::format("no blob {}", blob_id));
    }
    return decode_blob_ref(**v);
}

// Stores a body once with refcount 0; references are added per message/queue
// entry. The body is inline unless the writer staged it as a file.
Result<uint64_t> store_blob(WriteCtx& tx, std::string_view body, std::string_view structure) {
    auto id = next_counter(tx, "next_blob_id");
    if (!id) {
        return fail(id.error());
    }
    std::string key = codec::be64_key(*id);
    BlobRef ref;
    ref.size = body.size();
    ref.file = tx.staged_file;
    YUBIN_TRY(tx.put(tx.t->blob_refs, key, encode_blob_ref(ref)));
    if (ref.file.empty()) {
        YUBIN_TRY(tx.put(tx.t->blob_data, key, body));
    } else {
        YUBIN_TRY(tx.put(tx.t->blob_files, ref.file, key));
    }
    if (!structure.empty()) {
        YUBIN_TRY(tx.put(tx.t->structure, key, structure));
    }
    return *id;
}

// Adjusts a body's reference count; at 0 the body, its structure and (after
// the commit) its file go away.
Result<void> blob_adjust(WriteCtx& tx, uint64_t blob_id, int delta) {
    auto ref = load_blob_ref(tx, blob_id);
    if (!ref) {
        return fail(ref.error());
    }
    int64_t count = static_cast<int64_t>(ref->refcount) + delta;
    std::string key = codec::be64_key(blob_id);
    if (count > 0) {
        ref->refcount = static_cast<uint32_t>(count);
        return tx.put(tx.t->blob_refs, key, encode_blob_ref(*ref));
    }
    YUBIN_TRY(tx.del(tx.t->blob_refs, key));
    YUBIN_TRY(tx.del(tx.t->blob_data, key));
    YUBIN_TRY(tx.del(tx.t->structure, key));
    if (!ref->file.empty()) {
        YUBIN_TRY(tx.del(tx.t->blob_files, ref->file));
        tx.unlink_after_commit.push_back(ref->file);
    }
    return {};
}

// Adds a message to a loaded mailbox (the caller saves mailbox and user).
Result<MessageRecord> insert_msg(WriteCtx& tx, MailboxRecord& mb, UserRecord* user,
                                 uint64_t blob_id, uint64_t blob_size, uint32_t flags,
                                 std::vector<std::string> keywords, int64_t internaldate,
                                 std::string_view prefix) {
    if (mb.uidnext == UINT32_MAX) {
        return fail(ErrorCode::Limit, "mailbox ran out of UIDs");
    }
    MessageRecord m;
    m.mailbox_id = mb.id;
    m.uid = mb.uidnext++;
    m.blob_id = blob_id;
    m.flags = flags;
    m.keywords = std::move(keywords);
    m.internaldate = internaldate;
    m.size = blob_size + prefix.size();
    m.modseq = ++mb.highestmodseq;
    m.prefix_size = static_cast<uint32_t>(prefix.size());
    YUBIN_TRY(tx.put(tx.t->msgs, codec::be64_be32_key(mb.id, m.uid), encode_msg(m, prefix)));
    std::string idx;
    codec::put_be32(idx, m.uid);
    idx.push_back(0);
    YUBIN_TRY(tx.put(tx.t->modseq, codec::be64_pair_key(mb.id, m.modseq), idx));
    YUBIN_TRY(blob_adjust(tx, blob_id, +1));
    mb.messages++;
    if ((flags & kFlagSeen) == 0) {
        mb.unseen++;
    }
    mb.size_bytes += m.size;
    if (user != nullptr) {
        user->quota_used_bytes += m.size;
    }
    tx.changed_mailbox(mb.id);
    return m;
}

// Removes one message: record, modseq entry (replaced by an expunge tombstone
// for CONDSTORE/QRESYNC), counters, quota, body reference.
Result<void> remove_msg(WriteCtx& tx, MailboxRecord& mb, UserRecord* user, const MsgValue& mv,
                        bool tombstone) {
    YUBIN_TRY(tx.del(tx.t->msgs, codec::be64_be32_key(mb.id, mv.rec.uid)));
    YUBIN_TRY(tx.del(tx.t->modseq, codec::be64_pair_key(mb.id, mv.rec.modseq)));
    if (tombstone) {
        std::string idx;
        codec::put_be32(idx, mv.rec.uid);
        idx.push_back(1);
        YUBIN_TRY(tx.put(tx.t->modseq, codec::be64_pair_key(mb.id, ++mb.highestmodseq), idx));
    }
    YUBIN_TRY(blob_adjust(tx, mv.rec.blob_id, -1));
    mb.messages--;
    if ((mv.rec.flags & kFlagSeen) == 0) {
        mb.unseen--;
    }
    mb.size_bytes -= mv.rec.size;
    if (user != nullptr) {
        user->quota_used_bytes -= std::min(user->quota_used_bytes, mv.rec.size);
    }
    tx.changed_mailbox(mb.id);
    return {};
}

Result<std::optional<MsgValue>> load_msg(Tx& tx, uint64_t mailbox_id, uint32_t uid) {
    std::string key = codec::be64_be32_key(mailbox_id, uid);
    auto v = tx.get(tx.t->msgs, key);
    if (!v) {
        return fail(v.error());
    }
    if (!*v) {
        return std::optional<MsgValue>{};
    }
    auto m = decode_msg(key, **v);
    if (!m) {
        return fail(m.error());
    }
    return std::optional<MsgValue>{std::move(*m)};
}

// Deletes a whole mailbox with its messages (no tombstones: the id is gone).
Result<void> drop_mailbox(WriteCtx& tx, MailboxRecord mb, UserRecord* user) {
    std::vector<MsgValue> msgs;
    Result<void> inner;
    YUBIN_TRY(tx.scan_prefix(tx.t->msgs, codec::be64_key(mb.id),
                             [&](std::string_view k, std::string_view v) {
                                 auto m = decode_msg(k, v);
                                 if (!m) {
                                     inner = fail(m.error());
                                     return false;
                                 }
                                 msgs.push_back(std::move(*m));
                                 return true;
                             }));
    YUBIN_TRY(inner);
    for (const auto& mv : msgs) {
        YUBIN_TRY(remove_msg(tx, mb, user, mv, false));
    }
    std::vector<std::string> idx_keys;
    YUBIN_TRY(tx.scan_prefix(tx.t->modseq, codec::be64_key(mb.id),
                             [&](std::string_view k, std::string_view) {
                                 idx_keys.emplace_back(k);
                                 return true;
                             }));
    for (const auto& k : idx_keys) {
        YUBIN_TRY(tx.del(tx.t->modseq, k));
    }
    YUBIN_TRY(tx.del(tx.t->mbox_ids, codec::be64_key(mb.id)));
    YUBIN_TRY(tx.del(tx.t->mailboxes, mailbox_key(mb.user, mb.name)));
    tx.changed_mailbox(mb.id);
    return {};
}

Result<uint64_t> enqueue_tx(WriteCtx& tx, QueueEntry entry, uint64_t blob_id, uint64_t size) {
    auto id = next_counter(tx, "next_queue_id");
    if (!id) {
        return fail(id.error());
    }
    entry.id = *id;
    entry.blob_id = blob_id;
    entry.size = size;
    if (entry.created == 0) {
        entry.created = tx.now;
    }
    if (entry.next_attempt == 0) {
        entry.next_attempt = tx.now;
    }
    std::string key = codec::be64_key(entry.id);
    YUBIN_TRY(tx.put(tx.t->q_msg, key, encode_queue(entry)));
    YUBIN_TRY(tx.put(tx.t->q_due,
                     codec::be64_pair_key(static_cast<uint64_t>(due_time(entry)), entry.id),
                     std::string_view()));
    YUBIN_TRY(blob_adjust(tx, blob_id, +1));
    tx.changed(Change::Kind::Queue);
    return entry.id;
}

Result<QueueEntry> load_queue(Tx& tx, uint64_t id) {
    std::string key = codec::be64_key(id);
    auto v = tx.get(tx.t->q_msg, key);
    if (!v) {
        return fail(v.error());
    }
    if (!*v) {
        return fail(ErrorCode::NotFound, fmt::format("no queue entry {}", id));
    }
    return decode_queue(key, **v);
}

// Reads a body (inline or file) into out.
Result<void> append_blob(Tx& tx, const std::string& root, uint64_t blob_id, std::string& out) {
    auto ref = load_blob_ref(tx, blob_id);
    if (!ref) {
        return fail(ref.error());
    }
    if (!ref->file.empty()) {
        auto data = read_file(blob_file_path(root, ref->file));
        if (!data) {
            return fail(data.error());
        }
        out.append(*data);
        return {};
    }
    auto v = tx.get(tx.t->blob_data, codec::be64_key(blob_id));
    if (!v) {
        return fail(v.error());
    }
    if (!*v) {
        return fail(ErrorCode::Internal, fmt::format("blob {} has no data", blob_id));
    }
    out.append(**v);
    return {};
}

// ---------- recipient resolution ----------

struct Resolver {
    Tx& tx;
    std::vector<ResolvedRecipient> out;
    std::set<std::string> seen;

    void add(ResolvedRecipient r) {
        std::string k = r.address + '\0' + r.mailbox;
        if (seen.insert(k).second) {
            out.push_back(std::move(r));
        }
    }

    Result<std::vector<std::string>> alias_targets(const std::string& key) {
        std::vector<std::string> targets;
        auto cur = tx.cursor(tx.t->aliases);
        if (!cur) {
            return fail(cur.error());
        }
        MDB_val k = to_val(key);
        MDB_val v{};
        int rc = mdb_cursor_get(cur->get(), &k, &v, MDB_SET_KEY);
        while (rc == 0) {
            targets.emplace_back(to_sv(v));
            rc = mdb_cursor_get(cur->get(), &k, &v, MDB_NEXT_DUP);
        }
        if (rc != MDB_NOTFOUND) {
            return fail(lmdb_error(rc, "aliases"));
        }
        return targets;
    }

    // The mailbox a plus tag selects: an existing mailbox whose name equals the
    // tag case-insensitively, else INBOX.
    Result<std::string> tag_mailbox(const std::string& user, std::string_view tag) {
        auto boxes = user_mailboxes(tx, user);
        if (!boxes) {
            return fail(boxes.error());
        }
        for (const auto& b : *boxes) {
            if (iequals(b.name, tag)) {
                return b.name;
            }
        }
        return std::string("INBOX");
    }

    // Returns false if nothing matched at this address. mailbox is the plus
    // tag's mailbox, carried through aliases of the base address.
    Result<bool> resolve(std::string_view address, int depth, bool top) {
        auto a = parse_addr(address);
        if (!a) {
            return fail(ErrorCode::Invalid, fmt::format("bad address {}", address));
        }
        auto local = domain_exists(tx, a->domain);
        if (!local) {
            return fail(local.error());
        }
        if (!*local) {
            if (top) {
                return fail(ErrorCode::Perm, fmt::format("{}: not local", a->domain));
            }
            add(ResolvedRecipient{a->full(), {}, true});
            return true;
        }
        if (depth > kMaxAliasDepth) {
            return fail(ErrorCode::Perm, fmt::format("alias loop at {}", a->full()));
        }
        auto user = load_user(tx, *a);
        if (!user) {
            return fail(user.error());
        }
        if (*user) {
            add(ResolvedRecipient{a->full(), "INBOX", false});
            return true;
        }
        auto exact = expand(a->key(), depth);
        if (!exact) {
            return fail(exact.error());
        }
        if (*exact) {
            return true;
        }
        // Plus-addressing: user+tag@domain.
        size_t plus = a->local.find('+');
        if (plus != std::string::npos && plus > 0) {
            Addr base{a->local.substr(0, plus), a->domain};
            std::string tag = a->local.substr(plus + 1);
            auto base_user = load_user(tx, base);
            if (!base_user) {
                return fail(base_user.error());
            }
            if (*base_user) {
                auto box = tag_mailbox(base.full(), tag);
                if (!box) {
                    return fail(box.error());
                }
                add(ResolvedRecipient{base.full(), *box, false});
                return true;
            }
            auto via_alias = expand(base.key(), depth);
            if (!via_alias) {
                return fail(via_alias.error());
            }
            if (*via_alias) {
                return true;
            }
        }
        // Catch-all "@domain" last, so real users and aliases win.
        return expand(Addr{"", a->domain}.key(), depth);
    }

    Result<bool> expand(const std::string& key, int depth) {
        auto targets = alias_targets(key);
        if (!targets) {
            return fail(targets.error());
        }
        bool any = false;
        for (const auto& t : *targets) {
            auto r = resolve(t, depth + 1, false);
            if (!r) {
                // A dangling local target (user since removed) is skipped; a
                // loop or a store error fails the lookup.
                if (r.error().code == ErrorCode::NotFound) {
                    continue;
                }
                return fail(r.error());
            }
            any = any || *r;
        }
        return any;
    }
};

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
std::mutex g_registry_mutex;
std::map<std::string, pid_t> g_open_paths;

class LmdbStore final : public Store {
public:
    LmdbStore(StoreOptions options, std::string real_path)
        : options_(std::move(options)),
          real_path_(std::move(real_path)),
          notifier_(options_.path + "/notify") {}

    ~LmdbStore() override {
        {
            std::lock_guard lk(queue_mutex_);
            stopping_ = true;
        }
        queue_cv_.notify_all();
        if (writer_.joinable()) {
            writer_.join();
        }
        env_.reset();
        std::lock_guard lk(g_registry_mutex);
        g_open_paths.erase(real_path_);
    }

    Result<void> init(const std::vector<Migration>& migrations) {
        MDB_env* env = nullptr;
        int rc = mdb_env_create(&env);
        if (rc != 0) {
            return fail(lmdb_error(rc, "env_create"));
        }
        env_.reset(env);
        if ((rc = mdb_env_set_maxreaders(env, options_.max_readers)) != 0 ||
            (rc = mdb_env_set_maxdbs(env, kMaxDbs)) != 0 ||
            (rc = mdb_env_set_mapsize(env, options_.map_size_bytes)) != 0) {
            return fail(lmdb_error(rc, "env_set"));
        }
        // MDB_NOTLS: read txns belong to no thread (ARCHITECTURE.md). Never
        // MDB_NOSYNC or MDB_NOMETASYNC: a commit is durable when it returns.
        rc = mdb_env_open(env, options_.path.c_str(), MDB_NOTLS, 0660);
        if (rc != 0) {
            return fail(lmdb_error(rc, "env_open " + options_.path));
        }
        int dead = 0;
        mdb_reader_check(env, &dead);
        YUBIN_TRY(open_tables(migrations));
        sweep_orphan_files();
        writer_ = std::thread([this] { writer_main(); });
        return {};
    }

    // ---------- directory ----------

    Result<void> add_domain(std::string_view domain) override {
        std::string d = to_lower(trim(domain));
        if (d.empty() || d.find('@') != std::string::npos || d.find('\0') != std::string::npos) {
            return fail(ErrorCode::Invalid, "invalid domain");
        }
        return write_sync<void>([d](WriteCtx& tx) -> Result<void> {
            auto exists = domain_exists(tx, d);
            if (!exists) {
                return fail(exists.error());
            }
            if (*exists) {
                return fail(ErrorCode::Exists, fmt::format("domain {} exists", d));
            }
            std::string v;
            codec::put_be64(v, static_cast<uint64_t>(tx.now));
            YUBIN_TRY(tx.put(tx.t->domains, d, v));
            tx.changed(Change::Kind::Directory);
            return {};
        });
    }

    Result<void> remove_domain(std::string_view domain) override {
        std::string d = to_lower(trim(domain));
        return write_sync<void>([d](WriteCtx& tx) -> Result<void> {
            auto exists = domain_exists(tx, d);
            if (!exists) {
                return fail(exists.error());
            }
            if (!*exists) {
                return fail(ErrorCode::NotFound, fmt::format("no domain {}", d));
            }
            std::string prefix = d + '\0';
            bool used = false;
            auto check = [&](std::string_view, std::string_view) {
                used = true;
                return false;
            };
            YUBIN_TRY(tx.scan_prefix(tx.t->users, prefix, check));
            YUBIN_TRY(tx.scan_prefix(tx.t->aliases, prefix, check));
            if (used) {
                return fail(ErrorCode::Exists,
                            fmt::format("domain {} still has users or aliases", d));
            }
            YUBIN_TRY(tx.del(tx.t->domains, d));
            tx.changed(Change::Kind::Directory);
            return {};
        });
    }

    Result<std::vector<std::string>> list_domains() override {
        return read<std::vector<std::string>>([](Tx& tx) -> Result<std::vector<std::string>> {
            std::vector<std::string> out;
            YUBIN_TRY(tx.scan_prefix(tx.t->domains, "", [&](std::string_view k, std::string_view) {
                out.emplace_back(k);
                return true;
            }));
            return out;
        });
    }

    Result<bool> is_local_domain(std::string_view domain) override {
        std::string d = to_lower(trim(domain));
        return read<bool>([&](Tx& tx) { return domain_exists(tx, d); });
    }

    Result<UserRecord> add_user(std::string_view address, std::string_view password_hash,
                                uint64_t quota_bytes) override {
        auto a = parse_addr(address);
        if (!a) {
            return fail(ErrorCode::Invalid, fmt::format("bad address {}", address));
        }
        std::string hash(password_hash);
        return write_sync<UserRecord>([a = *a, hash,
                                       quota_bytes](WriteCtx& tx) -> Result<UserRecord> {
            auto local = domain_exists(tx, a.domain);
            if (!local) {
                return fail(local.error());
            }
            if (!*local) {
                return fail(ErrorCode::NotFound, fmt::format("domain {} is not local", a.domain));
            }
            auto existing = load_user(tx, a);
            if (!existing) {
                return fail(existing.error());
            }
            if (*existing) {
                return fail(ErrorCode::Exists, fmt::format("user {} exists", a.full()));
            }
            UserRecord u;
            u.address = a.full();
            u.password_hash = hash;
            u.quota_bytes = quota_bytes;
            u.created = tx.now;
            YUBIN_TRY(save_user(tx, u));
            for (const auto& box : kDefaultMailboxes) {
                YUBIN_TRY(create_mailbox_tx(tx, u.address, box.name, box.special_use, true));
            }
            tx.changed(Change::Kind::Directory);
            return u;
        });
    }

    Result<UserRecord> get_user(std::string_view address) override {
        auto a = parse_addr(address);
        if (!a) {
            return fail(ErrorCode::Invalid, fmt::format("bad address {}", address));
        }
        return read<UserRecord>([&](Tx& tx) -> Result<UserRecord> {
            auto u = load_user(tx, *a);
            if (!u) {
                return fail(u.error());
            }
            if (!*u) {
                return fail(ErrorCode::NotFound, fmt::format("no user {}", a->full()));
            }
            return std::move(**u);
        });
    }

    Result<void> modify_user(std::string_view address, std::function<void(UserRecord&)> change) {
        auto a = parse_addr(address);
        if (!a) {
            return fail(ErrorCode::Invalid, fmt::format("bad address {}", address));
        }
        return write_sync<void>([a = *a, change](WriteCtx& tx) -> Result<void> {
            auto u = load_user(tx, a);
            if (!u) {
                return fail(u.error());
            }
            if (!*u) {
                return fail(ErrorCode::NotFound, fmt::format("no user {}", a.full()));
            }
            change(**u);
            tx.changed(Change::Kind::Directory);
            return save_user(tx, **u);
        });
    }

    Result<void> set_password_hash(std::string_view address, std::string_view hash) override {
        std::string h(hash);
        return modify_user(address, [h](UserRecord& u) { u.password_hash = h; });
    }
    Result<void> set_user_quota(std::string_view address, uint64_t quota_bytes) override {
        return modify_user(address, [quota_bytes](UserRecord& u) { u.quota_bytes = quota_bytes; });
    }
    Result<void> set_user_flags(std::string_view address, uint32_t flags) override {
        return modify_user(address, [flags](UserRecord& u) { u.flags = flags; });
    }

    Result<std::vector<UserRecord>> list_users(std::string_view domain) override {
        std::string prefix;
        if (!domain.empty()) {
            prefix = to_lower(trim(domain)) + '\0';
        }
        return read<std::vector<UserRecord>>([&](Tx& tx) -> Result<std::vector<UserRecord>> {
            std::vector<UserRecord> out;
            Result<void> inner;
            YUBIN_TRY(
                tx.scan_prefix(tx.t->users, prefix, [&](std::string_view k, std::string_view v) {
                    auto u = decode_user(k, v);
                    if (!u) {
                        inner = fail(u.error());
                        return false;
                    }
                    out.push_back(std::move(*u));
                    return true;
                }));
            YUBIN_TRY(inner);
            return out;
        });
    }

    Result<void> remove_user(std::string_view address) override {
        auto a = parse_addr(address);
        if (!a) {
            return fail(ErrorCode::Invalid, fmt::format("bad address {}", address));
        }
        return write_sync<void>([a = *a](WriteCtx& tx) -> Result<void> {
            auto u = load_user(tx, a);
            if (!u) {
                return fail(u.error());
            }
            if (!*u) {
                return fail(ErrorCode::NotFound, fmt::format("no user {}", a.full()));
            }
            auto boxes = user_mailboxes(tx, a.full());
            if (!boxes) {
                return fail(boxes.error());
            }
            for (auto& b : *boxes) {
                YUBIN_TRY(drop_mailbox(tx, b, nullptr));
            }
            YUBIN_TRY(tx.del(tx.t->aliases, a.key()));
            YUBIN_TRY(tx.del(tx.t->users, a.key()));
            tx.changed(Change::Kind::Directory);
            return {};
        });
    }

    Result<void> add_alias(std::string_view source, std::string_view target) override {
        auto s = parse_addr(source, true);
        auto t = parse_addr(target);
        if (!s || !t) {
            return fail(ErrorCode::Invalid, "bad alias source or target");
        }
        return write_sync<void>([s = *s, t = *t](WriteCtx& tx) -> Result<void> {
            auto local = domain_exists(tx, s.domain);
            if (!local) {
                return fail(local.error());
            }
            if (!*local) {
                return fail(ErrorCode::NotFound, fmt::format("domain {} is not local", s.domain));
            }
            auto r = tx.put(tx.t->aliases, s.key(), t.full(), MDB_NODUPDATA);
            if (!r) {
                if (r.error().code == ErrorCode::Exists) {
                    return fail(ErrorCode::Exists, "alias exists");
                }
                return r;
            }
            tx.changed(Change::Kind::Directory);
            return {};
        });
    }

    Result<void> remove_alias(std::string_view source, std::string_view target) override {
        auto s = parse_addr(source, true);
        if (!s) {
            return fail(ErrorCode::Invalid, "bad alias source");
        }
        std::optional<std::string> t;
        if (!target.empty()) {
            auto ta = parse_addr(target);
            if (!ta) {
                return fail(ErrorCode::Invalid, "bad alias target");
            }
            t = ta->full();
        }
        return write_sync<void>([s = *s, t](WriteCtx& tx) -> Result<void> {
            auto gone = t ? tx.del(tx.t->aliases, s.key(), std::string_view(*t))
                          : tx.del(tx.t->aliases, s.key());
            if (!gone) {
                return fail(gone.error());
            }
            if (!*gone) {
                return fail(ErrorCode::NotFound, "no such alias");
            }
            tx.changed(Change::Kind::Directory);
            return {};
        });
    }

    Result<std::vector<AliasRecord>> list_aliases(std::string_view domain) override {
        std::string prefix;
        if (!domain.empty()) {
            prefix = to_lower(trim(domain)) + '\0';
        }
        return read<std::vector<AliasRecord>>([&](Tx& tx) -> Result<std::vector<AliasRecord>> {
            std::vector<AliasRecord> out;
            auto cur = tx.cursor(tx.t->aliases);
            if (!cur) {
                return fail(cur.error());
            }
            MDB_val k = to_val(prefix);
            MDB_val v{};
            int rc = prefix.empty() ? mdb_cursor_get(cur->get(), &k, &v, MDB_FIRST)
                                    : mdb_cursor_get(cur->get(), &k, &v, MDB_SET_RANGE);
            while (rc == 0 && to_sv(k).substr(0, prefix.size()) == prefix) {
                out.push_back(AliasRecord{addr_from_key(to_sv(k)), std::string(to_sv(v))});
                rc = mdb_cursor_get(cur->get(), &k, &v, MDB_NEXT);
            }
            if (rc != 0 && rc != MDB_NOTFOUND) {
                return fail(lmdb_error(rc, "aliases"));
            }
            return out;
        });
    }

    Result<std::vector<ResolvedRecipient>> resolve_recipient(std::string_view address) override {
        return read<std::vector<ResolvedRecipient>>(
            [&](Tx& tx) -> Result<std::vector<ResolvedRecipient>> {
                Resolver r{tx, {}, {}};
                auto found = r.resolve(address, 0, true);
                if (!found) {
                    return fail(found.error());
                }
                if (!*found || r.out.empty()) {
                    return fail(ErrorCode::NotFound, fmt::format("no such user: {}", address));
                }
                return std::move(r.out);
            });
    }

    // ---------- reads ----------

    Result<std::vector<MailboxRecord>> list_mailboxes(std::string_view user) override {
        std::string u = canonical_address(trim(user));
        return read<std::vector<MailboxRecord>>([&](Tx& tx) -> Result<std::vector<MailboxRecord>> {
            auto a = parse_addr(u);
            if (!a) {
                return fail(ErrorCode::Invalid, "bad address");
            }
            auto exists = load_user(tx, *a);
            if (!exists) {
                return fail(exists.error());
            }
            if (!*exists) {
                return fail(ErrorCode::NotFound, fmt::format("no user {}", u));
            }
            return user_mailboxes(tx, u);
        });
    }

    Result<MailboxRecord> get_mailbox(std::string_view user, std::string_view name) override {
        std::string u = canonical_address(trim(user));
        return read<MailboxRecord>([&](Tx& tx) -> Result<MailboxRecord> {
            auto m = load_mailbox(tx, u, name);
            if (!m) {
                return fail(m.error());
            }
            if (!*m) {
                return fail(ErrorCode::NotFound, fmt::format("no mailbox {}", name));
            }
            return std::move(**m);
        });
    }

    Result<MailboxRecord> get_mailbox_by_id(uint64_t mailbox_id) override {
        return read<MailboxRecord>([&](Tx& tx) { return load_mailbox_by_id(tx, mailbox_id); });
    }

    Result<std::vector<MessageRecord>> list_messages(uint64_t mailbox_id, uint32_t first_uid,
                                                     uint32_t last_uid) override {
        return read<std::vector<MessageRecord>>([&](Tx& tx) -> Result<std::vector<MessageRecord>> {
            std::vector<MessageRecord> out;
            Result<void> inner;
            YUBIN_TRY(tx.scan(tx.t->msgs, codec::be64_key(mailbox_id),
                              codec::be64_be32_key(mailbox_id, first_uid),
                              [&](std::string_view k, std::string_view v) {
                                  if (codec::get_be32(k, 8) > last_uid) {
                                      return false;
                                  }
                                  auto m = decode_msg(k, v);
                                  if (!m) {
                                      inner = fail(m.error());
                                      return false;
                                  }
                                  out.push_back(std::move(m->rec));
                                  return true;
                              }));
            YUBIN_TRY(inner);
            return out;
        });
    }

    Result<std::string> read_message(uint64_t mailbox_id, uint32_t uid) override {
        return read<std::string>([&](Tx& tx) -> Result<std::string> {
            auto m = load_msg(tx, mailbox_id, uid);
            if (!m) {
                return fail(m.error());
            }
            if (!*m) {
                return fail(ErrorCode::NotFound, fmt::format("no message {}", uid));
            }
            std::string out = std::move((*m)->prefix);
            YUBIN_TRY(append_blob(tx, options_.path, (*m)->rec.blob_id, out));
            return out;
        });
    }

    Result<std::string> get_structure(uint64_t blob_id) override {
        return read<std::string>([&](Tx& tx) -> Result<std::string> {
            auto v = tx.get(tx.t->structure, codec::be64_key(blob_id));
            if (!v) {
                return fail(v.error());
            }
            if (!*v) {
                return fail(ErrorCode::NotFound, fmt::format("no structure for {}", blob_id));
            }
            return std::string(**v);
        });
    }

    Result<MailboxChanges> changes_since(uint64_t mailbox_id, uint64_t modseq) override {
        return read<MailboxChanges>([&](Tx& tx) -> Result<MailboxChanges> {
            auto mb = load_mailbox_by_id(tx, mailbox_id);
            if (!mb) {
                return fail(mb.error());
            }
            MailboxChanges out;
            out.highestmodseq = mb->highestmodseq;
            std::vector<uint32_t> live;
            YUBIN_TRY(tx.scan(tx.t->modseq, codec::be64_key(mailbox_id),
                              codec::be64_pair_key(mailbox_id, modseq + 1),
                              [&](std::string_view, std::string_view v) {
                                  uint32_t uid = codec::get_be32(v);
                                  if (v.size() >= 5 && v[4] == 1) {
                                      out.expunged.push_back(uid);
                                  } else {
                                      live.push_back(uid);
                                  }
                                  return true;
                              }));
            std::sort(live.begin(), live.end());
            std::sort(out.expunged.begin(), out.expunged.end());
            for (uint32_t uid : live) {
                auto m = load_msg(tx, mailbox_id, uid);
                if (!m) {
                    return fail(m.error());
                }
                if (*m) {
                    out.changed.push_back(std::move((*m)->rec));
                }
            }
            return out;
        });
    }

    Result<QuotaUsage> quota_usage(std::string_view user) override {
        auto u = get_user(user);
        if (!u) {
            return fail(u.error());
        }
        return QuotaUsage{u->quota_used_bytes, u->quota_bytes};
    }

    Result<std::vector<QueueEntry>> list_due(int64_t now_seconds, size_t limit) override {
        return read<std::vector<QueueEntry>>([&](Tx& tx) -> Result<std::vector<QueueEntry>> {
            std::vector<uint64_t> ids;
            YUBIN_TRY(tx.scan_prefix(tx.t->q_due, "", [&](std::string_view k, std::string_view) {
                if (static_cast<int64_t>(codec::get_be64(k, 0)) > now_seconds ||
                    ids.size() >= limit) {
                    return false;
                }
                ids.push_back(codec::get_be64(k, 8));
                return true;
            }));
            std::vector<QueueEntry> out;
            for (uint64_t id : ids) {
                auto e = load_queue(tx, id);
                if (!e) {
                    return fail(e.error());
                }
                out.push_back(std::move(*e));
            }
            return out;
        });
    }

    Result<std::vector<QueueEntry>> list_queue() override {
        return read<std::vector<QueueEntry>>([&](Tx& tx) -> Result<std::vector<QueueEntry>> {
            std::vector<QueueEntry> out;
            Result<void> inner;
            YUBIN_TRY(tx.scan_prefix(tx.t->q_msg, "", [&](std::string_view k, std::string_view v) {
                auto e = decode_queue(k, v);
                if (!e) {
                    inner = fail(e.error());
                    return false;
                }
                out.push_back(std::move(*e));
                return true;
            }));
            YUBIN_TRY(inner);
            return out;
        });
    }

    Result<QueueEntry> get_queue_entry(uint64_t id) override {
        return read<QueueEntry>([&](Tx& tx) { return load_queue(tx, id); });
    }

    Result<std::string> read_queue_message(uint64_t id) override {
        return read<std::string>([&](Tx& tx) -> Result<std::string> {
            auto e = load_queue(tx, id);
            if (!e) {
                return fail(e.error());
            }
            std::string out;
            YUBIN_TRY(append_blob(tx, options_.path, e->blob_id, out));
            return out;
        });
    }

    // ---------- writes ----------

    void deliver_async(Delivery delivery, Callback<DeliveryResult> done) override {
        auto d = std::make_shared<Delivery>(std::move(delivery));
        auto op = std::make_unique<FnOp<DeliveryResult>>(
            [d](WriteCtx& tx) { return deliver_tx(tx, *d); }, std::move(done));
        if (d->body.size() >= options_.large_body_bytes &&
            (!d->targets.empty() || !d->queue.empty())) {
            op->body_to_stage = &d->body;
        }
        submit(std::move(op));
    }

    void append_async(std::string_view user, std::string_view mailbox, std::string body,
                      std::string structure, uint32_t flags, std::vector<std::string> keywords,
                      int64_t internaldate, Callback<TargetResult> done) override {
        Delivery d;
        d.body = std::move(body);
        d.structure = std::move(structure);
        d.internaldate = internaldate;
        DeliveryTarget t;
        t.user = std::string(user);
        t.mailbox = std::string(mailbox);
        t.flags = flags;
        t.keywords = std::move(keywords);
        t.fallback_to_inbox = false;
        d.targets.push_back(std::move(t));
        deliver_async(std::move(d), [done = std::move(done)](Result<DeliveryResult> r) {
            if (!r) {
                done(fail(r.error()));
            } else if (r->targets.empty()) {
                done(fail(ErrorCode::Internal, "append produced no result"));
            } else if (r->targets[0].error) {
                done(fail(*r->targets[0].error));
            } else {
                done(r->targets[0]);
            }
        });
    }

    void store_flags_async(FlagUpdate update, Callback<FlagResult> done) override {
        submit(std::make_unique<FnOp<FlagResult>>(
            [u = std::move(update)](WriteCtx& tx) { return store_flags_tx(tx, u); },
            std::move(done)));
    }

    void expunge_async(uint64_t mailbox_id, std::vector<uint32_t> uids,
                       Callback<std::vector<uint32_t>> done) override {
        submit(std::make_unique<FnOp<std::vector<uint32_t>>>(
            [mailbox_id, uids = std::move(uids)](WriteCtx& tx) {
                return expunge_tx(tx, mailbox_id, uids);
            },
            std::move(done)));
    }

    void copy_async(uint64_t source_mailbox_id, std::vector<uint32_t> uids,
                    uint64_t dest_mailbox_id, bool move, Callback<CopyResult> done) override {
        submit(std::make_unique<FnOp<CopyResult>>(
            [=, uids = std::move(uids)](WriteCtx& tx) {
                return copy_tx(tx, source_mailbox_id, uids, dest_mailbox_id, move);
            },
            std::move(done)));
    }

    void create_mailbox_async(std::string_view user, std::string_view name,
                              std::string_view special_use, Callback<MailboxRecord> done) override {
        submit(std::make_unique<FnOp<MailboxRecord>>(
            [u = canonical_address(trim(user)), n = std::string(name),
             s = std::string(special_use)](WriteCtx& tx) -> Result<MailboxRecord> {
                auto a = parse_addr(u);
                if (!a) {
                    return fail(ErrorCode::Invalid, "bad address");
                }
                auto user_rec = load_user(tx, *a);
                if (!user_rec) {
                    return fail(user_rec.error());
                }
                if (!*user_rec) {
                    return fail(ErrorCode::NotFound, fmt::format("no user {}", u));
                }
                return create_mailbox_tx(tx, u, n, s, false);
            },
            std::move(done)));
    }

    void rename_mailbox_async(std::string_view user, std::string_view from, std::string_view to,
                              Callback<void> done) override {
        submit(std::make_unique<FnOp<void>>(
            [u = canonical_address(trim(user)), f = std::string(from),
             t = std::string(to)](WriteCtx& tx) { return rename_tx(tx, u, f, t); },
            std::move(done)));
    }

    void delete_mailbox_async(std::string_view user, std::string_view name,
                              Callback<void> done) override {
        submit(std::make_unique<FnOp<void>>(
            [u = canonical_address(trim(user)),
             n = std::string(name)](WriteCtx& tx) -> Result<void> {
                if (normalize_mailbox(n) == "INBOX") {
                    return fail(ErrorCode::Perm, "INBOX cannot be deleted");
                }
                auto mb = load_mailbox(tx, u, n);
                if (!mb) {
                    return fail(mb.error());
                }
                if (!*mb) {
                    return fail(ErrorCode::NotFound, fmt::format("no mailbox {}", n));
                }
                auto a = parse_addr(u);
                auto user_rec = load_user(tx, *a);
                if (!user_rec) {
                    return fail(user_rec.error());
                }
                UserRecord* up = *user_rec ? &**user_rec : nullptr;
                YUBIN_TRY(drop_mailbox(tx, **mb, up));
                if (up != nullptr) {
                    YUBIN_TRY(save_user(tx, *up));
                }
                return {};
            },
            std::move(done)));
    }

    void subscribe_mailbox_async(std::string_view user, std::string_view name, bool subscribed,
                                 Callback<void> done) override {
        submit(std::make_unique<FnOp<void>>(
            [u = canonical_address(trim(user)), n = std::string(name),
             subscribed](WriteCtx& tx) -> Result<void> {
                auto mb = load_mailbox(tx, u, n);
                if (!mb) {
                    return fail(mb.error());
                }
                if (!*mb) {
                    return fail(ErrorCode::NotFound, fmt::format("no mailbox {}", n));
                }
                (*mb)->subscribed = subscribed;
                tx.changed_mailbox((*mb)->id);
                return save_mailbox(tx, **mb);
            },
            std::move(done)));
    }

    void update_queue_entry_async(QueueEntry entry, Callback<void> done) override {
        submit(std::make_unique<FnOp<void>>(
            [e = std::move(entry)](WriteCtx& tx) -> Result<void> {
                auto old = load_queue(tx, e.id);
                if (!old) {
                    return fail(old.error());
                }
                YUBIN_TRY(tx.del(tx.t->q_due, codec::be64_pair_key(
                                                  static_cast<uint64_t>(due_time(*old)), e.id)));
                old->recipients = e.recipients;
                old->next_attempt = e.next_attempt;
                old->hold_until = e.hold_until;
                YUBIN_TRY(tx.put(tx.t->q_msg, codec::be64_key(e.id), encode_queue(*old)));
                YUBIN_TRY(tx.put(tx.t->q_due,
                                 codec::be64_pair_key(static_cast<uint64_t>(due_time(*old)), e.id),
                                 std::string_view()));
                tx.changed(Change::Kind::Queue);
                return {};
            },
            std::move(done)));
    }

    void remove_queue_entry_async(uint64_t id, Callback<void> done) override {
        submit(std::make_unique<FnOp<void>>(
            [id](WriteCtx& tx) -> Result<void> {
                auto old = load_queue(tx, id);
                if (!old) {
                    return fail(old.error());
                }
                YUBIN_TRY(tx.del(tx.t->q_due,
                                 codec::be64_pair_key(static_cast<uint64_t>(due_time(*old)), id)));
                YUBIN_TRY(tx.del(tx.t->q_msg, codec::be64_key(id)));
                YUBIN_TRY(blob_adjust(tx, old->blob_id, -1));
                tx.changed(Change::Kind::Queue);
                return {};
            },
            std::move(done)));
    }

    // ---------- maintenance ----------

    Result<int> check_stale_readers() override {
        int dead = 0;
        int rc = mdb_reader_check(env_.get(), &dead);
        if (rc != 0) {
            return fail(lmdb_error(rc, "reader_check"));
        }
        return dead;
    }

    Result<uint32_t> schema_version() override {
        return read<uint32_t>([](Tx& tx) -> Result<uint32_t> {
            auto v = tx.get(tx.t->meta, "schema_version");
            if (!v) {
                return fail(v.error());
            }
            return *v ? codec::get_be32(**v) : 0U;
        });
    }

    Result<ConsistencyReport> check_consistency() override;

    bool on_writer_thread() const override {
        return std::this_thread::get_id() == writer_id_.load();
    }

    StoreStats stats() const override {
        StoreStats st;
        st.commits = commits_.load();
        st.operations = operations_.load();
        st.failed_operations = failed_operations_.load();
        st.map_grows = map_grows_.load();
        return st;
    }

private:
    struct EnvCloser {
        void operator()(MDB_env* e) const noexcept { mdb_env_close(e); }
    };

    Result<void> open_tables(const std::vector<Migration>& migrations);

    // A process killed between staging a large body's file and committing the
    // transaction that references it leaves an orphan file. Files that no blob
    // references and that are older than kOrphanAgeSeconds (so that another
    // process's delivery in flight is never touched) are removed at open.
    void sweep_orphan_files() {
        time_t cutoff = ::time(nullptr) - kOrphanAgeSeconds;
        for (int i = 0; i < 256; ++i) {
            std::string dir = fmt::format("{}/blobs/{:02x}", options_.path, i);
            std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
            if (!d) {
                continue;
            }
            std::vector<std::string> old;
            while (dirent* e = ::readdir(d.get())) {
                std::string name = e->d_name;
                if (name.size() != 32) {
                    continue;
                }
                struct stat st {};
                if (::stat((dir + "/" + name).c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
                    st.st_mtime < cutoff) {
                    old.push_back(name);
                }
            }
            for (const auto& name : old) {
                auto referenced = read<bool>([&](Tx& tx) -> Result<bool> {
                    auto v = tx.get(tx.t->blob_files, name);
                    if (!v) {
                        return fail(v.error());
                    }
                    return v->has_value();
                });
                if (referenced && !*referenced) {
                    ::unlink((dir + "/" + name).c_str());
                }
            }
        }
    }

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

    void submit(std::unique_ptr<WriteOp> op) {
        {
            std::lock_guard lk(queue_mutex_);
            if (!stopping_) {
                queue_.push_back(std::move(op));
                queue_cv_.notify_one();
                return;
            }
        }
        Error e{ErrorCode::Temp, "store is closing"};
        op->finish(&e);
    }

    void adopt_map_size() {
        std::unique_lock lk(env_mutex_);
        mdb_env_set_mapsize(env_.get(), 0);
    }

    Result<void> grow_map() {
        std::unique_lock lk(env_mutex_);
        MDB_envinfo info{};
        mdb_env_info(env_.get(), &info);
        uint64_t next = std::max<uint64_t>(info.me_mapsize * 2, 1ULL << 20);
        if (next > kMaxMapSize) {
            return fail(ErrorCode::Limit, "store map reached its maximum size");
        }
        int rc = mdb_env_set_mapsize(env_.get(), next);
        if (rc != 0) {
            return fail(lmdb_error(rc, "set_mapsize"));
        }
        return {};
    }

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

Result<void> LmdbStore::open_tables(const std::vector<Migration>& migrations) {
    for (int attempt = 0;; ++attempt) {
        MDB_txn* txn = nullptr;
        // Opening the tables and migrating happen in one write transaction: the
        // LMDB write lock serialises concurrent openers, so a migration runs once.
        int rc = mdb_txn_begin(env_.get(), nullptr, 0, &txn);
        if (rc == MDB_MAP_RESIZED && attempt < 3) {
            mdb_env_set_mapsize(env_.get(), 0);
            continue;
        }
        if (rc != 0) {
            return fail(lmdb_error(rc, "txn_begin(open)"));
        }
        struct Named {
            const char* name;
            MDB_dbi* dbi;
            unsigned flags;
        };
        const Named named[] = {
            {"meta", &tables_.meta, 0},
            {"domains", &tables_.domains, 0},
            {"users", &tables_.users, 0},
            {"aliases", &tables_.aliases, MDB_DUPSORT},
            {"mailboxes", &tables_.mailboxes, 0},
            {"mbox_ids", &tables_.mbox_ids, 0},
            {"msgs", &tables_.msgs, 0},
            {"modseq", &tables_.modseq, 0},
            {"blob_refs", &tables_.blob_refs, 0},
            {"blob_data", &tables_.blob_data, 0},
            {"blob_files", &tables_.blob_files, 0},
            {"structure", &tables_.structure, 0},
            {"q_msg", &tables_.q_msg, 0},
            {"q_due", &tables_.q_due, 0},
        };
        for (const auto& n : named) {
            rc = mdb_dbi_open(txn, n.name, n.flags | MDB_CREATE, n.dbi);
            if (rc != 0) {
                mdb_txn_abort(txn);
                return fail(lmdb_error(rc, std::string("dbi_open ") + n.name));
            }
        }
        Tx tx{txn, &tables_};
        auto v = tx.get(tables_.meta, "schema_version");
        if (!v) {
            mdb_txn_abort(txn);
            return fail(v.error());
        }
        uint32_t version = *v ? codec::get_be32(**v) : 0;
        if (version > migrations.size()) {
            mdb_txn_abort(txn);
            return fail(ErrorCode::Perm,
                        fmt::format("store schema {} is newer than this program ({})", version,
                                    migrations.size()));
        }
        MigrationContext mc{txn, tables_, SystemClock::instance().now_seconds()};
        bool map_full = false;
        for (; version < migrations.size(); ++version) {
            auto r = migrations[version](mc);
            if (!r) {
                mdb_txn_abort(txn);
                return fail(r.error().code, fmt::format("migration {}→{}: {}", version, version + 1,
                                                        r.error().message));
            }
            std::string vb;
            codec::put_be32(vb, version + 1);
            auto p = tx.put(tables_.meta, "schema_version", vb);
            if (!p) {
                map_full = tx.map_full;
                break;
            }
        }
        if (map_full) {
            mdb_txn_abort(txn);
            YUBIN_TRY(grow_map());
            continue;
        }
        rc = mdb_txn_commit(txn);
        if (rc == MDB_MAP_FULL && attempt < 8) {
            YUBIN_TRY(grow_map());
            continue;
        }
        if (rc != 0) {
            return fail(lmdb_error(rc, "commit(open)"));
        }
        return {};
    }
}

void LmdbStore::writer_main() {
    writer_id_ = std::this_thread::get_id();
    std::vector<std::unique_ptr<WriteOp>> batch;
    for (;;) {
        batch.clear();
        {
            std::unique_lock lk(queue_mutex_);
            queue_cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) {
                return;  // stopping and drained
            }
            while (!queue_.empty() && batch.size() < options_.max_batch_ops) {
                batch.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
        }
        // Large bodies go to files BEFORE the LMDB write lock is taken: file,
        // then its directory, are fsynced before the commit that refers to them.
        // Files of one batch are written in parallel: their fsyncs then share
        // journal commits instead of queueing one after another.
        std::vector<WriteOp*> to_stage;
        for (auto& op : batch) {
            if (op->body_to_stage != nullptr && op->staged_file.empty()) {
                to_stage.push_back(op.get());
            }
        }
        std::atomic<size_t> next_stage{0};
        auto stage_worker = [&] {
            for (size_t i = next_stage++; i < to_stage.size(); i = next_stage++) {
                WriteOp* op = to_stage[i];
                auto name = random_name();
                if (!name) {
                    op->prepared_failed = true;
                    op->set_error(name.error());
                    continue;
                }
                auto w = write_file(blob_file_path(options_.path, *name), *op->body_to_stage);
                if (!w) {
                    op->prepared_failed = true;
                    op->set_error(w.error());
                    continue;
                }
                op->staged_file = *name;
            }
        };
        if (to_stage.size() > 1) {
            std::vector<std::thread> stagers;
            size_t n = std::min<size_t>(to_stage.size(), kMaxStagingThreads);
            for (size_t i = 0; i < n; ++i) {
                stagers.emplace_back(stage_worker);
            }
            for (auto& t : stagers) {
                t.join();
            }
        } else {
            stage_worker();
        }
        std::set<std::string> dirs;
        for (WriteOp* op : to_stage) {
            if (!op->staged_file.empty()) {
                std::string path = blob_file_path(options_.path, op->staged_file);
                dirs.insert(path.substr(0, path.rfind('/')));
            }
        }
        Result<void> dir_sync;
        for (const auto& d : dirs) {
            auto r = fsync_path(d, true);
            if (!r) {
                dir_sync = r;
            }
        }
        Result<void> outcome = dir_sync ? run_batch(batch) : dir_sync;
        std::vector<Change> changes;
        for (auto& op : batch) {
            if (outcome.has_value() && op->committed) {
                for (const auto& c : op->changes) {
                    if (std::find(changes.begin(), changes.end(), c) == changes.end()) {
                        changes.push_back(c);
                    }
                }
                for (const auto& f : op->unlink_after_commit) {
                    ::unlink(blob_file_path(options_.path, f).c_str());
                }
            }
        }
        if (outcome) {
            notifier_.send(changes);
        }
        for (auto& op : batch) {
            // A staged file that no committed record references is removed.
            bool referenced = outcome.has_value() && op->committed;
            if (!op->staged_file.empty() && !referenced) {
                ::unlink(blob_file_path(options_.path, op->staged_file).c_str());
            }
            op->finish(outcome ? nullptr : &outcome.error());
        }
    }
}

Result<void> LmdbStore::run_batch(std::vector<std::unique_ptr<WriteOp>>& batch) {
    // First pass without nested transactions; if any operation fails, the batch
    // is replayed once with a nested transaction per operation, so the failing
    // one is rolled back alone. Failures are rare on the delivery path, so the
    // common batch pays for no nesting, and the worst case is two passes.
    bool nested = false;
    for (int attempt = 0;; ++attempt) {
        std::shared_lock lk(env_mutex_);
        MDB_txn* parent = nullptr;
        int rc = mdb_txn_begin(env_.get(), nullptr, 0, &parent);
        if (rc == MDB_MAP_RESIZED && attempt < 8) {
            lk.unlock();
            adopt_map_size();
            continue;
        }
        if (rc != 0) {
            return fail(lmdb_error(rc, "txn_begin(write)"));
        }
        int64_t now = SystemClock::instance().now_seconds();
        bool map_full = false;
        bool need_nested = false;
        for (auto& op : batch) {
            if (op->prepared_failed) {
                continue;
            }
            op->reset();
            op->committed = false;
            op->changes.clear();
            op->unlink_after_commit.clear();
            if (!nested) {
                // Fast pass: straight into the batch transaction (a nested
                // transaction costs LMDB a few MiB of lists per operation).
                WriteCtx ctx;
                ctx.txn = parent;
                ctx.t = &tables_;
                ctx.now = now;
                ctx.staged_file = op->staged_file;
                ctx.options = &options_;
                bool ok = op->apply(ctx);
                if (ctx.map_full) {
                    map_full = true;
                    break;
                }
                if (!ok) {
                    // Its partial writes are in the batch: throw the batch away
                    // and replay it with one nested transaction per operation.
                    need_nested = true;
                    break;
                }
                op->committed = true;
                op->changes = std::move(ctx.changes);
                op->unlink_after_commit = std::move(ctx.unlink_after_commit);
                continue;
            }
            MDB_txn* child = nullptr;
            rc = mdb_txn_begin(env_.get(), parent, 0, &child);
            if (rc != 0) {
                mdb_txn_abort(parent);
                return fail(lmdb_error(rc, "txn_begin(nested)"));
            }
            WriteCtx ctx;
            ctx.txn = child;
            ctx.t = &tables_;
            ctx.now = now;
            ctx.staged_file = op->staged_file;
            ctx.options = &options_;
            bool ok = op->apply(ctx);
            if (ctx.map_full) {
                mdb_txn_abort(child);
                map_full = true;
                break;
            }
            if (!ok) {
                mdb_txn_abort(child);  // this operation fails alone
                continue;
            }
            rc = mdb_txn_commit(child);
            if (rc == MDB_MAP_FULL) {
                map_full = true;
                break;
            }
            if (rc != 0) {
                op->set_error(lmdb_error(rc, "commit(nested)"));
                continue;
            }
            op->committed = true;
            op->changes = std::move(ctx.changes);
            op->unlink_after_commit = std::move(ctx.unlink_after_commit);
        }
        if (need_nested) {
            mdb_txn_abort(parent);
            nested = true;
            continue;
        }
        if (!map_full) {
            rc = mdb_txn_commit(parent);
            if (rc == 0) {
                commits_++;
                for (const auto& op : batch) {
                    operations_++;
                    if (!op->committed) {
                        failed_operations_++;
                    }
                }
                return {};
            }
            if (rc != MDB_MAP_FULL) {
                return fail(lmdb_error(rc, "commit"));
            }
        } else {
            mdb_txn_abort(parent);
        }
        // MDB_MAP_FULL: grow (doubling) and replay the whole batch; the
        // operations are pure functions of the transaction, so replay is safe.
        lk.unlock();
        YUBIN_TRY(grow_map());
        map_grows_++;
    }
}

Result<DeliveryResult> LmdbStore::deliver_tx(WriteCtx& tx, const Delivery& d) {
    DeliveryResult out;
    int64_t internaldate = d.internaldate != 0 ? d.internaldate : tx.now;
    auto blob = store_blob(tx, d.body, d.structure);
    if (!blob) {
        return fail(blob.error());
    }
    out.blob_id = *blob;
    bool any = false;
    for (const auto& target : d.targets) {
        TargetResult tr;
        // Each target is checked before anything of it is written, so a failed
        // target leaves nothing behind and the others still go in.
        auto a = parse_addr(target.user);
        std::optional<UserRecord> user;
        std::optional<MailboxRecord> mb;
        if (!a) {
            tr.error = Error{ErrorCode::Invalid, "bad address " + target.user};
        } else {
            auto u = load_user(tx, *a);
            if (!u) {
                return fail(u.error());
            }
            user = std::move(*u);
            if (!user) {
                tr.error = Error{ErrorCode::NotFound, "no user " + a->full()};
            }
        }
        if (!tr.error) {
            auto m = load_mailbox(tx, user->address, target.mailbox);
            if (!m) {
                return fail(m.error());
            }
            if (!*m && target.fallback_to_inbox) {
                m = load_mailbox(tx, user->address, "INBOX");
                if (!m) {
                    return fail(m.error());
                }
            }
            mb = std::move(*m);
            if (!mb) {
                tr.error = Error{ErrorCode::NotFound, "no mailbox " + target.mailbox};
            }
        }
        uint64_t size = d.body.size() + target.header_prefix.size();
        if (!tr.error && target.enforce_quota && user->quota_bytes != 0 &&
            user->quota_used_bytes + size > user->quota_bytes) {
            tr.error = Error{ErrorCode::Limit, "over quota: " + user->address};
        }
        if (!tr.error) {
            auto m = insert_msg(tx, *mb, &*user, *blob, d.body.size(), target.flags,
                                target.keywords, internaldate, target.header_prefix);
            if (!m) {
                return fail(m.error());
            }
            YUBIN_TRY(save_mailbox(tx, *mb));
            YUBIN_TRY(save_user(tx, *user));
            tr.mailbox_id = mb->id;
            tr.uidvalidity = mb->uidvalidity;
            tr.uid = m->uid;
            any = true;
        }
        out.targets.push_back(std::move(tr));
    }
    for (const auto& q : d.queue) {
        auto id = enqueue_tx(tx, q, *blob, d.body.size());
        if (!id) {
            return fail(id.error());
        }
        out.queue_ids.push_back(*id);
        any = true;
    }
    if (!any) {
        // Nothing referenced the body: the whole operation fails (rolled back),
        // with the first target's reason.
        for (const auto& t : out.targets) {
            if (t.error) {
                return fail(*t.error);
            }
        }
        return fail(ErrorCode::Invalid, "delivery without targets");
    }
    return out;
}

Result<FlagResult> LmdbStore::store_flags_tx(WriteCtx& tx, const FlagUpdate& u) {
    auto mb = load_mailbox_by_id(tx, u.mailbox_id);
    if (!mb) {
        return fail(mb.error());
    }
    FlagResult out;
    for (uint32_t uid : u.uids) {
        auto m = load_msg(tx, u.mailbox_id, uid);
        if (!m) {
            return fail(m.error());
        }
        if (!*m) {
            continue;  // expunged meanwhile: silently skipped, as IMAP STORE does
        }
        MsgValue& mv = **m;
        if (u.unchanged_since && mv.rec.modseq > *u.unchanged_since) {
            out.modified.push_back(uid);
            continue;
        }
        uint32_t flags = mv.rec.flags;
        std::vector<std::string> kw = mv.rec.keywords;
        auto has_kw = [&](const std::string& k) {
            return std::find_if(kw.begin(), kw.end(),
                                [&](const std::string& x) { return iequals(x, k); }) != kw.end();
        };
        switch (u.op) {
            case FlagOp::Set:
                flags = u.flags;
                kw.clear();
                for (const auto& k : u.keywords) {
                    if (!has_kw(k)) {
                        kw.push_back(k);
                    }
                }
                break;
            case FlagOp::Add:
                flags |= u.flags;
                for (const auto& k : u.keywords) {
                    if (!has_kw(k)) {
                        kw.push_back(k);
                    }
                }
                break;
            case FlagOp::Remove:
                flags &= ~u.flags;
                kw.erase(std::remove_if(kw.begin(), kw.end(),
                                        [&](const std::string& x) {
                                            return std::any_of(u.keywords.begin(), u.keywords.end(),
                                                               [&](const std::string& k) {
                                                                   return iequals(x, k);
                                                               });
                                        }),
                         kw.end());
                break;
        }
        if (flags == mv.rec.flags && kw == mv.rec.keywords) {
            continue;  // no change, no modseq bump (RFC 7162 §3.2)
        }
        bool was_seen = (mv.rec.flags & kFlagSeen) != 0;
        bool is_seen = (flags & kFlagSeen) != 0;
        if (was_seen && !is_seen) {
            mb->unseen++;
        } else if (!was_seen && is_seen) {
            mb->unseen--;
        }
        YUBIN_TRY(tx.del(tx.t->modseq, codec::be64_pair_key(mb->id, mv.rec.modseq)));
        mv.rec.flags = flags;
        mv.rec.keywords = std::move(kw);
        mv.rec.modseq = ++mb->highestmodseq;
        YUBIN_TRY(
            tx.put(tx.t->msgs, codec::be64_be32_key(mb->id, uid), encode_msg(mv.rec, mv.prefix)));
        std::string idx;
        codec::put_be32(idx, uid);
        idx.push_back(0);
        YUBIN_TRY(tx.put(tx.t->modseq, codec::be64_pair_key(mb->id, mv.rec.modseq), idx));
        out.updated.push_back(mv.rec);
    }
    if (!out.updated.empty()) {
        YUBIN_TRY(save_mailbox(tx, *mb));
        tx.changed_mailbox(mb->id);
    }
    return out;
}

Result<std::vector<uint32_t>> LmdbStore::expunge_tx(WriteCtx& tx, uint64_t mailbox_id,
                                                    const std::vector<uint32_t>& uids) {
    auto mb = load_mailbox_by_id(tx, mailbox_id);
    if (!mb) {
        return fail(mb.error());
    }
    auto a = parse_addr(mb->user);
    auto user = load_user(tx, *a);
    if (!user) {
        return fail(user.error());
    }
    UserRecord* up = *user ? &**user : nullptr;
    std::vector<uint32_t> removed;
    for (uint32_t uid : uids) {
        auto m = load_msg(tx, mailbox_id, uid);
        if (!m) {
            return fail(m.error());
        }
        if (!*m) {
            continue;
        }
        YUBIN_TRY(remove_msg(tx, *mb, up, **m, true));
        removed.push_back(uid);
    }
    if (!removed.empty()) {
        YUBIN_TRY(save_mailbox(tx, *mb));
        if (up != nullptr) {
            YUBIN_TRY(save_user(tx, *up));
        }
    }
    return removed;
}

Result<CopyResult> LmdbStore::copy_tx(WriteCtx& tx, uint64_t src, const std::vector<uint32_t>& uids,
                                      uint64_t dst, bool move) {
    if (src == dst && move) {
        return fail(ErrorCode::Invalid, "move to the same mailbox");
    }
    auto from = load_mailbox_by_id(tx, src);
    if (!from) {
        return fail(from.error());
    }
    auto to = load_mailbox_by_id(tx, dst);
    if (!to) {
        return fail(to.error());
    }
    auto from_user = load_user(tx, *parse_addr(from->user));
    auto to_user = load_user(tx, *parse_addr(to->user));
    if (!from_user || !to_user) {
        return fail(!from_user ? from_user.error() : to_user.error());
    }
    bool same_user = from->user == to->user;
    UserRecord* fu = *from_user ? &**from_user : nullptr;
    UserRecord* tu = same_user ? fu : (*to_user ? &**to_user : nullptr);
    CopyResult out;
    out.dest_uidvalidity = to->uidvalidity;
    // Sorted, de-duplicated source uids so COPYUID pairs are in order (RFC 4315 §3).
    std::vector<uint32_t> sorted = uids;
    std::sort(sorted.begin(), sorted.end());
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    for (uint32_t uid : sorted) {
        auto m = load_msg(tx, src, uid);
        if (!m) {
            return fail(m.error());
        }
        if (!*m) {
            continue;
        }
        const MsgValue& mv = **m;
        // A copy clears nothing but \Recent (which we do not store), RFC 9051 §6.4.7.
        auto copy = insert_msg(tx, *to, tu, mv.rec.blob_id, mv.rec.size - mv.rec.prefix_size,
                               mv.rec.flags, mv.rec.keywords, mv.rec.internaldate, mv.prefix);
        if (!copy) {
            return fail(copy.error());
        }
        if (move) {
            YUBIN_TRY(remove_msg(tx, *from, fu, mv, true));
        }
        out.source_uids.push_back(uid);
        out.dest_uids.push_back(copy->uid);
    }
    if (src == dst) {
        // Copy into itself: `to` holds the up-to-date record.
        YUBIN_TRY(save_mailbox(tx, *to));
    } else {
        YUBIN_TRY(save_mailbox(tx, *to));
        YUBIN_TRY(save_mailbox(tx, *from));
    }
    if (fu != nullptr) {
        YUBIN_TRY(save_user(tx, *fu));
    }
    if (!same_user && tu != nullptr) {
        YUBIN_TRY(save_user(tx, *tu));
    }
    return out;
}

Result<void> LmdbStore::rename_tx(WriteCtx& tx, const std::string& user, const std::string& from,
                                  const std::string& to) {
    std::string f = normalize_mailbox(from);
    std::string t = normalize_mailbox(to);
    if (f == "INBOX") {
        // RFC 9051 §6.3.6 special-cases renaming INBOX (moves its messages);
        // not supported yet.
        return fail(ErrorCode::Perm, "renaming INBOX is not supported");
    }
    if (t.empty() || t.find('\0') != std::string::npos || t.front() == kHierarchyDelimiter ||
        t.back() == kHierarchyDelimiter) {
        return fail(ErrorCode::Invalid, "invalid mailbox name");
    }
    auto boxes = user_mailboxes(tx, user);
    if (!boxes) {
        return fail(boxes.error());
    }
    std::vector<std::pair<MailboxRecord, std::string>> moves;
    bool found = false;
    for (auto& b : *boxes) {
        std::string new_name;
        if (b.name == f) {
            found = true;
            new_name = t;
        } else if (b.name.size() > f.size() && b.name.compare(0, f.size(), f) == 0 &&
                   b.name[f.size()] == kHierarchyDelimiter) {
            new_name = t + b.name.substr(f.size());
        } else {
            continue;
        }
        moves.emplace_back(b, new_name);
    }
    if (!found) {
        return fail(ErrorCode::NotFound, fmt::format("no mailbox {}", from));
    }
    for (const auto& [b, new_name] : moves) {
        auto exists = load_mailbox(tx, user, new_name);
        if (!exists) {
            return fail(exists.error());
        }
        if (*exists) {
            return fail(ErrorCode::Exists, fmt::format("mailbox {} exists", new_name));
        }
    }
    for (const auto& [b, new_name] : moves) {
        YUBIN_TRY(tx.del(tx.t->mailboxes, mailbox_key(user, b.name)));
    }
    for (auto [b, new_name] : moves) {
        b.name = new_name;
        YUBIN_TRY(save_mailbox(tx, b));
        YUBIN_TRY(tx.put(tx.t->mbox_ids, codec::be64_key(b.id), mailbox_key(user, b.name)));
        tx.changed_mailbox(b.id);
    }
    return {};
}

Result<ConsistencyReport> LmdbStore::check_consistency() {
    return read<ConsistencyReport>([&](Tx& tx) -> Result<ConsistencyReport> {
        ConsistencyReport rep;
        std::unordered_map<uint64_t, uint64_t> refs;
        std::map<std::string, uint64_t> user_bytes;
        std::vector<MailboxRecord> boxes;
        Result<void> inner;
        YUBIN_TRY(tx.scan_prefix(tx.t->mailboxes, "", [&](std::string_view, std::string_view v) {
            auto m = decode_mailbox(v);
            if (!m) {
                inner = fail(m.error());
                return false;
            }
            boxes.push_back(std::move(*m));
            return true;
        }));
        YUBIN_TRY(inner);
        rep.mailboxes = boxes.size();
        for (const auto& mb : boxes) {
            uint32_t count = 0;
            uint32_t unseen = 0;
            uint64_t bytes = 0;
            uint32_t max_uid = 0;
            uint64_t max_modseq = 0;
            std::vector<MessageRecord> recs;
            YUBIN_TRY(tx.scan_prefix(tx.t->msgs, codec::be64_key(mb.id),
                                     [&](std::string_view k, std::string_view v) {
                                         auto m = decode_msg(k, v);
                                         if (!m) {
                                             rep.problems.push_back("corrupt message record");
                                             return true;
                                         }
                                         recs.push_back(m->rec);
                                         return true;
                                     }));
            for (const auto& r : recs) {
                count++;
                unseen += (r.flags & kFlagSeen) ? 0 : 1;
                bytes += r.size;
                max_uid = std::max(max_uid, r.uid);
                max_modseq = std::max(max_modseq, r.modseq);
                refs[r.blob_id]++;
                auto idx = tx.get(tx.t->modseq, codec::be64_pair_key(mb.id, r.modseq));
                if (!idx) {
                    return fail(idx.error());
                }
                if (!*idx || codec::get_be32(**idx) != r.uid) {
                    rep.problems.push_back(
                        fmt::format("mailbox {} uid {}: modseq index missing", mb.id, r.uid));
                }
            }
            rep.messages += count;
            user_bytes[mb.user] += bytes;
            if (count != mb.messages || unseen != mb.unseen || bytes != mb.size_bytes) {
                rep.problems.push_back(fmt::format(
                    "mailbox {} ({}): counts {}/{}/{} but records {}/{}/{}", mb.id, mb.name,
                    mb.messages, mb.unseen, mb.size_bytes, count, unseen, bytes));
            }
            if (max_uid >= mb.uidnext || max_modseq > mb.highestmodseq) {
                rep.problems.push_back(
                    fmt::format("mailbox {}: uidnext/highestmodseq behind", mb.id));
            }
            auto id_key = tx.get(tx.t->mbox_ids, codec::be64_key(mb.id));
            if (!id_key) {
                return fail(id_key.error());
            }
            if (!*id_key || **id_key != mailbox_key(mb.user, mb.name)) {
                rep.problems.push_back(fmt::format("mailbox {}: id index wrong", mb.id));
            }
        }
        YUBIN_TRY(tx.scan_prefix(tx.t->users, "", [&](std::string_view k, std::string_view v) {
            auto u = decode_user(k, v);
            if (!u) {
                rep.problems.push_back("corrupt user record");
                return true;
            }
            if (u->quota_used_bytes != user_bytes[u->address]) {
                rep.problems.push_back(fmt::format("user {}: quota used {} but messages {}",
                                                   u->address, u->quota_used_bytes,
                                                   user_bytes[u->address]));
            }
            return true;
        }));
        YUBIN_TRY(tx.scan_prefix(tx.t->q_msg, "", [&](std::string_view k, std::string_view v) {
            auto e = decode_queue(k, v);
            if (!e) {
                rep.problems.push_back("corrupt queue record");
                return true;
            }
            rep.queue_entries++;
            refs[e->blob_id]++;
            return true;
        }));
        std::set<uint64_t> seen_blobs;
        YUBIN_TRY(tx.scan_prefix(tx.t->blob_refs, "", [&](std::string_view k, std::string_view v) {
            uint64_t id = codec::get_be64(k);
            seen_blobs.insert(id);
            rep.blobs++;
            auto b = decode_blob_ref(v);
            if (!b) {
                rep.problems.push_back("corrupt blob record");
                return true;
            }
            if (b->refcount != refs[id]) {
                rep.problems.push_back(fmt::format("blob {}: refcount {} but {} references", id,
                                                   b->refcount, refs[id]));
            }
            if (b->file.empty()) {
                auto data = tx.get(tx.t->blob_data, k);
                if (!data || !*data || (*data)->size() != b->size) {
                    rep.problems.push_back(fmt::format("blob {}: data missing or wrong size", id));
                }
            } else {
                struct stat st {};
                if (::stat(blob_file_path(options_.path, b->file).c_str(), &st) != 0 ||
                    static_cast<uint64_t>(st.st_size) != b->size) {
                    rep.problems.push_back(fmt::format("blob {}: file missing or wrong size", id));
                }
            }
            return true;
        }));
        for (const auto& [id, n] : refs) {
            if (n > 0 && seen_blobs.count(id) == 0) {
                rep.problems.push_back(
                    fmt::format("blob {} referenced {} times but missing", id, n));
            }
        }
        return rep;
    });
}

}  // namespace

const std::vector<Migration>& builtin_migrations() {
    static const std::vector<Migration> migrations = {
        // 0 → 1: a new store. Seeds the counters; UIDVALIDITY starts at the
        // creation time so a store re-created from scratch never reuses values
        // an IMAP client may have cached.
        [](MigrationContext& mc) -> Result<void> {
            Tx tx{mc.txn, &mc.tables};
            YUBIN_TRY(tx.put(mc.tables.meta, "next_mailbox_id", codec::be64_key(1)));
            YUBIN_TRY(tx.put(mc.tables.meta, "next_blob_id", codec::be64_key(1)));
            YUBIN_TRY(tx.put(mc.tables.meta, "next_queue_id", codec::be64_key(1)));
            YUBIN_TRY(tx.put(mc.tables.meta, "next_uidvalidity",
                             codec::be64_key(static_cast<uint64_t>(mc.now_seconds))));
            return {};
        },
    };
    return migrations;
}

Result<std::unique_ptr<Store>> open_lmdb_store(const StoreOptions& options,
                                               const std::vector<Migration>& migrations) {
    if (options.path.empty()) {
        return fail(ErrorCode::Invalid, "store path is empty");
    }
    // Create the store directory (and parents), blobs/00..ff and notify/.
    std::string partial;
    for (const auto& part : split(options.path, '/')) {
        partial += std::string(part);
        if (!partial.empty()) {
            YUBIN_TRY(make_dir(partial));
        }
        partial += '/';
    }
    YUBIN_TRY(make_dir(options.path + "/blobs"));
    YUBIN_TRY(make_dir(options.path + "/notify"));
    for (int i = 0; i < 256; ++i) {
        YUBIN_TRY(make_dir(fmt::format("{}/blobs/{:02x}", options.path, i)));
    }
    char real[PATH_MAX];
    if (::realpath(options.path.c_str(), real) == nullptr) {
        return fail(ErrorCode::Io,
                    fmt::format("realpath {}: {}", options.path, std::strerror(errno)));
    }
    {
        std::lock_guard lk(g_registry_mutex);
        auto it = g_open_paths.find(real);
        if (it != g_open_paths.end() && it->second == ::getpid()) {
            return fail(ErrorCode::Exists,
                        fmt::format("store {} already open in this process", real));
        }
        g_open_paths[real] = ::getpid();
    }
    auto store = std::make_unique<LmdbStore>(options, real);
    auto r = store->init(migrations);
    if (!r) {
        return fail(r.error());
    }
    return std::unique_ptr<Store>(std::move(store));
}

}  // namespace yubin::store
