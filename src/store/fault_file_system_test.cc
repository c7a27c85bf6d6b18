// The fault-injecting file system's power-loss model, and the local store's crash behaviour on top
// of it (format.md §8).
#include "src/store/fault_file_system.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "ickpt/store.h"
#include "src/store/fault_store.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"

namespace ickpt {
namespace {

using ::ickpt::testing::RandomBytes;
using ::ickpt::testing::TempDir;

class FaultFileSystemTest : public ::testing::Test {
 protected:
  FaultFileSystemTest() : fs_(DefaultFileSystem()) {}

  std::string Path(const std::string& name) const { return dir_.Join(name); }
  absl::Status Write(const std::string& path, std::string_view data, bool sync) {
    auto file = fs_.NewWritableFile(path);
    if (!file.ok()) return file.status();
    if (absl::Status s = (*file)->Append(data); !s.ok()) return s;
    if (sync) {
      if (absl::Status s = (*file)->Sync(); !s.ok()) return s;
    }
    return (*file)->Close();
  }
  bool Exists(const std::string& path) { return DefaultFileSystem()->FileSize(path).ok(); }
  std::string Read(const std::string& path) {
    auto data = DefaultFileSystem()->ReadFile(path, 0, ~0ull);
    return data.ok() ? *data : "<" + data.status().ToString() + ">";
  }
  std::unique_ptr<ObjectStore> OpenStore() {
    auto store = OpenLocalStore(Path("repo"), {.file_system = &fs_, .create_if_missing = true});
    EXPECT_OK(store);
    return store.ok() ? *std::move(store) : nullptr;
  }

  TempDir dir_;
  FaultInjectionFileSystem fs_;
};

TEST_F(FaultFileSystemTest, PowerLossDropsUnsyncedData) {
  auto file = fs_.NewWritableFile(Path("f"));
  ASSERT_OK(file);
  ASSERT_OK((*file)->Append("durable"));
  ASSERT_OK((*file)->Sync());
  ASSERT_OK((*file)->Append(" lost"));
  ASSERT_OK((*file)->Close());
  ASSERT_OK(fs_.SyncDir(dir_.path()));
  EXPECT_EQ(fs_.unsynced_bytes(), 5u);
  EXPECT_EQ(Read(Path("f")), "durable lost");
  ASSERT_OK(fs_.SimulatePowerLoss());
  EXPECT_EQ(Read(Path("f")), "durable");
}

TEST_F(FaultFileSystemTest, PowerLossDropsUnsyncedDirectoryEntries) {
  ASSERT_OK(Write(Path("synced"), "a", /*sync=*/true));
  ASSERT_OK(fs_.SyncDir(dir_.path()));
  ASSERT_OK(Write(Path("unsynced_entry"), "b", /*sync=*/true));  // data synced, entry not
  ASSERT_OK(fs_.CreateDir(Path("newdir")));
  ASSERT_OK(Write(Path("newdir/inner"), "c", /*sync=*/true));
  ASSERT_OK(fs_.SyncDir(Path("newdir")));  // inner's entry durable, newdir's is not
  EXPECT_GT(fs_.unsynced_entry_count(), 0u);
  ASSERT_OK(fs_.SimulatePowerLoss());
  EXPECT_TRUE(Exists(Path("synced")));
  EXPECT_FALSE(Exists(Path("unsynced_entry")));
  EXPECT_FALSE(DefaultFileSystem()->IsDirectory(Path("newdir")).ok());
  EXPECT_EQ(fs_.unsynced_entry_count(), 0u);
}

TEST_F(FaultFileSystemTest, PowerLossUndoesUnsyncedRenameAndRemove) {
  ASSERT_OK(Write(Path("old"), "old content", true));
  ASSERT_OK(Write(Path("gone"), "keep me", true));
  ASSERT_OK(fs_.SyncDir(dir_.path()));
  ASSERT_OK(Write(Path("tmp"), "new content", true));
  ASSERT_OK(fs_.Rename(Path("tmp"), Path("old")));
  ASSERT_OK(fs_.Remove(Path("gone")));
  ASSERT_OK(fs_.Link(Path("old"), Path("alias")));
  ASSERT_OK(fs_.SimulatePowerLoss());
  EXPECT_EQ(Read(Path("old")), "old content");
  EXPECT_EQ(Read(Path("gone")), "keep me");
  EXPECT_FALSE(Exists(Path("tmp")));
  EXPECT_FALSE(Exists(Path("alias")));
}

TEST_F(FaultFileSystemTest, SyncedRenameSurvives) {
  ASSERT_OK(Write(Path("tmp"), "new", true));
  ASSERT_OK(fs_.Rename(Path("tmp"), Path("final")));
  ASSERT_OK(fs_.SyncDir(dir_.path()));
  ASSERT_OK(fs_.SimulatePowerLoss());
  EXPECT_EQ(Read(Path("final")), "new");
  EXPECT_FALSE(Exists(Path("tmp")));
}

TEST_F(FaultFileSystemTest, CountsAndFailsNthOperation) {
  const int64_t before = fs_.operation_count();
  ASSERT_OK(Write(Path("f"), "x", true));  // create, append, sync, close
  EXPECT_EQ(fs_.operation_count() - before, 4);
  fs_.FailNthOperation(2, absl::ResourceExhaustedError("injected ENOSPC"));
  absl::Status s = Write(Path("g"), "x", true);
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_OK(Write(Path("h"), "x", true)) << "a fault fires once";
}

TEST_F(FaultFileSystemTest, CountsAndFailsNthRead) {
  ASSERT_OK(Write(Path("f"), "abc", true));
  const int64_t ops = fs_.operation_count();
  const int64_t before = fs_.read_count();
  ASSERT_OK(fs_.ReadFile(Path("f"), 0, 3).status());
  ASSERT_OK(fs_.FileSize(Path("f")).status());
  ASSERT_OK(fs_.ListDir(dir_.path()).status());
  ASSERT_OK(fs_.IsDirectory(dir_.path()).status());
  EXPECT_EQ(fs_.read_count() - before, 4);
  EXPECT_EQ(fs_.operation_count(), ops) << "reads are not mutating operations";
  fs_.FailNthRead(2, absl::UnavailableError("injected EIO on read"));
  EXPECT_OK(fs_.ReadFile(Path("f"), 0, 3).status());
  absl::StatusOr<std::string> failed = fs_.ReadFile(Path("f"), 0, 3);
  EXPECT_TRUE(absl::IsUnavailable(failed.status())) << failed.status();
  EXPECT_EQ(*fs_.ReadFile(Path("f"), 0, 3), "abc") << "a fault fires once";
  fs_.FailNthRead(1, absl::UnavailableError("injected"));
  fs_.ClearFaults();
  EXPECT_OK(fs_.IsDirectory(dir_.path()).status()) << "ClearFaults cancels read faults";
}

TEST_F(FaultFileSystemTest, ModificationTimeIsAReadCall) {
  ASSERT_OK(Write(Path("f"), "abc", true));
  const int64_t before = fs_.read_count();
  ASSERT_OK_AND_ASSIGN(absl::Time modified, fs_.ModificationTime(Path("f")));
  EXPECT_LE(absl::AbsDuration(absl::Now() - modified), absl::Seconds(5));
  EXPECT_EQ(fs_.read_count() - before, 1);
  EXPECT_TRUE(absl::IsNotFound(fs_.ModificationTime(Path("missing")).status()));
  fs_.FailNthRead(1, absl::UnavailableError("injected EIO on stat"));
  EXPECT_TRUE(absl::IsUnavailable(fs_.ModificationTime(Path("f")).status()));
  EXPECT_OK(fs_.ModificationTime(Path("f")));
}

TEST_F(FaultFileSystemTest, FailedSyncMakesFileUnusable) {
  fs_.FailNthSync(1, absl::UnavailableError("injected EIO"));
  auto file = fs_.NewWritableFile(Path("f"));
  ASSERT_OK(file);
  ASSERT_OK((*file)->Append("x"));
  EXPECT_TRUE(absl::IsUnavailable((*file)->Sync()));
  EXPECT_TRUE(absl::IsFailedPrecondition((*file)->Sync())) << "fsync is never retried";
  EXPECT_OK((*file)->Close());
}

// ---- The local store over the fault-injecting file system ----

TEST_F(FaultFileSystemTest, SuccessfulPutSurvivesPowerLoss) {
  auto store = OpenStore();
  const std::string data = RandomBytes(70000, 3);
  ASSERT_OK(store->Put("packs/ab/abcd", data));
  ASSERT_OK(store->Publish("commits/00000000000000000001", "commit"));
  EXPECT_EQ(fs_.unsynced_bytes(), 0u);
  EXPECT_EQ(fs_.unsynced_entry_count(), 0u) << "every entry the store made must be fsynced";
  ASSERT_OK(fs_.SimulatePowerLoss());
  auto reopened = OpenLocalStore(Path("repo"));
  ASSERT_OK(reopened);
  ASSERT_OK_AND_ASSIGN(std::string read, (*reopened)->Get("packs/ab/abcd"));
  EXPECT_EQ(read, data);
  ASSERT_OK_AND_ASSIGN(std::string commit, (*reopened)->Get("commits/00000000000000000001"));
  EXPECT_EQ(commit, "commit");
}

TEST_F(FaultFileSystemTest, FailedSyncFailsPutCleanlyAndNextPutSucceeds) {
  auto store = OpenStore();
  fs_.FailNthSync(1, absl::UnavailableError("injected EIO"));
  absl::Status s = store->Put("packs/ab/abcd", "data");
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_TRUE(absl::IsNotFound(store->Get("packs/ab/abcd").status()));
  ASSERT_OK(store->Put("packs/ab/abcd", "data"));
  ASSERT_OK_AND_ASSIGN(std::string read, store->Get("packs/ab/abcd"));
  EXPECT_EQ(read, "data");
  ASSERT_OK_AND_ASSIGN(auto listed, store->List(""));
  EXPECT_EQ(listed.size(), 1u);
}

TEST_F(FaultFileSystemTest, ShortWriteFailsPut) {
  auto store = OpenStore();
  fs_.ShortWriteNth(1);
  EXPECT_FALSE(store->Put("packs/ab/abcd", RandomBytes(1000, 1)).ok());
  EXPECT_TRUE(absl::IsNotFound(store->Size("packs/ab/abcd").status()));
  ASSERT_OK_AND_ASSIGN(auto listed, store->List(""));
  EXPECT_TRUE(listed.empty());
}

// Fails each file-system operation of one Put (and one Publish) in turn: the call must report an
// error, leave no temporary file, and leave either no object or (Put only: the directory fsync
// after the rename failed) the complete object. Publish must leave no object at all, since a
// visible commit record means a committed checkpoint. After a retry the object must survive a
// power loss, which catches directories created but never fsynced by the failed attempt.
TEST_F(FaultFileSystemTest, EveryOperationFailedInTurn) {
  for (bool publish : {false, true}) {
    SCOPED_TRACE(publish ? "publish" : "put");
    const std::string key = "packs/cd/cdef";
    const std::string data = RandomBytes(5000, 9);
    int64_t ops = 0;
    {
      TempDir scratch;
      auto store =
          OpenLocalStore(scratch.Join("repo"), {.file_system = &fs_, .create_if_missing = true});
      ASSERT_OK(store);
      const int64_t before = fs_.operation_count();
      ASSERT_OK(publish ? (*store)->Publish(key, data) : (*store)->Put(key, data));
      ops = fs_.operation_count() - before;
    }
    ASSERT_GT(ops, 5);
    for (int64_t n = 1; n <= ops; ++n) {
      SCOPED_TRACE("failing operation " + std::to_string(n));
      TempDir scratch;
      auto store =
          OpenLocalStore(scratch.Join("repo"), {.file_system = &fs_, .create_if_missing = true});
      ASSERT_OK(store);
      fs_.FailNthOperation(n, absl::UnavailableError("injected"));
      absl::Status s = publish ? (*store)->Publish(key, data) : (*store)->Put(key, data);
      fs_.ClearFaults();
      auto read = (*store)->Get(key);
      if (s.ok()) {
        // Only one failure is not reported: removing the temporary name after Publish linked the
        // object into place. The object is published; the leftover temp file is harmless (§2).
        EXPECT_TRUE(publish);
        ASSERT_OK(read);
        EXPECT_EQ(*read, data);
      } else {
        if (publish) {
          EXPECT_TRUE(absl::IsNotFound(read.status())) << read.status();
        } else if (read.ok()) {
          EXPECT_EQ(*read, data);
        }
        // No temporary file is left behind.
        auto names = DefaultFileSystem()->ListDir(scratch.Join("repo/packs/cd"));
        if (names.ok()) {
          for (const std::string& name : *names) EXPECT_EQ(name.find(".tmp-"), std::string::npos);
        }
        // A retry succeeds.
        ASSERT_OK(publish ? (*store)->Publish(key, data) : (*store)->Put(key, data));
      }
      // Either way the object now survives a power loss.
      ASSERT_OK(fs_.SimulatePowerLoss());
      ASSERT_OK_AND_ASSIGN(std::string after, (*store)->Get(key));
      EXPECT_EQ(after, data);
    }
  }
}

// ---- FaultInjectionStore ----

TEST(FaultStoreTest, FailsNthCallAndFlipsBytes) {
  auto memory = NewMemoryStore();
  FaultInjectionStore store(memory.get());
  ASSERT_OK(store.Put("packs/ab/x", "hello"));
  ASSERT_OK(store.Put("manifests/ab/y", "world"));
  store.FailNthCall(2, absl::UnavailableError("injected"));
  EXPECT_OK(store.Get("packs/ab/x"));
  EXPECT_TRUE(absl::IsUnavailable(store.Get("packs/ab/x").status()));
  EXPECT_OK(store.Get("packs/ab/x"));

  store.FailNthCallMatching("manifests/", 2, absl::DataLossError("injected"));
  EXPECT_OK(store.Get("manifests/ab/y"));
  EXPECT_OK(store.Get("packs/ab/x"));
  EXPECT_TRUE(absl::IsDataLoss(store.Get("manifests/ab/y").status()));

  store.FlipByteOnRead("packs/", 1);
  ASSERT_OK_AND_ASSIGN(std::string flipped, store.Get("packs/ab/x"));
  EXPECT_EQ(flipped, std::string("hdllo"));  // 'e' ^ 0x01 == 'd'
  ASSERT_OK_AND_ASSIGN(std::string other, store.Get("manifests/ab/y"));
  EXPECT_EQ(other, "world");
  store.ClearFaults();
  ASSERT_OK_AND_ASSIGN(std::string clean, store.Get("packs/ab/x"));
  EXPECT_EQ(clean, "hello");
  EXPECT_EQ(store.call_count(), 11);
  EXPECT_EQ(store.Describe(), memory->Describe());
}

TEST(FaultStoreTest, CountsListPagesAndRemoveDebris) {
  auto memory = NewMemoryStore();
  FaultInjectionStore store(memory.get());
  for (const char* key : {"packs/1", "packs/2", "packs/3", "packs/4", "packs/5"}) {
    ASSERT_OK(store.Put(key, key));
  }
  int64_t calls = store.call_count();
  ASSERT_OK(store.List("packs/"));
  EXPECT_EQ(store.call_count() - calls, 1) << "one page";
  // A List fault matches on the prefix and counts page calls: the second page fails.
  store.FailNthCallMatching("packs/", 2, absl::UnavailableError("injected"));
  ASSERT_OK_AND_ASSIGN(ObjectPage first, store.ListPage("packs/", "", 2));
  EXPECT_TRUE(first.truncated);
  EXPECT_TRUE(absl::IsUnavailable(store.ListPage("packs/", "packs/2", 2).status()));
  ASSERT_OK_AND_ASSIGN(ObjectPage second, store.ListPage("packs/", "packs/2", 2));
  EXPECT_EQ(second.objects.front().key, "packs/3");

  calls = store.call_count();
  EXPECT_TRUE(store.publishes_without_overwrite());
  EXPECT_EQ(store.call_count(), calls) << "a capability is not a call";
  store.FailNthCall(1, absl::UnavailableError("injected"));
  EXPECT_TRUE(absl::IsUnavailable(store.RemoveDebris(absl::Hours(1)).status()));
  ASSERT_OK_AND_ASSIGN(uint64_t removed, store.RemoveDebris(absl::Hours(1)));
  EXPECT_EQ(removed, 0u);
  EXPECT_EQ(store.call_count() - calls, 2);
}

TEST(FaultStoreTest, LostReplyReachesTheTarget) {
  auto memory = NewMemoryStore();
  FaultInjectionStore store(memory.get());
  // Only the second matching call loses its reply; other keys do not count.
  store.LoseReplyOfNthCallMatching("commits/", 2);
  ASSERT_OK(store.Put("packs/x", "p"));
  ASSERT_OK(store.Publish("commits/1", "c1"));
  absl::Status lost = store.Publish("commits/2", "c2");
  EXPECT_TRUE(absl::IsUnavailable(lost)) << lost;
  EXPECT_NE(lost.ToString().find("reply lost"), std::string::npos) << lost;
  EXPECT_NE(lost.ToString().find("commits/2"), std::string::npos) << lost;
  ASSERT_OK_AND_ASSIGN(std::string landed, memory->Get("commits/2"));
  EXPECT_EQ(landed, "c2") << "the write landed";
  EXPECT_OK(store.Publish("commits/3", "c3")) << "a fault fires once";
  // The reply is lost whatever the target answered, a refusal too.
  store.LoseReplyOfNthCallMatching("commits/", 1);
  EXPECT_TRUE(absl::IsUnavailable(store.Publish("commits/1", "other")));
  ASSERT_OK_AND_ASSIGN(std::string kept, memory->Get("commits/1"));
  EXPECT_EQ(kept, "c1");
  // Reads lose replies too.
  store.LoseReplyOfNthCallMatching("commits/1", 1);
  EXPECT_TRUE(absl::IsUnavailable(store.Get("commits/1").status()));
  store.LoseReplyOfNthCallMatching("commits/", 1);
  store.ClearFaults();
  EXPECT_OK(store.Publish("commits/4", "c4")) << "ClearFaults cancels lost replies";
}

TEST(FaultStoreTest, Latency) {
  auto memory = NewMemoryStore();
  FaultInjectionStore store(memory.get());
  store.SetLatency(absl::Milliseconds(20));
  const absl::Time start = absl::Now();
  EXPECT_TRUE(absl::IsNotFound(store.Get("x").status()));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(20));
}

}  // namespace
}  // namespace ickpt
