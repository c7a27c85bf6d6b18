// CoordinationStore conformance: one suite, run against MemoryCoordinationStore and against
// EtcdStore on a real etcd (src/testing/etcd_server.h, one server for the suite; skipped when
// /usr/bin/etcd is not installed). The memory store is meant to behave as etcd does, so every
// expectation here was first checked against etcd 3.4. Each test writes under a prefix of its own
// name, so tests sharing the etcd server do not see each other's keys; revisions are compared
// relative to what the test read.
//
// Then: etcd-only tests of the transport (fail-over, a stopped server, restarts) on a server of
// their own; memory-only tests of its test hooks; and the codec on replies captured from etcd.
#include "src/coord/coordination_store.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <initializer_list>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "src/coord/etcd_codec.h"
#include "src/coord/etcd_store.h"
#include "src/coord/memory_coordination_store.h"
#include "src/testing/etcd_server.h"
#include "src/testing/status_matchers.h"
#include "src/util/str.h"

namespace ickpt::coord {
namespace {

using ::ickpt::testing::EtcdServer;

enum class Backend { kMemory, kEtcd };

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kMemory ? "Memory" : "Etcd";
}

// For gtest's messages and CTest's names ("GetParam() = Etcd", not the enum's bytes).
void PrintTo(Backend backend, std::ostream* os) {
  *os << (backend == Backend::kMemory ? "Memory" : "Etcd");
}

std::string CurrentTestName() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return StrCat(info->test_suite_name(), ".", info->name());
}

bool MessageHas(const absl::Status& status, std::string_view needle) {
  return Contains(std::string(status.message()), needle);
}

// Starts etcd, or fails the test with etcd's log.
std::unique_ptr<EtcdServer> StartEtcd() {
  absl::StatusOr<std::unique_ptr<EtcdServer>> server = EtcdServer::Start();
  EXPECT_OK(server);
  return server.ok() ? std::move(*server) : nullptr;
}

constexpr char kNoEtcd[] = "/usr/bin/etcd is not installed (apt-get install etcd-server)";

class CoordinationStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  static void TearDownTestSuite() { etcd_.reset(); }

  void SetUp() override {
    if (GetParam() == Backend::kMemory) {
      store_ = std::make_unique<MemoryCoordinationStore>();
    } else {
      if (!EtcdServer::Available()) GTEST_SKIP() << kNoEtcd;
      if (etcd_ == nullptr) etcd_ = StartEtcd();
      ASSERT_NE(etcd_, nullptr);
      ASSERT_OK_AND_ASSIGN(store_, EtcdStore::Open({etcd_->endpoint()}));
    }
    prefix_ = CurrentTestName() + "/";
  }

  // ---- Verbs. ----

  // A key under this test's prefix.
  std::string K(std::string_view name) const { return prefix_ + std::string(name); }

  int64_t Put(std::string_view name, std::string_view value, int64_t lease = 0) {
    absl::StatusOr<int64_t> revision = store_->Put(K(name), value, lease);
    EXPECT_OK(revision);
    return revision.ok() ? *revision : -1;
  }

  // The key, or a KeyValue with an empty key when it does not exist.
  KeyValue Get(std::string_view name) {
    absl::StatusOr<RangeResult> range = store_->Get(K(name));
    EXPECT_OK(range);
    if (!range.ok() || range->kvs.empty()) return {};
    EXPECT_EQ(range->kvs.size(), 1u);
    return range->kvs[0];
  }

  bool Exists(std::string_view name) { return !Get(name).key.empty(); }

  int64_t Revision() {
    absl::StatusOr<RangeResult> range = store_->GetPrefix(prefix_);
    EXPECT_OK(range);
    return range.ok() ? range->revision : -1;
  }

  // The keys under the test's prefix, without it.
  std::vector<std::string> Keys() {
    absl::StatusOr<RangeResult> range = store_->GetPrefix(prefix_);
    EXPECT_OK(range);
    std::vector<std::string> keys;
    if (range.ok()) {
      for (const KeyValue& kv : range->kvs) keys.push_back(kv.key.substr(prefix_.size()));
    }
    return keys;
  }

  // Runs a transaction whose success branch writes "branch" = "success" and whose failure branch
  // writes "branch" = "failure"; returns whether it succeeded, checking that the right branch ran.
  bool Holds(std::vector<Compare> compares) {
    absl::StatusOr<TxnResult> result =
        store_->Txn(compares, {TxnOp::Put(K("branch"), "success")},
                    {TxnOp::Put(K("branch"), "failure")});
    EXPECT_OK(result);
    if (!result.ok()) return false;
    EXPECT_EQ(Get("branch").value, result->succeeded ? "success" : "failure");
    EXPECT_EQ(Get("branch").mod_revision, result->revision);
    return result->succeeded;
  }

  Compare On(std::string_view name, Compare::Target target, Compare::Result result,
             int64_t number, std::string value = {}) {
    return {K(name), target, result, number, std::move(value)};
  }

  // Waits until `name` is gone, up to `limit`; returns whether it went.
  bool WaitUntilGone(std::string_view name, absl::Duration limit) {
    const absl::Time deadline = absl::Now() + limit;
    while (Exists(name)) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return true;
  }

  static inline std::unique_ptr<EtcdServer> etcd_;
  std::unique_ptr<CoordinationStore> store_;
  std::string prefix_;
};

INSTANTIATE_TEST_SUITE_P(Stores, CoordinationStoreTest,
                         ::testing::Values(Backend::kMemory, Backend::kEtcd), BackendName);

TEST_P(CoordinationStoreTest, PutThenGetReturnsTheKeyWithItsRevisions) {
  const int64_t revision = Put("a", "value 1");
  const KeyValue kv = Get("a");
  EXPECT_EQ(kv.key, K("a"));
  EXPECT_EQ(kv.value, "value 1");
  EXPECT_EQ(kv.create_revision, revision);
  EXPECT_EQ(kv.mod_revision, revision);
  EXPECT_EQ(kv.version, 1);
  EXPECT_EQ(kv.lease, 0);
  ASSERT_OK_AND_ASSIGN(RangeResult range, store_->Get(K("a")));
  EXPECT_GE(range.revision, revision);
}

TEST_P(CoordinationStoreTest, GetOfAMissingKeyIsEmptyNotAnError) {
  ASSERT_OK_AND_ASSIGN(RangeResult range, store_->Get(K("missing")));
  EXPECT_TRUE(range.kvs.empty());
  EXPECT_GE(range.revision, 1);
}

TEST_P(CoordinationStoreTest, EmptyAndBinaryValuesRoundTrip) {
  Put("empty", "");
  const std::string binary("\0\xff\x80 \n\"{}", 8);
  Put("binary", binary);
  EXPECT_EQ(Get("empty").value, "");
  EXPECT_EQ(Get("empty").version, 1);
  EXPECT_EQ(Get("binary").value, binary);
}

TEST_P(CoordinationStoreTest, EmptyKeyIsInvalidArgument) {
  EXPECT_EQ(store_->Put("", "v").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Get("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(CoordinationStoreTest, EveryWriteAdvancesTheRevisionByOne) {
  const int64_t first = Put("a", "1");
  EXPECT_EQ(Put("b", "1"), first + 1);
  EXPECT_EQ(Put("a", "2"), first + 2);
  ASSERT_OK_AND_ASSIGN(int64_t deleted, store_->Delete(K("b")));
  EXPECT_EQ(deleted, first + 3);
  EXPECT_EQ(Revision(), first + 3);
}

TEST_P(CoordinationStoreTest, PrefixReadReturnsExactlyThePrefixInKeyOrder) {
  for (std::string_view name : std::initializer_list<std::string_view>{
           "m", "b", "a/x", "a", std::string_view("\xff", 1), "z", "a/"}) {
    Put(name, StrCat("value of ", name));
  }
  // Outside the prefix: the prefix without its '/', and the next key after the prefix.
  ASSERT_OK(store_->Put(CurrentTestName(), "outside"));
  ASSERT_OK(store_->Put(CurrentTestName() + "0", "outside"));
  const std::vector<std::string> expected = {"a", "a/", "a/x", "b", "m", "z",
                                             std::string("\xff", 1)};
  EXPECT_EQ(Keys(), expected);
  ASSERT_OK_AND_ASSIGN(RangeResult range, store_->GetPrefix(K("a")));
  ASSERT_EQ(range.kvs.size(), 3u);
  EXPECT_EQ(range.kvs[2].key, K("a/x"));
  EXPECT_EQ(range.kvs[2].value, "value of a/x");
  // A prefix ending in 0xff: its range end drops that byte (etcd's rule).
  Put(std::string("\xff\xff", 2), "ff");
  ASSERT_OK_AND_ASSIGN(range, store_->GetPrefix(K(std::string("\xff", 1))));
  ASSERT_EQ(range.kvs.size(), 2u);
  EXPECT_EQ(range.kvs[1].key, K(std::string("\xff\xff", 2)));
}

TEST_P(CoordinationStoreTest, GetRangesReadsEveryRangeAtOneRevision) {
  for (std::string_view name : {"a", "b/1", "b/2", "c", "d", "e"}) Put(name, StrCat("v-", name));
  const int64_t revision = Revision();
  ASSERT_OK_AND_ASSIGN(
      MultiRangeResult read,
      store_->GetRanges({KeyRange::Single(K("c")), KeyRange::Prefix(K("b/")),
                         KeyRange::Single(K("missing")), KeyRange::Between(K("c"), K("e"))}));
  EXPECT_EQ(read.revision, revision);
  ASSERT_EQ(read.ranges.size(), 4u);
  ASSERT_EQ(read.ranges[0].size(), 1u);
  EXPECT_EQ(read.ranges[0][0].value, "v-c");
  ASSERT_EQ(read.ranges[1].size(), 2u);
  EXPECT_EQ(read.ranges[1][0].key, K("b/1"));
  EXPECT_EQ(read.ranges[1][1].key, K("b/2"));
  EXPECT_TRUE(read.ranges[2].empty());
  // [c, e): c and d, not e.
  ASSERT_EQ(read.ranges[3].size(), 2u);
  EXPECT_EQ(read.ranges[3][1].key, K("d"));
  EXPECT_GT(read.ranges[3][1].mod_revision, 0);
  EXPECT_EQ(store_->GetRanges({}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->GetRanges({KeyRange::Single("")}).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Keys only: the same keys and revisions, no values.
  ASSERT_OK_AND_ASSIGN(
      MultiRangeResult keys,
      store_->GetRanges({KeyRange::Prefix(K("b/")).KeysOnly(), KeyRange::Single(K("a"))}));
  ASSERT_EQ(keys.ranges[0].size(), 2u);
  EXPECT_EQ(keys.ranges[0][1].key, K("b/2"));
  EXPECT_TRUE(keys.ranges[0][1].value.empty());
  EXPECT_EQ(keys.ranges[0][1].mod_revision, read.ranges[1][1].mod_revision);
  ASSERT_EQ(keys.ranges[1].size(), 1u);
  EXPECT_EQ(keys.ranges[1][0].value, "v-a");
}

TEST_P(CoordinationStoreTest, OverwriteKeepsCreateRevisionAndCountsVersions) {
  const int64_t created = Put("k", "1");
  const int64_t second = Put("k", "2");
  const int64_t third = Put("k", "3");
  const KeyValue kv = Get("k");
  EXPECT_EQ(kv.create_revision, created);
  EXPECT_EQ(kv.mod_revision, third);
  EXPECT_GT(third, second);
  EXPECT_EQ(kv.version, 3);
  EXPECT_EQ(kv.value, "3");
}

TEST_P(CoordinationStoreTest, RecreatedKeyGetsANewCreateRevisionAndVersionOne) {
  const int64_t created = Put("k", "1");
  Put("k", "2");
  ASSERT_OK_AND_ASSIGN(int64_t deleted, store_->Delete(K("k")));
  EXPECT_FALSE(Exists("k"));
  const int64_t recreated = Put("k", "again");
  EXPECT_EQ(recreated, deleted + 1);
  const KeyValue kv = Get("k");
  EXPECT_NE(kv.create_revision, created);
  EXPECT_EQ(kv.create_revision, recreated);
  EXPECT_EQ(kv.version, 1);
}

TEST_P(CoordinationStoreTest, DeletingAMissingKeyChangesNothing) {
  Put("other", "x");
  const int64_t before = Revision();
  ASSERT_OK_AND_ASSIGN(int64_t after, store_->Delete(K("missing")));
  EXPECT_EQ(after, before);
  EXPECT_EQ(Revision(), before);
}

TEST_P(CoordinationStoreTest, TxnComparesCreateAndModRevision) {
  const int64_t created = Put("k", "1");
  const int64_t modified = Put("k", "2");
  EXPECT_TRUE(Holds({Compare::CreateRevisionIs(K("k"), created)}));
  EXPECT_FALSE(Holds({Compare::CreateRevisionIs(K("k"), modified)}));
  EXPECT_TRUE(Holds({Compare::ModRevisionIs(K("k"), modified)}));
  EXPECT_FALSE(Holds({Compare::ModRevisionIs(K("k"), created)}));
  using T = Compare::Target;
  using R = Compare::Result;
  EXPECT_TRUE(Holds({On("k", T::kCreateRevision, R::kLess, modified)}));
  EXPECT_TRUE(Holds({On("k", T::kModRevision, R::kGreater, created)}));
  EXPECT_TRUE(Holds({On("k", T::kModRevision, R::kNotEqual, created)}));
  EXPECT_FALSE(Holds({On("k", T::kModRevision, R::kNotEqual, modified)}));
  // A missing key's revisions are 0.
  EXPECT_TRUE(Holds({Compare::CreateRevisionIs(K("missing"), 0)}));
  EXPECT_TRUE(Holds({Compare::ModRevisionIs(K("missing"), 0)}));
}

TEST_P(CoordinationStoreTest, TxnComparesVersion) {
  Put("k", "1");
  Put("k", "2");
  using T = Compare::Target;
  using R = Compare::Result;
  EXPECT_TRUE(Holds({On("k", T::kVersion, R::kEqual, 2)}));
  EXPECT_FALSE(Holds({On("k", T::kVersion, R::kEqual, 1)}));
  EXPECT_TRUE(Holds({On("k", T::kVersion, R::kGreater, 1)}));
  EXPECT_FALSE(Holds({On("k", T::kVersion, R::kGreater, 2)}));
  EXPECT_TRUE(Holds({On("k", T::kVersion, R::kLess, 3)}));
  EXPECT_TRUE(Holds({On("k", T::kVersion, R::kNotEqual, 3)}));
  EXPECT_TRUE(Holds({Compare::Absent(K("missing"))}));
  EXPECT_FALSE(Holds({Compare::Absent(K("k"))}));
}

TEST_P(CoordinationStoreTest, TxnComparesValueBytewise) {
  Put("k", "m");
  using T = Compare::Target;
  using R = Compare::Result;
  EXPECT_TRUE(Holds({On("k", T::kValue, R::kEqual, 0, "m")}));
  EXPECT_FALSE(Holds({On("k", T::kValue, R::kEqual, 0, "n")}));
  EXPECT_TRUE(Holds({On("k", T::kValue, R::kNotEqual, 0, "n")}));
  EXPECT_TRUE(Holds({On("k", T::kValue, R::kLess, 0, "n")}));
  EXPECT_TRUE(Holds({On("k", T::kValue, R::kGreater, 0, "l")}));
  EXPECT_TRUE(Holds({On("k", T::kValue, R::kLess, 0, "\xff")}));  // bytes are unsigned
}

TEST_P(CoordinationStoreTest, TxnValueCompareOnAMissingKeyIsAlwaysFalse) {
  // etcd has no value to compare for a missing key, not even an empty one.
  using T = Compare::Target;
  using R = Compare::Result;
  EXPECT_FALSE(Holds({On("missing", T::kValue, R::kEqual, 0, "")}));
  EXPECT_FALSE(Holds({On("missing", T::kValue, R::kNotEqual, 0, "x")}));
}

TEST_P(CoordinationStoreTest, TxnNeedsEveryCompareToHold) {
  const int64_t created = Put("k", "1");
  EXPECT_TRUE(Holds({Compare::CreateRevisionIs(K("k"), created), Compare::Absent(K("other"))}));
  EXPECT_FALSE(Holds({Compare::CreateRevisionIs(K("k"), created), Compare::Absent(K("k"))}));
  EXPECT_TRUE(Holds({}));  // no compares: the success branch
}

TEST_P(CoordinationStoreTest, TxnBranchIsAppliedAtOneRevision) {
  Put("old", "x");
  Put("dir/1", "x");
  Put("dir/2", "x");
  const int64_t before = Revision();
  ASSERT_OK_AND_ASSIGN(TxnResult result,
                       store_->Txn({Compare::Absent(K("new"))},
                                   {TxnOp::Put(K("new"), "n"), TxnOp::Put(K("new2"), "n"),
                                    TxnOp::Delete(K("old")), TxnOp::DeletePrefix(K("dir/"))}));
  EXPECT_TRUE(result.succeeded);
  EXPECT_EQ(result.revision, before + 1);
  EXPECT_EQ(Get("new").mod_revision, result.revision);
  EXPECT_EQ(Get("new2").mod_revision, result.revision);
  EXPECT_EQ(Keys(), (std::vector<std::string>{"new", "new2"}));
}

TEST_P(CoordinationStoreTest, TxnThatWritesNothingKeepsTheRevision) {
  Put("k", "1");
  const int64_t before = Revision();
  ASSERT_OK_AND_ASSIGN(TxnResult failed,
                       store_->Txn({Compare::Absent(K("k"))}, {TxnOp::Put(K("k"), "2")}));
  EXPECT_FALSE(failed.succeeded);
  EXPECT_EQ(failed.revision, before);
  // Deleting what is not there writes nothing either.
  ASSERT_OK_AND_ASSIGN(TxnResult empty, store_->Txn({}, {TxnOp::Delete(K("missing"))}));
  EXPECT_TRUE(empty.succeeded);
  EXPECT_EQ(empty.revision, before);
  EXPECT_EQ(Get("k").value, "1");
}

TEST_P(CoordinationStoreTest, TxnWritingOneKeyTwiceIsInvalidArgument) {
  const std::vector<std::vector<TxnOp>> branches = {
      {TxnOp::Put(K("k"), "1"), TxnOp::Put(K("k"), "2")},
      {TxnOp::Put(K("k"), "1"), TxnOp::Delete(K("k"))},
      {TxnOp::DeletePrefix(K("")), TxnOp::Put(K("k"), "1")},
  };
  for (const std::vector<TxnOp>& branch : branches) {
    EXPECT_EQ(store_->Txn({}, branch).status().code(), absl::StatusCode::kInvalidArgument);
    // In the branch that would not run, too: the request is rejected as a whole.
    EXPECT_EQ(store_->Txn({}, {}, branch).status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_FALSE(Exists("k"));
  // One key in each branch is fine.
  EXPECT_OK(store_->Txn({}, {TxnOp::Put(K("k"), "1")}, {TxnOp::Put(K("k"), "2")}));
}

TEST_P(CoordinationStoreTest, LeaseKeysAreDeletedOnRevoke) {
  ASSERT_OK_AND_ASSIGN(int64_t lease, store_->GrantLease(absl::Seconds(30)));
  EXPECT_NE(lease, 0);
  Put("owned", "x", lease);
  Put("free", "x");
  EXPECT_EQ(Get("owned").lease, lease);
  const int64_t before = Revision();
  ASSERT_OK(store_->RevokeLease(lease));
  EXPECT_EQ(Revision(), before + 1);  // the deletion is one write
  EXPECT_FALSE(Exists("owned"));
  EXPECT_TRUE(Exists("free"));
  EXPECT_OK(store_->RevokeLease(lease));  // gone already: still OK
  EXPECT_EQ(store_->KeepAlive(lease).code(), absl::StatusCode::kNotFound);
}

TEST_P(CoordinationStoreTest, PutOrTxnWithAnUnknownLeaseIsNotFound) {
  EXPECT_EQ(store_->Put(K("k"), "v", 12345).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Txn({}, {TxnOp::Put(K("k"), "v", 12345)}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(Exists("k"));
  EXPECT_EQ(store_->KeepAlive(12345).code(), absl::StatusCode::kNotFound);
  EXPECT_OK(store_->RevokeLease(12345));
}

TEST_P(CoordinationStoreTest, LeaseBelowOneSecondIsInvalidArgument) {
  EXPECT_EQ(store_->GrantLease(absl::Milliseconds(500)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(CoordinationStoreTest, PutWithoutLeaseDetachesTheKeyFromItsLease) {
  ASSERT_OK_AND_ASSIGN(int64_t lease, store_->GrantLease(absl::Seconds(30)));
  Put("k", "leased", lease);
  Put("k", "free");
  EXPECT_EQ(Get("k").lease, 0);
  ASSERT_OK(store_->RevokeLease(lease));
  EXPECT_TRUE(Exists("k"));
}

TEST_P(CoordinationStoreTest, ExpiredLeaseDeletesItsKeysAndCannotBeKeptAlive) {
  ASSERT_OK_AND_ASSIGN(int64_t lease, store_->GrantLease(absl::Seconds(1)));
  const int64_t written = Put("owned", "x", lease);
  ASSERT_GT(written, 0);
  EXPECT_TRUE(WaitUntilGone("owned", absl::Seconds(5)));
  EXPECT_EQ(store_->KeepAlive(lease).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Put(K("again"), "x", lease).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(CoordinationStoreTest, KeepAliveExtendsTheLease) {
  ASSERT_OK_AND_ASSIGN(int64_t lease, store_->GrantLease(absl::Seconds(1)));
  Put("owned", "x", lease);
  // 2.5 TTLs, kept alive every 250 ms.
  for (int i = 0; i < 10; ++i) {
    ASSERT_OK(store_->KeepAlive(lease));
    absl::SleepFor(absl::Milliseconds(250));
  }
  EXPECT_TRUE(Exists("owned"));
  ASSERT_OK(store_->RevokeLease(lease));
}

TEST_P(CoordinationStoreTest, WaitReturnsTheRevisionOfAChangeFromAnotherThread) {
  const int64_t start = Revision();
  std::atomic<int64_t> written{0};
  std::thread writer([&] {
    absl::SleepFor(absl::Milliseconds(200));
    absl::StatusOr<int64_t> revision = store_->Put(K("x"), "1");
    written = revision.ok() ? *revision : -1;
  });
  absl::StatusOr<int64_t> changed = store_->WaitForChange(prefix_, start, absl::Seconds(10));
  writer.join();
  ASSERT_OK(changed);
  EXPECT_EQ(*changed, written.load());
}

TEST_P(CoordinationStoreTest, WaitDoesNotMissAChangeBetweenReadAndWait) {
  const int64_t read = Revision();
  const int64_t written = Put("x", "1");
  const absl::Time start = absl::Now();
  ASSERT_OK_AND_ASSIGN(int64_t changed, store_->WaitForChange(prefix_, read, absl::Seconds(10)));
  EXPECT_EQ(changed, written);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_P(CoordinationStoreTest, WaitSeesADeletion) {
  Put("x", "1");
  const int64_t read = Revision();
  ASSERT_OK_AND_ASSIGN(int64_t deleted, store_->Delete(K("x")));
  ASSERT_OK_AND_ASSIGN(int64_t changed, store_->WaitForChange(prefix_, read, absl::Seconds(10)));
  EXPECT_EQ(changed, deleted);
}

TEST_P(CoordinationStoreTest, WaitTimesOutWithAfterRevision) {
  const int64_t read = Revision();
  // A change outside the prefix does not end the wait.
  ASSERT_OK(store_->Put(CurrentTestName() + "-elsewhere", "x"));
  const absl::Time start = absl::Now();
  ASSERT_OK_AND_ASSIGN(int64_t changed,
                       store_->WaitForChange(prefix_, read, absl::Milliseconds(300)));
  EXPECT_EQ(changed, read);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(250));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_P(CoordinationStoreTest, RangeWaitSeesOnlyItsRange) {
  // [m, t) holds "m", "n/x" and "s"; "a", "t" and "z" are outside it.
  const KeyRange range = KeyRange::Between(K("m"), K("t"));
  const int64_t read = Revision();
  Put("a", "1");
  Put("t", "1");
  ASSERT_OK_AND_ASSIGN(int64_t changed,
                       store_->WaitForChangeIn(range, read, absl::Milliseconds(300), nullptr));
  EXPECT_EQ(changed, read);
  const int64_t inside = Put("n/x", "1");
  Put("z", "1");
  ASSERT_OK_AND_ASSIGN(changed, store_->WaitForChangeIn(range, read, absl::Seconds(10), nullptr));
  EXPECT_EQ(changed, inside);
  // One key as the range: a write of another key under it as a prefix is not a change of it.
  const int64_t after = Revision();
  Put("s/under", "1");
  ASSERT_OK_AND_ASSIGN(changed, store_->WaitForChangeIn(KeyRange::Single(K("s")), after,
                                                        absl::Milliseconds(300), nullptr));
  EXPECT_EQ(changed, after);
  ASSERT_OK_AND_ASSIGN(int64_t deleted, store_->Delete(K("n/x")));
  ASSERT_OK_AND_ASSIGN(changed, store_->WaitForChangeIn(range, after, absl::Seconds(10), nullptr));
  EXPECT_EQ(changed, deleted);
}

TEST_P(CoordinationStoreTest, CancelEndsAWaitEarly) {
  const int64_t read = Revision();
  WaitCancel cancel;
  std::thread canceller([&] {
    absl::SleepFor(absl::Milliseconds(200));
    cancel.Cancel();
  });
  const absl::Time start = absl::Now();
  absl::StatusOr<int64_t> changed =
      store_->WaitForChangeIn(KeyRange::Prefix(prefix_), read, absl::Seconds(30), &cancel);
  canceller.join();
  ASSERT_OK(changed);
  EXPECT_EQ(*changed, read);
  // In-process at once; on etcd libcurl looks at the cancel about once a second.
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_P(CoordinationStoreTest, LeaseExpiryWakesAWait) {
  ASSERT_OK_AND_ASSIGN(int64_t lease, store_->GrantLease(absl::Seconds(1)));
  const int64_t written = Put("owned", "x", lease);
  const absl::Time start = absl::Now();
  // Nobody else touches the store: the expiry alone must end the wait.
  ASSERT_OK_AND_ASSIGN(int64_t changed,
                       store_->WaitForChange(prefix_, written, absl::Seconds(10)));
  EXPECT_GT(changed, written);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_FALSE(Exists("owned"));
}

TEST_P(CoordinationStoreTest, ConcurrentWritersGetDistinctRevisions) {
  constexpr int kThreads = 4;
  constexpr int kWrites = 20;
  std::vector<std::vector<int64_t>> revisions(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWrites; ++i) {
        // A counter per thread bumped by compare-and-swap on its version.
        absl::StatusOr<TxnResult> r =
            store_->Txn({On(StrCat("c", t), Compare::Target::kVersion, Compare::Result::kEqual,
                            i)},
                        {TxnOp::Put(K(StrCat("c", t)), StrCat(i + 1))});
        revisions[t].push_back(r.ok() && r->succeeded ? r->revision : -1);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::set<int64_t> distinct;
  for (const auto& list : revisions) distinct.insert(list.begin(), list.end());
  EXPECT_EQ(distinct.size(), size_t{kThreads * kWrites});
  EXPECT_FALSE(distinct.contains(-1));
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(Get(StrCat("c", t)).version, kWrites);
}

// ---- EtcdStore only: the transport, on a server of its own. ----

class EtcdStoreTest : public ::testing::Test {
 protected:
  static void TearDownTestSuite() { etcd_.reset(); }

  void SetUp() override {
    if (!EtcdServer::Available()) GTEST_SKIP() << kNoEtcd;
    if (etcd_ == nullptr) etcd_ = StartEtcd();
    ASSERT_NE(etcd_, nullptr);
    if (etcd_->pid() < 0) {  // a previous test stopped it
      ASSERT_OK(etcd_->Restart());
    }
    key_ = CurrentTestName();
  }

  // An endpoint nobody listens on: a port the kernel just handed out, closed again.
  static std::string DeadEndpoint() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return StrCat("http://127.0.0.1:", ntohs(addr.sin_port));
  }

  static inline std::unique_ptr<EtcdServer> etcd_;
  std::string key_;
};

TEST_F(EtcdStoreTest, FailsOverToTheNextEndpointWhenTheFirstIsDead) {
  const std::string dead = DeadEndpoint();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<EtcdStore> store,
                       EtcdStore::Open({dead, etcd_->endpoint()}));
  EXPECT_EQ(store->Describe(), StrCat("etcd ", dead, ",", etcd_->endpoint()));
  ASSERT_OK_AND_ASSIGN(int64_t revision, store->Put(key_, "v"));
  ASSERT_OK_AND_ASSIGN(RangeResult range, store->Get(key_));
  ASSERT_EQ(range.kvs.size(), 1u);
  EXPECT_EQ(range.kvs[0].mod_revision, revision);
  ASSERT_OK_AND_ASSIGN(int64_t lease, store->GrantLease(absl::Seconds(5)));
  EXPECT_OK(store->KeepAlive(lease));
  EXPECT_OK(store->RevokeLease(lease));
}

TEST_F(EtcdStoreTest, StoppedServerIsUnavailableWithTheEndpointInTheMessage) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<EtcdStore> store, EtcdStore::Open({etcd_->endpoint()}));
  ASSERT_OK(store->Put(key_, "v"));
  etcd_->Stop();
  const absl::Status put = store->Put(key_, "w").status();
  EXPECT_EQ(put.code(), absl::StatusCode::kUnavailable) << put;
  EXPECT_TRUE(MessageHas(put, etcd_->endpoint())) << put;
  EXPECT_TRUE(MessageHas(put, "curl error")) << put;
  EXPECT_EQ(store->Get(key_).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store->KeepAlive(1).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store->WaitForChange(key_, 1, absl::Seconds(1)).status().code(),
            absl::StatusCode::kUnavailable);
  // Every endpoint named when there are several.
  const std::string dead = DeadEndpoint();
  ASSERT_OK_AND_ASSIGN(store, EtcdStore::Open({etcd_->endpoint(), dead}));
  const absl::Status both = store->Get(key_).status();
  EXPECT_EQ(both.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(MessageHas(both, etcd_->endpoint()) && MessageHas(both, dead))
      << both;
}

TEST_F(EtcdStoreTest, DataSurvivesRestartAndKill) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<EtcdStore> store, EtcdStore::Open({etcd_->endpoint()}));
  ASSERT_OK_AND_ASSIGN(int64_t first, store->Put(key_ + "/a", "kept"));
  ASSERT_OK(etcd_->Restart());
  ASSERT_OK_AND_ASSIGN(int64_t second, store->Put(key_ + "/b", "kept too"));
  EXPECT_EQ(second, first + 1);
  // SIGKILL: an acknowledged write was made durable before the reply.
  etcd_->Kill();
  ASSERT_OK(etcd_->Restart());
  ASSERT_OK_AND_ASSIGN(RangeResult range, store->GetPrefix(key_ + "/"));
  ASSERT_EQ(range.kvs.size(), 2u);
  EXPECT_EQ(range.kvs[0].value, "kept");
  EXPECT_EQ(range.kvs[0].mod_revision, first);
  EXPECT_EQ(range.kvs[1].value, "kept too");
  EXPECT_EQ(range.revision, second);
}

TEST_F(EtcdStoreTest, WaitFromACompactedRevisionReturnsTheCurrentOne) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<EtcdStore> store, EtcdStore::Open({etcd_->endpoint()}));
  ASSERT_OK_AND_ASSIGN(int64_t first, store->Put(key_ + "/x", "1"));
  ASSERT_OK(store->Put(key_ + "/x", "2"));
  ASSERT_OK_AND_ASSIGN(int64_t last, store->Put(key_ + "/x", "3"));
  ASSERT_OK(etcd_->Compact(last));
  const absl::Time start = absl::Now();
  ASSERT_OK_AND_ASSIGN(int64_t changed,
                       store->WaitForChange(key_ + "/", first, absl::Seconds(10)));
  EXPECT_GE(changed, last);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  // From the compaction revision on, the history is there.
  ASSERT_OK_AND_ASSIGN(int64_t after,
                       store->WaitForChange(key_ + "/", last, absl::Milliseconds(200)));
  EXPECT_EQ(after, last);
}

TEST(EtcdEndpointsTest, ParsesACommaSeparatedList) {
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> endpoints,
                       ParseEtcdEndpoints(" http://127.0.0.1:2379/, https://etcd.example:2379 ,"
                                          "http://[::1]:2379,http://host"));
  EXPECT_EQ(endpoints, (std::vector<std::string>{"http://127.0.0.1:2379",
                                                 "https://etcd.example:2379",
                                                 "http://[::1]:2379", "http://host"}));
}

TEST(EtcdEndpointsTest, RejectsWhatIsNotAnHttpUrlNamingIt) {
  for (std::string_view bad :
       {"", "127.0.0.1:2379", "http://", "ftp://host:1", "http://host:", "http://host:99999",
        "http://host:12ab", "http://host/path", "http://user@host", "http://a,,http://b",
        "http://a b"}) {
    const absl::Status status = ParseEtcdEndpoints(bad).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  const absl::Status status = ParseEtcdEndpoints("http://ok:1,tcp://bad:2").status();
  EXPECT_TRUE(MessageHas(status, "tcp://bad:2")) << status;
  EXPECT_EQ(EtcdStore::Open({}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EtcdStore::Open({"localhost:2379"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- MemoryCoordinationStore only: its test hooks and history. ----

TEST(MemoryCoordinationStoreTest, StartsAtRevisionOneAndTheFirstWriteGetsTwo) {
  MemoryCoordinationStore store;
  ASSERT_OK_AND_ASSIGN(RangeResult empty, store.GetPrefix(""));
  EXPECT_EQ(empty.revision, 1);
  ASSERT_OK_AND_ASSIGN(int64_t first, store.Put("a", "1"));
  EXPECT_EQ(first, 2);
  EXPECT_EQ(store.revision(), 2);
}

TEST(MemoryCoordinationStoreTest, ExpireLeaseDeletesItsKeysNowAndWakesAWait) {
  MemoryCoordinationStore store;
  ASSERT_OK_AND_ASSIGN(int64_t lease, store.GrantLease(absl::Seconds(3600)));
  ASSERT_OK_AND_ASSIGN(int64_t written, store.Put("p/owned", "x", lease));
  std::thread expirer([&] {
    absl::SleepFor(absl::Milliseconds(100));
    store.ExpireLease(lease);
  });
  ASSERT_OK_AND_ASSIGN(int64_t changed, store.WaitForChange("p/", written, absl::Seconds(30)));
  expirer.join();
  EXPECT_EQ(changed, written + 1);
  ASSERT_OK_AND_ASSIGN(RangeResult range, store.Get("p/owned"));
  EXPECT_TRUE(range.kvs.empty());
  EXPECT_EQ(store.KeepAlive(lease).code(), absl::StatusCode::kNotFound);
  store.ExpireLease(lease);  // unknown now: nothing happens
  EXPECT_EQ(store.revision(), changed);
}

TEST(MemoryCoordinationStoreTest, UnavailableFailsEveryCallAndEndsAWait) {
  MemoryCoordinationStore store;
  ASSERT_OK(store.Put("a", "1"));
  std::thread cutter([&] {
    absl::SleepFor(absl::Milliseconds(100));
    store.SetUnavailable(true);
  });
  const absl::StatusOr<int64_t> wait = store.WaitForChange("a", 2, absl::Seconds(30));
  cutter.join();
  EXPECT_EQ(wait.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.Put("a", "2").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.Get("a").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.GetPrefix("").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.Delete("a").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.Txn({}, {}).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.GrantLease(absl::Seconds(5)).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.KeepAlive(1).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.RevokeLease(1).code(), absl::StatusCode::kUnavailable);
  store.SetUnavailable(false);
  ASSERT_OK_AND_ASSIGN(RangeResult range, store.Get("a"));
  ASSERT_EQ(range.kvs.size(), 1u);
  EXPECT_EQ(range.kvs[0].value, "1");
}

TEST(MemoryCoordinationStoreTest, WaitFromACompactedRevisionReturnsTheCurrentOne) {
  MemoryCoordinationStore store;
  // The store remembers the last 100,000 changes; write more, elsewhere.
  for (int i = 0; i < 100'010; ++i) ASSERT_OK(store.Put("other", "x"));
  const absl::Time start = absl::Now();
  ASSERT_OK_AND_ASSIGN(int64_t changed, store.WaitForChange("p/", 1, absl::Seconds(30)));
  EXPECT_EQ(changed, store.revision());
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

// ---- The codec, on replies captured from etcd 3.4.23. ----

TEST(EtcdCodecTest, PrefixRangeEndFollowsEtcd) {
  EXPECT_EQ(etcd::PrefixRangeEnd("a/"), "a0");
  EXPECT_EQ(etcd::PrefixRangeEnd(std::string("a\xff", 2)), "b");
  EXPECT_EQ(etcd::PrefixRangeEnd(std::string("\xff\xff", 2)), std::string(1, '\0'));
  EXPECT_EQ(etcd::PrefixRangeEnd(""), std::string(1, '\0'));
}

TEST(EtcdCodecTest, DecodesARangeReply) {
  ASSERT_OK_AND_ASSIGN(
      RangeResult range,
      etcd::DecodeRangeReply(
          R"({"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709",)"
          R"("revision":"8","raft_term":"2"},"kvs":[{"key":"Yi8x","create_revision":"4",)"
          R"("mod_revision":"4","version":"1"},{"key":"dA==","create_revision":"7",)"
          R"("mod_revision":"8","version":"2","value":"Mg==","lease":"4111120502238377500"}],)"
          R"("count":"2"})"));
  EXPECT_EQ(range.revision, 8);
  ASSERT_EQ(range.kvs.size(), 2u);
  EXPECT_EQ(range.kvs[0].key, "b/1");
  EXPECT_EQ(range.kvs[0].value, "");  // an empty value is left out
  EXPECT_EQ(range.kvs[1].value, "2");
  EXPECT_EQ(range.kvs[1].create_revision, 7);
  EXPECT_EQ(range.kvs[1].mod_revision, 8);
  EXPECT_EQ(range.kvs[1].version, 2);
  EXPECT_EQ(range.kvs[1].lease, 4111120502238377500);
}

TEST(EtcdCodecTest, DecodesATxnOfRanges) {
  // As etcd 3.4's gateway answers: a range that found nothing is an empty response_range.
  ASSERT_OK_AND_ASSIGN(
      MultiRangeResult read,
      etcd::DecodeRangesTxnReply(
          R"({"header":{"revision":"12"},"succeeded":true,"responses":[)"
          R"({"response_range":{"header":{"revision":"12"},"kvs":[{"key":"YQ==","value":"MQ==",)"
          R"("create_revision":"3","mod_revision":"5","version":"2"}],"count":"1"}},)"
          R"({"response_range":{"header":{"revision":"12"}}},{}]})",
          3));
  EXPECT_EQ(read.revision, 12);
  ASSERT_EQ(read.ranges.size(), 3u);
  ASSERT_EQ(read.ranges[0].size(), 1u);
  EXPECT_EQ(read.ranges[0][0].key, "a");
  EXPECT_EQ(read.ranges[0][0].value, "1");
  EXPECT_EQ(read.ranges[0][0].mod_revision, 5);
  EXPECT_TRUE(read.ranges[1].empty());
  EXPECT_TRUE(read.ranges[2].empty());
  // Another number of responses, or a response of another kind, is not this reply.
  EXPECT_EQ(etcd::DecodeRangesTxnReply(
                R"({"header":{"revision":"12"},"succeeded":true,"responses":[{}]})", 2)
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(etcd::DecodeRangesTxnReply(R"({"header":{"revision":"12"},"succeeded":true,)"
                                       R"("responses":[{"response_put":{}}]})",
                                       1)
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(etcd::DecodeRangesTxnReply(R"({"header":{"revision":"12"},"responses":[{}]})", 1)
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
}

TEST(EtcdCodecTest, FailedTxnHasNoSucceededField) {
  ASSERT_OK_AND_ASSIGN(TxnResult failed,
                       etcd::DecodeTxnReply(R"({"header":{"revision":"7","raft_term":"2"},)"
                                            R"("responses":[{"response_delete_range":)"
                                            R"({"header":{"revision":"7"}}}]})"));
  EXPECT_FALSE(failed.succeeded);
  EXPECT_EQ(failed.revision, 7);
}

TEST(EtcdCodecTest, KeepAliveWithoutTtlIsNotFound) {
  ASSERT_OK_AND_ASSIGN(int64_t ttl,
                       etcd::DecodeKeepAliveReply(
                           R"({"result":{"header":{"revision":"5"},"ID":"41","TTL":"5"}})"
                           "\n",
                           41));
  EXPECT_EQ(ttl, 5);
  EXPECT_EQ(etcd::DecodeKeepAliveReply(R"({"result":{"header":{"revision":"6"},"ID":"999"}})",
                                       999)
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

TEST(EtcdCodecTest, GatewayErrorsMapToStatuses) {
  const absl::Status lease = etcd::DecodePutReply(
                                 R"({"error":"etcdserver: requested lease not found",)"
                                 R"("message":"etcdserver: requested lease not found","code":5})")
                                 .status();
  EXPECT_EQ(lease.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(MessageHas(lease, "requested lease not found")) << lease;
  EXPECT_EQ(etcd::DecodeTxnReply(R"({"error":"etcdserver: duplicate key given in txn request",)"
                                 R"("code":3})")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(etcd::DecodeRangeReply(R"({"error":"etcdserver: request timed out","code":14})")
                .status()
                .code(),
            absl::StatusCode::kUnavailable);
  // The lease grant reply has an "error" field of its own.
  EXPECT_EQ(etcd::DecodeLeaseGrantReply(R"({"header":{"revision":"2"},"ID":"7","error":"full"})")
                .status()
                .code(),
            absl::StatusCode::kUnavailable);
}

TEST(EtcdCodecTest, DecodesWatchMessages) {
  ASSERT_OK_AND_ASSIGN(etcd::WatchMessage created,
                       etcd::DecodeWatchMessage(
                           R"({"result":{"header":{"revision":"8"},"created":true}})"));
  EXPECT_TRUE(created.created);
  EXPECT_EQ(created.event_count, 0);
  ASSERT_OK_AND_ASSIGN(
      etcd::WatchMessage events,
      etcd::DecodeWatchMessage(
          R"({"result":{"header":{"revision":"11"},"events":[{"kv":{"key":"dA==",)"
          R"("create_revision":"7","mod_revision":"9","version":"3","value":"OQ=="}},)"
          R"({"type":"DELETE","kv":{"key":"dA==","mod_revision":"11"}}]}})"));
  EXPECT_EQ(events.event_count, 2);
  EXPECT_EQ(events.max_event_revision, 11);
  ASSERT_OK_AND_ASSIGN(etcd::WatchMessage compacted,
                       etcd::DecodeWatchMessage(R"({"result":{"header":{"raft_term":"2"},)"
                                                R"("canceled":true,"compact_revision":"8"}})"));
  EXPECT_TRUE(compacted.canceled);
  EXPECT_EQ(compacted.compact_revision, 8);
  EXPECT_EQ(compacted.header_revision, 0);
}

TEST(EtcdCodecTest, MalformedRepliesAreDataLoss) {
  for (std::string_view bad :
       {"", "not json", "[]", "{}", R"({"header":{"revision":"x"}})",
        R"({"header":{"revision":"99999999999999999999"}})", R"({"header":{"revision":1.5}})",
        R"({"header":{"revision":"3"},"kvs":[{"key":"!!!"}]})",
        R"({"header":{"revision":"3"},"kvs":{}})", R"({"header":[]})"}) {
    EXPECT_EQ(etcd::DecodeRangeReply(bad).status().code(), absl::StatusCode::kDataLoss) << bad;
  }
  const absl::Status status = etcd::DecodePutReply("garbage").status();
  EXPECT_TRUE(MessageHas(status, "etcd reply to put")) << status;
  EXPECT_EQ(etcd::DecodeWatchMessage(R"({"result":{"events":[{"kv":{}}]}})").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(etcd::DecodeKeepAliveReply(R"({"result":{"ID":"5","TTL":"3"}})", 6).status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace ickpt::coord
