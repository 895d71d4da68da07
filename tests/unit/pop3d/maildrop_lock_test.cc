#include "pop3d/maildrop_lock.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>
#include <cstdlib>
#include <filesystem>

namespace yubin::pop3d {
namespace {

class MaildropLockTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/pop3d-lock-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        root_ = tmpl;
        dir_ = root_ + "/pop3-locks";
    }
    void TearDown() override { std::filesystem::remove_all(root_); }
    std::string root_;
    std::string dir_;
};

TEST_F(MaildropLockTest, SecondSessionOfSameUserIsRefused) {
    MaildropLocks locks(dir_);
    auto a = locks.acquire("bob@example.test");
    ASSERT_TRUE(a.has_value()) << a.error().message;
    auto b = locks.acquire("bob@example.test");
    ASSERT_FALSE(b.has_value());
    EXPECT_EQ(b.error().code, ErrorCode::Exists);
    // Another user is independent.
    EXPECT_TRUE(locks.acquire("alice@example.test").has_value());
    a->reset();
    EXPECT_TRUE(locks.acquire("bob@example.test").has_value());
}

TEST_F(MaildropLockTest, TwoLockSetsInOneProcessExcludeEachOther) {
    // flock works per open file, so even two MaildropLocks objects (as two
    // services would have) conflict.
    MaildropLocks one(dir_), two(dir_);
    auto a = one.acquire("bob@example.test");
    ASSERT_TRUE(a.has_value());
    auto b = two.acquire("bob@example.test");
    ASSERT_FALSE(b.has_value());
    EXPECT_EQ(b.error().code, ErrorCode::Exists);
}

TEST_F(MaildropLockTest, LockedAcrossProcessesAndFreedWhenHolderDies) {
    int ready[2], release[2];
    ASSERT_EQ(::pipe(ready), 0);
    ASSERT_EQ(::pipe(release), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        MaildropLocks locks(dir_);
        auto a = locks.acquire("bob@example.test");
        char c = a.has_value() ? 'y' : 'n';
        (void)!::write(ready[1], &c, 1);
        (void)!::read(release[0], &c, 1);
        ::_exit(0);  // dies holding the lock: the kernel releases it
    }
    char c = 0;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
    ASSERT_EQ(c, 'y');
    MaildropLocks locks(dir_);
    auto b = locks.acquire("bob@example.test");
    ASSERT_FALSE(b.has_value());
    EXPECT_EQ(b.error().code, ErrorCode::Exists);
    (void)!::write(release[1], "x", 1);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(locks.acquire("bob@example.test").has_value());
    for (int fd : {ready[0], ready[1], release[0], release[1]}) {
        ::close(fd);
    }
}

TEST_F(MaildropLockTest, FileNamesCannotEscapeOrCollide) {
    EXPECT_EQ(MaildropLocks::file_name("bob@example.test"), "bob@example.test.lock");
    EXPECT_EQ(MaildropLocks::file_name("../x"), "%2E.%2Fx.lock");
    EXPECT_EQ(MaildropLocks::file_name("a/b"), "a%2Fb.lock");
    EXPECT_EQ(MaildropLocks::file_name("A%"), "%41%25.lock");
    EXPECT_NE(MaildropLocks::file_name("a%2F"), MaildropLocks::file_name("a/"));
}

TEST_F(MaildropLockTest, UnusableDirectoryIsAnIoError) {
    MaildropLocks locks("/proc/pop3-locks-cannot-exist");
    auto a = locks.acquire("bob@example.test");
    ASSERT_FALSE(a.has_value());
    EXPECT_EQ(a.error().code, ErrorCode::Io);
}

}  // namespace
}  // namespace yubin::pop3d
