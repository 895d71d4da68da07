// Mailbox part of the LMDB store: mailboxes, messages, flags, expunge, copy,
// rename and change tracking (CONDSTORE/QRESYNC).

#include "common/store/lmdb_internal.h"

namespace yubin::store::lmdb_detail {

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

Result<std::vector<MailboxRecord>> LmdbStore::list_mailboxes(std::string_view user) {
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

Result<MailboxRecord> LmdbStore::get_mailbox(std::string_view user, std::string_view name) {
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

Result<MailboxRecord> LmdbStore::get_mailbox_by_id(uint64_t mailbox_id) {
    return read<MailboxRecord>([&](Tx& tx) { return load_mailbox_by_id(tx, mailbox_id); });
}

Result<std::vector<MessageRecord>> LmdbStore::list_messages(uint64_t mailbox_id, uint32_t first_uid,
                                                            uint32_t last_uid) {
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

Result<std::string> LmdbStore::read_message(uint64_t mailbox_id, uint32_t uid) {
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

Result<std::string> LmdbStore::get_structure(uint64_t blob_id) {
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

Result<MailboxChanges> LmdbStore::changes_since(uint64_t mailbox_id, uint64_t modseq) {
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

Result<QuotaUsage> LmdbStore::quota_usage(std::string_view user) {
    auto u = get_user(user);
    if (!u) {
        return fail(u.error());
    }
    return QuotaUsage{u->quota_used_bytes, u->quota_bytes};
}

void LmdbStore::deliver_async(Delivery delivery, Callback<DeliveryResult> done) {
    auto d = std::make_shared<Delivery>(std::move(delivery));
    auto op = std::make_unique<FnOp<DeliveryResult>>(
        [d](WriteCtx& tx) { return deliver_tx(tx, *d); }, std::move(done));
    if (d->body.size() >= options_.large_body_bytes && (!d->targets.empty() || !d->queue.empty())) {
        op->body_to_stage = &d->body;
    }
    submit(std::move(op));
}

void LmdbStore::append_async(std::string_view user, std::string_view mailbox, std::string body,
                             std::string structure, uint32_t flags,
                             std::vector<std::string> keywords, int64_t internaldate,
                             Callback<TargetResult> done) {
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

void LmdbStore::store_flags_async(FlagUpdate update, Callback<FlagResult> done) {
    submit(std::make_unique<FnOp<FlagResult>>(
        [u = std::move(update)](WriteCtx& tx) { return store_flags_tx(tx, u); }, std::move(done)));
}

void LmdbStore::expunge_async(uint64_t mailbox_id, std::vector<uint32_t> uids,
                              Callback<std::vector<uint32_t>> done) {
    submit(std::make_unique<FnOp<std::vector<uint32_t>>>(
        [mailbox_id, uids = std::move(uids)](WriteCtx& tx) {
            return expunge_tx(tx, mailbox_id, uids);
        },
        std::move(done)));
}

void LmdbStore::copy_async(uint64_t source_mailbox_id, std::vector<uint32_t> uids,
                           uint64_t dest_mailbox_id, bool move, Callback<CopyResult> done) {
    submit(std::make_unique<FnOp<CopyResult>>(
        [=, uids = std::move(uids)](WriteCtx& tx) {
            return copy_tx(tx, source_mailbox_id, uids, dest_mailbox_id, move);
        },
        std::move(done)));
}

void LmdbStore::create_mailbox_async(std::string_view user, std::string_view name,
                                     std::string_view special_use, Callback<MailboxRecord> done) {
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

void LmdbStore::rename_mailbox_async(std::string_view user, std::string_view from,
                                     std::string_view to, Callback<void> done) {
    submit(std::make_unique<FnOp<void>>(
        [u = canonical_address(trim(user)), f = std::string(from),
         t = std::string(to)](WriteCtx& tx) { return rename_tx(tx, u, f, t); },
        std::move(done)));
}

void LmdbStore::delete_mailbox_async(std::string_view user, std::string_view name,
                                     Callback<void> done) {
    submit(std::make_unique<FnOp<void>>(
        [u = canonical_address(trim(user)), n = std::string(name)](WriteCtx& tx) -> Result<void> {
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

void LmdbStore::subscribe_mailbox_async(std::string_view user, std::string_view name,
                                        bool subscribed, Callback<void> done) {
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

}  // namespace yubin::store::lmdb_detail
