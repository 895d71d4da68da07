// The group-commit writer thread: batches write operations into one
// transaction, replays a failed batch op by op, grows the map on MDB_MAP_FULL.

#include "common/store/lmdb_internal.h"

namespace yubin::store::lmdb_detail {

void LmdbStore::submit(std::unique_ptr<WriteOp> op) {
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
        // The context an operation runs in: the batch (or its nested)
        // transaction, the batch's clock reading and the op's staged file.
        auto init_ctx = [&](WriteCtx& ctx, MDB_txn* txn, const WriteOp& op) {
            ctx.txn = txn;
            ctx.t = &tables_;
            ctx.now = now;
            ctx.staged_file = op.staged_file;
            ctx.options = &options_;
        };
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
                init_ctx(ctx, parent, *op);
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
            init_ctx(ctx, child, *op);
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

}  // namespace yubin::store::lmdb_detail
