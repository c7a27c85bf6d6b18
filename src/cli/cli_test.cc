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
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gtest/gtest.h"
#include "ickpt/checkpointer.h"
#include "ickpt/repository.h"
#include "src/repo/keys.h"
#include "src/repo/pack.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"
#include "src/util/hash.h"

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

struct RunResult {
  int code = -1;
  std::string out;
  std::string err;
};

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

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
    const std::string out_path = io_.Join("stdout"), err_path = io_.Join("stderr");
    std::vector<std::string> argv_storage = {ICKPT_CLI_PATH};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_storage) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = fork();
    if (pid == 0) {
      const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(out, STDOUT_FILENO);
      dup2(err, STDERR_FILENO);
      if (chdir(dir_.path().c_str()) != 0) _exit(126);
      execv(argv[0], argv.data());
      _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    RunResult r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = ReadFileOrEmpty(out_path);
    r.err = ReadFileOrEmpty(err_path);
    return r;
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
  // also writes every block). Remembers the region's content at every checkpoint id.
  void MakeRepo(const std::vector<std::vector<uint64_t>>& writes) {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Repository> repo,
                         Repository::OpenLocal(repo_path(), /*create=*/true));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Checkpointer> ckpt, Checkpointer::Open(repo.get()));
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

TEST_F(CliTest, OrphanPackIsListedByVerifyDataWithExit0) {
  MakeRepo({{}, {2}});
  PackBuilder builder;
  builder.AddFrame(EncodeFrame(RandomBytes(kBlock, 77), 3));
  const FinishedPack pack = builder.Finish();
  const std::string key = PackKey(pack.sha256_hex);
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Repository> repo,
                         Repository::OpenLocal(repo_path(), /*create=*/false));
    ASSERT_OK(repo->store()->Put(key, pack.bytes));
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
  };
  for (const auto& command : commands) RunOnRepo(command);
  EXPECT_EQ(TreeHash(repo_path()), before);
}

TEST_F(CliTest, DemoRecoversFromAKillBitExact) {
  RunResult r = Run({"demo", "--repo", dir_.Join("demo"), "--size", "16MiB", "--steps", "8",
                     "--json"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  const json j = json::parse(r.out);
  EXPECT_TRUE(j["verified"].get<bool>());
  EXPECT_GE(j["kills"].get<int>(), 1);
  EXPECT_GE(j["restores"].get<int>(), 1);
  EXPECT_FALSE(j["checkpoints"].empty());
  // The repository directory holds only repository objects.
  for (const std::string& rel : Tree(dir_.Join("demo"))) {
    const bool known = rel == "config" || rel.starts_with("packs/") ||
                       rel.starts_with("manifests/") || rel.starts_with("commits/") ||
                       rel.starts_with("ids/");
    EXPECT_TRUE(known) << rel;
  }
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
    EXPECT_FALSE(by_name[name]["works"].get<bool>()) << name << " works but " << selected
                                                     << " was selected";
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
  for (const char* name : {"uffd-async", "soft-dirty", "uffd-sync", "mprotect", "hash",
                           "explicit"}) {
    EXPECT_NE(r.out.find(name), std::string::npos) << name << "\n" << r.out;
  }
  EXPECT_NE(r.out.find("selected"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("MarkDirty"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("O_DIRECT"), std::string::npos) << r.out;
  // Needs no repository, and a repository argument is a usage error.
  EXPECT_EQ(Run({"doctor", "--repo", dir_.Join("x")}).code, 2);
}

}  // namespace
}  // namespace ickpt
