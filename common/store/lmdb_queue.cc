// Outbound queue part of the LMDB store.

#include "common/store/lmdb_internal.h"

namespace yubin::store::lmdb_detail {

int64_t due_time(const QueueEntry& e) {
    return std::max<int64_t>({e.next_attempt, e.hold_until, 0});
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

Result<std::vector<QueueEntry>> LmdbStore::list_due(int64_t now_seconds, size_t limit) {
    return read<std::vector<QueueEntry>>([&](Tx& tx) -> Result<std::vector<QueueEntry>> {
        std::vector<uint64_t> ids;
        YUBIN_TRY(tx.scan_prefix(tx.t->q_due, "", [&](std::string_view k, std::string_view) {
            if (static_cast<int64_t>(codec::get_be64(k, 0)) > now_seconds || ids.size() >= limit) {
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

Result<std::vector<QueueEntry>> LmdbStore::list_queue() {
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

Result<QueueEntry> LmdbStore::get_queue_entry(uint64_t id) {
    return read<QueueEntry>([&](Tx& tx) { return load_queue(tx, id); });
}

Result<std::string> LmdbStore::read_queue_message(uint64_t id) {
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

void LmdbStore::update_queue_entry_async(QueueEntry entry, Callback<void> done) {
    submit(std::make_unique<FnOp<void>>(
        [e = std::move(entry)](WriteCtx& tx) -> Result<void> {
            auto old = load_queue(tx, e.id);
            if (!old) {
                return fail(old.error());
            }
            YUBIN_TRY(tx.del(tx.t->q_due,
                             codec::be64_pair_key(static_cast<uint64_t>(due_time(*old)), e.id)));
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

void LmdbStore::remove_queue_entry_async(uint64_t id, Callback<void> done) {
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

}  // namespace yubin::store::lmdb_detail
