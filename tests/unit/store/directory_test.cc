// Directory: domains, users, aliases and recipient resolution.
#include <algorithm>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "test_util.h"

namespace yubin::store::testing {
namespace {

TEST(StoreOpen, CreatesDirectoryAndRefusesSecondOpenInProcess) {
    TempDir dir;
    auto o = options_for(dir.path());
    o.path = dir.path() + "/a/b/store";
    auto s = Store::open(o);
    ASSERT_TRUE(s.has_value()) << s.error().to_string();
    auto again = Store::open(o);
    ASSERT_FALSE(again.has_value());
    EXPECT_EQ(again.error().code, ErrorCode::Exists);
    s->reset();
    auto third = Store::open(o);
    EXPECT_TRUE(third.has_value());
}

using DirectoryTest = StoreTest;

TEST_F(DirectoryTest, Domains) {
    EXPECT_EQ(store_->add_domain("Example.COM").error().code, ErrorCode::Exists);
    ASSERT_TRUE(store_->add_domain("other.org"));
    auto list = store_->list_domains();
    ASSERT_TRUE(list);
    EXPECT_EQ(*list, (std::vector<std::string>{"example.com", "other.org"}));
    EXPECT_TRUE(*store_->is_local_domain("EXAMPLE.com"));
    EXPECT_FALSE(*store_->is_local_domain("nowhere.net"));
    // Users exist: refuse.
    EXPECT_EQ(store_->remove_domain("example.com").error().code, ErrorCode::Exists);
    // Only an alias exists: refuse too.
    ASSERT_TRUE(store_->add_alias("info@other.org", "alice@example.com"));
    EXPECT_EQ(store_->remove_domain("other.org").error().code, ErrorCode::Exists);
    ASSERT_TRUE(store_->remove_alias("info@other.org"));
    EXPECT_TRUE(store_->remove_domain("other.org"));
    EXPECT_EQ(store_->remove_domain("other.org").error().code, ErrorCode::NotFound);
    EXPECT_EQ(store_->add_domain("").error().code, ErrorCode::Invalid);
}

TEST_F(DirectoryTest, UsersAndDefaultMailboxes) {
    EXPECT_EQ(store_->add_user("ALICE@example.com", "x", 0).error().code, ErrorCode::Exists);
    EXPECT_EQ(store_->add_user("carol@unknown.net", "x", 0).error().code, ErrorCode::NotFound);
    EXPECT_EQ(store_->add_user("not-an-address", "x", 0).error().code, ErrorCode::Invalid);
    auto u = store_->get_user("Alice@Example.com");
    ASSERT_TRUE(u);
    EXPECT_EQ(u->address, "alice@example.com");
    EXPECT_EQ(u->password_hash, "$y$hash-a");
    EXPECT_GT(u->created, 1600000000);
    ASSERT_TRUE(store_->set_password_hash("alice@example.com", "$y$new"));
    ASSERT_TRUE(store_->set_user_quota("alice@example.com", 12345));
    u = store_->get_user("alice@example.com");
    EXPECT_EQ(u->password_hash, "$y$new");
    EXPECT_EQ(u->quota_bytes, 12345u);
    EXPECT_EQ(store_->set_password_hash("nobody@example.com", "h").error().code,
              ErrorCode::NotFound);

    auto boxes = store_->list_mailboxes("alice@example.com");
    ASSERT_TRUE(boxes);
    ASSERT_EQ(boxes->size(), 6u);
    std::map<std::string, std::string> special;
    std::set<uint32_t> validities;
    for (const auto& b : *boxes) {
        special[b.name] = b.special_use;
        EXPECT_TRUE(b.subscribed) << b.name;
        EXPECT_EQ(b.uidnext, 1u);
        validities.insert(b.uidvalidity);
    }
    EXPECT_EQ(validities.size(), 6u) << "UIDVALIDITY must differ per mailbox";
    EXPECT_EQ(special["INBOX"], "");
    EXPECT_EQ(special["Sent"], "\\Sent");
    EXPECT_EQ(special["Drafts"], "\\Drafts");
    EXPECT_EQ(special["Trash"], "\\Trash");
    EXPECT_EQ(special["Junk"], "\\Junk");
    EXPECT_EQ(special["Archive"], "\\Archive");

    ASSERT_TRUE(store_->add_domain("other.org"));
    ASSERT_TRUE(store_->add_user("zed@other.org", "h", 0));
    auto all = store_->list_users();
    ASSERT_TRUE(all);
    EXPECT_EQ(all->size(), 3u);
    auto only = store_->list_users("example.com");
    ASSERT_TRUE(only);
    ASSERT_EQ(only->size(), 2u);
    EXPECT_EQ((*only)[0].address, "alice@example.com");
    EXPECT_EQ((*only)[1].address, "bob@example.com");
}

TEST_F(DirectoryTest, RemoveUserReleasesEverything) {
    auto r = store_->deliver(
        simple("Subject: x\r\n\r\nbody\r\n", {"alice@example.com", "bob@example.com"}));
    ASSERT_TRUE(r) << r.error().to_string();
    ASSERT_TRUE(store_->add_alias("alice@example.com", "bob@example.com"));
    ASSERT_TRUE(store_->remove_user("alice@example.com"));
    EXPECT_EQ(store_->get_user("alice@example.com").error().code, ErrorCode::NotFound);
    EXPECT_EQ(store_->list_mailboxes("alice@example.com").error().code, ErrorCode::NotFound);
    EXPECT_EQ(store_->remove_user("alice@example.com").error().code, ErrorCode::NotFound);
    auto aliases = store_->list_aliases();
    ASSERT_TRUE(aliases);
    EXPECT_TRUE(aliases->empty());
    // Bob still holds the body.
    EXPECT_TRUE(store_->get_structure(r->blob_id));
    expect_consistent();
    ASSERT_TRUE(store_->remove_user("bob@example.com"));
    EXPECT_EQ(store_->get_structure(r->blob_id).error().code, ErrorCode::NotFound);
    auto rep = store_->check_consistency();
    ASSERT_TRUE(rep);
    EXPECT_EQ(rep->blobs, 0u);
    EXPECT_EQ(rep->mailboxes, 0u);
    EXPECT_TRUE(store_->remove_domain("example.com"));
}

TEST_F(DirectoryTest, AliasesListAndRemove) {
    ASSERT_TRUE(store_->add_alias("sales@example.com", "alice@example.com"));
    ASSERT_TRUE(store_->add_alias("sales@example.com", "bob@example.com"));
    EXPECT_EQ(store_->add_alias("sales@example.com", "bob@example.com").error().code,
              ErrorCode::Exists);
    EXPECT_EQ(store_->add_alias("x@unknown.net", "bob@example.com").error().code,
              ErrorCode::NotFound);
    ASSERT_TRUE(store_->add_alias("@example.com", "alice@example.com"));
    auto list = store_->list_aliases("example.com");
    ASSERT_TRUE(list);
    ASSERT_EQ(list->size(), 3u);
    EXPECT_EQ((*list)[0].source, "@example.com");
    EXPECT_EQ((*list)[1].source, "sales@example.com");
    ASSERT_TRUE(store_->remove_alias("sales@example.com", "alice@example.com"));
    list = store_->list_aliases();
    ASSERT_EQ(list->size(), 2u);
    EXPECT_EQ(store_->remove_alias("sales@example.com", "alice@example.com").error().code,
              ErrorCode::NotFound);
}

std::vector<std::string> flat(const std::vector<ResolvedRecipient>& rs) {
    std::vector<std::string> out;
    for (const auto& r : rs) {
        out.push_back((r.external ? "ext:" : "") + r.address + (r.external ? "" : "/" + r.mailbox));
    }
    std::sort(out.begin(), out.end());
    return out;
}

TEST_F(DirectoryTest, ResolveUsersAliasesPlusAndCatchAll) {
    // Exact user, case-insensitive.
    auto r = store_->resolve_recipient("Alice@EXAMPLE.com");
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(flat(*r), (std::vector<std::string>{"alice@example.com/INBOX"}));
    // Unknown local address without catch-all.
    EXPECT_EQ(store_->resolve_recipient("nobody@example.com").error().code, ErrorCode::NotFound);
    // Non-local domain.
    EXPECT_EQ(store_->resolve_recipient("x@elsewhere.net").error().code, ErrorCode::Perm);

    // Plus-addressing: existing mailbox case-insensitively, else INBOX.
    ASSERT_TRUE(store_->create_mailbox("alice@example.com", "Lists"));
    r = store_->resolve_recipient("alice+lists@example.com");
    ASSERT_TRUE(r);
    EXPECT_EQ(flat(*r), (std::vector<std::string>{"alice@example.com/Lists"}));
    r = store_->resolve_recipient("alice+SENT@example.com");
    EXPECT_EQ(flat(*r), (std::vector<std::string>{"alice@example.com/Sent"}));
    r = store_->resolve_recipient("alice+nosuch@example.com");
    EXPECT_EQ(flat(*r), (std::vector<std::string>{"alice@example.com/INBOX"}));
    EXPECT_EQ(store_->resolve_recipient("nobody+tag@example.com").error().code,
              ErrorCode::NotFound);

    // Alias fan-out to users, an external address, and a nested alias.
    ASSERT_TRUE(store_->add_alias("team@example.com", "alice@example.com"));
    ASSERT_TRUE(store_->add_alias("team@example.com", "friend@remote.org"));
    ASSERT_TRUE(store_->add_alias("team@example.com", "ops@example.com"));
    ASSERT_TRUE(store_->add_alias("ops@example.com", "bob@example.com"));
    ASSERT_TRUE(store_->add_alias("ops@example.com", "alice@example.com"));
    r = store_->resolve_recipient("team@example.com");
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(flat(*r),
              (std::vector<std::string>{"alice@example.com/INBOX", "bob@example.com/INBOX",
                                        "ext:friend@remote.org"}));
    // Plus on an alias applies the alias.
    r = store_->resolve_recipient("ops+whatever@example.com");
    ASSERT_TRUE(r);
    EXPECT_EQ(flat(*r),
              (std::vector<std::string>{"alice@example.com/INBOX", "bob@example.com/INBOX"}));

    // Catch-all, used only when nothing else matches.
    ASSERT_TRUE(store_->add_alias("@example.com", "bob@example.com"));
    r = store_->resolve_recipient("random@example.com");
    ASSERT_TRUE(r);
    EXPECT_EQ(flat(*r), (std::vector<std::string>{"bob@example.com/INBOX"}));
    r = store_->resolve_recipient("alice@example.com");
    EXPECT_EQ(flat(*r), (std::vector<std::string>{"alice@example.com/INBOX"}));

    // A loop is an error, not a hang.
    ASSERT_TRUE(store_->add_alias("loop1@example.com", "loop2@example.com"));
    ASSERT_TRUE(store_->add_alias("loop2@example.com", "loop1@example.com"));
    EXPECT_FALSE(store_->resolve_recipient("loop1@example.com").has_value());
    // A dangling alias target falls through to NotFound rather than delivering nowhere.
    ASSERT_TRUE(store_->remove_alias("@example.com"));
    ASSERT_TRUE(store_->add_alias("gone@example.com", "ghost@example.com"));
    EXPECT_EQ(store_->resolve_recipient("gone@example.com").error().code, ErrorCode::NotFound);
}

}  // namespace
}  // namespace yubin::store::testing
