// Directory part of the LMDB store: domains, users, aliases and recipient
// resolution.

#include "common/store/lmdb_internal.h"

namespace yubin::store::lmdb_detail {

namespace {

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

}  // namespace

// Lower-cases and splits at the last '@'. An empty local part is allowed only
// for catch-all alias sources ("@domain").
std::optional<Addr> parse_addr(std::string_view address, bool allow_empty_local) {
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

Result<void> LmdbStore::add_domain(std::string_view domain) {
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

Result<void> LmdbStore::remove_domain(std::string_view domain) {
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
            return fail(ErrorCode::Exists, fmt::format("domain {} still has users or aliases", d));
        }
        YUBIN_TRY(tx.del(tx.t->domains, d));
        tx.changed(Change::Kind::Directory);
        return {};
    });
}

Result<std::vector<std::string>> LmdbStore::list_domains() {
    return read<std::vector<std::string>>([](Tx& tx) -> Result<std::vector<std::string>> {
        std::vector<std::string> out;
        YUBIN_TRY(tx.scan_prefix(tx.t->domains, "", [&](std::string_view k, std::string_view) {
            out.emplace_back(k);
            return true;
        }));
        return out;
    });
}

Result<bool> LmdbStore::is_local_domain(std::string_view domain) {
    std::string d = to_lower(trim(domain));
    return read<bool>([&](Tx& tx) { return domain_exists(tx, d); });
}

Result<UserRecord> LmdbStore::add_user(std::string_view address, std::string_view password_hash,
                                       uint64_t quota_bytes) {
    auto a = parse_addr(address);
    if (!a) {
        return fail(ErrorCode::Invalid, fmt::format("bad address {}", address));
    }
    std::string hash(password_hash);
    return write_sync<UserRecord>([a = *a, hash, quota_bytes](WriteCtx& tx) -> Result<UserRecord> {
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

Result<UserRecord> LmdbStore::get_user(std::string_view address) {
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

Result<void> LmdbStore::modify_user(std::string_view address,
                                    std::function<void(UserRecord&)> change) {
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

Result<void> LmdbStore::set_password_hash(std::string_view address, std::string_view hash) {
    std::string h(hash);
    return modify_user(address, [h](UserRecord& u) { u.password_hash = h; });
}

Result<void> LmdbStore::set_user_quota(std::string_view address, uint64_t quota_bytes) {
    return modify_user(address, [quota_bytes](UserRecord& u) { u.quota_bytes = quota_bytes; });
}

Result<void> LmdbStore::set_user_flags(std::string_view address, uint32_t flags) {
    return modify_user(address, [flags](UserRecord& u) { u.flags = flags; });
}

Result<std::vector<UserRecord>> LmdbStore::list_users(std::string_view domain) {
    std::string prefix;
    if (!domain.empty()) {
        prefix = to_lower(trim(domain)) + '\0';
    }
    return read<std::vector<UserRecord>>([&](Tx& tx) -> Result<std::vector<UserRecord>> {
        std::vector<UserRecord> out;
        Result<void> inner;
        YUBIN_TRY(tx.scan_prefix(tx.t->users, prefix, [&](std::string_view k, std::string_view v) {
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

Result<void> LmdbStore::remove_user(std::string_view address) {
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

Result<void> LmdbStore::add_alias(std::string_view source, std::string_view target) {
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

Result<void> LmdbStore::remove_alias(std::string_view source, std::string_view target) {
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

Result<std::vector<AliasRecord>> LmdbStore::list_aliases(std::string_view domain) {
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

Result<std::vector<ResolvedRecipient>> LmdbStore::resolve_recipient(std::string_view address) {
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

}  // namespace yubin::store::lmdb_detail
