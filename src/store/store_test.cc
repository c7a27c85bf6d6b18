// One typed suite for every ObjectStore (local directory and memory), plus local-only checks of
// file modes, temporary files and atomic publish.
#include <sys/stat.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "ickpt/store.h"
#include "src/store/fault_file_system.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"

namespace ickpt {
namespace {

using ::ickpt::testing::RandomBytes;
using ::ickpt::testing::TempDir;

struct LocalStoreFactory {
  std::unique_ptr<TempDir> dir = std::make_unique<TempDir>();
  std::unique_ptr<ObjectStore> Open() {
    auto store = OpenLocalStore(dir->Join("repo"), {.create_if_missing = true});
    EXPECT_OK(store);
    return *std::move(store);
  }
};
struct MemoryStoreFactory {
  std::unique_ptr<ObjectStore> Open() { return NewMemoryStore(); }
};

template <typename Factory>
class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = factory_.Open(); }
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

  Factory factory_;
  std::unique_ptr<ObjectStore> store_;
};

using StoreTypes = ::testing::Types<LocalStoreFactory, MemoryStoreFactory>;
TYPED_TEST_SUITE(StoreTest, StoreTypes);

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
  for (const char* key : {"packs/ff/ff01", "packs/00/0001", "packs/0a/0a00", "manifests/00/0002",
                          "commits/00000000000000000002", "commits/00000000000000000001",
                          "config"}) {
    ASSERT_OK(this->store().Put(key, key));
  }
  EXPECT_EQ(this->Keys("packs/"),
            (std::vector<std::string>{"packs/00/0001", "packs/0a/0a00", "packs/ff/ff01"}));
  EXPECT_EQ(this->Keys("packs/0"),
            (std::vector<std::string>{"packs/00/0001", "packs/0a/0a00"}));
  EXPECT_EQ(this->Keys("commits/"),
            (std::vector<std::string>{"commits/00000000000000000001",
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
  for (std::string key : {std::string(""), std::string("../x"), std::string("/abs"),
                          std::string("A"), std::string("a//b"), std::string("a/"),
                          std::string("."), std::string("a/../b"), std::string("a/./b"),
                          std::string(".hidden"), std::string("-x"), std::string("a b"),
                          std::string("a/b/c/d/e/f/g/h/i"), long_key, std::string("a\\b"),
                          std::string("caf\xc3\xa9")}) {
    SCOPED_TRACE(key);
    EXPECT_TRUE(absl::IsInvalidArgument(ValidateObjectKey(key)));
    EXPECT_TRUE(absl::IsInvalidArgument(this->store().Put(key, "x")));
    EXPECT_TRUE(absl::IsInvalidArgument(this->store().Publish(key, "x")));
    EXPECT_TRUE(absl::IsInvalidArgument(this->store().Get(key).status()));
    EXPECT_TRUE(absl::IsInvalidArgument(this->store().GetRange(key, 0, 1).status()));
    EXPECT_TRUE(absl::IsInvalidArgument(this->store().Size(key).status()));
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
        const std::string key = "packs/" + std::to_string(i % 5) + "/t" + std::to_string(t) +
                                "-" + std::to_string(i);
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

// ---- Local store only ----

class LocalStoreTest : public ::testing::Test {
 protected:
  std::string Root() const { return dir_.Join("repo"); }
  std::unique_ptr<ObjectStore> Open(FileSystem* fs = nullptr) {
    auto store = OpenLocalStore(Root(), {.file_system = fs, .create_if_missing = true});
    EXPECT_OK(store);
    return store.ok() ? *std::move(store) : nullptr;
  }
  // Every file name under `dir`, recursively, relative to it.
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
    return out;
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

}  // namespace
}  // namespace ickpt
