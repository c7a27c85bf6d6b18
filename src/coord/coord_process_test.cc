// The group protocol across real processes on loopback (docs/protocol.md §8): an etcd the test
// starts (temporary directory, free ports, stopped by PID), two `ickpt coordinator` processes and
// three coord_worker participants running the deterministic workload of test_workload.h. Each
// test injects one failure (SIGKILL, SIGSTOP, a decline, a stall, an etcd restart) and then checks:
//   - every worker restored exactly (each restore is compared with a replay: no MISMATCH);
//   - every worker that applied a recovery restored the same checkpoint (they agree);
//   - the job ends bit-identical to a failure-free run (the digest of the final state);
//   - every commit that is part of the history restores exactly for every participant (so no
//     commit references a missing object), and no fenced commit is the latest.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "ickpt/checkpointer.h"
#include "ickpt/coordination.h"
#include "ickpt/key_group.h"
#include "ickpt/repository.h"
#include "src/coord/coordination_store.h"
#include "src/coord/protocol.h"
#include "src/coord/test_workload.h"
#include "src/testing/etcd_server.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"
#include "src/util/str.h"

extern char** environ;

namespace ickpt::coord {
namespace {

constexpr char kJob[] = "job";
constexpr uint64_t kSteps = 300;
const std::vector<std::string> kWorkers = {"w0", "w1", "w2"};

using testing::Process;
using testing::Spawn;

std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

class CoordProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::EtcdServer::Available()) GTEST_SKIP() << "etcd is not installed (setup.sh)";
    absl::StatusOr<std::unique_ptr<testing::EtcdServer>> etcd =
        testing::EtcdServer::Start();
    ASSERT_OK(etcd.status());
    etcd_ = *std::move(etcd);
    ASSERT_OK_AND_ASSIGN(store_, ConnectEtcd(etcd_->endpoint()));
    repo_path_ = dir_.Join("repo");
    ASSERT_OK(Repository::OpenLocal(repo_path_, /*create=*/true).status());
    stop_file_ = dir_.Join("stop");
  }

  void TearDown() override {
    for (auto& [name, p] : workers_) p.Stop(absl::Seconds(2));
    for (auto& p : coordinators_) p.Stop(absl::Seconds(5));
    if (HasFailure()) DumpLogs();
  }

  void DumpLogs() {
    for (const auto& [name, p] : workers_) {
      std::cerr << "---- " << name << " report:\n";
      for (const std::string& l : ReadLines(Report(name))) std::cerr << l << "\n";
    }
    for (size_t i = 0; i < coordinators_.size(); ++i) {
      std::cerr << "---- coordinator log " << coordinators_[i].log << ":\n";
      const std::vector<std::string> lines = ReadLines(coordinators_[i].log);
      for (size_t j = lines.size() > 60 ? lines.size() - 60 : 0; j < lines.size(); ++j) {
        std::cerr << lines[j] << "\n";
      }
    }
  }

  std::string Report(const std::string& worker) { return dir_.Join(worker + ".report"); }

  void StartCoordinator(const std::string& name, const std::string& timeout = "5s") {
    std::vector<std::string> args = {ICKPT_CLI_PATH,  "coordinator", "--etcd",
                                     etcd_->endpoint(), "--job",      kJob,
                                     "--repo",          repo_path_,   "--name",
                                     name,              "--interval", "250ms",
                                     "--timeout",       timeout,      "--lease-ttl",
                                     "3s",              "--participants", "3"};
    coordinators_.push_back(Spawn(args, dir_.Join(name + ".log")));
  }

  void StartWorker(const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {COORD_WORKER_PATH, "--etcd",   etcd_->endpoint(),
                                     "--job",           kJob,       "--repo",
                                     repo_path_,        "--name",   name,
                                     "--report",        Report(name), "--stop-file",
                                     stop_file_,        "--steps",  std::to_string(kSteps),
                                     "--step-ms",       "10",       "--lease-ttl",
                                     "3"};
    for (std::string& e : extra) args.push_back(std::move(e));
    workers_[name] = Spawn(args, dir_.Join(name + ".log"));
  }

  void StartJob() {
    StartCoordinator("c1");
    StartCoordinator("c2");
    for (const std::string& w : kWorkers) StartWorker(w);
  }

  // Polls `condition` every 50 ms until it holds or `timeout` passes.
  bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (condition()) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return condition();
  }

  JobSnapshot Snapshot() {
    absl::StatusOr<RangeResult> r = store_->GetPrefix(JobPrefix(kJob));
    return r.ok() ? DecodeJobSnapshot(kJob, *r) : JobSnapshot{};
  }

  size_t Committed(const JobSnapshot& snap) {
    size_t n = 0;
    for (const auto& [id, o] : snap.outcomes) n += o.outcome == Outcome::kCommitted;
    return n;
  }

  bool WaitForCommits(size_t n, absl::Duration timeout = absl::Seconds(30)) {
    return WaitFor([&] { return Committed(Snapshot()) >= n; }, timeout);
  }

  // The pid of the leading coordinator (the candidate of lowest create_revision), or -1.
  pid_t LeaderPid() {
    const JobSnapshot snap = Snapshot();
    return snap.leader() != nullptr ? static_cast<pid_t>(snap.leader()->value.pid) : -1;
  }

  Process* CoordinatorByPid(pid_t pid) {
    for (Process& p : coordinators_) {
      if (p.pid == pid) return &p;
    }
    return nullptr;
  }

  // A trigger is written and has no outcome yet.
  bool CheckpointInFlight() {
    const JobSnapshot snap = Snapshot();
    return !snap.triggers.empty() && snap.outcomes.count(snap.triggers.rbegin()->first) == 0;
  }

  // Waits until every worker reached the last step under the job's current recovery, then checks
  // the reports and stops the workers and coordinators. Then checks the repository.
  void ExpectJobCompletes(absl::Duration timeout = absl::Seconds(60)) {
    uint64_t sequence = 0;
    const bool completed = WaitFor(
        [&] {
          const JobSnapshot snap = Snapshot();
          if (!snap.recovery.has_value()) return false;
          sequence = snap.recovery->sequence;
          for (const std::string& w : kWorkers) {
            const std::string want = StrCat("done ", sequence, " ");
            bool found = false;
            for (const std::string& l : ReadLines(Report(w))) found = found || l.rfind(want, 0) == 0;
            if (!found) return false;
          }
          return true;
        },
        timeout);
    ASSERT_TRUE(completed) << "the job did not complete under recovery " << sequence;
    // Every restore exact; every recovery restored the same checkpoint everywhere; the final
    // state is the failure-free one.
    std::map<uint64_t, std::string> restored_by_sequence;
    for (size_t i = 0; i < kWorkers.size(); ++i) {
      const std::string& w = kWorkers[i];
      const auto [first, end] = OwnedKeyGroups(workload::kKeyGroups, static_cast<uint32_t>(i), 3);
      const uint64_t expected = workload::Digest(workload::StateAt(w, kSteps, first, end));
      bool final_ok = false;
      for (const std::string& l : ReadLines(Report(w))) {
        EXPECT_EQ(l.find("MISMATCH"), std::string::npos) << w << ": " << l;
        std::vector<std::string> f = absl::StrSplit(l, ' ');
        if (f[0] == "restored" && f.size() >= 3) {
          uint64_t seq = 0;
          ASSERT_TRUE(absl::SimpleAtoi(f[1], &seq)) << l;
          auto [it, inserted] = restored_by_sequence.emplace(seq, f[2]);
          EXPECT_EQ(it->second, f[2]) << "recovery " << seq << ": " << w << " restored another checkpoint";
        }
        if (f[0] == "done" && f.size() == 4 && f[1] == StrCat(sequence)) {
          EXPECT_EQ(f[3], StrCat(expected)) << w << " ended in another state";
          final_ok = f[3] == StrCat(expected);
        }
      }
      EXPECT_TRUE(final_ok) << w;
    }
    std::ofstream(stop_file_) << "stop\n";
    for (auto& [name, p] : workers_) p.Stop(absl::Seconds(10));
    for (auto& p : coordinators_) p.Stop(absl::Seconds(10));
    ExpectRepositoryRestoresExactly();
  }

  // Every commit that is part of the history restores exactly for every participant.
  void ExpectRepositoryRestoresExactly() {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Repository> repo,
                         Repository::OpenLocal(repo_path_, /*create=*/false));
    ASSERT_OK_AND_ASSIGN(std::vector<uint64_t> ids, repo->ListCommitIds());
    ASSERT_OK_AND_ASSIGN(std::vector<EpochRecord> epochs, repo->ListEpochs());
    ASSERT_OK_AND_ASSIGN(std::optional<uint64_t> latest, repo->LatestCommitId());
    ASSERT_FALSE(ids.empty());
    size_t history = 0;
    for (uint64_t id : ids) {
      ASSERT_OK_AND_ASSIGN(CommitRecord commit, repo->ReadCommit(id));
      if (FencedBy(epochs, commit).has_value()) {
        EXPECT_NE(latest, id) << "fenced checkpoint " << id << " is the latest";
        continue;
      }
      ++history;
      ASSERT_EQ(commit.participants.size(), kWorkers.size()) << "checkpoint " << id;
      for (size_t i = 0; i < kWorkers.size(); ++i) {
        const std::string& w = kWorkers[i];
        CheckpointerOptions o;
        o.participant = w;
        o.participant_index = static_cast<uint32_t>(i);
        o.participant_count = 3;
        o.consolidate_in_background = false;
        o.gc_after_commit = false;
        ASSERT_OK_AND_ASSIGN(std::unique_ptr<Checkpointer> ck, Checkpointer::Open(repo.get(), o));
        RegionOptions ro;
        ro.size = workload::kRegionBytes;
        ro.block_size = workload::kBlockSize;
        ASSERT_OK_AND_ASSIGN(Region * region, ck->AddRegion("grid", ro));
        KeyedStateOptions ko;
        ko.key_groups = workload::kKeyGroups;
        ASSERT_OK_AND_ASSIGN(KeyedState * keyed, ck->AddKeyedState("counts", ko));
        RestoreOptions restore;
        restore.id = id;
        ASSERT_OK(ck->Restore(restore).status()) << w << " checkpoint " << id;
        uint64_t next = 0;
        ASSERT_TRUE(absl::SimpleAtoi(commit.metadata.at(StrCat("step/", w)), &next));
        const workload::State expected =
            workload::StateAt(w, next - 1, keyed->group_first(), keyed->group_end());
        EXPECT_TRUE(std::string(region->data(), region->size()) == expected.region)
            << w << " checkpoint " << id;
        std::map<std::string, std::string> entries;
        keyed->ForEach([&](std::string_view k, std::string_view v) {
          entries[std::string(k)] = std::string(v);
        });
        EXPECT_EQ(entries, expected.keyed) << w << " checkpoint " << id;
      }
    }
    EXPECT_GE(history, 2u);
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::EtcdServer> etcd_;
  std::shared_ptr<CoordinationStore> store_;
  std::string repo_path_;
  std::string stop_file_;
  std::vector<Process> coordinators_;
  std::map<std::string, Process> workers_;
};

TEST_F(CoordProcessTest, ParticipantKilledMidCheckpointRecovers) {
  StartJob();
  ASSERT_TRUE(WaitForCommits(1));
  ASSERT_TRUE(WaitFor([&] { return CheckpointInFlight(); }, absl::Seconds(10)));
  workers_["w1"].Kill();
  ASSERT_TRUE(WaitFor([&] { return Snapshot().recovery.value_or(RecoveryValue{}).sequence >= 2; },
                      absl::Seconds(15)));
  StartWorker("w1");  // the launcher relaunches it
  ExpectJobCompletes();
}

TEST_F(CoordProcessTest, LeaderKilledMidCommitStandbyTakesOver) {
  StartJob();
  ASSERT_TRUE(WaitForCommits(1));
  const pid_t leader = LeaderPid();
  ASSERT_NE(CoordinatorByPid(leader), nullptr);
  ASSERT_TRUE(WaitFor([&] { return CheckpointInFlight(); }, absl::Seconds(10)));
  CoordinatorByPid(leader)->Kill();
  ASSERT_TRUE(WaitFor([&] { return LeaderPid() != leader && LeaderPid() > 0; }, absl::Seconds(15)));
  const size_t before = Committed(Snapshot());
  ASSERT_TRUE(WaitForCommits(before + 1));  // the standby commits
  ExpectJobCompletes();
}

TEST_F(CoordProcessTest, ParticipantKilledDuringRecovery) {
  StartJob();
  ASSERT_TRUE(WaitForCommits(1));
  workers_["w1"].Kill();
  ASSERT_TRUE(WaitFor([&] { return Snapshot().recovery.value_or(RecoveryValue{}).sequence >= 2; },
                      absl::Seconds(15)));
  // w2 dies while the recovery waits for w1's relaunch.
  workers_["w2"].Kill();
  StartWorker("w1");
  absl::SleepFor(absl::Milliseconds(500));
  StartWorker("w2");
  ExpectJobCompletes();
}

TEST_F(CoordProcessTest, StoppedLeaderIsFencedAfterTheStandbyTakesOver) {
  StartJob();
  ASSERT_TRUE(WaitForCommits(1));
  const pid_t leader = LeaderPid();
  Process* old = CoordinatorByPid(leader);
  ASSERT_NE(old, nullptr);
  ASSERT_TRUE(WaitFor([&] { return CheckpointInFlight(); }, absl::Seconds(10)));
  old->Signal(SIGSTOP);  // past its 3 s lease
  ASSERT_TRUE(WaitFor([&] { return LeaderPid() != leader && LeaderPid() > 0; }, absl::Seconds(15)));
  const size_t before = Committed(Snapshot());
  ASSERT_TRUE(WaitForCommits(before + 2));
  old->Signal(SIGCONT);  // it wakes up believing it leads, with a checkpoint pending
  absl::SleepFor(absl::Seconds(1));
  ExpectJobCompletes();
}

TEST_F(CoordProcessTest, DeclinedCheckpointIsAbortedAndTheJobGoesOn) {
  StartJob();
  ASSERT_TRUE(WaitForCommits(1));
  // A checkpoint at step 1: every participant is past it and declines.
  absl::StatusOr<std::pair<uint64_t, CheckpointOutcome>> r =
      RequestCheckpoint(store_, kJob, /*full=*/false, /*step=*/1, absl::Seconds(20));
  ASSERT_OK(r.status());
  EXPECT_EQ(r->second, CheckpointOutcome::kAborted);
  const JobSnapshot snap = Snapshot();
  EXPECT_NE(snap.outcomes.at(r->first).reason.find("past step"), std::string::npos);
  EXPECT_EQ(snap.recovery->sequence, 1u);  // not a failure
  // A full checkpoint on demand commits.
  absl::StatusOr<std::pair<uint64_t, CheckpointOutcome>> full =
      RequestCheckpoint(store_, kJob, /*full=*/true, std::nullopt, absl::Seconds(20));
  ASSERT_OK(full.status());
  EXPECT_EQ(full->second, CheckpointOutcome::kCommitted);
  ExpectJobCompletes();
}

TEST_F(CoordProcessTest, SlowParticipantTimesOut) {
  StartCoordinator("c1", "1s");
  StartCoordinator("c2", "1s");
  StartWorker("w0");
  StartWorker("w1", {"--stall-at-step", "60", "--stall-ms", "2500"});
  StartWorker("w2");
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const auto& [id, o] : Snapshot().outcomes) {
          if (o.reason.find("timed out waiting for w1") != std::string::npos) return true;
        }
        return false;
      },
      absl::Seconds(30)));
  ExpectJobCompletes();
}

TEST_F(CoordProcessTest, StalledParticipantReplacedWhileStoppedWritesNothing) {
  StartJob();
  ASSERT_TRUE(WaitForCommits(1));
  Process stalled = workers_["w1"];
  stalled.Signal(SIGSTOP);
  // Past its lease: the leader recovers without it; its relaunch joins under the same name.
  ASSERT_TRUE(WaitFor([&] { return Snapshot().recovery.value_or(RecoveryValue{}).sequence >= 2; },
                      absl::Seconds(15)));
  StartWorker("w1");
  ASSERT_TRUE(WaitFor([&] { return Snapshot().members.count("w1") > 0; }, absl::Seconds(10)));
  stalled.Signal(SIGCONT);
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const std::string& l : ReadLines(Report("w1"))) {
          if (l == "replaced") return true;
        }
        return false;
      },
      absl::Seconds(15)));
  stalled.Stop(absl::Seconds(5));
  ExpectJobCompletes();
}

TEST_F(CoordProcessTest, EtcdRestartedDuringACheckpoint) {
  StartJob();
  ASSERT_TRUE(WaitForCommits(1));
  ASSERT_TRUE(WaitFor([&] { return CheckpointInFlight(); }, absl::Seconds(10)));
  ASSERT_OK(etcd_->Restart());
  const size_t before = Committed(Snapshot());
  ASSERT_TRUE(WaitForCommits(before + 2));
  ExpectJobCompletes();
}

}  // namespace
}  // namespace ickpt::coord
