// The LMDB backend of Store: internal to common/store (and its tests). Daemons
// include only store.h. Exposes the table handles and the migration table so a
// test can prove that a migration runs exactly once, under the write lock, at
// open. open_lmdb_store may be called from any thread; migrations run on that
// thread inside the open-time write transaction and must not keep the txn.
#pragma once

#include <lmdb.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "common/store/store.h"

namespace yubin::store {

// Named databases (see docs/store.md for key and value layouts). Room is left
// for the bulk-sending tables (suppression, lists, campaigns): add a field here,
// its name in lmdb_env.cc's table list (open_tables), and a migration that fills it.
struct Tables {
    MDB_dbi meta = 0;
    MDB_dbi domains = 0;
    MDB_dbi users = 0;
    MDB_dbi aliases = 0;  // MDB_DUPSORT: one source, several targets
    MDB_dbi mailboxes = 0;
    MDB_dbi mbox_ids = 0;
    MDB_dbi msgs = 0;
    MDB_dbi modseq = 0;
    MDB_dbi blob_refs = 0;
    MDB_dbi blob_data = 0;
    MDB_dbi blob_files = 0;
    MDB_dbi structure = 0;
    MDB_dbi q_msg = 0;
    MDB_dbi q_due = 0;
};

// Runs inside the open-time write transaction; the txn is committed by the
// caller after the version number is bumped.
struct MigrationContext {
    MDB_txn* txn;
    const Tables& tables;
    int64_t now_seconds;
};
using Migration = std::function<Result<void>(MigrationContext&)>;

// migrations[i] takes the schema from version i to i + 1; a store is brought to
// version migrations.size(). Version 0 is an empty environment.
const std::vector<Migration>& builtin_migrations();
inline constexpr uint32_t kSchemaVersion = 1;

[[nodiscard]] Result<std::unique_ptr<Store>> open_lmdb_store(
    const StoreOptions& options, const std::vector<Migration>& migrations);

}  // namespace yubin::store
