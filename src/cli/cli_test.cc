// Runs the real `ickpt` binary on repositories created through the library in temp dirs, and
// checks output formats, exit codes and that read commands never write.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "ickpt/checkpointer.h"
#include "ickpt/keyed_state.h"
#include "ickpt/repository.h"
#include "src/cli/keyed_entries.h"
#include "src/repo/commit_record.h"
#include "src/repo/keyed_reader.h"
#include "src/repo/keys.h"
#include "src/repo/manifest.h"
#include "src/repo/pack.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"
#include "src/util/hash.h"
#include "src/util/str.h"

#ifndef ICKPT_CLI_PATH
#error "ICKPT_CLI_PATH must name the ickpt binary"
#endif

namespace ickpt {
namespace {

using ::ickpt::testing::RandomBytes;
using ::ickpt::testing::TempDir;
using json = nlohmann::json;

constexpr uint64_t kBlock = 4096;
constexpr uint64_t kBlocks = 64;

using testing::ReadFileOrEmpty;
using testing::RunResult;

// Lists every file under `dir` (relative paths), recursively, sorted.
void ListTree(const std::string& root, const std::string& rel, std::vector<std::string>* out) {
  const std::string dir = rel.empty() ? root : root + "/" + rel;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    const std::string child = rel.empty() ? name : rel + "/" + name;
    struct stat st;
    if (stat((root + "/" + child).c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      out->push_back(child + "/");
      ListTree(root, child, out);
    } else {
      out->push_back(child);
    }
  }
  closedir(d);
  std::sort(out->begin(), out->end());
}

std::vector<std::string> Tree(const std::string& root) {
  std::vector<std::string> out;
  ListTree(root, "", &out);
  return out;
}

// Names, modes, sizes and contents of everything under `root`.
std::string TreeHash(const std::string& root) {
  std::string all;
  for (const std::string& rel : Tree(root)) {
    struct stat st;
    stat((root + "/" + rel).c_str(), &st);
    all += rel + "\n" + std::to_string(st.st_mode) + "\n" + std::to_string(st.st_mtime) + "\n";
    if (rel.back() != '/') all += ToHex(Sha256(ReadFileOrEmpty(root + "/" + rel))) + "\n";
  }
  return ToHex(Sha256(all));
}

class CliTest : public ::testing::Test {
 protected:
  // Runs `ickpt args...`, capturing stdout, stderr and the exit code.
  RunResult Run(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {ICKPT_CLI_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::RunProgram(argv, io_.path(), dir_.path());
  }

  RunResult RunOnRepo(std::vector<std::string> args) {
    args.push_back("--repo");
    args.push_back(repo_path());
    return Run(args);
  }

  json RunJson(std::vector<std::string> args) {
    RunResult r = RunOnRepo(std::move(args));
    EXPECT_EQ(r.code, 0) << r.err;
    return json::parse(r.out);
  }

  std::string repo_path() const { return dir_.Join("repo"); }

  // Creates the repository with region "r" of kBlocks blocks and takes `checkpoints` checkpoints;
  // before checkpoint i (from 1) the blocks `writes[i - 1]` get fresh random bytes (checkpoint 1
  // also writes every block). Remembers the region's content at every checkpoint id. A chain holds
  // at most `full_every` checkpoints (NewFullEveryNPolicy).
  void MakeRepo(const std::vector<std::vector<uint64_t>>& writes, uint64_t full_every = 16) {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Repository> repo,
                         Repository::OpenLocal(repo_path(), /*create=*/true));
    CheckpointerOptions ckpt_options;
    ckpt_options.policy = NewFullEveryNPolicy(full_every);
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Checkpointer> ckpt,
                         Checkpointer::Open(repo.get(), std::move(ckpt_options)));
    RegionOptions options;
    options.size = kBlocks * kBlock;
    options.tracker = TrackerKind::kHash;
    ASSERT_OK_AND_ASSIGN(Region * region, ckpt->AddRegion("r", options));
    const std::string initial = RandomBytes(kBlocks * kBlock, 1);
    std::copy(initial.begin(), initial.end(), region->data());
    for (size_t i = 0; i < writes.size(); ++i) {
      for (uint64_t b : writes[i]) {
        const std::string bytes = RandomBytes(kBlock, 1000 + i * 100 + b);
        std::copy(bytes.begin(), bytes.end(), region->data() + b * kBlock);
      }
      CheckpointOptions copts;
      copts.metadata["step"] = std::to_string(i + 1);
      ASSERT_OK_AND_ASSIGN(CheckpointHandle handle, ckpt->Checkpoint(copts));
      ASSERT_OK_AND_ASSIGN(CommitRecord record, handle.Wait());
      contents_[record.id] = std::string(region->data(), region->size());
      ids_.push_back(record.id);
    }
  }

  std::vector<std::string> Keys(const std::string& prefix) {
    std::vector<std::string> out;
    for (const std::string& rel : Tree(repo_path())) {
      if (rel.starts_with(prefix) && rel.back() != '/') out.push_back(rel);
    }
    return out;
  }

  void FlipByte(const std::string& key, uint64_t offset) {
    const std::string path = repo_path() + "/" + key;
    chmod(path.c_str(), 0600);
    const int fd = open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char c = 0;
    ASSERT_EQ(pread(fd, &c, 1, static_cast<off_t>(offset)), 1);
    c = static_cast<char>(c ^ 0x40);
    ASSERT_EQ(pwrite(fd, &c, 1, static_cast<off_t>(offset)), 1);
    close(fd);
  }

  TempDir dir_;
  TempDir io_;
  std::map<uint64_t, std::string> contents_;
  std::vector<uint64_t> ids_;
};

TEST_F(CliTest, LogJsonHasEveryFieldWithItsType) {
  MakeRepo({{}, {3, 4}, {7}});
  const json log = RunJson({"log", "--json"});
  ASSERT_TRUE(log.is_array());
  ASSERT_EQ(log.size(), 3u);
  for (size_t i = 0; i < log.size(); ++i) {
    const json& c = log[i];
    EXPECT_TRUE(c["id"].is_number_integer());
    EXPECT_EQ(c["id"].get<uint64_t>(), ids_[i]);
    EXPECT_TRUE(c["kind"].is_string());
    EXPECT_TRUE(c["depth"].is_number_integer());
    EXPECT_TRUE(c["logical_bytes"].is_number_integer());
    EXPECT_EQ(c["logical_bytes"].get<uint64_t>(), kBlocks * kBlock);
    EXPECT_TRUE(c["stored_bytes"].is_number_integer());
    EXPECT_GT(c["stored_bytes"].get<uint64_t>(), 0u);
    ASSERT_TRUE(c["created"].is_string());
    EXPECT_EQ(c["created"].get<std::string>().back(), 'Z');
    EXPECT_TRUE(c["participants"].is_number_integer());
    EXPECT_EQ(c["participants"].get<int>(), 1);
  }
  EXPECT_TRUE(log[0]["parent"].is_null());
  EXPECT_EQ(log[0]["kind"], "full");
  EXPECT_EQ(log[0]["depth"], 0);
  EXPECT_EQ(log[1]["kind"], "incremental");
  EXPECT_EQ(log[1]["parent"].get<uint64_t>(), ids_[0]);
  EXPECT_EQ(log[2]["depth"], 2);
  EXPECT_LT(log[0]["id"].get<uint64_t>(), log[1]["id"].get<uint64_t>());

  RunResult text = RunOnRepo({"log"});
  EXPECT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("incremental"), std::string::npos);
}

TEST_F(CliTest, ShowLatestJsonListsStateObjectsAndMetadata) {
  MakeRepo({{}, {1}});
  const json show = RunJson({"show", "latest", "--json"});
  EXPECT_EQ(show["id"].get<uint64_t>(), ids_.back());
  EXPECT_EQ(show["parent"].get<uint64_t>(), ids_.front());
  EXPECT_EQ(show["kind"], "incremental");
  EXPECT_EQ(show["depth"], 1);
  EXPECT_EQ(show["participants"], 1);
  EXPECT_TRUE(show["created"].is_string());
  ASSERT_EQ(show["state_objects"].size(), 1u);
  const json& so = show["state_objects"][0];
  EXPECT_EQ(so["name"], "r");
  EXPECT_EQ(so["type"], "region");
  EXPECT_EQ(so["participant"], "p0");
  EXPECT_EQ(so["logical_bytes"].get<uint64_t>(), kBlocks * kBlock);
  EXPECT_TRUE(so["stored_bytes"].is_number_integer());
  EXPECT_EQ(so["tracker"], "hash");
  EXPECT_EQ(show["metadata"]["step"], "2");

  const json first = RunJson({"show", std::to_string(ids_.front()), "--json"});
  EXPECT_EQ(first["kind"], "full");
  EXPECT_TRUE(first["parent"].is_null());
  EXPECT_EQ(RunOnRepo({"show", "latest"}).code, 0);
}

TEST_F(CliTest, MissingCheckpointExits4) {
  MakeRepo({{}});
  for (const char* command : {"show", "restore"}) {
    std::vector<std::string> args = {command, "999"};
    if (std::string(command) == "restore") {
      args.insert(args.end(), {"--region", "r", "--out", io_.Join("x")});
    }
    RunResult r = RunOnRepo(args);
    EXPECT_EQ(r.code, 4) << command << ": " << r.err;
    EXPECT_NE(r.err.find("ickpt: error: "), std::string::npos);
    EXPECT_NE(r.err.find("999"), std::string::npos) << r.err;
  }
  RunResult r = RunOnRepo({"restore", "latest", "--region", "nosuch", "--out", io_.Join("x")});
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_NE(r.err.find("nosuch"), std::string::npos) << r.err;
}

// --repo takes a path, file://PATH or s3://...; any other scheme, and a malformed s3:// URL, is a
// usage error naming it, and nothing is created (not even a directory named "s3:").
TEST_F(CliTest, UnknownRepositorySchemeExits2AndCreatesNothing) {
  const auto before = Tree(dir_.path());
  for (std::vector<std::string> args :
       {std::vector<std::string>{"log", "--repo", "gs://bucket/path"},
        {"verify", "--repo", "gs://bucket/path"},
        {"show", "latest", "--repo", "hdfs://x/y"},
        {"demo", "--repo", "gs://bucket/y", "--size", "1MiB", "--steps", "2"}}) {
    RunResult r = Run(args);
    EXPECT_EQ(r.code, 2) << args[0] << ": " << r.err;
    EXPECT_NE(r.err.find("unsupported scheme"), std::string::npos) << r.err;
  }
  EXPECT_NE(Run({"log", "--repo", "gs://bucket/path"}).err.find("'gs'"), std::string::npos);
  for (std::vector<std::string> args :
       {std::vector<std::string>{"log", "--repo", "s3://x/y"},
        {"verify", "--repo", "s3://bucket/path"},
        {"demo", "--repo", "s3://bucket?endpoint=ftp://h", "--size", "1MiB", "--steps", "2"}}) {
    RunResult r = Run(args);
    EXPECT_EQ(r.code, 2) << args[0] << ": " << r.err;
    EXPECT_NE(r.err.find("S3 repository URL"), std::string::npos) << r.err;
  }
  EXPECT_EQ(Tree(dir_.path()), before);
  // file://PATH is the same repository as PATH.
  MakeRepo({{}});
  RunResult r = Run({"log", "--repo", "file://" + repo_path()});
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST_F(CliTest, DirectoryThatIsNotARepositoryExits4) {
  ASSERT_EQ(mkdir(dir_.Join("empty").c_str(), 0700), 0);
  for (const char* command : {"log", "verify"}) {
    RunResult r = Run({command, "--repo", dir_.Join("empty")});
    EXPECT_EQ(r.code, 4) << r.err;
    EXPECT_NE(r.err.find("not an ickpt repository"), std::string::npos) << r.err;
  }
  EXPECT_EQ(Run({"log", "--repo", dir_.Join("missing")}).code, 4);
  // Nothing was created.
  EXPECT_TRUE(Tree(dir_.Join("empty")).empty());
  struct stat st;
  EXPECT_NE(stat(dir_.Join("missing").c_str(), &st), 0);
}

TEST_F(CliTest, UsageErrorsExit2AndHelpExits0) {
  MakeRepo({{}});
  EXPECT_EQ(RunOnRepo({"log", "--bogus"}).code, 2);
  EXPECT_EQ(Run({"log"}).code, 2);  // --repo is required
  EXPECT_EQ(Run({}).code, 2);
  EXPECT_EQ(RunOnRepo({"show", "abc"}).code, 2);
  EXPECT_EQ(Run({"frobnicate"}).code, 2);
  RunResult help = Run({"--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("Exit codes"), std::string::npos);
  EXPECT_EQ(Run({"log", "--help"}).code, 0);
  RunResult version = Run({"--version"});
  EXPECT_EQ(version.code, 0);
  EXPECT_NE(version.out.find("ickpt"), std::string::npos);
}

TEST_F(CliTest, RestoreWritesTheRegionAtThatCheckpoint) {
  MakeRepo({{}, {0, 1, 2}, {40}});
  for (uint64_t id : ids_) {
    const std::string out = io_.Join("restored-" + std::to_string(id));
    RunResult r = RunOnRepo({"restore", std::to_string(id), "--region", "r", "--out", out});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(ReadFileOrEmpty(out), contents_[id]) << "checkpoint " << id;
  }
  RunResult r = RunOnRepo({"restore", "latest", "--region", "r", "--out", io_.Join("latest")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ReadFileOrEmpty(io_.Join("latest")), contents_[ids_.back()]);
  // No temporary file is left behind.
  for (const std::string& name : Tree(io_.path())) {
    EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
  }
}

TEST_F(CliTest, FlippedPackByteIsReportedAndRestoreWritesNothing) {
  MakeRepo({{}});
  const std::vector<std::string> packs = Keys("packs/");
  ASSERT_EQ(packs.size(), 1u);
  // Offset 100 lies inside frame 0 (frames start right after the 16-byte header): its checksum
  // no longer matches, while the index and footer still parse.
  FlipByte(packs[0], 100);

  RunResult verify = RunOnRepo({"verify", "--data", "--json"});
  EXPECT_EQ(verify.code, 3) << verify.err;
  const json j = json::parse(verify.out);
  EXPECT_FALSE(j["ok"].get<bool>());
  ASSERT_EQ(j["damaged"].size(), 1u);
  EXPECT_EQ(j["damaged"][0]["key"], packs[0]);
  EXPECT_NE(verify.err.find(packs[0]), std::string::npos);

  const std::string out = io_.Join("out");
  RunResult restore = RunOnRepo({"restore", "latest", "--region", "r", "--out", out});
  EXPECT_EQ(restore.code, 3) << restore.err;
  EXPECT_NE(restore.err.find(packs[0]), std::string::npos) << restore.err;
  const std::vector<std::string> left = Tree(io_.path());
  for (const std::string& name : left) {
    EXPECT_TRUE(name == "stdout" || name == "stderr") << "left behind: " << name;
  }
}

TEST_F(CliTest, TruncatedCommitRecordMakesLogAndVerifyExit3) {
  MakeRepo({{}, {5}, {6}});
  const std::string key = CommitKey(ids_[1]);
  const std::string path = repo_path() + "/" + key;
  chmod(path.c_str(), 0600);
  const std::string bytes = ReadFileOrEmpty(path);
  ASSERT_EQ(truncate(path.c_str(), static_cast<off_t>(bytes.size() / 2)), 0);

  RunResult log = RunOnRepo({"log", "--json"});
  EXPECT_EQ(log.code, 3) << log.err;
  EXPECT_NE(log.err.find(key), std::string::npos) << log.err;
  const json j = json::parse(log.out);
  ASSERT_EQ(j.size(), 2u);  // the others are still listed
  EXPECT_EQ(j[0]["id"].get<uint64_t>(), ids_[0]);
  EXPECT_EQ(j[1]["id"].get<uint64_t>(), ids_[2]);

  for (bool data : {false, true}) {
    std::vector<std::string> args = {"verify", "--json"};
    if (data) args.push_back("--data");
    RunResult verify = RunOnRepo(args);
    EXPECT_EQ(verify.code, 3) << verify.err;
    const json v = json::parse(verify.out);
    bool named = false;
    for (const json& d : v["damaged"]) named |= d["key"] == key;
    EXPECT_TRUE(named) << verify.out;
  }
}

// Coordinator epochs (format.md §15): a new coordinator began epoch 1 from the first checkpoint
// while the two after it were being committed without one (the race of §15.5), so they are fenced.
// log and show say so, "latest" skips them, verify does not call them damage; a damaged epoch
// record is damage (exit 3) naming it.
TEST_F(CliTest, FencedCommitsAreMarkedByLogAndShowAndAreNotDamage) {
  MakeRepo({{}, {3}, {5}});
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<ObjectStore> store, OpenLocalStore(repo_path()));
    EpochRecord record;
    record.epoch = 1;
    record.base = ids_[0];
    record.created = absl::Now();
    record.leader = "coordinator-a";
    ASSERT_OK(store->Publish(EpochKey(1), EncodeEpochRecord(record)));
  }
  const json log = RunJson({"log", "--json"});
  ASSERT_EQ(log.size(), 3u);
  EXPECT_TRUE(log[0]["fenced_by"].is_null());
  EXPECT_EQ(log[1]["fenced_by"].get<uint64_t>(), 1u);
  EXPECT_EQ(log[2]["fenced_by"].get<uint64_t>(), 1u);
  RunResult text = RunOnRepo({"log"});
  EXPECT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("fenced by epoch 1"), std::string::npos) << text.out;

  const json latest = RunJson({"show", "latest", "--json"});
  EXPECT_EQ(latest["id"].get<uint64_t>(), ids_[0]);
  EXPECT_TRUE(latest["fenced_by"].is_null());
  const json fenced = RunJson({"show", std::to_string(ids_[2]), "--json"});
  EXPECT_EQ(fenced["fenced_by"].get<uint64_t>(), 1u);
  RunResult shown = RunOnRepo({"show", std::to_string(ids_[2])});
  EXPECT_EQ(shown.code, 0) << shown.err;
  EXPECT_NE(shown.out.find("fenced:        by epoch 1"), std::string::npos) << shown.out;

  for (bool data : {false, true}) {
    std::vector<std::string> args = {"verify", "--json"};
    if (data) args.push_back("--data");
    RunResult verify = RunOnRepo(args);
    EXPECT_EQ(verify.code, 0) << verify.out << verify.err;
    EXPECT_TRUE(json::parse(verify.out)["ok"].get<bool>()) << verify.out;
  }

  const std::string key = EpochKey(1);
  FlipByte(key, 20);
  RunResult damaged_log = RunOnRepo({"log", "--json"});
  EXPECT_EQ(damaged_log.code, 3) << damaged_log.err;
  EXPECT_NE(damaged_log.err.find(key), std::string::npos) << damaged_log.err;
  EXPECT_EQ(RunOnRepo({"show", "latest"}).code, 3);
  RunResult verify = RunOnRepo({"verify", "--data", "--json"});
  EXPECT_EQ(verify.code, 3) << verify.err;
  const json report = json::parse(verify.out);
  bool named = false;
  for (const json& d : report["damaged"]) named |= d["key"] == key;
  EXPECT_TRUE(named) << verify.out;
}

TEST_F(CliTest, OrphanPackIsListedByVerifyDataWithExit0) {
  MakeRepo({{}, {2}});
  PackBuilder builder;
  builder.AddFrame(EncodeFrame(RandomBytes(kBlock, 77), 3));
  const FinishedPack pack = builder.Finish();
  const std::string key = PackKey(pack.sha256_hex);
  {
    // An object no commit record names, put beside the repository's own.
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<ObjectStore> store, OpenLocalStore(repo_path()));
    ASSERT_OK(store->Put(key, pack.bytes));
  }
  RunResult verify = RunOnRepo({"verify", "--data", "--json"});
  EXPECT_EQ(verify.code, 0) << verify.err;
  const json j = json::parse(verify.out);
  EXPECT_TRUE(j["ok"].get<bool>());
  EXPECT_EQ(j["commits"], 2);
  EXPECT_TRUE(j["damaged"].empty());
  ASSERT_EQ(j["orphans"].size(), 1u);
  EXPECT_EQ(j["orphans"][0], key);
  EXPECT_GE(j["checked_objects"].get<int>(), 5);  // config, 2 commits, 2 manifests, packs, ids
  EXPECT_NE(verify.err.find(key), std::string::npos);
  // Without --data, only what commits reach is checked: the orphan is not looked at.
  EXPECT_EQ(RunOnRepo({"verify"}).code, 0);
}

TEST_F(CliTest, DiffListsTheExtentsWrittenBetweenTwoCheckpoints) {
  MakeRepo({{}, {3, 4, 5, 10}});
  const json d = RunJson({"diff", std::to_string(ids_[0]), std::to_string(ids_[1]), "--json"});
  EXPECT_EQ(d["a"].get<uint64_t>(), ids_[0]);
  EXPECT_EQ(d["b"].get<uint64_t>(), ids_[1]);
  ASSERT_EQ(d["state_objects"].size(), 1u);
  const json& so = d["state_objects"][0];
  EXPECT_EQ(so["name"], "r");
  EXPECT_EQ(so["participant"], "p0");
  EXPECT_EQ(so["status"], "changed");
  EXPECT_EQ(so["changed_bytes"].get<uint64_t>(), 4 * kBlock);
  ASSERT_EQ(so["extents"].size(), 2u);
  EXPECT_EQ(so["extents"][0]["offset"].get<uint64_t>(), 3 * kBlock);
  EXPECT_EQ(so["extents"][0]["length"].get<uint64_t>(), 3 * kBlock);
  EXPECT_EQ(so["extents"][1]["offset"].get<uint64_t>(), 10 * kBlock);
  EXPECT_EQ(so["extents"][1]["length"].get<uint64_t>(), kBlock);
  EXPECT_EQ(d["changed_bytes"].get<uint64_t>(), 4 * kBlock);

  const json same = RunJson({"diff", "latest", "latest", "--json"});
  EXPECT_EQ(same["state_objects"][0]["status"], "same");
  EXPECT_EQ(same["changed_bytes"], 0);
  EXPECT_EQ(RunOnRepo({"diff", std::to_string(ids_[0]), "latest"}).code, 0);
}

TEST_F(CliTest, ReadCommandsLeaveTheRepositoryByteIdentical) {
  MakeRepo({{}, {1, 2}, {9}});
  const std::string before = TreeHash(repo_path());
  const std::string first = std::to_string(ids_[0]);
  const std::vector<std::vector<std::string>> commands = {
      {"log"},
      {"log", "--json"},
      {"show", "latest"},
      {"show", first, "--json"},
      {"verify"},
      {"verify", "--data", "--json"},
      {"diff", first, "latest", "--json"},
      {"restore", "latest", "--region", "r", "--out", io_.Join("out")},
      {"show", "999"},
      {"policy"},
      {"policy", "--json", "--rto", "1h", "--mtbf", "1d"},
  };
  for (const auto& command : commands) RunOnRepo(command);
  EXPECT_EQ(TreeHash(repo_path()), before);
}

TEST_F(CliTest, DemoRecoversFromAKillBitExact) {
  RunResult r =
      Run({"demo", "--repo", dir_.Join("demo"), "--size", "16MiB", "--steps", "8", "--json"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  const json j = json::parse(r.out);
  EXPECT_TRUE(j["verified"].get<bool>());
  EXPECT_GE(j["kills"].get<int>(), 1);
  EXPECT_GE(j["restores"].get<int>(), 1);
  EXPECT_FALSE(j["checkpoints"].empty());
  // The repository directory holds only repository objects.
  for (const std::string& rel : Tree(dir_.Join("demo"))) {
    const bool known =
        rel == "config" || rel.starts_with("packs/") || rel.starts_with("manifests/") ||
        rel.starts_with("commits/") || rel.starts_with("ids/") || rel.starts_with("policy/") ||
        rel.starts_with("condemned/") || rel.starts_with("locks/") || rel.starts_with("merges/") ||
        rel == "index/" || rel == "index/latest-commit";
    EXPECT_TRUE(known) << rel;
  }
  // The demo consolidates the latest checkpoint (format.md §14), verified against its chain.
  EXPECT_FALSE(j["consolidation"]["consolidated_checkpoints"].empty());
  EXPECT_EQ(j["consolidation"]["latest"]["links_after"].get<int>(), 2);  // region + keyed state
  EXPECT_EQ(Run({"verify", "--data", "--repo", dir_.Join("demo")}).code, 0);
}

TEST_F(CliTest, DoctorJsonListsEveryTrackerInOrderAndSelectsOneThatWorks) {
  RunResult r = Run({"doctor", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_TRUE(j.is_object());
  // Exactly these two fields: scripts rely on the shape.
  EXPECT_EQ(j.size(), 2u) << j.dump();
  ASSERT_TRUE(j.contains("selected") && j["selected"].is_string()) << j.dump();
  ASSERT_TRUE(j.contains("trackers") && j["trackers"].is_array()) << j.dump();
  const std::vector<std::string> expected = {"uffd-async", "soft-dirty", "uffd-sync",
                                             "mprotect",   "hash",       "explicit"};
  std::vector<std::string> names;
  std::map<std::string, json> by_name;
  for (const json& t : j["trackers"]) {
    ASSERT_TRUE(t.is_object()) << t.dump();
    EXPECT_EQ(t.size(), 3u) << t.dump();
    ASSERT_TRUE(t.contains("name") && t["name"].is_string()) << t.dump();
    ASSERT_TRUE(t.contains("works") && t["works"].is_boolean()) << t.dump();
    ASSERT_TRUE(t.contains("reason") && t["reason"].is_string()) << t.dump();
    EXPECT_FALSE(t["reason"].get<std::string>().empty()) << t.dump();
    names.push_back(t["name"].get<std::string>());
    by_name[names.back()] = t;
  }
  EXPECT_EQ(names, expected);
  EXPECT_TRUE(by_name["hash"]["works"].get<bool>());
  EXPECT_TRUE(by_name["explicit"]["works"].get<bool>());
  const std::string selected = j["selected"].get<std::string>();
  ASSERT_TRUE(by_name.count(selected)) << selected;
  EXPECT_TRUE(by_name[selected]["works"].get<bool>()) << selected;
  // 'auto' never picks explicit silently: it sees nothing by itself.
  EXPECT_NE(selected, "explicit");
  // The preferred one: no tracker listed before the selected one works.
  for (const std::string& name : names) {
    if (name == selected) break;
    EXPECT_FALSE(by_name[name]["works"].get<bool>())
        << name << " works but " << selected << " was selected";
  }
  // On kernels without CONFIG_MEM_SOFT_DIRTY (the CI machines) soft-dirty says why it does not
  // work; where it works, its reason says so. Either way the reason is not empty (checked above).
  if (!by_name["soft-dirty"]["works"].get<bool>()) {
    EXPECT_FALSE(by_name["soft-dirty"]["reason"].get<std::string>().empty());
  }
}

TEST_F(CliTest, DoctorTextNamesEveryTrackerTheSelectionAndMarkDirtyNote) {
  RunResult r = Run({"doctor"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* name :
       {"uffd-async", "soft-dirty", "uffd-sync", "mprotect", "hash", "explicit"}) {
    EXPECT_NE(r.out.find(name), std::string::npos) << name << "\n" << r.out;
  }
  EXPECT_NE(r.out.find("selected"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("MarkDirty"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("O_DIRECT"), std::string::npos) << r.out;
  // Needs no repository, and a repository argument is a usage error.
  EXPECT_EQ(Run({"doctor", "--repo", dir_.Join("x")}).code, 2);
}

// ---- Keyed states ----

using Entries = std::map<std::string, std::string>;

constexpr uint32_t kKeyGroups = 8;
// Keys and values chosen for what JSON and a terminal make hard: bytes 0x00 and 0xff (not UTF-8),
// the empty key, a 0-byte value, a value of a few MiB, and multi-byte UTF-8 text.
const std::string kBinaryKey("\x00\xff\x01k", 4);
const std::string kBinaryValue("\xff\xfe\x00v", 4);
const std::string kUtf8Key = "schl\xc3\xbcssel \xe2\x9c\x93";  // "schlüssel ✓"
const std::string kInvalidUtf8Value = "\x80\xc0\xaf";          // lone continuation, overlong
constexpr size_t kBigValueSize = (size_t{3} << 20) + 17;

class CliKeyedTest : public CliTest {
 protected:
  // Checkpoint 1 (full): region "r" and keyed state "kv" with kKeyGroups groups holding the
  // special entries above and 300 ordinary ones. Checkpoint 2 (incremental): "hello" changes,
  // "erased" is erased, "new" is added (a value that is not UTF-8). at_[id] is "kv" at each.
  void MakeKeyedRepo() {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Repository> repo,
                         Repository::OpenLocal(repo_path(), /*create=*/true));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Checkpointer> ckpt, Checkpointer::Open(repo.get()));
    RegionOptions region_options;
    region_options.size = 4 * kBlock;
    region_options.tracker = TrackerKind::kHash;
    ASSERT_OK_AND_ASSIGN(Region * region, ckpt->AddRegion("r", region_options));
    std::fill(region->data(), region->data() + region->size(), 'r');
    KeyedStateOptions keyed_options;
    keyed_options.key_groups = kKeyGroups;
    ASSERT_OK_AND_ASSIGN(KeyedState * kv, ckpt->AddKeyedState("kv", keyed_options));
    big_value_ = RandomBytes(kBigValueSize, 9);
    Entries first = {{"hello", "world"},         {"", "the empty key"},
                     {kBinaryKey, kBinaryValue}, {"zero", ""},
                     {"big", big_value_},        {kUtf8Key, "gr\xc3\xbc\xc3\x9f"},
                     {"erased", "soon gone"}};
    for (int i = 0; i < 300; ++i) first[fmt::format("key-{:03}", i)] = fmt::format("value {}", i);
    for (const auto& [k, v] : first) ASSERT_OK(kv->Put(k, v));
    ASSERT_NO_FATAL_FAILURE(Checkpoint(ckpt.get(), *kv));
    ASSERT_OK(kv->Put("hello", "world, again"));
    ASSERT_TRUE(kv->Erase("erased"));
    ASSERT_OK(kv->Put("new", kInvalidUtf8Value));
    ASSERT_NO_FATAL_FAILURE(Checkpoint(ckpt.get(), *kv));
  }

  // Takes a checkpoint and remembers what `kv` held at it.
  void Checkpoint(Checkpointer* ckpt, const KeyedState& kv) {
    ASSERT_OK_AND_ASSIGN(CheckpointHandle handle, ckpt->Checkpoint());
    ASSERT_OK_AND_ASSIGN(CommitRecord record, handle.Wait());
    Entries& entries = at_[record.id];
    kv.ForEach([&](std::string_view k, std::string_view v) { entries.emplace(k, v); });
    ids_.push_back(record.id);
  }

  // The keyed state object of `show --json` output (its only one), or a null json.
  static json KeyedObject(const json& show) {
    for (const json& o : show["state_objects"]) {
      if (o["type"] == "keyed") return o;
    }
    return json();
  }

  // The pack keys a manifest (by its key) references.
  std::vector<std::string> ManifestPacks(const std::string& manifest_key) {
    std::vector<std::string> out;
    const std::string bytes = ReadFileOrEmpty(repo_path() + "/" + manifest_key);
    absl::StatusOr<Manifest> m = DecodeManifest(bytes, manifest_key);
    EXPECT_TRUE(m.ok()) << m.status();
    if (!m.ok()) return out;
    for (const Sha256Digest& d : m->packs) out.push_back(PackKey(ToHex(d)));
    return out;
  }

  // Parses dump output: every line one object; decodes base64 fields. Fails the test on a
  // duplicate key or a malformed line. `base64_keys`/`base64_values` collect what was base64.
  Entries ParseDump(const std::string& out, std::vector<std::string>* base64_keys = nullptr,
                    std::vector<std::string>* base64_values = nullptr) {
    Entries entries;
    std::istringstream lines(out);
    std::string line;
    while (std::getline(lines, line)) {
      const json j = json::parse(line);
      EXPECT_EQ(j.size(), 4u) << line.substr(0, 200);
      std::string key = j["key"].get<std::string>();
      std::string value = j["value"].get<std::string>();
      if (j["key_base64"].get<bool>()) {
        std::string decoded;
        EXPECT_TRUE(absl::Base64Unescape(key, &decoded)) << key;
        key = decoded;
        if (base64_keys != nullptr) base64_keys->push_back(key);
      }
      if (j["value_base64"].get<bool>()) {
        std::string decoded;
        EXPECT_TRUE(absl::Base64Unescape(value, &decoded));
        value = decoded;
        if (base64_values != nullptr) base64_values->push_back(key);
      }
      EXPECT_TRUE(entries.emplace(key, value).second) << "key twice: " << absl::CEscape(key);
    }
    EXPECT_TRUE(out.empty() || out.back() == '\n');
    return entries;
  }

  std::string big_value_;
  std::map<uint64_t, Entries> at_;
};

// EXPECT_EQ on maps holding a 3 MiB value would print it; this names the first difference only.
::testing::AssertionResult SameEntries(const Entries& got, const Entries& want) {
  for (const auto& [k, v] : want) {
    auto it = got.find(k);
    if (it == got.end()) return ::testing::AssertionFailure() << "missing " << absl::CEscape(k);
    if (it->second != v) {
      return ::testing::AssertionFailure() << "value of " << absl::CEscape(k) << " differs ("
                                           << it->second.size() << " vs " << v.size() << " bytes)";
    }
  }
  for (const auto& [k, v] : got) {
    if (!want.contains(k)) return ::testing::AssertionFailure() << "extra " << absl::CEscape(k);
  }
  return ::testing::AssertionSuccess();
}

std::string Hex(std::string_view bytes) {
  return absl::BytesToHexString(absl::string_view(bytes.data(), bytes.size()));
}

uint64_t EntryBytes(const Entries& entries) {
  uint64_t out = 0;
  for (const auto& [k, v] : entries) out += k.size() + v.size();
  return out;
}

TEST_F(CliKeyedTest, ShowListsKeyedStatesWithEntryCountsAndBytes) {
  ASSERT_NO_FATAL_FAILURE(MakeKeyedRepo());
  const Entries& latest = at_[ids_[1]];
  const json show = RunJson({"show", "latest", "--json"});
  const json kv = KeyedObject(show);
  ASSERT_TRUE(kv.is_object()) << show.dump(2);
  EXPECT_EQ(kv["name"], "kv");
  EXPECT_EQ(kv["participant"], "p0");
  EXPECT_EQ(kv["kind"], "incremental");
  EXPECT_EQ(kv["depth"], 1);
  EXPECT_EQ(kv["key_groups"].get<uint32_t>(), kKeyGroups);
  EXPECT_EQ(kv["entries"].get<uint64_t>(), latest.size());
  EXPECT_EQ(kv["logical_bytes"].get<uint64_t>(), EntryBytes(latest));
  EXPECT_EQ(kv["changed_entries"].get<uint64_t>(), 3u);  // hello, new, and erased's tombstone
  EXPECT_EQ(kv["tombstones"].get<uint64_t>(), 1u);
  EXPECT_GT(kv["stored_bytes"].get<uint64_t>(), 0u);
  // Region objects keep exactly their fields.
  ASSERT_EQ(show["state_objects"].size(), 2u);
  for (const json& o : show["state_objects"]) {
    if (o["type"] != "region") continue;
    EXPECT_EQ(o["name"], "r");
    for (const char* field : {"entries", "changed_entries", "tombstones", "key_groups"}) {
      EXPECT_FALSE(o.contains(field)) << field;
    }
  }
  ASSERT_EQ(show["keyed_states"].size(), 1u);
  const json& total = show["keyed_states"][0];
  EXPECT_EQ(total["name"], "kv");
  EXPECT_EQ(total["entries"].get<uint64_t>(), latest.size());
  EXPECT_EQ(total["logical_bytes"].get<uint64_t>(), EntryBytes(latest));
  EXPECT_EQ(total["key_groups"].get<uint32_t>(), kKeyGroups);
  EXPECT_EQ(total["participants"], json::array({"p0"}));

  const json first = KeyedObject(RunJson({"show", std::to_string(ids_[0]), "--json"}));
  EXPECT_EQ(first["kind"], "full");
  EXPECT_EQ(first["entries"].get<uint64_t>(), at_[ids_[0]].size());
  EXPECT_EQ(first["changed_entries"].get<uint64_t>(), at_[ids_[0]].size());
  EXPECT_EQ(first["tombstones"].get<uint64_t>(), 0u);

  const RunResult text = RunOnRepo({"show", "latest"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("p0/kv (keyed, 8 key groups)"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(fmt::format("{} entries", latest.size())), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("3 changed entries (1 tombstones"), std::string::npos) << text.out;
}

TEST_F(CliKeyedTest, GetWritesTheRawValueAndExits4ForAnAbsentKey) {
  ASSERT_NO_FATAL_FAILURE(MakeKeyedRepo());
  const std::string first = std::to_string(ids_[0]);
  auto get = [&](const std::string& id, std::vector<std::string> key_args) {
    std::vector<std::string> args = {"get", id, "--state", "kv"};
    args.insert(args.end(), key_args.begin(), key_args.end());
    return RunOnRepo(args);
  };
  struct Case {
    std::string id;
    std::vector<std::string> key_args;
    std::string value;
  };
  const std::vector<Case> cases = {
      {"latest", {"hello"}, "world, again"},
      {first, {"hello"}, "world"},
      {first, {"erased"}, "soon gone"},
      {"latest", {"--key-hex", Hex(kBinaryKey)}, kBinaryValue},
      {"latest", {"--key-hex", absl::AsciiStrToUpper(Hex(kBinaryKey))}, kBinaryValue},
      {"latest", {kUtf8Key}, "gr\xc3\xbc\xc3\x9f"},
      {"latest", {"zero"}, ""},
      {"latest", {"new"}, kInvalidUtf8Value},
      {"latest", {"big"}, big_value_},
      {"latest", {""}, "the empty key"},
      {"latest", {"--key-hex", ""}, "the empty key"},
      {"latest", {"--newline", "hello"}, "world, again\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.id + " " + absl::CEscape(c.key_args.back()));
    const RunResult r = get(c.id, c.key_args);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out.size(), c.value.size());
    EXPECT_TRUE(r.out == c.value);  // not EXPECT_EQ: it would print 3 MiB
    EXPECT_TRUE(r.err.empty()) << r.err;
  }

  // Absent: erased at the latest checkpoint, or never put; the state or checkpoint does not exist.
  const std::vector<std::vector<std::string>> absent = {
      {"get", "latest", "--state", "kv", "erased"},
      {"get", "latest", "--state", "kv", "nope"},
      {"get", "latest", "--state", "kv", "--key-hex", "00"},
      {"get", "latest", "--state", "nosuch", "hello"},
      {"get", "999", "--state", "kv", "hello"},
  };
  for (const auto& args : absent) {
    const RunResult r = RunOnRepo(args);
    EXPECT_EQ(r.code, 4) << args[4] << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_NE(r.err.find("ickpt: error: "), std::string::npos) << r.err;
  }
  EXPECT_NE(get("latest", {"nope"}).err.find("'nope'"), std::string::npos);
  EXPECT_NE(get("latest", {"--key-hex", "00ff"}).err.find("0x00ff"), std::string::npos);

  // A region is not a keyed state: a failure naming the command that reads it.
  const RunResult region = RunOnRepo({"get", "latest", "--state", "r", "x"});
  EXPECT_EQ(region.code, 1) << region.err;
  EXPECT_NE(region.err.find("ickpt restore"), std::string::npos) << region.err;

  // Usage errors: both KEY and --key-hex, neither, hex that is not hex.
  EXPECT_EQ(get("latest", {"hello", "--key-hex", "00"}).code, 2);
  EXPECT_EQ(get("latest", {}).code, 2);
  EXPECT_EQ(get("latest", {"--key-hex", "zz"}).code, 2);
  EXPECT_EQ(get("latest", {"--key-hex", "abc"}).code, 2);
  EXPECT_EQ(RunOnRepo({"get", "latest", "hello"}).code, 2);  // --state is required
}

TEST_F(CliKeyedTest, DumpWritesEveryEntryExactlyOnceWithBase64ForNonUtf8) {
  ASSERT_NO_FATAL_FAILURE(MakeKeyedRepo());
  for (uint64_t id : ids_) {
    SCOPED_TRACE(::testing::Message() << "checkpoint " << id);
    const RunResult r = RunOnRepo({"dump", std::to_string(id), "--state", "kv"});
    ASSERT_EQ(r.code, 0) << r.err;
    std::vector<std::string> base64_keys, base64_values;
    const Entries dumped = ParseDump(r.out, &base64_keys, &base64_values);
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'),
              static_cast<std::ptrdiff_t>(at_[id].size()));
    EXPECT_TRUE(SameEntries(dumped, at_[id]));
    // Exactly the keys and values that are not UTF-8 are base64.
    EXPECT_EQ(base64_keys, std::vector<std::string>{kBinaryKey});
    std::sort(base64_values.begin(), base64_values.end());
    std::vector<std::string> expected = {kBinaryKey, "big"};
    if (id == ids_[1]) expected.push_back("new");
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(base64_values, expected);
  }
  // UTF-8 text stays text in the output, the empty key and value are empty strings.
  const RunResult r = RunOnRepo({"dump", "latest", "--state", "kv"});
  EXPECT_NE(r.out.find("{\"key\":\"" + kUtf8Key +
                       "\",\"key_base64\":false,\"value\":\"gr\xc3\xbc"
                       "\xc3\x9f\",\"value_base64\":false}\n"),
            std::string::npos);
  EXPECT_NE(r.out.find("{\"key\":\"\",\"key_base64\":false,\"value\":\"the empty key\""),
            std::string::npos);
  EXPECT_NE(r.out.find("{\"key\":\"zero\",\"key_base64\":false,\"value\":\"\","),
            std::string::npos);
  EXPECT_EQ(r.out.find("\"key\":\"erased\""), std::string::npos) << "an erased key is dumped";

  EXPECT_EQ(RunOnRepo({"dump", "latest", "--state", "nosuch"}).code, 4);
  EXPECT_EQ(RunOnRepo({"dump", "999", "--state", "kv"}).code, 4);
  EXPECT_EQ(RunOnRepo({"dump", "latest", "--state", "r"}).code, 1);
  EXPECT_EQ(RunOnRepo({"dump", "latest"}).code, 2);
}

TEST_F(CliKeyedTest, VerifyReadsEveryKeyedRecordOnceAndReachesKeyedPacks) {
  ASSERT_NO_FATAL_FAILURE(MakeKeyedRepo());
  const std::string before = TreeHash(repo_path());
  uint64_t records = 0;  // in the two keyed manifests: the full one and the incremental one
  for (uint64_t id : ids_) {
    records += KeyedObject(RunJson({"show", std::to_string(id), "--json"}))["changed_entries"]
                   .get<uint64_t>();
  }
  const json v = RunJson({"verify", "--json"});
  EXPECT_TRUE(v["ok"].get<bool>()) << v.dump(2);
  EXPECT_TRUE(v["damaged"].empty());
  EXPECT_EQ(v["commits"], 2);
  // Checkpoint 2's chain holds checkpoint 1's manifest too: each is read once all the same.
  EXPECT_EQ(v["keyed_records"].get<uint64_t>(), records);

  const json data = RunJson({"verify", "--data", "--json"});
  EXPECT_TRUE(data["ok"].get<bool>()) << data.dump(2);
  EXPECT_TRUE(data["orphans"].empty()) << data.dump(2);  // keyed packs are reached

  // Nothing keyed reading does writes to the repository.
  for (const auto& command :
       std::vector<std::vector<std::string>>{{"get", "latest", "--state", "kv", "hello"},
                                             {"dump", "latest", "--state", "kv"},
                                             {"diff", std::to_string(ids_[0]), "latest", "--json"},
                                             {"show", "latest"},
                                             {"log"}}) {
    EXPECT_EQ(RunOnRepo(command).code, 0) << command[0];
  }
  EXPECT_EQ(TreeHash(repo_path()), before);
}

TEST_F(CliKeyedTest, FlippedByteInAKeyedPackIsDamageForVerifyGetAndDump) {
  ASSERT_NO_FATAL_FAILURE(MakeKeyedRepo());
  const std::string first = std::to_string(ids_[0]);
  const std::string manifest_key =
      KeyedObject(RunJson({"show", first, "--json"}))["manifest"].get<std::string>();
  ASSERT_OK_AND_ASSIGN(
      Manifest manifest,
      DecodeManifest(ReadFileOrEmpty(repo_path() + "/" + manifest_key), manifest_key));
  ASSERT_FALSE(manifest.packs.empty());
  const std::string pack = PackKey(ToHex(manifest.packs[0]));
  // The group whose records open pack 0's raw stream, so they lie in frame 0; a key of it.
  std::optional<uint32_t> group;
  for (const KeyGroupSpan& span : manifest.groups) {
    if (span.pack_ref == 1 && span.raw_offset == 0) group = span.group;
  }
  ASSERT_TRUE(group.has_value());
  std::optional<std::string> key;
  for (const auto& [k, v] : at_[ids_[0]]) {
    if (KeyGroupOf(k, kKeyGroups) == *group) key = k;
  }
  ASSERT_TRUE(key.has_value());
  ASSERT_EQ(RunOnRepo({"get", first, "--state", "kv", "--key-hex", Hex(*key)}).code, 0);

  // Offset 100 lies inside frame 0 (frames start right after the 16-byte header): its checksum
  // no longer matches, while the index and footer still parse, so only reading the records
  // finds it.
  FlipByte(pack, 100);

  for (bool data : {false, true}) {
    SCOPED_TRACE(data ? "--data" : "structure");
    std::vector<std::string> args = {"verify", "--json"};
    if (data) args.push_back("--data");
    const RunResult r = RunOnRepo(args);
    EXPECT_EQ(r.code, 3) << r.err;
    const json j = json::parse(r.out);
    EXPECT_FALSE(j["ok"].get<bool>());
    ASSERT_EQ(j["damaged"].size(), 1u) << j.dump(2);
    EXPECT_EQ(j["damaged"][0]["key"], pack);
    EXPECT_NE(r.err.find(pack), std::string::npos) << r.err;
  }

  const RunResult get = RunOnRepo({"get", first, "--state", "kv", "--key-hex", Hex(*key)});
  EXPECT_EQ(get.code, 3) << get.err;
  EXPECT_TRUE(get.out.empty());
  EXPECT_NE(get.err.find(pack), std::string::npos) << get.err;
  for (const std::string& id : {first, std::string("latest")}) {
    const RunResult dump = RunOnRepo({"dump", id, "--state", "kv"});
    EXPECT_EQ(dump.code, 3) << dump.err;
    EXPECT_NE(dump.err.find(pack), std::string::npos) << dump.err;
  }
  // The region's packs are others: it still restores.
  const RunResult restore =
      RunOnRepo({"restore", "latest", "--region", "r", "--out", io_.Join("r")});
  EXPECT_EQ(restore.code, 0) << restore.err;
  EXPECT_EQ(ReadFileOrEmpty(io_.Join("r")), std::string(4 * kBlock, 'r'));
}

TEST_F(CliKeyedTest, DiffCountsAddedRemovedAndChangedEntries) {
  ASSERT_NO_FATAL_FAILURE(MakeKeyedRepo());
  const std::string a = std::to_string(ids_[0]), b = std::to_string(ids_[1]);
  auto objects = [](const json& d) {
    std::map<std::string, json> out;
    for (const json& o : d["state_objects"]) out[o["type"].get<std::string>()] = o;
    return out;
  };
  // The key and value bytes of the entries that differ, with the value on the newer side.
  const uint64_t forward = (3 + kInvalidUtf8Value.size()) +  // "new" added
                           (5 + 12) +                        // "hello" -> "world, again"
                           (6 + 9);                          // "erased" ("soon gone") removed
  const uint64_t backward = (6 + 9) + (5 + 5) + (3 + kInvalidUtf8Value.size());
  for (const auto& [from, to, bytes] : {std::tuple{a, b, forward}, std::tuple{b, a, backward}}) {
    SCOPED_TRACE(from + " -> " + to);
    const json d = RunJson({"diff", from, to, "--json"});
    EXPECT_EQ(d["changed_bytes"].get<uint64_t>(), bytes);
    std::map<std::string, json> by_type = objects(d);
    ASSERT_EQ(by_type.size(), 2u) << d.dump(2);
    const json& kv = by_type["keyed"];
    EXPECT_EQ(kv["name"], "kv");
    EXPECT_EQ(kv["participant"], "*");
    EXPECT_EQ(kv["status"], "changed");
    EXPECT_EQ(kv["added_entries"].get<uint64_t>(), 1u);
    EXPECT_EQ(kv["removed_entries"].get<uint64_t>(), 1u);
    EXPECT_EQ(kv["changed_entries"].get<uint64_t>(), 1u);
    EXPECT_EQ(kv["changed_bytes"].get<uint64_t>(), bytes);
    EXPECT_EQ(kv["changed_blocks"].get<uint64_t>(), 0u);
    EXPECT_TRUE(kv["extents"].empty());
    EXPECT_EQ(by_type["region"]["status"], "same");
    EXPECT_EQ(by_type["region"]["participant"], "p0");
    EXPECT_FALSE(by_type["region"].contains("added_entries"));
  }
  const json same = RunJson({"diff", "latest", "latest", "--json"});
  const json kv = objects(same)["keyed"];
  EXPECT_EQ(kv["status"], "same");
  EXPECT_EQ(kv["added_entries"].get<uint64_t>() + kv["removed_entries"].get<uint64_t>() +
                kv["changed_entries"].get<uint64_t>(),
            0u);
  const RunResult text = RunOnRepo({"diff", a, b});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("*/kv: changed (keyed), 1 added, 1 removed, 1 changed entries"),
            std::string::npos)
      << text.out;
}

TEST_F(CliKeyedTest, RestoreOfAKeyedStatePointsToDumpAndLogStillWorks) {
  ASSERT_NO_FATAL_FAILURE(MakeKeyedRepo());
  const RunResult r = RunOnRepo({"restore", "latest", "--region", "kv", "--out", io_.Join("x")});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("keyed state"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ickpt dump"), std::string::npos) << r.err;
  for (const std::string& name : Tree(io_.path())) {
    EXPECT_TRUE(name == "stdout" || name == "stderr") << "left behind: " << name;
  }
  EXPECT_EQ(RunOnRepo({"restore", "latest", "--region", "r", "--out", io_.Join("r")}).code, 0);

  const json log = RunJson({"log", "--json"});
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[1]["kind"], "incremental");
  EXPECT_EQ(log[1]["logical_bytes"].get<uint64_t>(), 4 * kBlock + EntryBytes(at_[ids_[1]]));
  EXPECT_EQ(RunOnRepo({"log"}).code, 0);
}

// A keyed state split among two participants of a group checkpoint reads as one state: show sums
// it, get finds a key wherever its group lies, dump writes every entry once.
TEST_F(CliKeyedTest, StateSplitAmongParticipantsReadsAsOne) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Repository> repo,
                       Repository::OpenLocal(repo_path(), /*create=*/true));
  std::vector<std::unique_ptr<Checkpointer>> members;
  std::vector<KeyedState*> states;
  for (uint32_t i = 0; i < 2; ++i) {
    CheckpointerOptions options;
    options.participant = "p" + std::to_string(i);
    options.participant_index = i;
    options.participant_count = 2;
    options.group_member = true;
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Checkpointer> c, Checkpointer::Open(repo.get(), options));
    KeyedStateOptions keyed;
    keyed.key_groups = kKeyGroups;
    ASSERT_OK_AND_ASSIGN(KeyedState * s, c->AddKeyedState("kv", keyed));
    members.push_back(std::move(c));
    states.push_back(s);
  }
  Entries all;
  std::map<uint32_t, std::string> a_key_of;  // participant -> one of its keys
  for (int i = 0; i < 200; ++i) {
    const std::string key = "k" + std::to_string(i);
    const uint32_t group = KeyGroupOf(key, kKeyGroups);
    const uint32_t owner = group < OwnedKeyGroups(kKeyGroups, 0, 2).second ? 0 : 1;
    ASSERT_OK(states[owner]->Put(key, "v" + std::to_string(i)));
    all[key] = "v" + std::to_string(i);
    a_key_of[owner] = key;
  }
  ASSERT_EQ(a_key_of.size(), 2u);
  ASSERT_OK_AND_ASSIGN(uint64_t id, repo->ReserveCheckpointId());
  GroupCommitOptions commit;
  for (auto& member : members) {
    CheckpointOptions options;
    options.id = id;
    ASSERT_OK_AND_ASSIGN(CheckpointHandle h, member->Checkpoint(options));
    ASSERT_OK_AND_ASSIGN(CommitRecord ack, h.Wait());
    commit.participants.push_back(ack.participants[0].name);
  }
  ASSERT_OK(repo->CommitGroup(id, commit).status());

  const json show = RunJson({"show", "latest", "--json"});
  ASSERT_EQ(show["keyed_states"].size(), 1u);
  EXPECT_EQ(show["keyed_states"][0]["entries"].get<uint64_t>(), all.size());
  EXPECT_EQ(show["keyed_states"][0]["logical_bytes"].get<uint64_t>(), EntryBytes(all));
  EXPECT_EQ(show["keyed_states"][0]["participants"], json::array({"p0", "p1"}));
  EXPECT_EQ(show["state_objects"].size(), 2u);
  for (const auto& [owner, key] : a_key_of) {
    const RunResult r = RunOnRepo({"get", "latest", "--state", "kv", key});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, all[key]) << "participant " << owner;
  }
  const RunResult dump = RunOnRepo({"dump", "latest", "--state", "kv"});
  ASSERT_EQ(dump.code, 0) << dump.err;
  EXPECT_TRUE(SameEntries(ParseDump(dump.out), all));
  const json v = RunJson({"verify", "--data", "--json"});
  EXPECT_TRUE(v["ok"].get<bool>()) << v.dump(2);
  EXPECT_EQ(v["keyed_records"].get<uint64_t>(), all.size());

  // A damaged acknowledgement: restores never read one, so only verify --data finds it, naming it.
  const std::string ack_key = AckKey(id, "p1");
  const std::string ack_path = repo_path() + "/" + ack_key;
  std::string bytes = ReadFileOrEmpty(ack_path);
  ASSERT_FALSE(bytes.empty());
  bytes[bytes.size() / 2] ^= 0x20;
  ASSERT_EQ(chmod(ack_path.c_str(), 0600), 0);
  {
    std::ofstream out(ack_path, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  EXPECT_EQ(RunOnRepo({"verify"}).code, 0);
  const RunResult damaged = RunOnRepo({"verify", "--data", "--json"});
  EXPECT_EQ(damaged.code, 3) << damaged.err;
  const json d = json::parse(damaged.out);
  ASSERT_EQ(d["damaged"].size(), 1u) << d.dump(2);
  EXPECT_EQ(d["damaged"][0]["key"], ack_key);
}

// dump and diff remember the decided keys of one batch of key groups at a time: batches of whole
// groups, however small, read every entry exactly once.
TEST_F(CliKeyedTest, KeyGroupBatchesOfAnySizeReadEveryEntryOnce) {
  ASSERT_NO_FATAL_FAILURE(MakeKeyedRepo());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Repository> repo,
                       Repository::OpenLocal(repo_path(), /*create=*/false));
  ASSERT_OK_AND_ASSIGN(CommitRecord commit, repo->ReadCommit(ids_[1]));
  ASSERT_OK_AND_ASSIGN(ResolvedKeyed keyed, ResolveKeyed(*repo, commit, "kv"));
  uint64_t records = 0;
  for (const KeyedChain& chain : keyed.chains) {
    for (const Manifest& m : chain.manifests) {
      for (const KeyGroupSpan& g : m.groups) records += g.records;
    }
  }
  using Batches = std::vector<std::pair<uint32_t, uint32_t>>;
  EXPECT_EQ(cli::KeyGroupBatches({&keyed}, records), (Batches{{0, kKeyGroups}}));
  EXPECT_EQ(cli::KeyGroupBatches({}, 1), (Batches{{0, UINT32_MAX}}));
  ResolvedKeyed regrouped = keyed;  // states that disagree on G cannot share batches
  regrouped.key_groups = kKeyGroups / 2;
  EXPECT_EQ(cli::KeyGroupBatches({&keyed, &regrouped}, 1), (Batches{{0, UINT32_MAX}}));

  // One record per batch at most: every group (each holds several) is a batch of its own.
  const Batches tiny = cli::KeyGroupBatches({&keyed}, 1);
  ASSERT_EQ(tiny.size(), kKeyGroups);
  Entries read;
  for (size_t i = 0; i < tiny.size(); ++i) {
    EXPECT_EQ(tiny[i], std::make_pair(static_cast<uint32_t>(i), static_cast<uint32_t>(i + 1)));
    ASSERT_OK(cli::ForEachKeyedEntry(*repo, keyed, tiny[i].first, tiny[i].second,
                                     [&](std::string_view key, std::string_view value) {
                                       EXPECT_TRUE(read.emplace(key, value).second)
                                           << "twice: " << absl::CEscape(ToAbsl(key));
                                       return absl::OkStatus();
                                     }));
  }
  EXPECT_TRUE(SameEntries(read, at_[ids_[1]]));
}

// ---- retention, pins and gc (maintenance.cc, format.md §13) ----------------------------------

std::vector<uint64_t> IdList(const json& array) {
  EXPECT_TRUE(array.is_array()) << array.dump();
  std::vector<uint64_t> out;
  for (const json& id : array) out.push_back(id.get<uint64_t>());
  return out;
}

// Everything under `root` except locks/, which gc writes (its lock and probe) even when dry.
std::vector<std::string> TreeWithoutLocks(const std::string& root) {
  std::vector<std::string> out;
  for (const std::string& rel : Tree(root)) {
    if (!rel.starts_with("locks/")) out.push_back(rel);
  }
  return out;
}

TEST_F(CliTest, RetentionShowAndSetStoreNewGenerations) {
  MakeRepo({{}});
  // A repository created by format 1.3 starts with generation 1: keep the last 3, timeout 600 s.
  json show = RunJson({"retention", "show", "--json"});
  EXPECT_EQ(show["generation"], 1);
  EXPECT_EQ(show["keep_last"], 3);
  EXPECT_TRUE(show["keep_within_seconds"].is_null());
  EXPECT_EQ(show["checkpoint_timeout_seconds"], 600);
  ASSERT_TRUE(show["created"].is_string());
  EXPECT_EQ(show["created"].get<std::string>().back(), 'Z');
  EXPECT_EQ(show["keeps_everything"], false);
  EXPECT_EQ(show["pins"], json::array());
  EXPECT_EQ(show["condemned"], json::array());

  // set --json prints what show prints; the timeout carries over from generation 1.
  const json set =
      RunJson({"retention", "set", "--keep-last", "5", "--keep-within", "2h", "--json"});
  EXPECT_EQ(set["generation"], 2);
  EXPECT_EQ(set["keep_last"], 5);
  EXPECT_EQ(set["keep_within_seconds"], 7200);
  EXPECT_EQ(set["checkpoint_timeout_seconds"], 600);
  EXPECT_EQ(set["keeps_everything"], false);
  EXPECT_TRUE(set["pins"].is_array());
  show = RunJson({"retention", "show", "--json"});
  EXPECT_EQ(show, set);

  // Rules not given are not carried over; a timeout given replaces the old one.
  RunResult text =
      RunOnRepo({"retention", "set", "--keep-within", "90m", "--checkpoint-timeout", "30s"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_EQ(text.out,
            "retention policy generation 3: keep-last none, keep-within 1h30m, checkpoint timeout "
            "30s\n");
  show = RunJson({"retention", "show", "--json"});
  EXPECT_EQ(show["generation"], 3);
  EXPECT_TRUE(show["keep_last"].is_null());
  EXPECT_EQ(show["keep_within_seconds"], 5400);
  EXPECT_EQ(show["checkpoint_timeout_seconds"], 30);
  text = RunOnRepo({"retention", "set", "--keep-last", "2"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("generation 4: keep-last 2, keep-within none, checkpoint timeout 30s"),
            std::string::npos)
      << text.out;
  text = RunOnRepo({"retention", "show"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("retention policy generation 4: keep-last 2"), std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("pins: none"), std::string::npos) << text.out;
}

TEST_F(CliTest, RetentionSetUsageErrorsExit2AndWriteNothing) {
  MakeRepo({{}});
  const std::string before = TreeHash(repo_path());
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"retention", "set"},                                // neither rule
           {"retention", "set", "--checkpoint-timeout", "5m"},  // still neither rule
           {"retention", "set", "--keep-within", "2 hours"},    // not a duration
           {"retention", "set", "--keep-within", "1.5s"},       // not whole seconds
           {"retention", "set", "--keep-within", "0"},          // below 1 s
           {"retention", "set", "--keep-last", "0"},
           {"retention", "set", "--keep-last", "many"},
           {"retention", "set", "--keep-last", "2", "--checkpoint-timeout", "500ms"},
           {"retention"},  // a subcommand is required
       }) {
    const RunResult r = RunOnRepo(args);
    EXPECT_EQ(r.code, 2) << absl::StrJoin(args, " ") << ": " << r.err;
    EXPECT_NE(r.err.find("ickpt: error: "), std::string::npos) << r.err;
  }
  EXPECT_NE(RunOnRepo({"retention", "set"}).err.find("--keep-last"), std::string::npos);
  EXPECT_NE(RunOnRepo({"retention", "set", "--keep-last", "many"}).err.find("--keep-last many"),
            std::string::npos);
  EXPECT_NE(RunOnRepo({"retention", "set", "--keep-within", "2 hours"}).err.find("2 hours"),
            std::string::npos);
  EXPECT_EQ(TreeHash(repo_path()), before);

  // Not a repository: exit 4, and nothing is created.
  ASSERT_EQ(mkdir(dir_.Join("empty").c_str(), 0700), 0);
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"retention", "show", "--repo", dir_.Join("empty")},
           {"retention", "set", "--keep-last", "1", "--repo", dir_.Join("empty")},
           {"pin", "latest", "--name", "x", "--repo", dir_.Join("empty")},
           {"unpin", "x", "--repo", dir_.Join("empty")},
           {"gc", "--repo", dir_.Join("empty")},
           {"gc", "--repo", dir_.Join("missing")},
       }) {
    const RunResult r = Run(args);
    EXPECT_EQ(r.code, 4) << args[0] << ": " << r.err;
    EXPECT_NE(r.err.find("not an ickpt repository"), std::string::npos) << r.err;
  }
  EXPECT_TRUE(Tree(dir_.Join("empty")).empty());
  struct stat st;
  EXPECT_NE(stat(dir_.Join("missing").c_str(), &st), 0);
}

// A repository without a policy object (every repository made before format 1.3) keeps every
// committed checkpoint.
TEST_F(CliTest, RepositoryWithoutPolicyKeepsEverything) {
  {
    RepositoryOptions options;
    options.retention = std::nullopt;
    ASSERT_OK(Repository::OpenLocal(repo_path(), /*create=*/true, options).status());
  }
  MakeRepo({{}, {1}, {2}, {3}, {4}}, /*full_every=*/1);
  const json show = RunJson({"retention", "show", "--json"});
  EXPECT_TRUE(show["generation"].is_null());
  EXPECT_TRUE(show["keep_last"].is_null());
  EXPECT_TRUE(show["keep_within_seconds"].is_null());
  EXPECT_TRUE(show["checkpoint_timeout_seconds"].is_null());
  EXPECT_TRUE(show["created"].is_null());
  EXPECT_EQ(show["keeps_everything"], true);
  const RunResult text = RunOnRepo({"retention", "show"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("no retention policy: every committed checkpoint is kept"),
            std::string::npos)
      << text.out;

  const json gc = RunJson({"gc", "--dry-run", "--json"});
  EXPECT_TRUE(gc["policy_generation"].is_null());
  EXPECT_EQ(IdList(gc["kept_checkpoints"]), ids_);
  EXPECT_EQ(gc["condemned_checkpoints"], json::array());
}

TEST_F(CliTest, PinAndUnpinByNameWithTheirExitCodes) {
  MakeRepo({{}, {1}});
  RunResult r = RunOnRepo({"pin", "latest", "--name", "release-1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(std::to_string(ids_.back())), std::string::npos) << r.out;
  ASSERT_EQ(RunOnRepo({"pin", std::to_string(ids_[0]), "--name", "first"}).code, 0);
  json show = RunJson({"retention", "show", "--json"});
  ASSERT_EQ(show["pins"].size(), 2u);
  // By name.
  EXPECT_EQ(show["pins"][0]["name"], "first");
  EXPECT_EQ(show["pins"][0]["id"].get<uint64_t>(), ids_[0]);
  EXPECT_EQ(show["pins"][1]["name"], "release-1");
  EXPECT_EQ(show["pins"][1]["id"].get<uint64_t>(), ids_.back());
  ASSERT_TRUE(show["pins"][1]["created"].is_string());
  EXPECT_EQ(show["pins"][1]["created"].get<std::string>().back(), 'Z');
  r = RunOnRepo({"retention", "show"});
  EXPECT_NE(r.out.find(fmt::format("release-1 -> checkpoint {}", ids_.back())), std::string::npos)
      << r.out;

  // A name pins one checkpoint: AlreadyExists is exit 1.
  r = RunOnRepo({"pin", std::to_string(ids_[0]), "--name", "release-1"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("release-1"), std::string::npos) << r.err;
  // No such checkpoint: 4. A malformed id: usage error.
  r = RunOnRepo({"pin", "999999", "--name", "other"});
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_NE(r.err.find("999999"), std::string::npos) << r.err;
  EXPECT_EQ(RunOnRepo({"pin", "abc", "--name", "other"}).code, 2);
  EXPECT_EQ(RunOnRepo({"pin", "latest"}).code, 2);  // --name is required
  // A bad name is a usage error, named in the message.
  r = RunOnRepo({"pin", "latest", "--name", "Bad/Name"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("pin name 'Bad/Name' is not valid"), std::string::npos) << r.err;
  show = RunJson({"retention", "show", "--json"});
  EXPECT_EQ(show["pins"].size(), 2u);

  r = RunOnRepo({"unpin", "release-1"});
  EXPECT_EQ(r.code, 0) << r.err;
  r = RunOnRepo({"unpin", "release-1"});
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_NE(r.err.find("release-1"), std::string::npos) << r.err;
  show = RunJson({"retention", "show", "--json"});
  ASSERT_EQ(show["pins"].size(), 1u);
  EXPECT_EQ(show["pins"][0]["name"], "first");
  // Unpinned, the name is free again.
  EXPECT_EQ(RunOnRepo({"pin", std::to_string(ids_[0]), "--name", "release-1"}).code, 0);
}

// `ickpt coordinator`: its usage errors exit 2 before anything is opened or created, and a
// timeout above the retention policy's checkpoint_timeout is refused (docs/protocol.md §5.8).
TEST_F(CliTest, CoordinatorRefusesBadFlagsAndATimeoutAboveThePolicys) {
  MakeRepo({{}}, /*full_every=*/1);
  RunResult r = Run({"coordinator", "--etcd", "ftp://x", "--job", "j", "--repo", repo_path()});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("ftp://x"), std::string::npos) << r.err;
  r = Run({"coordinator", "--etcd", "http://127.0.0.1:1", "--job", "J!", "--repo", repo_path()});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("J!"), std::string::npos) << r.err;
  r = Run({"coordinator", "--etcd", "http://127.0.0.1:1", "--job", "j", "--repo", repo_path(),
           "--interval", "soon"});
  EXPECT_EQ(r.code, 2) << r.err;
  // The default policy's checkpoint_timeout is 10 minutes.
  r = Run({"coordinator", "--etcd", "http://127.0.0.1:1", "--job", "j", "--repo", repo_path(),
           "--timeout", "2h"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("checkpoint_timeout"), std::string::npos) << r.err;
}

TEST_F(CliTest, GcDryRunReportsEveryFieldAndDeletesNothing) {
  // Four full checkpoints under the default policy (keep the last 3): the first would be condemned.
  MakeRepo({{}, {1}, {2}, {3}}, /*full_every=*/1);
  const std::vector<std::string> before = TreeWithoutLocks(repo_path());
  const json gc = RunJson({"gc", "--dry-run", "--json"});
  EXPECT_EQ(gc["dry_run"], true);
  EXPECT_TRUE(gc["deleted_objects"].is_number_integer());
  EXPECT_TRUE(gc["deleted_bytes"].is_number_integer());
  EXPECT_EQ(IdList(gc["kept_checkpoints"]), std::vector<uint64_t>(ids_.begin() + 1, ids_.end()));
  EXPECT_EQ(IdList(gc["condemned_checkpoints"]), std::vector<uint64_t>{ids_[0]});
  EXPECT_EQ(IdList(gc["pardoned_checkpoints"]), std::vector<uint64_t>{});
  EXPECT_EQ(IdList(gc["removed_checkpoints"]), std::vector<uint64_t>{});
  ASSERT_TRUE(gc["deleted"].is_object());
  for (const char* kind :
       {"commits", "manifests", "packs", "acks", "reservations", "condemnations", "probes"}) {
    EXPECT_TRUE(gc["deleted"][kind].is_number_integer()) << kind;
  }
  EXPECT_EQ(gc["deleted"]["commits"], 0);
  EXPECT_TRUE(gc["removed_debris"].is_number_integer());
  EXPECT_EQ(gc["dangling_pins"], json::array());
  EXPECT_EQ(gc["policy_generation"], 1);
  EXPECT_TRUE(gc["needed_checkpoints"].is_array());
  EXPECT_EQ(IdList(gc["fenced_checkpoints"]), std::vector<uint64_t>{});
  EXPECT_EQ(gc.size(), 13u) << gc.dump();

  const RunResult text = RunOnRepo({"gc", "--dry-run"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("would delete"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(fmt::format("would condemn: {}", ids_[0])), std::string::npos)
      << text.out;

  // Nothing deleted, nothing condemned.
  EXPECT_EQ(TreeWithoutLocks(repo_path()), before);
  EXPECT_EQ(RunJson({"retention", "show", "--json"})["condemned"], json::array());
}

TEST_F(CliTest, GcRefusesAGraceNotAboveTheCheckpointTimeout) {
  MakeRepo({{}, {1}});
  const std::string before = TreeHash(repo_path());
  // The default policy's checkpoint timeout is 10 min.
  RunResult r = RunOnRepo({"gc", "--grace", "1s"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("checkpoint timeout"), std::string::npos) << r.err;
  EXPECT_EQ(RunOnRepo({"gc", "--grace", "10m", "--json"}).code, 1);
  EXPECT_EQ(RunOnRepo({"gc", "--grace", "soon"}).code, 2);
  EXPECT_EQ(RunOnRepo({"gc", "--lock-ttl", "0"}).code, 2);
  EXPECT_EQ(TreeHash(repo_path()), before);
  r = RunOnRepo({"gc", "--grace", "11m", "--json"});
  EXPECT_EQ(r.code, 0) << r.err;
}

// The two phases of format.md §13.3 through the CLI: a run condemns what the policy drops (still
// readable), a run after the grace period removes it; a pinned checkpoint and the chain it needs
// stay throughout.
TEST_F(CliTest, GcCondemnsThenRemovesAfterTheGracePeriodAndKeepsPinned) {
  // Chains of two: full, incremental, full, incremental, full. A full manifest may point at packs
  // of earlier checkpoints for unchanged blocks (format.md §5), so the last one rewrites blocks 2
  // and 3: the packs of the 3rd and 4th checkpoints (holding only those blocks) then serve nothing
  // kept.
  MakeRepo({{}, {1}, {2}, {3}, {2, 3, 4}}, /*full_every=*/2);
  ASSERT_EQ(ids_.size(), 5u);
  EXPECT_EQ(RunJson({"show", std::to_string(ids_[1]), "--json"})["kind"], "incremental");
  ASSERT_EQ(RunOnRepo({"pin", std::to_string(ids_[1]), "--name", "keep-me"}).code, 0);
  ASSERT_EQ(RunOnRepo({"retention", "set", "--keep-last", "1", "--checkpoint-timeout", "1s"}).code,
            0);

  const json first = RunJson({"gc", "--grace", "2s", "--json"});
  EXPECT_EQ(first["dry_run"], false);
  EXPECT_EQ(first["policy_generation"], 2);
  EXPECT_EQ(IdList(first["kept_checkpoints"]), (std::vector<uint64_t>{ids_[1], ids_[4]}));
  // ids_[0] is needed by the pinned incremental checkpoint: not condemned.
  const std::vector<uint64_t> condemned = IdList(first["condemned_checkpoints"]);
  EXPECT_EQ(condemned, (std::vector<uint64_t>{ids_[2], ids_[3]}));
  EXPECT_EQ(IdList(first["removed_checkpoints"]), std::vector<uint64_t>{});
  EXPECT_EQ(first["deleted"]["commits"], 0);
  EXPECT_EQ(IdList(RunJson({"retention", "show", "--json"})["condemned"]), condemned);
  // Condemned checkpoints stay fully readable, but can no longer be pinned.
  for (uint64_t id : condemned) {
    EXPECT_EQ(RunOnRepo({"show", std::to_string(id)}).code, 0);
    const std::string out = io_.Join("condemned-" + std::to_string(id));
    const RunResult r = RunOnRepo({"restore", std::to_string(id), "--region", "r", "--out", out});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(ReadFileOrEmpty(out), contents_[id]);
  }
  // log marks condemned and pinned checkpoints.
  const json log = RunJson({"log", "--json"});
  ASSERT_EQ(log.size(), 5u);
  for (const json& c : log) {
    const uint64_t id = c["id"].get<uint64_t>();
    EXPECT_EQ(c["condemned"].get<bool>(),
              std::find(condemned.begin(), condemned.end(), id) != condemned.end())
        << id;
    EXPECT_EQ(c["pins"], id == ids_[1] ? json::array({"keep-me"}) : json::array()) << id;
  }
  EXPECT_NE(RunOnRepo({"log"}).out.find("pin:keep-me"), std::string::npos);
  RunResult pin = RunOnRepo({"pin", std::to_string(ids_[2]), "--name", "too-late"});
  EXPECT_EQ(pin.code, 1) << pin.err;
  EXPECT_NE(pin.err.find("condemned"), std::string::npos) << pin.err;
  EXPECT_EQ(RunOnRepo({"verify"}).code, 0);

  // The grace period under test: condemnations must be older than 2 s by the store's clock.
  usleep(2'500'000);
  const json second = RunJson({"gc", "--grace", "2s", "--json"});
  EXPECT_EQ(IdList(second["removed_checkpoints"]), condemned);
  EXPECT_EQ(IdList(second["kept_checkpoints"]), (std::vector<uint64_t>{ids_[1], ids_[4]}));
  EXPECT_EQ(second["condemned_checkpoints"], json::array());
  EXPECT_EQ(second["deleted"]["commits"], 2);
  EXPECT_EQ(second["deleted"]["condemnations"], 2);
  EXPECT_EQ(second["deleted"]["manifests"], 2);  // one region, one manifest a checkpoint
  EXPECT_EQ(second["deleted"]["packs"], 2);
  EXPECT_GT(second["deleted_bytes"].get<uint64_t>(), 0u);
  EXPECT_GE(second["deleted_objects"].get<uint64_t>(), 6u);

  for (uint64_t id : condemned) {
    const RunResult r = RunOnRepo({"show", std::to_string(id)});
    EXPECT_EQ(r.code, 4) << r.err;
  }
  EXPECT_EQ(RunJson({"retention", "show", "--json"})["condemned"], json::array());
  std::vector<uint64_t> logged;
  for (const json& c : RunJson({"log", "--json"})) logged.push_back(c["id"].get<uint64_t>());
  EXPECT_EQ(logged, (std::vector<uint64_t>{ids_[0], ids_[1], ids_[4]}));
  const RunResult verify = RunOnRepo({"verify", "--data"});
  EXPECT_EQ(verify.code, 0) << verify.err << verify.out;
  // The pinned checkpoint, the chain it needs and the latest restore exactly.
  for (uint64_t id : {ids_[0], ids_[1], ids_[4]}) {
    const std::string out = io_.Join("kept-" + std::to_string(id));
    const RunResult r = RunOnRepo({"restore", std::to_string(id), "--region", "r", "--out", out});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(ReadFileOrEmpty(out), contents_[id]) << "checkpoint " << id;
  }

  // Nothing left to do: the text summary says so.
  const RunResult text = RunOnRepo({"gc", "--grace", "2s"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("gc: deleted "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(fmt::format("kept checkpoints: {}, {}", ids_[1], ids_[4])),
            std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("removed: none"), std::string::npos) << text.out;
}

// A policy that does not verify is damage: gc cannot know what it keeps, so it deletes nothing and
// exits 3. A new generation with its own checkpoint timeout replaces it without reading it.
TEST_F(CliTest, DamagedPolicyMakesGcExit3UntilANewGenerationReplacesIt) {
  MakeRepo({{}, {1}, {2}, {3}}, /*full_every=*/1);
  ASSERT_EQ(Keys("policy/"), std::vector<std::string>{PolicyKey(1)});
  // Offset 40 lies in the JSON payload (after the 16-byte header): the trailing xxh3 no longer
  // matches.
  FlipByte(PolicyKey(1), 40);
  const std::string before = TreeHash(repo_path());

  RunResult r = RunOnRepo({"retention", "show", "--json"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find(PolicyKey(1)), std::string::npos) << r.err;
  for (const std::vector<std::string>& gc :
       std::vector<std::vector<std::string>>{{"gc", "--json"}, {"gc", "--dry-run"}}) {
    r = RunOnRepo(gc);
    EXPECT_EQ(r.code, 3) << r.err;
    EXPECT_NE(r.err.find("gc deletes nothing"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  // Without --checkpoint-timeout the damaged policy's would carry over: refused, with the way out.
  r = RunOnRepo({"retention", "set", "--keep-last", "2"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("--checkpoint-timeout"), std::string::npos) << r.err;
  EXPECT_EQ(TreeHash(repo_path()), before);

  const json set =
      RunJson({"retention", "set", "--keep-last", "2", "--checkpoint-timeout", "10m", "--json"});
  EXPECT_EQ(set["generation"], 2);
  EXPECT_EQ(set["keep_last"], 2);
  const json gc = RunJson({"gc", "--dry-run", "--json"});
  EXPECT_EQ(gc["policy_generation"], 2);
  EXPECT_EQ(IdList(gc["kept_checkpoints"]), std::vector<uint64_t>(ids_.begin() + 2, ids_.end()));
}

// ---- consolidation and the cost report (compact.cc, policy.cc, format.md §14) ---------------

// The log entry of checkpoint `id`.
json LogEntry(const json& log, uint64_t id) {
  for (const json& c : log) {
    if (c["id"].get<uint64_t>() == id) return c;
  }
  ADD_FAILURE() << "checkpoint " << id << " not in the log: " << log.dump();
  return json::object();
}

// A chain of five (depths 0 to 4): compacting a checkpoint in the middle, then the latest, changes
// only what `log` calls effective; the recorded depth stays, and every checkpoint still restores
// the bytes it had.
TEST_F(CliTest, CompactConsolidatesACheckpointAndLogShowsItsEffectiveDepth) {
  MakeRepo({{}, {1}, {2, 3}, {4}, {5}});
  ASSERT_EQ(ids_.size(), 5u);
  json log = RunJson({"log", "--json"});
  for (size_t i = 0; i < ids_.size(); ++i) {
    const json c = LogEntry(log, ids_[i]);
    EXPECT_EQ(c["depth"], i);
    EXPECT_EQ(c["effective_depth"], i);
    EXPECT_EQ(c["consolidated"], false);
    EXPECT_EQ(c["metadata"], json({{"step", std::to_string(i + 1)}}));
  }

  // The middle one, verified: one manifest instead of three.
  const json middle = RunJson({"compact", std::to_string(ids_[2]), "--verify", "--json"});
  EXPECT_EQ(middle["id"].get<uint64_t>(), ids_[2]);
  EXPECT_EQ(middle["generation"], 1);
  EXPECT_EQ(middle["consolidated"], true);
  EXPECT_EQ(middle["links_before"], 3);
  EXPECT_EQ(middle["links_after"], 1);
  EXPECT_GE(middle["packs_before"].get<uint64_t>(), middle["packs_after"].get<uint64_t>());
  EXPECT_TRUE(middle["repacked_bytes"].is_number_integer());
  EXPECT_GT(middle["stored_bytes"].get<uint64_t>(), 0u);
  EXPECT_EQ(middle["reused_manifests"], 0);
  EXPECT_EQ(middle["verified"], true);
  EXPECT_EQ(middle.size(), 11u) << middle.dump();
  log = RunJson({"log", "--json"});
  const std::vector<uint64_t> after_middle = {0, 1, 0, 1, 2};
  for (size_t i = 0; i < ids_.size(); ++i) {
    const json c = LogEntry(log, ids_[i]);
    EXPECT_EQ(c["depth"], i) << ids_[i];  // the commit record's, unchanged
    EXPECT_EQ(c["effective_depth"], after_middle[i]) << ids_[i];
    EXPECT_EQ(c["consolidated"], i == 2) << ids_[i];
  }

  // The latest ("latest" is the default ID), in text.
  RunResult text = RunOnRepo({"compact"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find(fmt::format("consolidated checkpoint {}: generation 1 published; a "
                                      "restore reads 3 -> 1 manifests",
                                      ids_[4])),
            std::string::npos)
      << text.out;
  log = RunJson({"log", "--json"});
  EXPECT_EQ(LogEntry(log, ids_[4])["consolidated"], true);
  EXPECT_EQ(LogEntry(log, ids_[4])["effective_depth"], 0);
  EXPECT_EQ(LogEntry(log, ids_[4])["depth"], 4);
  text = RunOnRepo({"log"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("effective"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("consolidated"), std::string::npos) << text.out;

  // Every checkpoint restores the bytes it had, the consolidated ones through their new manifests.
  for (uint64_t id : ids_) {
    const std::string out = io_.Join("restored-" + std::to_string(id));
    const RunResult r = RunOnRepo({"restore", std::to_string(id), "--region", "r", "--out", out});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(ReadFileOrEmpty(out), contents_[id]) << "checkpoint " << id;
  }
  EXPECT_EQ(RunOnRepo({"verify"}).code, 0);

  // Again: its manifest in force is full and uses its packs well, so nothing needs doing.
  const json again = RunJson({"compact", "latest", "--json"});
  EXPECT_EQ(again["id"].get<uint64_t>(), ids_[4]);
  EXPECT_EQ(again["generation"], 0);
  EXPECT_EQ(again["consolidated"], false);
  EXPECT_EQ(again["links_before"], 1);
  EXPECT_EQ(again["links_after"], 1);
  EXPECT_EQ(again["reused_manifests"], 1);
  EXPECT_EQ(again["stored_bytes"], 0);
  text = RunOnRepo({"compact", std::to_string(ids_[4])});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("nothing to do"), std::string::npos) << text.out;
  EXPECT_EQ(LogEntry(RunJson({"log", "--json"}), ids_[4])["effective_depth"], 0);
}

TEST_F(CliTest, CompactExitCodes) {
  // An empty repository has no 'latest'.
  ASSERT_OK(Repository::OpenLocal(repo_path(), /*create=*/true).status());
  RunResult r = RunOnRepo({"compact"});
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_NE(r.err.find("no checkpoints"), std::string::npos) << r.err;

  MakeRepo({{}, {1}});
  const std::string before = TreeHash(repo_path());
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"compact", "--min-pack-use", "1.5"},
           {"compact", "--min-pack-use", "-0.1"},
           {"compact", "--min-pack-use", "abc"},
           {"compact", "--min-pack-use", "nan"},
           {"compact", "--min-pack-use", ""},
           {"compact", "abc"},
           {"compact", "latest", "--bogus"},
       }) {
    r = RunOnRepo(args);
    EXPECT_EQ(r.code, 2) << absl::StrJoin(args, " ") << ": " << r.err;
    EXPECT_NE(r.err.find("ickpt: error: "), std::string::npos) << r.err;
  }
  EXPECT_NE(RunOnRepo({"compact", "--min-pack-use", "1.5"}).err.find("--min-pack-use 1.5"),
            std::string::npos);
  EXPECT_EQ(TreeHash(repo_path()), before);

  r = RunOnRepo({"compact", "999999", "--json"});
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_NE(r.err.find("999999"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;

  ASSERT_EQ(mkdir(dir_.Join("empty").c_str(), 0700), 0);
  r = Run({"compact", "--repo", dir_.Join("empty")});
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_NE(r.err.find("not an ickpt repository"), std::string::npos) << r.err;
  EXPECT_TRUE(Tree(dir_.Join("empty")).empty());

  // The boundaries are valid: 0 never copies, 1 copies out of every pack not used whole.
  const json zero = RunJson({"compact", std::to_string(ids_[1]), "--min-pack-use", "0", "--json"});
  EXPECT_EQ(zero["generation"], 1);
  EXPECT_EQ(zero["repacked_bytes"], 0);
  const json one = RunJson({"compact", std::to_string(ids_[1]), "--min-pack-use", "1", "--json"});
  EXPECT_EQ(one["id"].get<uint64_t>(), ids_[1]);
}

TEST_F(CliTest, PolicyJsonReportsEveryFieldFromTheHistory) {
  // A full checkpoint and three incrementals, each writing one block of 64.
  MakeRepo({{}, {1}, {2}, {3}});
  const json p = RunJson({"policy", "--json"});
  for (const char* field :
       {"pause_ms_p50", "change_rate", "chain_depth", "estimated_restore_s", "space_amplification",
        "orphan_bytes", "young_daly_interval_s", "read_bytes_per_second", "read_seconds_per_object",
        "restore_bytes", "restore_objects", "checkpoints"}) {
    EXPECT_TRUE(p.contains(field)) << field << ": " << p.dump();
  }
  EXPECT_EQ(p["checkpoints"], 4);
  EXPECT_EQ(p["latest"].get<uint64_t>(), ids_.back());
  EXPECT_GT(p["pause_ms_p50"].get<double>(), 0);
  EXPECT_DOUBLE_EQ(p["change_rate"].get<double>(), 1.0 / kBlocks);
  EXPECT_EQ(p["chain_depth"], 3);
  EXPECT_GT(p["estimated_restore_s"].get<double>(), 0);
  EXPECT_GT(p["read_bytes_per_second"].get<double>(), 0);
  EXPECT_GT(p["read_seconds_per_object"].get<double>(), 0);
  EXPECT_GT(p["restore_bytes"].get<uint64_t>(), 0u);
  EXPECT_GE(p["restore_objects"].get<uint64_t>(), 8u);  // a commit record and a manifest a link
  // Every checkpoint's packs and manifests over one region of 256 KiB: the full one (random
  // bytes, so about as big compressed) and three blocks.
  EXPECT_GT(p["space_amplification"].get<double>(), 0.5);
  EXPECT_LT(p["space_amplification"].get<double>(), 2);
  EXPECT_EQ(p["orphan_bytes"], 0);
  EXPECT_TRUE(p["young_daly_interval_s"].is_null());
  EXPECT_FALSE(p.contains("rto_s"));
  EXPECT_FALSE(p.contains("meets_rto"));
  EXPECT_EQ(p["recommendation"], "nothing to do");

  const json q = RunJson({"policy", "--json", "--mtbf", "1d", "--rto", "1h"});
  EXPECT_GT(q["young_daly_interval_s"].get<double>(), 0);
  EXPECT_LT(q["young_daly_interval_s"].get<double>(), 86400);
  EXPECT_EQ(q["mtbf_s"], 86400);
  EXPECT_EQ(q["rto_s"], 3600);
  EXPECT_EQ(q["meets_rto"], true);
  EXPECT_EQ(q["recommendation"], "nothing to do");
  // An RTO no restore meets.
  const json r = RunJson({"policy", "--json", "--rto", "1ns"});
  EXPECT_EQ(r["meets_rto"], false);
  EXPECT_EQ(r["recommendation"], "consolidate the latest checkpoint (ickpt compact)");
  RunResult text = RunOnRepo({"policy", "--rto", "1ns"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("chain depth:           3"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("recommendation:        consolidate the latest checkpoint (ickpt "
                          "compact)"),
            std::string::npos)
      << text.out;
  text = RunOnRepo({"policy"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("recommendation:        nothing to do"), std::string::npos) << text.out;

  // Consolidated, the latest has no chain; the manifest its consolidation replaced is reached by
  // nothing (orphaned until gc deletes it).
  ASSERT_EQ(RunOnRepo({"compact"}).code, 0);
  const json after = RunJson({"policy", "--json"});
  EXPECT_EQ(after["chain_depth"], 0);
  EXPECT_GT(after["orphan_bytes"].get<uint64_t>(), 0u);
  EXPECT_LT(after["restore_objects"].get<uint64_t>(), p["restore_objects"].get<uint64_t>());
}

TEST_F(CliTest, PolicyUsageErrorsExit2AndAnEmptyRepositoryExits4) {
  ASSERT_OK(Repository::OpenLocal(repo_path(), /*create=*/true).status());
  RunResult r = RunOnRepo({"policy", "--json"});
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_NE(r.err.find("no checkpoints"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;

  MakeRepo({{}});
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"policy", "--rto", "abc"},
           {"policy", "--rto", "5"},  // no unit
           {"policy", "--rto", "0"},
           {"policy", "--mtbf", "1w"},
           {"policy", "--mtbf", "0s"},
           {"policy", "--mtbf"},
       }) {
    r = RunOnRepo(args);
    EXPECT_EQ(r.code, 2) << absl::StrJoin(args, " ") << ": " << r.err;
    EXPECT_NE(r.err.find("ickpt: error: "), std::string::npos) << r.err;
  }
  EXPECT_NE(RunOnRepo({"policy", "--rto", "abc"}).err.find("--rto"), std::string::npos);
  // A single full checkpoint: no incremental one in the latest lineage, so the rate is over every
  // checkpoint (the full one captured every block).
  const json p = RunJson({"policy", "--json", "--mtbf", "90s"});
  EXPECT_EQ(p["chain_depth"], 0);
  EXPECT_DOUBLE_EQ(p["change_rate"].get<double>(), 1.0);
  EXPECT_EQ(p["change_rate_scope"], "all");
  EXPECT_GT(p["young_daly_interval_s"].get<double>(), 0);
}

}  // namespace
}  // namespace ickpt
