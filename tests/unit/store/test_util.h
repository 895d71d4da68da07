// Helpers for the store tests: a temporary directory per test, removed after.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "common/store/store.h"

namespace yubin::store::testing {

class TempDir {
  public:
    TempDir() {
        char tmpl[] = "/tmp/yubin-store-XXXXXX";
        char* p = ::mkdtemp(tmpl);
        path_ = p != nullptr ? p : "";
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

inline StoreOptions options_for(const std::string& path) {
    StoreOptions o;
    o.path = path + "/store";
    o.map_size_bytes = 64ULL << 20;
    o.max_readers = 126;
    return o;
}

inline std::unique_ptr<Store> open_or_die(const StoreOptions& o) {
    auto s = Store::open(o);
    EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().to_string());
    return s ? std::move(*s) : nullptr;
}

// A store with domain example.com and users alice, bob.
class StoreTest : public ::testing::Test {
  protected:
    void SetUp() override {
        opts_ = options_for(dir_.path());
        store_ = open_or_die(opts_);
        ASSERT_TRUE(store_);
        ASSERT_TRUE(store_->add_domain("example.com"));
        ASSERT_TRUE(store_->add_user("alice@example.com", "$y$hash-a", 0));
        ASSERT_TRUE(store_->add_user("bob@example.com", "$y$hash-b", 0));
    }
    uint64_t inbox(const std::string& user) {
        auto m = store_->get_mailbox(user, "INBOX");
        EXPECT_TRUE(m.has_value());
        return m ? m->id : 0;
    }
    Delivery simple(std::string body, std::vector<std::string> users) {
        Delivery d;
        d.body = std::move(body);
        d.structure = "structure-bytes";
        for (auto& u : users) {
            DeliveryTarget t;
            t.user = u;
            d.targets.push_back(t);
        }
        return d;
    }
    void expect_consistent() {
        auto rep = store_->check_consistency();
        ASSERT_TRUE(rep.has_value()) << rep.error().to_string();
        for (const auto& p : rep->problems) {
            ADD_FAILURE() << p;
        }
    }

    TempDir dir_;
    StoreOptions opts_;
    std::unique_ptr<Store> store_;
};

}  // namespace yubin::store::testing
