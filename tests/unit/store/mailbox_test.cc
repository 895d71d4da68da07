// Deliveries, shared bodies, UID/MODSEQ/UIDVALIDITY rules, flags, expunge,
// copy/move, mailbox management, large bodies as files, group commit.
#include <sys/stat.h>
#include <sys/time.h>

#include <cstdio>
#include <ctime>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "test_util.h"

namespace yubin::store::testing {
namespace {

using MailboxTest = StoreTest;

size_t count_blob_files(const std::string& store_path) {
    size_t n = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(store_path + "/blobs")) {
        if (e.is_regular_file()) {
            n++;
        }
    }
    return n;
}

TEST_F(MailboxTest, DeliveryStoresBodyOnceAndRefcountsFreeIt) {
    Delivery d = simple("Subject: hi\r\n\r\nhello\r\n", {"alice@example.com", "bob@example.com"});
    d.targets[0].header_prefix = "Delivered-To: alice@example.com\r\n";
    auto r = store_->deliver(d);
    ASSERT_TRUE(r) << r.error().to_string();
    ASSERT_EQ(r->targets.size(), 2u);
    EXPECT_FALSE(r->targets[0].error);
    EXPECT_FALSE(r->targets[1].error);
    EXPECT_EQ(r->targets[0].uid, 1u);
    EXPECT_EQ(r->targets[1].uid, 1u);
    auto rep = store_->check_consistency();
    ASSERT_TRUE(rep);
    EXPECT_EQ(rep->blobs, 1u) << "one body for two recipients";
    EXPECT_EQ(rep->messages, 2u);
    EXPECT_TRUE(rep->problems.empty());

    // The prefix is per recipient, logically prepended, and counted in size.
    auto a = store_->read_message(r->targets[0].mailbox_id, 1);
    ASSERT_TRUE(a);
    EXPECT_EQ(*a, "Delivered-To: alice@example.com\r\nSubject: hi\r\n\r\nhello\r\n");
    auto b = store_->read_message(r->targets[1].mailbox_id, 1);
    EXPECT_EQ(*b, "Subject: hi\r\n\r\nhello\r\n");
    auto ma = store_->list_messages(r->targets[0].mailbox_id);
    ASSERT_EQ(ma->size(), 1u);
    EXPECT_EQ((*ma)[0].size, a->size());
    EXPECT_EQ(store_->get_user("alice@example.com")->quota_used_bytes, a->size());
    EXPECT_EQ(*store_->get_structure(r->blob_id), "structure-bytes");

    // Expunge one copy: the body stays; expunge the other: it is freed.
    ASSERT_EQ(store_->expunge(r->targets[0].mailbox_id, {1})->size(), 1u);
    EXPECT_TRUE(store_->get_structure(r->blob_id));
    EXPECT_EQ(store_->check_consistency()->blobs, 1u);
    ASSERT_EQ(store_->expunge(r->targets[1].mailbox_id, {1})->size(), 1u);
    EXPECT_EQ(store_->get_structure(r->blob_id).error().code, ErrorCode::NotFound);
    EXPECT_EQ(store_->check_consistency()->blobs, 0u);
    EXPECT_EQ(store_->get_user("alice@example.com")->quota_used_bytes, 0u);
    expect_consistent();
}

TEST_F(MailboxTest, PerTargetFailuresDoNotFailTheDelivery) {
    ASSERT_TRUE(store_->set_user_quota("bob@example.com", 10));
    Delivery d = simple("Subject: x\r\n\r\nmore than ten bytes\r\n",
                        {"alice@example.com", "bob@example.com", "ghost@example.com"});
    d.targets[0].mailbox = "NoSuchBox";  // falls back to INBOX
    auto r = store_->deliver(d);
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_FALSE(r->targets[0].error);
    EXPECT_EQ(r->targets[0].mailbox_id, inbox("alice@example.com"));
    ASSERT_TRUE(r->targets[1].error);
    EXPECT_EQ(r->targets[1].error->code, ErrorCode::Limit);
    ASSERT_TRUE(r->targets[2].error);
    EXPECT_EQ(r->targets[2].error->code, ErrorCode::NotFound);
    EXPECT_EQ(store_->get_mailbox("bob@example.com", "INBOX")->messages, 0u);
    expect_consistent();
    // Every target failing fails the delivery and leaves no orphan body.
    auto none = store_->deliver(simple("x", {"ghost@example.com"}));
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code, ErrorCode::NotFound);
    EXPECT_EQ(store_->check_consistency()->blobs, 1u);
}

TEST_F(MailboxTest, AppendNeedsExistingMailbox) {
    auto r = store_->append("alice@example.com", "Nope", "body");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::NotFound);
    r = store_->append("alice@example.com", "Sent", "body", {}, kFlagSeen, {"$Label"}, 1234);
    ASSERT_TRUE(r) << r.error().to_string();
    auto msgs = store_->list_messages(r->mailbox_id);
    ASSERT_EQ(msgs->size(), 1u);
    EXPECT_EQ((*msgs)[0].flags, static_cast<uint32_t>(kFlagSeen));
    EXPECT_EQ((*msgs)[0].keywords, std::vector<std::string>{"$Label"});
    EXPECT_EQ((*msgs)[0].internaldate, 1234);
    EXPECT_EQ(store_->get_mailbox_by_id(r->mailbox_id)->unseen, 0u);
}

TEST_F(MailboxTest, UidModseqAndUidvalidityRules) {
    uint64_t box = inbox("alice@example.com");
    auto before = store_->get_mailbox_by_id(box);
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(store_->deliver(simple("m" + std::to_string(i), {"alice@example.com"})));
    }
    auto mb = store_->get_mailbox_by_id(box);
    EXPECT_EQ(mb->uidnext, 4u);
    EXPECT_EQ(mb->messages, 3u);
    EXPECT_EQ(mb->unseen, 3u);
    EXPECT_EQ(mb->highestmodseq, before->highestmodseq + 3);
    // UIDs are never reused after expunge.
    ASSERT_TRUE(store_->expunge(box, {3}));
    ASSERT_TRUE(store_->deliver(simple("m4", {"alice@example.com"})));
    auto msgs = store_->list_messages(box);
    ASSERT_EQ(msgs->size(), 3u);
    EXPECT_EQ((*msgs)[2].uid, 4u);
    // Uid range listing.
    auto mid = store_->list_messages(box, 2, 3);
    ASSERT_EQ(mid->size(), 1u);
    EXPECT_EQ((*mid)[0].uid, 2u);
    // Each modseq is unique and increasing with every change.
    EXPECT_LT((*msgs)[0].modseq, (*msgs)[1].modseq);
    EXPECT_LT((*msgs)[1].modseq, (*msgs)[2].modseq);

    // A deleted and re-created mailbox gets a new UIDVALIDITY and starts at uid 1.
    auto created = store_->create_mailbox("alice@example.com", "Projects");
    ASSERT_TRUE(created);
    ASSERT_TRUE(store_->append("alice@example.com", "Projects", "x"));
    ASSERT_TRUE(store_->delete_mailbox("alice@example.com", "Projects"));
    auto again = store_->create_mailbox("alice@example.com", "Projects");
    ASSERT_TRUE(again);
    EXPECT_NE(again->uidvalidity, created->uidvalidity);
    EXPECT_NE(again->id, created->id);
    EXPECT_EQ(again->uidnext, 1u);
    // And UIDVALIDITY survives a reopen without repeating.
    store_.reset();
    store_ = open_or_die(opts_);
    auto third = store_->create_mailbox("alice@example.com", "Other");
    ASSERT_TRUE(third);
    EXPECT_GT(third->uidvalidity, again->uidvalidity);
    expect_consistent();
}

TEST_F(MailboxTest, FlagsAndChangesSince) {
    uint64_t box = inbox("alice@example.com");
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(store_->deliver(simple("m" + std::to_string(i), {"alice@example.com"})));
    }
    uint64_t base = store_->get_mailbox_by_id(box)->highestmodseq;

    FlagUpdate up;
    up.mailbox_id = box;
    up.uids = {1, 2, 99};
    up.op = FlagOp::Add;
    up.flags = kFlagSeen | kFlagFlagged;
    up.keywords = {"$Important"};
    auto r = store_->store_flags(up);
    ASSERT_TRUE(r) << r.error().to_string();
    ASSERT_EQ(r->updated.size(), 2u);
    EXPECT_EQ(r->updated[0].flags, static_cast<uint32_t>(kFlagSeen | kFlagFlagged));
    EXPECT_EQ(store_->get_mailbox_by_id(box)->unseen, 1u);

    // No-op change: no modseq bump.
    uint64_t hm = store_->get_mailbox_by_id(box)->highestmodseq;
    r = store_->store_flags(up);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->updated.empty());
    EXPECT_EQ(store_->get_mailbox_by_id(box)->highestmodseq, hm);

    up.op = FlagOp::Remove;
    up.uids = {1};
    up.flags = kFlagSeen;
    up.keywords = {"$important"};  // keywords compare case-insensitively
    r = store_->store_flags(up);
    ASSERT_EQ(r->updated.size(), 1u);
    EXPECT_EQ(r->updated[0].flags, static_cast<uint32_t>(kFlagFlagged));
    EXPECT_TRUE(r->updated[0].keywords.empty());

    up.op = FlagOp::Set;
    up.uids = {2};
    up.flags = kFlagDeleted;
    up.keywords = {};
    ASSERT_TRUE(store_->store_flags(up));
    auto msgs = store_->list_messages(box, 2, 2);
    EXPECT_EQ((*msgs)[0].flags, static_cast<uint32_t>(kFlagDeleted));
    // uid 2 lost \Seen too: all three are unseen again.
    EXPECT_EQ(store_->get_mailbox_by_id(box)->unseen, 3u);

    // UNCHANGEDSINCE: uid 3 is unchanged since base, uid 2 is not.
    up.op = FlagOp::Add;
    up.uids = {2, 3};
    up.flags = kFlagAnswered;
    up.unchanged_since = base;
    r = store_->store_flags(up);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->modified, std::vector<uint32_t>{2});
    ASSERT_EQ(r->updated.size(), 1u);
    EXPECT_EQ(r->updated[0].uid, 3u);

    ASSERT_TRUE(store_->expunge(box, {2}));
    auto ch = store_->changes_since(box, base);
    ASSERT_TRUE(ch);
    std::vector<uint32_t> changed;
    for (const auto& m : ch->changed) {
        changed.push_back(m.uid);
        EXPECT_GT(m.modseq, base);
    }
    EXPECT_EQ(changed, (std::vector<uint32_t>{1, 3}));
    EXPECT_EQ(ch->expunged, std::vector<uint32_t>{2});
    EXPECT_EQ(ch->highestmodseq, store_->get_mailbox_by_id(box)->highestmodseq);
    auto none = store_->changes_since(box, ch->highestmodseq);
    EXPECT_TRUE(none->changed.empty());
    EXPECT_TRUE(none->expunged.empty());
    expect_consistent();
}

TEST_F(MailboxTest, CopyAndMoveShareBodies) {
    uint64_t box = inbox("alice@example.com");
    auto archive = store_->get_mailbox("alice@example.com", "Archive");
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(store_->deliver(simple("m" + std::to_string(i), {"alice@example.com"})));
    }
    uint64_t used = store_->get_user("alice@example.com")->quota_used_bytes;
    auto c = store_->copy(box, {3, 1, 1}, archive->id);
    ASSERT_TRUE(c) << c.error().to_string();
    EXPECT_EQ(c->dest_uidvalidity, archive->uidvalidity);
    EXPECT_EQ(c->source_uids, (std::vector<uint32_t>{1, 3}));
    EXPECT_EQ(c->dest_uids, (std::vector<uint32_t>{1, 2}));
    EXPECT_EQ(store_->check_consistency()->blobs, 3u) << "copies share bodies";
    EXPECT_EQ(store_->get_user("alice@example.com")->quota_used_bytes, used + 4);
    EXPECT_EQ(*store_->read_message(archive->id, 2), "m2");

    auto m = store_->copy(box, {2}, archive->id, true);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->dest_uids, std::vector<uint32_t>{3});
    EXPECT_EQ(store_->get_mailbox_by_id(box)->messages, 2u);
    EXPECT_EQ(store_->get_mailbox_by_id(archive->id)->messages, 3u);
    EXPECT_EQ(store_->changes_since(box, 0)->expunged, std::vector<uint32_t>{2});
    EXPECT_EQ(store_->copy(box, {1}, 999999).error().code, ErrorCode::NotFound);
    expect_consistent();
    // Deleting the mailbox releases its references only.
    ASSERT_TRUE(store_->delete_mailbox("alice@example.com", "Archive"));
    EXPECT_EQ(store_->check_consistency()->blobs, 2u);
    EXPECT_EQ(store_->delete_mailbox("alice@example.com", "INBOX").error().code, ErrorCode::Perm);
    expect_consistent();
}

TEST_F(MailboxTest, CreateRenameSubscribe) {
    EXPECT_EQ(store_->create_mailbox("alice@example.com", "Sent").error().code, ErrorCode::Exists);
    EXPECT_EQ(store_->create_mailbox("alice@example.com", "inbox").error().code, ErrorCode::Exists);
    EXPECT_EQ(store_->create_mailbox("nobody@example.com", "X").error().code, ErrorCode::NotFound);
    EXPECT_EQ(store_->create_mailbox("alice@example.com", "").error().code, ErrorCode::Invalid);
    auto work = store_->create_mailbox("alice@example.com", "Work");
    ASSERT_TRUE(work);
    EXPECT_FALSE(work->subscribed);
    auto sub = store_->create_mailbox("alice@example.com", "Work/2024");
    ASSERT_TRUE(sub);
    ASSERT_TRUE(store_->append("alice@example.com", "Work/2024", "old mail"));
    ASSERT_TRUE(store_->rename_mailbox("alice@example.com", "Work", "Jobs"));
    EXPECT_EQ(store_->get_mailbox("alice@example.com", "Work").error().code, ErrorCode::NotFound);
    auto moved = store_->get_mailbox("alice@example.com", "Jobs/2024");
    ASSERT_TRUE(moved);
    EXPECT_EQ(moved->id, sub->id);
    EXPECT_EQ(moved->uidvalidity, sub->uidvalidity);
    EXPECT_EQ(moved->messages, 1u);
    EXPECT_EQ(*store_->read_message(moved->id, 1), "old mail");
    EXPECT_EQ(store_->get_mailbox_by_id(moved->id)->name, "Jobs/2024");
    EXPECT_EQ(store_->rename_mailbox("alice@example.com", "Jobs", "Sent").error().code,
              ErrorCode::Exists);
    EXPECT_EQ(store_->rename_mailbox("alice@example.com", "INBOX", "Old").error().code,
              ErrorCode::Perm);
    ASSERT_TRUE(store_->subscribe_mailbox("alice@example.com", "Jobs", true));
    EXPECT_TRUE(store_->get_mailbox("alice@example.com", "Jobs")->subscribed);
    ASSERT_TRUE(store_->subscribe_mailbox("alice@example.com", "Jobs", false));
    EXPECT_FALSE(store_->get_mailbox("alice@example.com", "Jobs")->subscribed);
    expect_consistent();
}

TEST_F(MailboxTest, QuotaUsageTracksDeliveriesAndEnforcement) {
    ASSERT_TRUE(store_->set_user_quota("alice@example.com", 100));
    ASSERT_TRUE(store_->deliver(simple(std::string(60, 'a'), {"alice@example.com"})));
    auto q = store_->quota_usage("alice@example.com");
    ASSERT_TRUE(q);
    EXPECT_EQ(q->used_bytes, 60u);
    EXPECT_EQ(q->limit_bytes, 100u);
    auto over = store_->deliver(simple(std::string(60, 'b'), {"alice@example.com"}));
    ASSERT_FALSE(over);
    EXPECT_EQ(over.error().code, ErrorCode::Limit);
    // A target may opt out (e.g. postmaster mail).
    Delivery d = simple(std::string(60, 'c'), {"alice@example.com"});
    d.targets[0].enforce_quota = false;
    ASSERT_TRUE(store_->deliver(d));
    EXPECT_EQ(store_->quota_usage("alice@example.com")->used_bytes, 120u);
    expect_consistent();
}

TEST(LargeBodies, StoredAsFilesAndRemovedWithLastReference) {
    TempDir dir;
    auto o = options_for(dir.path());
    o.large_body_bytes = 1000;
    auto store = open_or_die(o);
    ASSERT_TRUE(store->add_domain("example.com"));
    ASSERT_TRUE(store->add_user("a@example.com", "h", 0));
    ASSERT_TRUE(store->add_user("b@example.com", "h", 0));
    std::string big(5000, 'x');
    big += "end";
    Delivery d;
    d.body = big;
    d.targets.push_back(DeliveryTarget{"a@example.com"});
    d.targets.push_back(DeliveryTarget{"b@example.com"});
    d.targets[1].header_prefix = "X-Pre: 1\r\n";
    auto r = store->deliver(d);
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(count_blob_files(o.path), 1u);
    ASSERT_TRUE(store->deliver(Delivery{"small", "", 0, {DeliveryTarget{"a@example.com"}}, {}}));
    EXPECT_EQ(count_blob_files(o.path), 1u) << "small bodies stay in LMDB";
    EXPECT_EQ(*store->read_message(r->targets[0].mailbox_id, 1), big);
    EXPECT_EQ(*store->read_message(r->targets[1].mailbox_id, 1), "X-Pre: 1\r\n" + big);
    auto rep = store->check_consistency();
    ASSERT_TRUE(rep);
    EXPECT_TRUE(rep->problems.empty());
    ASSERT_TRUE(store->expunge(r->targets[0].mailbox_id, {1}));
    EXPECT_EQ(count_blob_files(o.path), 1u);
    ASSERT_TRUE(store->expunge(r->targets[1].mailbox_id, {1}));
    EXPECT_EQ(count_blob_files(o.path), 0u) << "file removed with the last reference";
    // A delivery whose every target fails leaves no file behind.
    Delivery bad;
    bad.body = big;
    bad.targets.push_back(DeliveryTarget{"ghost@example.com"});
    EXPECT_FALSE(store->deliver(bad));
    EXPECT_EQ(count_blob_files(o.path), 0u);
    EXPECT_TRUE(store->check_consistency()->problems.empty());

    // Orphans (staged, never committed: a crash) are swept at open once old
    // enough; young files may belong to another process's delivery in flight.
    auto kept = store->deliver(d);
    ASSERT_TRUE(kept);
    store.reset();
    std::string old_orphan = o.path + "/blobs/ab/abababababababababababababababab";
    std::string young_orphan = o.path + "/blobs/cd/cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd";
    for (const auto& p : {old_orphan, young_orphan}) {
        FILE* f = std::fopen(p.c_str(), "w");
        ASSERT_NE(f, nullptr);
        std::fputs("orphan", f);
        std::fclose(f);
    }
    timeval times[2] = {{::time(nullptr) - 7200, 0}, {::time(nullptr) - 7200, 0}};
    ASSERT_EQ(::utimes(old_orphan.c_str(), times), 0);
    // The referenced file is old too, and must survive.
    for (const auto& e : std::filesystem::recursive_directory_iterator(o.path + "/blobs")) {
        if (e.is_regular_file()) {
            ASSERT_EQ(::utimes(e.path().c_str(), times), 0);
        }
    }
    ASSERT_EQ(::utimes(young_orphan.c_str(), nullptr), 0);
    store = open_or_die(o);
    ASSERT_TRUE(store);
    EXPECT_FALSE(std::filesystem::exists(old_orphan));
    EXPECT_TRUE(std::filesystem::exists(young_orphan));
    EXPECT_EQ(count_blob_files(o.path), 2u);
    EXPECT_EQ(*store->read_message(kept->targets[0].mailbox_id, kept->targets[0].uid), big);
    EXPECT_TRUE(store->check_consistency()->problems.empty());
}

TEST_F(MailboxTest, GroupCommitBatchesConcurrentSubmissionsAndIsolatesFailures) {
    // Many asynchronous submissions at once: all complete, the failing ones fail
    // alone, and callbacks run only after their commit (the data is readable
    // from another read transaction inside the callback).
    constexpr int kOps = 200;
    std::mutex m;
    std::condition_variable cv;
    int done = 0;
    int ok = 0;
    int failed = 0;
    int visible = 0;
    int refusals = 0;
    Store* s = store_.get();
    for (int i = 0; i < kOps; ++i) {
        Delivery d = simple("msg " + std::to_string(i),
                            {i % 10 == 0 ? "ghost@example.com" : "alice@example.com"});
        s->deliver_async(std::move(d), [&, s](Result<DeliveryResult> r) {
            // Blocking writes from a callback would wait for themselves: refused.
            bool refused = !s->append("alice@example.com", "INBOX", "x").has_value() &&
                           !s->add_domain("z.example").has_value() && s->on_writer_thread();
            bool seen = false;
            if (r) {
                seen = s->read_message(r->targets[0].mailbox_id, r->targets[0].uid).has_value();
            }
            std::lock_guard lk(m);
            (r ? ok : failed)++;
            visible += seen ? 1 : 0;
            refusals += refused ? 1 : 0;
            done++;
            cv.notify_one();
        });
    }
    std::unique_lock lk(m);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(30), [&] { return done == kOps; }));
    EXPECT_EQ(ok, kOps - kOps / 10);
    EXPECT_EQ(failed, kOps / 10);
    EXPECT_EQ(visible, ok);
    EXPECT_EQ(refusals, kOps);
    EXPECT_FALSE(store_->on_writer_thread());
    lk.unlock();
    EXPECT_EQ(store_->get_mailbox("alice@example.com", "INBOX")->messages,
              static_cast<uint32_t>(ok));
    // They were committed in fewer transactions than operations.
    auto st = store_->stats();
    EXPECT_GE(st.operations, static_cast<uint64_t>(kOps));
    EXPECT_LT(st.commits, st.operations);
    EXPECT_GE(st.failed_operations, static_cast<uint64_t>(kOps / 10));
    expect_consistent();
}

TEST(MapGrowth, GrowsFromATinyMap) {
    TempDir dir;
    auto o = options_for(dir.path());
    o.map_size_bytes = 256 * 1024;  // far too small for what follows
    auto store = open_or_die(o);
    ASSERT_TRUE(store->add_domain("example.com"));
    ASSERT_TRUE(store->add_user("a@example.com", "h", 0));
    for (int i = 0; i < 200; ++i) {
        auto r = store->deliver(Delivery{std::string(20000, static_cast<char>('a' + i % 26)),
                                         "",
                                         0,
                                         {DeliveryTarget{"a@example.com"}},
                                         {}});
        ASSERT_TRUE(r) << i << ": " << r.error().to_string();
    }
    struct stat st {};
    ASSERT_EQ(::stat((o.path + "/data.mdb").c_str(), &st), 0);
    EXPECT_GT(static_cast<uint64_t>(st.st_size), 4000000u);
    EXPECT_GT(store->stats().map_grows, 0u);
    auto mb = store->get_mailbox("a@example.com", "INBOX");
    EXPECT_EQ(mb->messages, 200u);
    EXPECT_EQ(*store->read_message(mb->id, 200),
              std::string(20000, static_cast<char>('a' + 199 % 26)));
    EXPECT_TRUE(store->check_consistency()->problems.empty());
}

}  // namespace
}  // namespace yubin::store::testing
