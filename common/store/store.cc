#include "common/store/store.h"

#include <condition_variable>
#include <mutex>
#include <optional>

#include "common/store/lmdb_store.h"

namespace yubin::store {

namespace {

// Submits through an *_async call and waits for its callback (which runs on
// the writer thread after the commit).
template <typename T, typename Start>
Result<T> wait_for(const Store& store, Start&& start) {
    if (store.on_writer_thread()) {
        return fail(ErrorCode::Internal, "blocking store call on the writer thread");
    }
    std::mutex m;
    std::condition_variable cv;
    std::optional<Result<T>> out;
    start([&](Result<T> r) {
        std::lock_guard lk(m);
        out.emplace(std::move(r));
        cv.notify_one();
    });
    std::unique_lock lk(m);
    cv.wait(lk, [&] { return out.has_value(); });
    return std::move(*out);
}

}  // namespace

Result<std::unique_ptr<Store>> Store::open(const StoreOptions& options) {
    return open_lmdb_store(options, builtin_migrations());
}

Result<DeliveryResult> Store::deliver(Delivery delivery) {
    return wait_for<DeliveryResult>(*this, [&](Callback<DeliveryResult> cb) {
        deliver_async(std::move(delivery), std::move(cb));
    });
}

Result<TargetResult> Store::append(std::string_view user, std::string_view mailbox,
                                   std::string body, std::string structure, uint32_t flags,
                                   std::vector<std::string> keywords, int64_t internaldate) {
    return wait_for<TargetResult>(*this, [&](Callback<TargetResult> cb) {
        append_async(user, mailbox, std::move(body), std::move(structure), flags,
                     std::move(keywords), internaldate, std::move(cb));
    });
}

Result<FlagResult> Store::store_flags(FlagUpdate update) {
    return wait_for<FlagResult>(*this, [&](Callback<FlagResult> cb) {
        store_flags_async(std::move(update), std::move(cb));
    });
}

Result<std::vector<uint32_t>> Store::expunge(uint64_t mailbox_id, std::vector<uint32_t> uids) {
    return wait_for<std::vector<uint32_t>>(*this, [&](Callback<std::vector<uint32_t>> cb) {
        expunge_async(mailbox_id, std::move(uids), std::move(cb));
    });
}

Result<CopyResult> Store::copy(uint64_t source_mailbox_id, std::vector<uint32_t> uids,
                               uint64_t dest_mailbox_id, bool move) {
    return wait_for<CopyResult>(*this, [&](Callback<CopyResult> cb) {
        copy_async(source_mailbox_id, std::move(uids), dest_mailbox_id, move, std::move(cb));
    });
}

Result<MailboxRecord> Store::create_mailbox(std::string_view user, std::string_view name,
                                            std::string_view special_use) {
    return wait_for<MailboxRecord>(*this, [&](Callback<MailboxRecord> cb) {
        create_mailbox_async(user, name, special_use, std::move(cb));
    });
}

Result<void> Store::rename_mailbox(std::string_view user, std::string_view from,
                                   std::string_view to) {
    return wait_for<void>(
        *this, [&](Callback<void> cb) { rename_mailbox_async(user, from, to, std::move(cb)); });
}

Result<void> Store::delete_mailbox(std::string_view user, std::string_view name) {
    return wait_for<void>(
        *this, [&](Callback<void> cb) { delete_mailbox_async(user, name, std::move(cb)); });
}

Result<void> Store::subscribe_mailbox(std::string_view user, std::string_view name,
                                      bool subscribed) {
    return wait_for<void>(*this, [&](Callback<void> cb) {
        subscribe_mailbox_async(user, name, subscribed, std::move(cb));
    });
}

Result<void> Store::update_queue_entry(QueueEntry entry) {
    return wait_for<void>(*this, [&](Callback<void> cb) {
        update_queue_entry_async(std::move(entry), std::move(cb));
    });
}

Result<void> Store::remove_queue_entry(uint64_t id) {
    return wait_for<void>(*this,
                          [&](Callback<void> cb) { remove_queue_entry_async(id, std::move(cb)); });
}

}  // namespace yubin::store
