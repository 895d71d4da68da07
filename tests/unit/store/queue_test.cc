// Outbound queue: enqueue inside a Delivery, due scan, update, removal.
#include <gtest/gtest.h>

#include "test_util.h"

namespace yubin::store::testing {
namespace {

using QueueTest = StoreTest;

QueueEntry entry(std::string sender, std::vector<std::string> rcpts, int64_t next,
                 int64_t hold = 0) {
    QueueEntry e;
    e.sender = std::move(sender);
    for (auto& r : rcpts) {
        QueueRecipient q;
        q.address = r;
        q.notify = kNotifyFailure | kNotifyDelay;
        q.orcpt = "rfc822;" + r;
        e.recipients.push_back(q);
    }
    e.envid = "ENV1";
    e.ret = DsnRet::Headers;
    e.next_attempt = next;
    e.hold_until = hold;
    return e;
}

TEST_F(QueueTest, DeliveryWithLocalAndRemoteSharesTheBody) {
    Delivery d = simple("Subject: out\r\n\r\nbody\r\n", {"alice@example.com"});
    d.queue.push_back(entry("alice@example.com", {"x@remote.org", "y@remote.org"}, 100));
    auto r = store_->deliver(d);
    ASSERT_TRUE(r) << r.error().to_string();
    ASSERT_EQ(r->queue_ids.size(), 1u);
    auto e = store_->get_queue_entry(r->queue_ids[0]);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->sender, "alice@example.com");
    ASSERT_EQ(e->recipients.size(), 2u);
    EXPECT_EQ(e->recipients[1].address, "y@remote.org");
    EXPECT_EQ(e->recipients[1].orcpt, "rfc822;y@remote.org");
    EXPECT_EQ(e->recipients[1].notify, kNotifyFailure | kNotifyDelay);
    EXPECT_EQ(e->recipients[0].status, RecipientStatus::Pending);
    EXPECT_EQ(e->envid, "ENV1");
    EXPECT_EQ(e->ret, DsnRet::Headers);
    EXPECT_EQ(e->blob_id, r->blob_id);
    EXPECT_GT(e->created, 0);
    EXPECT_EQ(*store_->read_queue_message(e->id), "Subject: out\r\n\r\nbody\r\n");
    auto rep = store_->check_consistency();
    EXPECT_EQ(rep->blobs, 1u);
    EXPECT_TRUE(rep->problems.empty());
    // The mailbox copy goes; the queue still holds the body; then the queue
    // entry goes and the body with it.
    ASSERT_TRUE(store_->expunge(r->targets[0].mailbox_id, {r->targets[0].uid}));
    EXPECT_TRUE(store_->read_queue_message(e->id));
    ASSERT_TRUE(store_->remove_queue_entry(e->id));
    EXPECT_EQ(store_->get_queue_entry(e->id).error().code, ErrorCode::NotFound);
    EXPECT_EQ(store_->check_consistency()->blobs, 0u);
    EXPECT_EQ(store_->remove_queue_entry(e->id).error().code, ErrorCode::NotFound);
}

TEST_F(QueueTest, DueScanUpdateAndHold) {
    std::vector<uint64_t> ids;
    // Due at 300, 100, 200; one held until 1000 although next_attempt is 50.
    for (int64_t t : {300, 100, 200}) {
        Delivery d;
        d.body = "m" + std::to_string(t);
        d.queue.push_back(entry("", {"r@remote.org"}, t));
        auto r = store_->deliver(d);
        ASSERT_TRUE(r) << r.error().to_string();
        ids.push_back(r->queue_ids[0]);
    }
    Delivery held;
    held.body = "held";
    held.queue.push_back(entry("", {"r@remote.org"}, 50, 1000));
    auto hr = store_->deliver(held);
    ASSERT_TRUE(hr);

    auto due = store_->list_due(150, 10);
    ASSERT_TRUE(due);
    ASSERT_EQ(due->size(), 1u);
    EXPECT_EQ((*due)[0].id, ids[1]);
    due = store_->list_due(250, 10);
    ASSERT_EQ(due->size(), 2u);
    EXPECT_EQ((*due)[0].id, ids[1]);
    EXPECT_EQ((*due)[1].id, ids[2]);
    EXPECT_EQ(store_->list_due(1000, 2)->size(), 2u) << "limit honoured";
    EXPECT_EQ(store_->list_due(999, 10)->size(), 3u) << "held entry not due before hold_until";
    EXPECT_EQ(store_->list_due(1000, 10)->size(), 4u);

    // A temporary failure: bump attempts, record the error, reschedule.
    QueueEntry e = (*due)[0];
    e.recipients[0].status = RecipientStatus::Deferred;
    e.recipients[0].attempts = 1;
    e.recipients[0].last_error = "451 4.7.1 try later";
    e.next_attempt = 5000;
    ASSERT_TRUE(store_->update_queue_entry(e));
    due = store_->list_due(999, 10);
    ASSERT_EQ(due->size(), 2u);
    EXPECT_EQ((*due)[0].id, ids[2]);
    auto got = store_->get_queue_entry(e.id);
    EXPECT_EQ(got->recipients[0].status, RecipientStatus::Deferred);
    EXPECT_EQ(got->recipients[0].attempts, 1u);
    EXPECT_EQ(got->recipients[0].last_error, "451 4.7.1 try later");
    EXPECT_EQ(got->next_attempt, 5000);
    EXPECT_EQ(store_->list_due(5000, 10)->size(), 4u);
    EXPECT_EQ(store_->list_queue()->size(), 4u);
    QueueEntry missing;
    missing.id = 424242;
    EXPECT_EQ(store_->update_queue_entry(missing).error().code, ErrorCode::NotFound);
    expect_consistent();
}

}  // namespace
}  // namespace yubin::store::testing
