// The distributed commands through the real binary, on a real etcd the suite starts (loopback,
// temporary directory, free ports): `ickpt status` and `ickpt trigger` on a running job of an
// `ickpt coordinator` and `ickpt demo-worker` participants, their usage errors and the etcd
// credential flags, and `ickpt demo --workers N` with chaos. GTEST_SKIP without /usr/bin/etcd.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "ickpt/repository.h"
#include "src/testing/etcd_server.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"

namespace ickpt {
namespace {

using json = nlohmann::json;
using testing::Process;
using testing::RunResult;

class ClusterCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!testing::EtcdServer::Available()) return;
    absl::StatusOr<std::unique_ptr<testing::EtcdServer>> etcd = testing::EtcdServer::Start();
    ASSERT_TRUE(etcd.ok()) << etcd.status();
    etcd_ = etcd->release();
  }
  static void TearDownTestSuite() {
    delete etcd_;
    etcd_ = nullptr;
  }
  void SetUp() override {
    if (etcd_ == nullptr) GTEST_SKIP() << "etcd is not installed (Debian package etcd-server)";
  }
  void TearDown() override {
    for (Process& p : processes_) p.Stop();
  }

  RunResult Run(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {ICKPT_CLI_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::RunProgram(argv, io_.path(), dir_.path());
  }
  // `ickpt status --json` of `job`, parsed (null if it failed).
  json Status(const std::string& job) {
    RunResult r = Run({"status", "--etcd", etcd_->endpoint(), "--job", job, "--json"});
    if (r.code != 0) return json();
    return json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  }
  // Polls `ickpt status` until `ready` holds (up to `timeout`); the last status.
  json WaitForStatus(const std::string& job, const std::function<bool(const json&)>& ready,
                     absl::Duration timeout = absl::Seconds(60)) {
    const absl::Time deadline = absl::Now() + timeout;
    json s;
    while (absl::Now() < deadline) {
      s = Status(job);
      if (!s.is_null() && !s.is_discarded() && ready(s)) return s;
      absl::SleepFor(absl::Milliseconds(200));
    }
    ADD_FAILURE() << "status of " << job << " never got ready; last: " << s.dump();
    return s;
  }
  Process& StartCoordinator(const std::string& job, const std::string& name, int participants) {
    processes_.push_back(testing::Spawn(
        {ICKPT_CLI_PATH, "coordinator", "--etcd", etcd_->endpoint(), "--job", job, "--repo",
         dir_.Join(job), "--name", name, "--interval", "1h", "--participants",
         std::to_string(participants), "--lease-ttl", "2s", "--timeout", "60s"},
        dir_.Join(name + ".log")));
    return processes_.back();
  }
  Process& StartWorker(const std::string& job, const std::string& name) {
    processes_.push_back(
        testing::Spawn({ICKPT_CLI_PATH, "demo-worker", "--etcd",      etcd_->endpoint(),
                        "--job",        job,           "--repo",      dir_.Join(job),
                        "--name",       name,          "--size",      "1048576",
                        "--steps",      "1000000",     "--seed",      "3",
                        "--step-ms",    "20",          "--lease-ttl", "2"},
                       dir_.Join(name + ".log")));
    return processes_.back();
  }

  static testing::EtcdServer* etcd_;
  testing::TempDir dir_;
  testing::TempDir io_;
  std::vector<Process> processes_;
};

testing::EtcdServer* ClusterCliTest::etcd_ = nullptr;

TEST_F(ClusterCliTest, StatusAndTriggerDriveARunningJob) {
  const std::string job = "ops";
  StartCoordinator(job, "coord-a", 2);
  // The repository exists once the coordinator created it; the workers open it.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (access(dir_.Join(job + "/config").c_str(), F_OK) != 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  StartWorker(job, "w-0");
  Process& w1 = StartWorker(job, "w-1");
  json s = WaitForStatus(job, [](const json& s) {
    return s["leader"] == "coord-a" && s["recovery"].is_object() && s["members"].size() == 2 &&
           s["members"][0]["recovered"] == "restored" && s["members"][1]["recovered"] == "restored";
  });
  EXPECT_GT(s["epoch"].get<int64_t>(), 0);
  for (const json& m : s["members"]) {
    EXPECT_TRUE(m["alive"].get<bool>()) << m.dump();
    EXPECT_GT(m["incarnation"].get<uint64_t>(), 0u) << m.dump();
  }
  EXPECT_TRUE(s["pending"].is_null());
  EXPECT_TRUE(s["last_committed"].is_null());  // --interval 1h: nothing triggered yet

  // A checkpoint on demand: committed, and status shows it with its duration and sizes.
  RunResult r =
      Run({"trigger", "--etcd", etcd_->endpoint(), "--job", job, "--json", "--timeout", "90s"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  json t = json::parse(r.out);
  EXPECT_EQ(t["outcome"], "committed");
  const uint64_t first = t["id"].get<uint64_t>();
  s = Status(job);
  EXPECT_EQ(s["last_committed"], first);
  ASSERT_FALSE(s["recent"].empty());
  EXPECT_EQ(s["recent"][0]["id"], first);
  EXPECT_GE(s["recent"][0]["duration_ms"].get<int64_t>(), 0);
  EXPECT_GT(s["recent"][0]["logical_bytes"].get<uint64_t>(), 2u << 20);  // two 1 MiB tables

  // --full: a full checkpoint, committed; the text form names it.
  r = Run({"trigger", "--etcd", etcd_->endpoint(), "--job", job, "--full", "--timeout", "90s"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("committed"), std::string::npos) << r.out;
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<RepositoryReader> repo,
                         Repository::OpenReadOnly(dir_.Join(job)));
    ASSERT_OK_AND_ASSIGN(std::optional<uint64_t> latest, repo->LatestCommitId());
    ASSERT_TRUE(latest.has_value());
    ASSERT_OK_AND_ASSIGN(CommitRecord record, repo->ReadCommit(*latest));
    EXPECT_EQ(record.kind, CheckpointKind::kFull);
  }
  r = Run({"status", "--etcd", etcd_->endpoint(), "--job", job});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("leader:    coord-a"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("w-1"), std::string::npos) << r.out;

  // A participant dies just before a checkpoint: it aborts (exit 1, with the reason), and
  // status shows the member dead until the job recovers.
  w1.Kill();
  r = Run({"trigger", "--etcd", etcd_->endpoint(), "--job", job, "--json", "--timeout", "90s"});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  t = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(t.is_discarded()) << r.out;
  EXPECT_EQ(t["outcome"], "aborted");
  EXPECT_NE(t["reason"].get<std::string>().find("w-1"), std::string::npos) << t.dump();
  s = WaitForStatus(job, [](const json& s) {
    for (const json& m : s["members"]) {
      if (m["name"] == "w-1") return !m["alive"].get<bool>();
    }
    return false;
  });
  for (const json& m : s["members"]) {
    if (m["name"] == "w-1") {
      EXPECT_GT(m["incarnation"].get<uint64_t>(), 0u) << m.dump();
    }
  }
  ASSERT_FALSE(s["recent"].empty());
  EXPECT_EQ(s["recent"][0]["outcome"], "aborted");
}

TEST_F(ClusterCliTest, ErrorsAreClearAndCarryTheirExitCodes) {
  // No keys: not found (4), naming the job.
  RunResult r = Run({"status", "--etcd", etcd_->endpoint(), "--job", "nosuchjob"});
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_NE(r.err.find("nosuchjob"), std::string::npos) << r.err;
  // No coordinator: trigger fails at once (1) instead of waiting out its timeout.
  const absl::Time start = absl::Now();
  r = Run({"trigger", "--etcd", etcd_->endpoint(), "--job", "nosuchjob", "--timeout", "5m"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("no coordinator"), std::string::npos) << r.err;
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  // Usage errors (2): a bad job name, a malformed endpoint, credentials that cannot be read.
  EXPECT_EQ(Run({"status", "--etcd", etcd_->endpoint(), "--job", "Bad/Name"}).code, 2);
  EXPECT_EQ(Run({"status", "--etcd", "ftp://x", "--job", "j"}).code, 2);
  EXPECT_EQ(Run({"trigger", "--etcd", etcd_->endpoint(), "--job", "j", "--etcd-user-file",
                 dir_.Join("missing")})
                .code,
            2);
  const std::string bad_user_file = dir_.Join("user");
  std::ofstream(bad_user_file) << "just-a-secret-without-colon\n";
  r = Run({"status", "--etcd", etcd_->endpoint(), "--job", "j", "--etcd-user-file", bad_user_file});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err.find("just-a-secret"), std::string::npos)
      << "the file's content leaked: " << r.err;
  setenv("ICKPT_ETCD_USER", "someone", 1);
  unsetenv("ICKPT_ETCD_PASSWORD");
  r = Run({"status", "--etcd", etcd_->endpoint(), "--job", "j"});
  unsetenv("ICKPT_ETCD_USER");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("ICKPT_ETCD_PASSWORD"), std::string::npos) << r.err;
  // The distributed demo needs at least two workers.
  EXPECT_EQ(Run({"demo", "--workers", "1"}).code, 2);
}

// The README's first command, smaller: three workers, a worker and the leading coordinator
// SIGKILLed, and the final state verified (in the workers and restored from the repository).
TEST_F(ClusterCliTest, DistributedDemoSurvivesChaosAndVerifies) {
  RunResult r = Run({"demo", "--workers", "3", "--steps", "60", "--step-ms", "60", "--size", "2MiB",
                     "--interval", "1s", "--seed", "5", "--json", "--repo", dir_.Join("demo")});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  json j = json::parse(r.out);
  EXPECT_TRUE(j["verified"].get<bool>());
  EXPECT_EQ(j["kills"], 2);
  EXPECT_GE(j["recoveries"].get<int>(), 1);
  EXPECT_GE(j["restores"].get<int>(), 1);
  EXPECT_GE(j["leader_changes"].get<int>(), 1);
  ASSERT_GE(j["checkpoints"].size(), 2u);
  for (const json& c : j["checkpoints"]) {
    EXPECT_EQ(c["participants"], 3) << c.dump();
    EXPECT_GE(c["pause_ms"].get<double>(), 0) << c.dump();
    EXPECT_GT(c["logical_bytes"].get<uint64_t>(), 0u) << c.dump();
  }
  for (const json& s : j["states"]) {
    EXPECT_EQ(s["final_sha256"], s["expected_sha256"]) << s.dump();
    EXPECT_EQ(s["restored_sha256"], s["expected_sha256"]) << s.dump();
  }
  // What `ickpt verify` says of the repository the job left.
  RunResult v = Run({"verify", "--repo", dir_.Join("demo")});
  EXPECT_EQ(v.code, 0) << v.out << v.err;
}

}  // namespace
}  // namespace ickpt
