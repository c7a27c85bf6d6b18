// The store contract (format.md §12) as one typed suite that every store and fault wrapper passes:
// the local directory store, the memory store, each of them inside a FaultInjectionStore with no
// faults armed, and the S3 store on a real Ceph RADOS Gateway (a bucket of its own per test; the
// S3 tests are skipped where Ceph is not installed). Then local-only checks of file modes,
// temporary files, debris and atomic publish.
#include "ickpt/store.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "src/store/fault_file_system.h"
#include "src/store/fault_store.h"
#include "src/testing/rgw_server.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"
#include "src/util/hash.h"
#include "src/util/parallel.h"

namespace ickpt {
namespace {

using ::ickpt::testing::RandomBytes;
using ::ickpt::testing::TempDir;

// Every file name under `dir`, recursively, relative to it, sorted.
std::vector<std::string> AllFiles(const std::string& dir, const std::string& rel = "") {
  std::vector<std::string> out;
  auto names = DefaultFileSystem()->ListDir(dir);
  if (!names.ok()) return out;
  for (const std::string& name : *names) {
    const std::string path = dir + "/" + name;
    if (*DefaultFileSystem()->IsDirectory(path)) {
      for (auto& f : AllFiles(path, rel + name + "/")) out.push_back(f);
    } else {
      out.push_back(rel + name);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

void WriteFile(const std::string& path, std::string_view data) {
  auto file = DefaultFileSystem()->NewWritableFile(path);
  ASSERT_OK(file);
  ASSERT_OK((*file)->Append(data));
  ASSERT_OK((*file)->Close());
}

// Sets the access and modification times of `path`, as time passing would.
void SetModificationTime(const std::string& path, absl::Time mtime) {
  const struct timespec times[2] = {absl::ToTimespec(mtime), absl::ToTimespec(mtime)};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

// Forwards to the real file system, except that Sync and SyncDir do nothing: for putting thousands
// of objects quickly where durability is not what a test checks.
class NoSyncFileSystem final : public FileSystemWrapper {
 public:
  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    absl::StatusOr<std::unique_ptr<WritableFile>> file = target()->NewWritableFile(path);
    if (!file.ok()) return file.status();
    return std::make_unique<NoSyncFile>(*std::move(file));
  }
  absl::Status SyncDir(const std::string&) override { return absl::OkStatus(); }

 private:
  class NoSyncFile final : public WritableFile {
   public:
    explicit NoSyncFile(std::unique_ptr<WritableFile> file) : file_(std::move(file)) {}
    absl::Status Append(std::string_view data) override { return file_->Append(data); }
    absl::Status Sync() override { return absl::OkStatus(); }
    absl::Status Close() override { return file_->Close(); }

   private:
    std::unique_ptr<WritableFile> file_;
  };
};

// A factory opens one store of its kind for a test, and gives a way to put many objects into it
// quickly (BulkLoader). Where the store has debris (format.md §12) it
// can also leave some the way a crashed writer does, and find what is left.
struct LocalStoreFactory {
  static constexpr const char* kName = "Local";
  static constexpr bool kHasDebris = true;

  std::unique_ptr<TempDir> dir = std::make_unique<TempDir>();
  std::string Root() const { return dir->Join("repo"); }
  std::unique_ptr<ObjectStore> Open() {
    auto store = OpenLocalStore(Root(), {.create_if_missing = true});
    EXPECT_OK(store);
    return *std::move(store);
  }
  // A second local store on the same root that skips fsync (each Put is otherwise two).
  ObjectStore& BulkLoader() {
    if (loader == nullptr) {
      auto store = OpenLocalStore(Root(), {.file_system = &no_sync});
      EXPECT_OK(store);
      loader = *std::move(store);
    }
    return *loader;
  }
  // The temporary file a writer of `key` leaves when it crashes before its rename or link, last
  // written at `mtime`. Returns its name relative to the root.
  std::string MakeDebris(const std::string& key, absl::Time mtime) {
    const std::string name = key + ".tmp-" + std::string(32, static_cast<char>('a' + debris_++));
    WriteFile(Root() + "/" + name, "half an object");
    SetModificationTime(Root() + "/" + name, mtime);
    return name;
  }
  std::vector<std::string> DebrisFiles() const {
    std::vector<std::string> debris;
    for (const std::string& file : AllFiles(Root())) {
      if (file.find(".tmp-") != std::string::npos) debris.push_back(file);
    }
    return debris;
  }
  int debris_ = 0;
  NoSyncFileSystem no_sync;
  std::unique_ptr<ObjectStore> loader;
};

struct MemoryStoreFactory {
  static constexpr const char* kName = "Memory";
  static constexpr bool kHasDebris = false;  // every write is one map operation

  std::unique_ptr<ObjectStore> Open() {
    std::unique_ptr<ObjectStore> store = NewMemoryStore();
    opened = store.get();
    return store;
  }
  ObjectStore& BulkLoader() { return *opened; }
  ObjectStore* opened = nullptr;
  std::string MakeDebris(const std::string&, absl::Time) { return ""; }
  std::vector<std::string> DebrisFiles() const { return {}; }
};

// The store of `Inner` seen through a FaultInjectionStore with nothing armed: the wrapper must keep
// the contract too.
template <typename Inner>
struct FaultWrappedFactory {
  static constexpr bool kHasDebris = Inner::kHasDebris;

  Inner inner;
  std::unique_ptr<ObjectStore> target;
  std::unique_ptr<ObjectStore> Open() {
    target = inner.Open();
    return std::make_unique<FaultInjectionStore>(target.get());
  }
  std::string MakeDebris(const std::string& key, absl::Time mtime) {
    return inner.MakeDebris(key, mtime);
  }
  std::vector<std::string> DebrisFiles() const { return inner.DebrisFiles(); }
  ObjectStore& BulkLoader() { return inner.BulkLoader(); }
};
struct FaultLocalStoreFactory : FaultWrappedFactory<LocalStoreFactory> {
  static constexpr const char* kName = "FaultOverLocal";
};
struct FaultMemoryStoreFactory : FaultWrappedFactory<MemoryStoreFactory> {
  static constexpr const char* kName = "FaultOverMemory";
};

// An S3 bucket of its own on the gateway the tests share (testing::SharedRgw). Open() returns null
// where Ceph is not installed, and the test is skipped.
struct S3StoreFactory {
  static constexpr const char* kName = "S3";
  // Every object is one PUT: nothing is left behind by a failed one (s3_store.cc).
  static constexpr bool kHasDebris = false;

  std::unique_ptr<ObjectStore> Open() {
    testing::RgwServer* rgw = testing::SharedRgw();
    if (rgw == nullptr) return nullptr;
    const std::string bucket = "store-test-" + RandomHex128().substr(0, 16);
    EXPECT_OK(rgw->CreateBucket(bucket));
    S3StoreOptions o;
    o.endpoint = rgw->endpoint();
    o.bucket = bucket;
    o.prefix = "repo";
    o.region = rgw->region();
    o.credentials.access_key_id = rgw->access_key();
    o.credentials.secret_access_key = rgw->secret_key();
    o.probe_publish = true;
    absl::StatusOr<std::unique_ptr<ObjectStore>> store = OpenS3Store(o);
    EXPECT_OK(store);
    if (!store.ok()) return nullptr;
    // Bulk loads go through a second store on the same bucket, so they may run from threads.
    loader = OpenS3Store(o).value_or(nullptr);
    return *std::move(store);
  }
  // 2,500 sequential PUTs on loopback take a few seconds: no faster path is needed.
  ObjectStore& BulkLoader() { return *loader; }
  std::string MakeDebris(const std::string&, absl::Time) { return ""; }
  std::vector<std::string> DebrisFiles() const { return {}; }
  std::unique_ptr<ObjectStore> loader;
};

template <typename Factory>
class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = factory_.Open();
    if (store_ == nullptr && !HasFailure() && !testing::RgwServer::Available()) {
      GTEST_SKIP() << "Ceph (ceph-mon, ceph-osd, radosgw) is not installed";
    }
    ASSERT_NE(store_, nullptr) << "Ceph is installed but no gateway could be had (see stderr)";
  }
  ObjectStore& store() { return *store_; }
  std::vector<std::string> Keys(std::string_view prefix) {
    auto listed = store_->List(prefix);
    EXPECT_OK(listed);
    std::vector<std::string> keys;
    if (listed.ok()) {
      for (const ObjectInfo& info : *listed) keys.push_back(info.key);
    }
    return keys;
  }
  std::string GetOrError(std::string_view key) {
    absl::StatusOr<std::string> data = store_->Get(key);
    return data.ok() ? *data : "<" + data.status().ToString() + ">";
  }
  // Follows ListPage from `start_after` until a page is not truncated. Returns the keys in the
  // order listed, and the size of every page in `page_sizes`.
  std::vector<std::string> KeysByPage(std::string_view prefix, std::string start_after,
                                      size_t max_keys, std::vector<size_t>* page_sizes) {
    std::vector<std::string> keys;
    for (int pages = 0; pages < 100000; ++pages) {
      absl::StatusOr<ObjectPage> page = store_->ListPage(prefix, start_after, max_keys);
      EXPECT_OK(page);
      if (!page.ok()) break;
      page_sizes->push_back(page->objects.size());
      for (const ObjectInfo& info : page->objects) keys.push_back(info.key);
      if (!page->truncated) break;
      EXPECT_FALSE(page->objects.empty()) << "a truncated page must advance";
      if (page->objects.empty()) break;
      start_after = page->objects.back().key;
    }
    return keys;
  }

  Factory factory_;
  std::unique_ptr<ObjectStore> store_;
};

struct StoreName {
  template <typename Factory>
  static std::string GetName(int) {
    return Factory::kName;
  }
};
using StoreTypes = ::testing::Types<LocalStoreFactory, MemoryStoreFactory, FaultLocalStoreFactory,
                                    FaultMemoryStoreFactory, S3StoreFactory>;
TYPED_TEST_SUITE(StoreTest, StoreTypes, StoreName);

TYPED_TEST(StoreTest, PutThenGet) {
  const std::string data = RandomBytes(100000, 1);
  ASSERT_OK(this->store().Put("packs/ab/abcd", data));
  ASSERT_OK_AND_ASSIGN(std::string read, this->store().Get("packs/ab/abcd"));
  EXPECT_EQ(read, data);
  ASSERT_OK_AND_ASSIGN(uint64_t size, this->store().Size("packs/ab/abcd"));
  EXPECT_EQ(size, data.size());
}

TYPED_TEST(StoreTest, PutReplaces) {
  ASSERT_OK(this->store().Put("config", "one"));
  ASSERT_OK(this->store().Put("config", "two"));
  ASSERT_OK_AND_ASSIGN(std::string read, this->store().Get("config"));
  EXPECT_EQ(read, "two");
}

TYPED_TEST(StoreTest, EmptyObject) {
  ASSERT_OK(this->store().Put("ids/00000000000000000001", ""));
  ASSERT_OK_AND_ASSIGN(std::string read, this->store().Get("ids/00000000000000000001"));
  EXPECT_EQ(read, "");
}

TYPED_TEST(StoreTest, GetRange) {
  ASSERT_OK(this->store().Put("a/b", "0123456789"));
  ASSERT_OK_AND_ASSIGN(std::string mid, this->store().GetRange("a/b", 2, 3));
  EXPECT_EQ(mid, "234");
  ASSERT_OK_AND_ASSIGN(std::string tail, this->store().GetRange("a/b", 8, 100));
  EXPECT_EQ(tail, "89");
  ASSERT_OK_AND_ASSIGN(std::string past, this->store().GetRange("a/b", 10, 5));
  EXPECT_EQ(past, "");
  ASSERT_OK_AND_ASSIGN(std::string far, this->store().GetRange("a/b", 1000, 5));
  EXPECT_EQ(far, "");
}

// A pack's reader takes footer and index from one GetTail (format.md §12 item 3): size and bytes
// must agree whether the object is longer than the tail, shorter, exactly as long, or empty.
TYPED_TEST(StoreTest, GetTail) {
  ASSERT_OK(this->store().Put("a/b", "0123456789"));
  ASSERT_OK_AND_ASSIGN(ObjectTail three, this->store().GetTail("a/b", 3));
  EXPECT_EQ(three.object_size, 10u);
  EXPECT_EQ(three.bytes, "789");
  ASSERT_OK_AND_ASSIGN(ObjectTail exact, this->store().GetTail("a/b", 10));
  EXPECT_EQ(exact.object_size, 10u);
  EXPECT_EQ(exact.bytes, "0123456789");
  ASSERT_OK_AND_ASSIGN(ObjectTail more, this->store().GetTail("a/b", 1 << 20));
  EXPECT_EQ(more.object_size, 10u);
  EXPECT_EQ(more.bytes, "0123456789");
  ASSERT_OK_AND_ASSIGN(ObjectTail none, this->store().GetTail("a/b", 0));
  EXPECT_EQ(none.object_size, 10u);
  EXPECT_EQ(none.bytes, "");
  ASSERT_OK(this->store().Put("a/empty", ""));
  ASSERT_OK_AND_ASSIGN(ObjectTail empty, this->store().GetTail("a/empty", 32));
  EXPECT_EQ(empty.object_size, 0u);
  EXPECT_EQ(empty.bytes, "");
  // Larger than one read of libcurl's or of the file system's.
  std::string big(300000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 + i / 7);
  ASSERT_OK(this->store().Put("a/big", big));
  ASSERT_OK_AND_ASSIGN(ObjectTail big_tail, this->store().GetTail("a/big", 100000));
  EXPECT_EQ(big_tail.object_size, big.size());
  EXPECT_TRUE(big_tail.bytes == big.substr(big.size() - 100000));
  EXPECT_TRUE(absl::IsNotFound(this->store().GetTail("a/nope", 32).status()));
  EXPECT_TRUE(absl::IsNotFound(this->store().GetTail("a/nope", 0).status()));
}

TYPED_TEST(StoreTest, MissingIsNotFound) {
  EXPECT_TRUE(absl::IsNotFound(this->store().Get("nope").status()));
  EXPECT_TRUE(absl::IsNotFound(this->store().GetRange("a/nope", 0, 1).status()));
  EXPECT_TRUE(absl::IsNotFound(this->store().Size("nope").status()));
  // A "directory" made by a longer key is not an object.
  ASSERT_OK(this->store().Put("dir/x", "x"));
  EXPECT_TRUE(absl::IsNotFound(this->store().Get("dir").status()));
  EXPECT_TRUE(absl::IsNotFound(this->store().Size("dir").status()));
  // A key running "through" an object is missing, too.
  EXPECT_TRUE(absl::IsNotFound(this->store().Get("dir/x/y").status()));
}

TYPED_TEST(StoreTest, ListByPrefixIsSorted) {
  for (const char* key :
       {"packs/ff/ff01", "packs/00/0001", "packs/0a/0a00", "manifests/00/0002",
        "commits/00000000000000000002", "commits/00000000000000000001", "config"}) {
    ASSERT_OK(this->store().Put(key, key));
  }
  EXPECT_EQ(this->Keys("packs/"),
            (std::vector<std::string>{"packs/00/0001", "packs/0a/0a00", "packs/ff/ff01"}));
  EXPECT_EQ(this->Keys("packs/0"), (std::vector<std::string>{"packs/00/0001", "packs/0a/0a00"}));
  EXPECT_EQ(this->Keys("commits/"), (std::vector<std::string>{"commits/00000000000000000001",
                                                              "commits/00000000000000000002"}));
  EXPECT_EQ(this->Keys("conf"), (std::vector<std::string>{"config"}));
  EXPECT_EQ(this->Keys("zzz"), (std::vector<std::string>{}));
  EXPECT_EQ(this->Keys("").size(), 7u);
  ASSERT_OK_AND_ASSIGN(auto listed, this->store().List("config"));
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].size, 6u);
  EXPECT_FALSE(this->store().List("../").ok());
}

TYPED_TEST(StoreTest, Delete) {
  ASSERT_OK(this->store().Put("a/b", "x"));
  ASSERT_OK(this->store().Delete("a/b"));
  EXPECT_TRUE(absl::IsNotFound(this->store().Get("a/b").status()));
  EXPECT_OK(this->store().Delete("a/b")) << "deleting a missing key is OK";
  EXPECT_OK(this->store().Delete("never/existed"));
  EXPECT_TRUE(this->Keys("a/").empty());
}

TYPED_TEST(StoreTest, DeleteManyRemovesEveryKeyGivenAndNothingElse) {
  std::vector<std::string> doomed;
  for (int i = 0; i < 30; ++i) {
    const std::string key = "many/" + std::to_string(1000 + i);
    ASSERT_OK(this->store().Put(key, key));
    if (i % 3 != 0) doomed.push_back(key);
  }
  doomed.push_back("many/missing");  // a missing key is not an error
  ASSERT_OK(this->store().DeleteMany(doomed));
  ASSERT_OK(this->store().DeleteMany({}));
  std::vector<std::string> left;
  for (int i = 0; i < 30; i += 3) left.push_back("many/" + std::to_string(1000 + i));
  EXPECT_EQ(this->Keys("many/"), left);
  EXPECT_TRUE(absl::IsInvalidArgument(this->store().DeleteMany({"many/1000", "../x"})));
}

TYPED_TEST(StoreTest, PublishRefusesOverwrite) {
  ASSERT_OK(this->store().Publish("commits/00000000000000000001", "first"));
  absl::Status second = this->store().Publish("commits/00000000000000000001", "second");
  EXPECT_TRUE(absl::IsAlreadyExists(second)) << second;
  ASSERT_OK_AND_ASSIGN(std::string read, this->store().Get("commits/00000000000000000001"));
  EXPECT_EQ(read, "first");
  EXPECT_EQ(this->Keys("commits/").size(), 1u);
}

TYPED_TEST(StoreTest, InvalidKeysRejected) {
  const std::string long_key(257, 'a');
  for (std::string key :
       {std::string(""), std::string("../x"), std::string("/abs"), std::string("A"),
        std::string("a//b"), std::string("a/"), std::string("."), std::string("a/../b"),
        std::string("a/./b"), std::string(".hidden"), std::string("-x"), std::string("a b"),
        std::string("a/b/c/d/e/f/g/h/i"), long_key, std::string("a\\b"),
        std::string("caf\xc3\xa9")}) {
    SCOPED_TRACE(key);
    EXPECT_TRUE(absl::IsInvalidArgument(ValidateObjectKey(key)));
    EXPECT_TRUE(absl::IsInvalidArgument(this->store().Put(key, "x")));
    EXPECT_TRUE(absl::IsInvalidArgument(this->store().Publish(key, "x")));
    EXPECT_TRUE(absl::IsInvalidArgument(this->store().Get(key).status()));
    EXPECT_TRUE(absl::IsInvalidArgument(this->store().GetRange(key, 0, 1).status()));
    EXPECT_TRUE(absl::IsInvalidArgument(this->store().Size(key).status()));
    EXPECT_TRUE(absl::IsInvalidArgument(this->store().GetTail(key, 8).status()));
    EXPECT_TRUE(absl::IsInvalidArgument(this->store().Delete(key)));
  }
  EXPECT_OK(ValidateObjectKey("a/b/c/d/e/f/g/h"));
  EXPECT_OK(ValidateObjectKey(std::string(256, 'a')));
  EXPECT_OK(ValidateObjectKey("0a._-z"));
}

TYPED_TEST(StoreTest, ConcurrentPuts) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Every thread also writes the shared key, as writers of one content-named object do.
        const std::string key =
            "packs/" + std::to_string(i % 5) + "/t" + std::to_string(t) + "-" + std::to_string(i);
        if (!this->store().Put(key, key).ok()) ++failures;
        if (!this->store().Put("packs/shared/same", "same bytes").ok()) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_OK_AND_ASSIGN(auto listed, this->store().List("packs/"));
  EXPECT_EQ(listed.size(), static_cast<size_t>(kThreads * kPerThread + 1));
  for (const ObjectInfo& info : listed) {
    ASSERT_OK_AND_ASSIGN(std::string data, this->store().Get(info.key));
    if (info.key != "packs/shared/same") {
      EXPECT_EQ(data, info.key);
    }
  }
}

TYPED_TEST(StoreTest, ConcurrentPublishHasOneWinner) {
  std::atomic<int> winners{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      absl::Status s = this->store().Publish("config", "writer " + std::to_string(t));
      if (s.ok()) {
        ++winners;
      } else {
        EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(winners.load(), 1);
}

// ---- Paged listing (format.md §12) ----

std::string Pad4(int i) {
  std::string digits = std::to_string(i);
  return std::string(4 - std::min<size_t>(4, digits.size()), '0') + digits;
}

// The nth of the paging test's objects. Most are "many/NNNN"; around every hundredth, keys that
// sort differently from their names' order on disk: a directory "many/NNNN/" (two objects) beside
// "many/NNNN-x" and "many/NNNN.y", which sort before it because '-' and '.' sort before '/'.
std::string PagingKey(int i) {
  const std::string group = "many/" + Pad4(i / 100 * 100 + 7);
  switch (i % 100) {
    case 7:
      return group + "/leaf";
    case 8:
      return group + "-x";
    case 9:
      return group + ".y";
    case 10:
      return group + "/more";
    default:
      return "many/" + Pad4(i);
  }
}

TYPED_TEST(StoreTest, ListPagesThroughMoreThanAThousandObjects) {
  constexpr int kObjects = 2500;
  std::vector<std::string> expected;
  for (int i = 0; i < kObjects; ++i) expected.push_back(PagingKey(i));
  std::sort(expected.begin(), expected.end());
  ASSERT_EQ(std::unique(expected.begin(), expected.end()), expected.end());
  ObjectStore& loader = this->factory_.BulkLoader();
  // From 8 threads: on S3 each put is a round trip.
  std::atomic<int> failed_puts{0};
  ParallelFor(expected.size(), 8, [&](size_t i) {
    if (!loader.Put(expected[i], "x").ok()) ++failed_puts;
  });
  ASSERT_EQ(failed_puts.load(), 0);
  // Neighbours of the prefix, which must not be listed with it.
  for (const char* key : {"many-0", "many0/1", "man", "manx/0001", "a/many/0001", "zzz"}) {
    ASSERT_OK(this->store().Put(key, key));
  }

  std::vector<size_t> page_sizes;
  EXPECT_EQ(this->KeysByPage("many/", "", 0, &page_sizes), expected) << "default pages";
  EXPECT_EQ(page_sizes, (std::vector<size_t>{kDefaultListPage, kDefaultListPage, 500}));

  page_sizes.clear();
  EXPECT_EQ(this->KeysByPage("many/", "", 7, &page_sizes), expected) << "pages of 7";
  EXPECT_EQ(page_sizes.size(), (kObjects + 6) / 7u);
  EXPECT_EQ(page_sizes.back(), kObjects % 7u);

  // Starting after a key that exists, and after one that does not.
  ASSERT_OK_AND_ASSIGN(ObjectPage after_existing,
                       this->store().ListPage("many/", expected[1234], 3));
  ASSERT_EQ(after_existing.objects.size(), 3u);
  EXPECT_EQ(after_existing.objects[0].key, expected[1235]);
  EXPECT_EQ(after_existing.objects[2].key, expected[1237]);
  EXPECT_TRUE(after_existing.truncated);
  for (const std::string& missing : {expected[1234] + "-", expected[706] + "0",
                                     std::string("many/0707"), std::string("many/0707/")}) {
    SCOPED_TRACE(missing);
    const auto next = std::upper_bound(expected.begin(), expected.end(), missing);
    ASSERT_NE(next, expected.end());
    ASSERT_OK_AND_ASSIGN(ObjectPage after_missing, this->store().ListPage("many/", missing, 1));
    ASSERT_EQ(after_missing.objects.size(), 1u);
    EXPECT_EQ(after_missing.objects[0].key, *next);
  }
  page_sizes.clear();
  EXPECT_EQ(this->KeysByPage("many/", expected[2000], 0, &page_sizes),
            std::vector<std::string>(expected.begin() + 2001, expected.end()));
  // A start before the prefix lists from its first key; one past it lists nothing.
  ASSERT_OK_AND_ASSIGN(ObjectPage from_before, this->store().ListPage("many/", "a", 2));
  ASSERT_EQ(from_before.objects.size(), 2u);
  EXPECT_EQ(from_before.objects[0].key, expected[0]);
  ASSERT_OK_AND_ASSIGN(ObjectPage past_end, this->store().ListPage("many/", "many0", 0));
  EXPECT_TRUE(past_end.objects.empty());
  EXPECT_FALSE(past_end.truncated);
  ASSERT_OK_AND_ASSIGN(ObjectPage last, this->store().ListPage("many/", expected[2498], 0));
  ASSERT_EQ(last.objects.size(), 1u);
  EXPECT_FALSE(last.truncated) << "the last object's page is not truncated";

  EXPECT_EQ(this->Keys("many/"), expected) << "List follows the pages";
  EXPECT_EQ(this->Keys("").size(), expected.size() + 6);
}

TYPED_TEST(StoreTest, ListSortsByKeyNotByDirectory) {
  // '-' and '.' sort before '/', '0' and '_' after it: a directory's objects sort among files.
  for (const char* key : {"a_b", "a0", "a.b", "a-b", "a/c/d", "b"}) {
    ASSERT_OK(this->store().Put(key, key));
  }
  const std::vector<std::string> sorted = {"a-b", "a.b", "a/c/d", "a0", "a_b", "b"};
  EXPECT_EQ(this->Keys(""), sorted);
  std::vector<size_t> page_sizes;
  EXPECT_EQ(this->KeysByPage("", "", 1, &page_sizes), sorted);
  EXPECT_EQ(this->KeysByPage("a", "", 2, &page_sizes),
            (std::vector<std::string>{"a-b", "a.b", "a/c/d", "a0", "a_b"}));
  EXPECT_EQ(this->KeysByPage("a/", "", 2, &page_sizes), (std::vector<std::string>{"a/c/d"}));
}

TYPED_TEST(StoreTest, ListPageRejectsDotDotPrefix) {
  absl::StatusOr<ObjectPage> page = this->store().ListPage("../", "", 0);
  EXPECT_TRUE(absl::IsInvalidArgument(page.status())) << page.status();
}

// ---- Modification times, debris, capability (format.md §12) ----

TYPED_TEST(StoreTest, ListedObjectsCarryModificationTimes) {
  const absl::Time before = absl::Now();
  ASSERT_OK(this->store().Put("times/first", "1"));
  absl::SleepFor(absl::Milliseconds(20));
  ASSERT_OK(this->store().Publish("times/second", "2"));
  const absl::Time after = absl::Now();
  ASSERT_OK_AND_ASSIGN(std::vector<ObjectInfo> listed, this->store().List("times/"));
  ASSERT_EQ(listed.size(), 2u);
  for (const ObjectInfo& info : listed) {
    SCOPED_TRACE(info.key);
    // The file system's clock may run a tick behind absl::Now(); a few seconds cover it.
    EXPECT_GE(info.modified, before - absl::Seconds(3));
    EXPECT_LE(info.modified, after + absl::Seconds(3));
  }
  EXPECT_GE(listed[1].modified, listed[0].modified) << "an object put later is not older";
  ASSERT_OK_AND_ASSIGN(ObjectPage page, this->store().ListPage("times/", "times/first", 0));
  ASSERT_EQ(page.objects.size(), 1u);
  EXPECT_EQ(page.objects[0].modified, listed[1].modified);
}

TYPED_TEST(StoreTest, RemoveDebrisRemovesOnlyOldDebris) {
  ASSERT_OK(this->store().Put("packs/ab/abcd", "pack"));
  ASSERT_OK(this->store().Publish("config", "config"));
  ASSERT_OK(this->store().Publish("commits/00000000000000000001", "commit"));
  const std::vector<std::string> keys = this->Keys("");
  if constexpr (TypeParam::kHasDebris) {
    const std::string old_debris =
        this->factory_.MakeDebris("packs/ab/abcd", absl::Now() - absl::Hours(2));
    const std::string fresh_debris = this->factory_.MakeDebris("config", absl::Now());
    ASSERT_EQ(this->factory_.DebrisFiles().size(), 2u);
    ASSERT_OK_AND_ASSIGN(uint64_t removed, this->store().RemoveDebris(absl::Hours(1)));
    EXPECT_EQ(removed, 1u);
    EXPECT_EQ(this->factory_.DebrisFiles(), std::vector<std::string>{fresh_debris})
        << "a young temporary file may still be in use by its writer";
  } else {
    ASSERT_OK_AND_ASSIGN(uint64_t removed, this->store().RemoveDebris(absl::Hours(1)));
    EXPECT_EQ(removed, 0u);
  }
  EXPECT_EQ(this->Keys(""), keys) << "objects survive and nothing new is listed";
  EXPECT_EQ(this->GetOrError("packs/ab/abcd"), "pack");
  EXPECT_EQ(this->GetOrError("config"), "config");
  EXPECT_EQ(this->GetOrError("commits/00000000000000000001"), "commit");
  ASSERT_OK_AND_ASSIGN(uint64_t again, this->store().RemoveDebris(absl::Hours(1)));
  EXPECT_EQ(again, 0u);
  EXPECT_TRUE(absl::IsInvalidArgument(this->store().RemoveDebris(-absl::Seconds(1)).status()));
}

TYPED_TEST(StoreTest, PublishesWithoutOverwrite) {
  EXPECT_TRUE(this->store().publishes_without_overwrite());
}

// ---- Ambiguous failures (format.md §12) ----

constexpr std::string_view kCommitKey = "commits/00000000000000000007";

TYPED_TEST(StoreTest, PlainPublishRetriedAfterLostReplyFindsItsOwnObject) {
  // Why PublishUnique exists: the first attempt landed, its reply was lost, and the retry says
  // "exists" about the writer's own object.
  FaultInjectionStore faulty(&this->store());
  faulty.LoseReplyOfNthCallMatching(std::string(kCommitKey), 1);
  absl::Status first = faulty.Publish(kCommitKey, "a-bytes");
  EXPECT_TRUE(absl::IsUnavailable(first)) << first;
  EXPECT_TRUE(IsAmbiguousFailure(first));
  EXPECT_NE(first.ToString().find("reply lost"), std::string::npos) << first;
  EXPECT_NE(first.ToString().find(kCommitKey), std::string::npos) << first;
  absl::Status retry = faulty.Publish(kCommitKey, "a-bytes");
  EXPECT_TRUE(absl::IsAlreadyExists(retry)) << retry;
  EXPECT_EQ(this->GetOrError(kCommitKey), "a-bytes");
}

TYPED_TEST(StoreTest, PublishUniqueAfterLostReplyIsTheWritersSuccess) {
  FaultInjectionStore faulty(&this->store());
  faulty.LoseReplyOfNthCallMatching(std::string(kCommitKey), 1);
  const int64_t calls = faulty.call_count();
  // Writer A: Publish (lands, reply lost), Publish (exists), Get (its own bytes): OK.
  EXPECT_OK(PublishUnique(faulty, kCommitKey, "a-bytes"));
  EXPECT_EQ(faulty.call_count() - calls, 3);
  EXPECT_EQ(this->GetOrError(kCommitKey), "a-bytes");
  // Writer B comes later and is told the truth: someone else's object is there.
  absl::Status b = PublishUnique(faulty, kCommitKey, "b-bytes");
  EXPECT_TRUE(absl::IsAlreadyExists(b)) << b;
  EXPECT_EQ(this->GetOrError(kCommitKey), "a-bytes");
}

// Runs `between` once, right after the first Publish through it returns: another writer acting
// between this writer's attempts.
class BetweenAttemptsStore : public ObjectStoreWrapper {
 public:
  BetweenAttemptsStore(ObjectStore* target, std::function<void()> between)
      : ObjectStoreWrapper(target), between_(std::move(between)) {}
  absl::Status Publish(std::string_view key, std::string_view data) override {
    absl::Status s = ObjectStoreWrapper::Publish(key, data);
    if (between_) std::exchange(between_, nullptr)();
    return s;
  }

 private:
  std::function<void()> between_;
};

TYPED_TEST(StoreTest, PublishUniqueTellsEachWriterTheTruth) {
  {
    // B's first attempt lands and its reply is lost; A publishes before B retries. A is told
    // AlreadyExists (B's object), B is told OK (its own).
    FaultInjectionStore faulty(&this->store());
    faulty.LoseReplyOfNthCallMatching(std::string(kCommitKey), 1);
    absl::Status a;
    BetweenAttemptsStore writer_b(&faulty,
                                  [&] { a = PublishUnique(faulty, kCommitKey, "a-bytes"); });
    EXPECT_OK(PublishUnique(writer_b, kCommitKey, "b-bytes"));
    EXPECT_TRUE(absl::IsAlreadyExists(a)) << a;
    EXPECT_EQ(this->GetOrError(kCommitKey), "b-bytes");
  }
  {
    // B's publish lands first; A's first attempt reaches the store (which refuses it) and its
    // reply is lost. A's retry finds B's bytes: AlreadyExists, truthfully.
    const std::string key = "commits/00000000000000000008";
    ASSERT_OK(PublishUnique(this->store(), key, "b-bytes"));
    FaultInjectionStore faulty(&this->store());
    faulty.LoseReplyOfNthCallMatching(key, 1);
    const int64_t calls = faulty.call_count();
    absl::Status a = PublishUnique(faulty, key, "a-bytes");
    EXPECT_TRUE(absl::IsAlreadyExists(a)) << a;
    EXPECT_EQ(faulty.call_count() - calls, 3) << "publish (reply lost), publish, get";
    EXPECT_EQ(this->GetOrError(key), "b-bytes");
  }
}

TYPED_TEST(StoreTest, PublishUniqueRetriesOnlyAmbiguousFailures) {
  FaultInjectionStore faulty(&this->store());
  // Two failures that wrote nothing, then success.
  faulty.FailNthCallMatching("config", 1, absl::UnavailableError("injected"));
  faulty.FailNthCallMatching("config", 2, absl::DeadlineExceededError("injected"));
  EXPECT_OK(PublishUnique(faulty, "config", "mine"));
  EXPECT_EQ(this->GetOrError("config"), "mine");
  // Every attempt ambiguous: the last error, and nothing written.
  for (int n = 1; n <= 3; ++n) {
    faulty.FailNthCallMatching("ids/", n, absl::UnavailableError("injected " + std::to_string(n)));
  }
  absl::Status exhausted = PublishUnique(faulty, "ids/00000000000000000001", "x");
  EXPECT_TRUE(absl::IsUnavailable(exhausted)) << exhausted;
  EXPECT_NE(exhausted.ToString().find("injected 3"), std::string::npos) << exhausted;
  EXPECT_TRUE(absl::IsNotFound(this->store().Get("ids/00000000000000000001").status()));
  // A failure that is not ambiguous is returned at once.
  faulty.FailNthCallMatching("acks/", 1, absl::PermissionDeniedError("injected"));
  const int64_t calls = faulty.call_count();
  EXPECT_TRUE(absl::IsPermissionDenied(PublishUnique(faulty, "acks/00000000000000000001/p", "x")));
  EXPECT_EQ(faulty.call_count() - calls, 1);
  EXPECT_TRUE(absl::IsInvalidArgument(PublishUnique(faulty, "acks/x", "x", /*attempts=*/0)));
  EXPECT_TRUE(absl::IsInvalidArgument(PublishUnique(faulty, "Bad Key", "x")));
}

// ---- Local store only ----

class LocalStoreTest : public ::testing::Test {
 protected:
  std::string Root() const { return dir_.Join("repo"); }
  std::unique_ptr<ObjectStore> Open(FileSystem* fs = nullptr) {
    auto store = OpenLocalStore(Root(), {.file_system = fs, .create_if_missing = true});
    EXPECT_OK(store);
    return store.ok() ? *std::move(store) : nullptr;
  }
  static int Mode(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return -1;
    return st.st_mode & 0777;
  }

  TempDir dir_;
};

TEST_F(LocalStoreTest, MissingRootIsNotFoundWithoutCreateIfMissing) {
  auto store = OpenLocalStore(Root());
  EXPECT_TRUE(absl::IsNotFound(store.status())) << store.status();
}

TEST_F(LocalStoreTest, CreateIfMissingCreatesParents) {
  auto store = OpenLocalStore(dir_.Join("x/y/z"), {.create_if_missing = true});
  ASSERT_OK(store);
  EXPECT_EQ((*store)->Describe(), "local:" + dir_.Join("x/y/z"));
  EXPECT_EQ(Mode(dir_.Join("x")), 0700);
  EXPECT_EQ(Mode(dir_.Join("x/y/z")), 0700);
  // Opening an existing root needs no create_if_missing.
  EXPECT_OK(OpenLocalStore(dir_.Join("x/y/z/")));
}

TEST_F(LocalStoreTest, FileAndDirectoryModes) {
  auto store = Open();
  ASSERT_OK(store->Put("packs/ab/abcd", "data"));
  ASSERT_OK(store->Publish("commits/00000000000000000001", "c"));
  EXPECT_EQ(Mode(Root() + "/packs"), 0700);
  EXPECT_EQ(Mode(Root() + "/packs/ab"), 0700);
  EXPECT_EQ(Mode(Root() + "/packs/ab/abcd"), 0600);
  EXPECT_EQ(Mode(Root() + "/commits/00000000000000000001"), 0600);
}

TEST_F(LocalStoreTest, NoTempFilesLeftAfterSuccess) {
  auto store = Open();
  ASSERT_OK(store->Put("packs/ab/abcd", "data"));
  ASSERT_OK(store->Put("packs/ab/abcd", "data"));
  ASSERT_OK(store->Publish("config", "c"));
  EXPECT_FALSE(store->Publish("config", "c").ok());
  std::vector<std::string> files = AllFiles(Root());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"config", "packs/ab/abcd"}));
}

TEST_F(LocalStoreTest, ListSkipsTempAndForeignFiles) {
  auto store = Open();
  ASSERT_OK(store->Put("packs/ab/abcd", "data"));
  // A temp file left by a crash, and a file no key can name.
  auto file = DefaultFileSystem()->NewWritableFile(Root() + "/packs/ab/abcd.tmp-0123");
  ASSERT_OK(file);
  ASSERT_OK((*file)->Close());
  file = DefaultFileSystem()->NewWritableFile(Root() + "/README.TXT");
  ASSERT_OK(file);
  ASSERT_OK((*file)->Close());
  ASSERT_OK_AND_ASSIGN(auto listed, store->List(""));
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].key, "packs/ab/abcd");
  EXPECT_TRUE(absl::IsInvalidArgument(store->Put("a.tmp-1", "x")))
      << "a key looking like a temp file would be invisible to List";
}

TEST_F(LocalStoreTest, TempFileRemovedAfterFailedSync) {
  FaultInjectionFileSystem fs(DefaultFileSystem());
  auto store = Open(&fs);
  ASSERT_OK(store->Put("packs/ab/first", "x"));
  fs.FailNthSync(1, absl::UnavailableError("injected EIO"));
  absl::Status s = store->Put("packs/ab/abcd", "data");
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_NE(s.ToString().find("packs/ab/abcd"), std::string::npos) << s;
  EXPECT_EQ(AllFiles(Root()), (std::vector<std::string>{"packs/ab/first"}));
  EXPECT_EQ(fs.sync_count(), 2) << "fsync must not be retried on the same file";
}

TEST_F(LocalStoreTest, PublishIsAtomicAndNeverReplaces) {
  // Readers racing a publisher see either no object or the whole object.
  auto store = Open();
  const std::string data = RandomBytes(1 << 20, 7);
  std::atomic<bool> done{false};
  std::atomic<int> torn{0};
  std::thread reader([&] {
    while (!done.load()) {
      auto read = store->Get("commits/00000000000000000009");
      if (read.ok() && *read != data) ++torn;
    }
  });
  ASSERT_OK(store->Publish("commits/00000000000000000009", data));
  EXPECT_TRUE(absl::IsAlreadyExists(store->Publish("commits/00000000000000000009", "other")));
  done = true;
  reader.join();
  EXPECT_EQ(torn.load(), 0);
  ASSERT_OK_AND_ASSIGN(std::string read, store->Get("commits/00000000000000000009"));
  EXPECT_EQ(read, data);
  EXPECT_EQ(AllFiles(Root()), (std::vector<std::string>{"commits/00000000000000000009"}));
}

TEST_F(LocalStoreTest, DeleteLeavesDirectories) {
  auto store = Open();
  ASSERT_OK(store->Put("a/b", "x"));
  EXPECT_OK(store->Delete("a"));  // a directory, not an object
  ASSERT_OK_AND_ASSIGN(std::string read, store->Get("a/b"));
  EXPECT_EQ(read, "x");
}

TEST_F(LocalStoreTest, RemoveDebrisLeavesObjectsAndForeignFilesAlone) {
  auto store = Open();
  ASSERT_OK(store->Put("packs/ab/abcd", "data"));
  ASSERT_OK(store->Publish("config", "c"));
  const absl::Time long_ago = absl::Now() - absl::Hours(24 * 30);
  // Old objects are not debris, however old.
  SetModificationTime(Root() + "/packs/ab/abcd", long_ago);
  SetModificationTime(Root() + "/config", long_ago);
  // Old files the store did not write: not `<valid component>.tmp-<hex>`, or a directory.
  for (const char* name : {"README.tmp-0123", "packs/ab/abcd.tmp-XYZ", "packs/ab/abcd.tmp-",
                           "packs/ab/.tmp-0123", "packs/ab/Notes.txt"}) {
    WriteFile(Root() + "/" + name, "foreign");
    SetModificationTime(Root() + "/" + name, long_ago);
  }
  ASSERT_OK(DefaultFileSystem()->CreateDir(Root() + "/packs/ab/dir.tmp-0123"));
  SetModificationTime(Root() + "/packs/ab/dir.tmp-0123", long_ago);
  // The store's own debris, as a crashed writer leaves it (4 hex digits, as an older writer named
  // them, and 32 as this one does).
  WriteFile(Root() + "/packs/ab/abcd.tmp-0123", "half");
  SetModificationTime(Root() + "/packs/ab/abcd.tmp-0123", long_ago);
  WriteFile(Root() + "/config.tmp-0123456789abcdef0123456789abcdef", "half");
  SetModificationTime(Root() + "/config.tmp-0123456789abcdef0123456789abcdef", long_ago);

  ASSERT_OK_AND_ASSIGN(uint64_t removed, store->RemoveDebris(absl::Hours(1)));
  EXPECT_EQ(removed, 2u);
  EXPECT_EQ(AllFiles(Root()),
            (std::vector<std::string>{"README.tmp-0123", "config", "packs/ab/.tmp-0123",
                                      "packs/ab/Notes.txt", "packs/ab/abcd", "packs/ab/abcd.tmp-",
                                      "packs/ab/abcd.tmp-XYZ"}));
  EXPECT_TRUE(*DefaultFileSystem()->IsDirectory(Root() + "/packs/ab/dir.tmp-0123"));
  ASSERT_OK_AND_ASSIGN(auto listed, store->List(""));
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_LE(absl::AbsDuration(listed[0].modified - long_ago), absl::Seconds(1))
      << "a listed object carries its file's mtime";
}

TEST_F(LocalStoreTest, ListPageStatsOnlyThePagesEntries) {
  // A page of 7 in a directory of 200 objects stats the 8 entries it needs (the eighth tells
  // that more follow), not all 200.
  FaultInjectionFileSystem fs(DefaultFileSystem());
  auto store = Open(&fs);
  for (int i = 0; i < 200; ++i) ASSERT_OK(store->Put("ids/" + std::to_string(1000 + i), ""));
  fs.ResetCounters();
  ASSERT_OK_AND_ASSIGN(ObjectPage page, store->ListPage("ids/", "ids/1100", 7));
  ASSERT_EQ(page.objects.size(), 7u);
  EXPECT_EQ(page.objects.front().key, "ids/1101");
  EXPECT_TRUE(page.truncated);
  // ListDir of the root and of ids/; IsDirectory of ids, and of ids/1100 (a directory of that name
  // would hold keys after "ids/1100"); IsDirectory, FileSize and ModificationTime of 8 entries.
  EXPECT_EQ(fs.read_count(), 4 + 3 * 8);
}

}  // namespace
}  // namespace ickpt
