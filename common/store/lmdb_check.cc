// Consistency check of the LMDB store (counters, refcounts, indexes).

#include "common/store/lmdb_internal.h"

namespace yubin::store::lmdb_detail {

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

}  // namespace yubin::store::lmdb_detail
