// Environment of the LMDB store: open, table setup and schema migrations, map
// growth and adoption of another process's growth, stale readers, stats.

#include "common/store/lmdb_internal.h"

namespace yubin::store::lmdb_detail {

std::mutex g_registry_mutex;
std::map<std::string, pid_t> g_open_paths;

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

Result<uint64_t> next_counter(Tx& tx, std::string_view name) {
    auto cur = tx.get(tx.t->meta, name);
    if (!cur) {
        return fail(cur.error());
    }
    uint64_t value = *cur && (*cur)->size() == 8 ? codec::get_be64(**cur) : 1;
    YUBIN_TRY(tx.put(tx.t->meta, name, codec::be64_key(value + 1)));
    return value;
}

LmdbStore::~LmdbStore() {
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

Result<void> LmdbStore::init(const std::vector<Migration>& migrations) {
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

Result<int> LmdbStore::check_stale_readers() {
    int dead = 0;
    int rc = mdb_reader_check(env_.get(), &dead);
    if (rc != 0) {
        return fail(lmdb_error(rc, "reader_check"));
    }
    return dead;
}

Result<uint32_t> LmdbStore::schema_version() {
    return read<uint32_t>([](Tx& tx) -> Result<uint32_t> {
        auto v = tx.get(tx.t->meta, "schema_version");
        if (!v) {
            return fail(v.error());
        }
        return *v ? codec::get_be32(**v) : 0U;
    });
}

bool LmdbStore::on_writer_thread() const {
    return std::this_thread::get_id() == writer_id_.load();
}

StoreStats LmdbStore::stats() const {
    StoreStats st;
    st.commits = commits_.load();
    st.operations = operations_.load();
    st.failed_operations = failed_operations_.load();
    st.map_grows = map_grows_.load();
    return st;
}

void LmdbStore::adopt_map_size() {
    std::unique_lock lk(env_mutex_);
    mdb_env_set_mapsize(env_.get(), 0);
}

Result<void> LmdbStore::grow_map() {
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

}  // namespace yubin::store::lmdb_detail

namespace yubin::store {

using lmdb_detail::g_open_paths;
using lmdb_detail::g_registry_mutex;
using lmdb_detail::LmdbStore;
using lmdb_detail::make_dir;
using lmdb_detail::Tx;

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
