// coord_worker: one participant process of the multi-process coordination tests
// (coord_process_test.cc). It joins a job through etcd, runs the deterministic workload of
// test_workload.h in bulk-synchronous mode (Poll between steps), and appends what happens to a
// report file, one line each, flushed at once (the test reads it while the worker runs):
//
//   joined <incarnation>
//   restored <sequence> <checkpoint or none> <steps done> ok|MISMATCH
//   checkpoint <id> <step>
//   declined <id> <reason>
//   done <sequence> <steps> <digest>        (reached --steps under recovery <sequence>)
//   replaced                                (another process joined under this name: exits 0)
//
// Each restore is checked against a replay of the workload: MISMATCH (and exit 3) if any byte
// differs. Stops when --stop-file exists; exits 0.
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "ickpt/checkpointer.h"
#include "ickpt/coordination.h"
#include "ickpt/repository.h"
#include "src/coord/test_workload.h"
#include "src/util/str.h"

namespace ickpt::coord {
namespace {

struct Flags {
  std::string etcd, job, repo, name, report, stop_file;
  uint64_t steps = 100;
  int64_t step_ms = 10;
  int64_t lease_ttl_s = 3;
  uint64_t stall_at_step = 0;  // 0: never
  int64_t stall_ms = 0;
};

bool ParseFlags(int argc, char** argv, Flags* f) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    int64_t n = 0;
    const bool numeric = absl::SimpleAtoi(value, &n) && n >= 0;
    if (flag == "--etcd") f->etcd = value;
    else if (flag == "--job") f->job = value;
    else if (flag == "--repo") f->repo = value;
    else if (flag == "--name") f->name = value;
    else if (flag == "--report") f->report = value;
    else if (flag == "--stop-file") f->stop_file = value;
    else if (flag == "--steps" && numeric) f->steps = static_cast<uint64_t>(n);
    else if (flag == "--step-ms" && numeric) f->step_ms = n;
    else if (flag == "--lease-ttl" && numeric) f->lease_ttl_s = n;
    else if (flag == "--stall-at-step" && numeric) f->stall_at_step = static_cast<uint64_t>(n);
    else if (flag == "--stall-ms" && numeric) f->stall_ms = n;
    else {
      std::cerr << "coord_worker: bad flag " << flag << " " << value << "\n";
      return false;
    }
  }
  return !f->etcd.empty() && !f->job.empty() && !f->repo.empty() && !f->name.empty() &&
         !f->report.empty() && !f->stop_file.empty();
}

class Worker {
 public:
  explicit Worker(Flags flags) : flags_(std::move(flags)), report_(flags_.report, std::ios::app) {}

  int Run() {
    absl::StatusOr<std::shared_ptr<CoordinationStore>> store = ConnectEtcd(flags_.etcd);
    if (!store.ok()) return Die(store.status());
    absl::StatusOr<std::unique_ptr<Repository>> repo = Repository::OpenUrl(flags_.repo, true);
    if (!repo.ok()) return Die(repo.status());
    repo_ = *std::move(repo);
    ParticipantOptions po;
    po.job = flags_.job;
    po.name = flags_.name;
    po.lease_ttl = absl::Seconds(flags_.lease_ttl_s);
    po.prepare = [this](const Assignment& a) { return Prepare(a); };
    absl::StatusOr<std::unique_ptr<Participant>> p = Participant::Join(*store, repo_.get(), po);
    if (!p.ok()) return Die(p.status());
    participant_ = *std::move(p);
    Report(StrCat("joined ", participant_->incarnation()));
    bool stalled = false;
    while (access(flags_.stop_file.c_str(), F_OK) != 0) {
      absl::StatusOr<PollResult> r = participant_->Poll(done_ + 1);
      if (!r.ok()) {
        if (absl::IsFailedPrecondition(r.status()) &&
            r.status().message().find("replaced") != std::string::npos) {
          Report("replaced");
          return 0;
        }
        std::cerr << "coord_worker " << flags_.name << ": " << r.status() << "\n";
        absl::SleepFor(absl::Milliseconds(50));
        continue;
      }
      switch (r->event) {
        case PollResult::Event::kUnassigned:
          absl::SleepFor(absl::Milliseconds(20));
          continue;
        case PollResult::Event::kRestored:
          if (!Restored(*r)) return 3;
          break;
        case PollResult::Event::kCheckpointed:
          Report(StrCat("checkpoint ", r->checkpoint_id, " ", done_ + 1));
          break;
        case PollResult::Event::kDeclined:
          Report(StrCat("declined ", r->checkpoint_id, " ", r->reason));
          break;
        case PollResult::Event::kNone:
          break;
      }
      if (!assignment_.has_value()) continue;
      if (done_ < flags_.steps) {
        if (flags_.stall_at_step != 0 && done_ + 1 == flags_.stall_at_step && !stalled) {
          stalled = true;  // a slow participant: no safe point for a while
          absl::SleepFor(absl::Milliseconds(flags_.stall_ms));
        }
        Step();
        absl::SleepFor(absl::Milliseconds(flags_.step_ms));
      } else {
        if (reported_done_ != assignment_->sequence) {
          reported_done_ = assignment_->sequence;
          Report(StrCat("done ", assignment_->sequence, " ", done_, " ", workload::Digest(Current())));
        }
        absl::SleepFor(absl::Milliseconds(20));
      }
    }
    return 0;
  }

 private:
  absl::StatusOr<Checkpointer*> Prepare(const Assignment& a) {
    CheckpointerOptions base;
    base.persist_threads = 1;
    base.consolidate_in_background = false;
    base.gc_after_commit = false;
    base.staging_budget_bytes = 64 << 20;
    checkpointer_.reset();
    absl::StatusOr<std::unique_ptr<Checkpointer>> ck = Checkpointer::Open(repo_.get(), a.Apply(base));
    if (!ck.ok()) return ck.status();
    checkpointer_ = *std::move(ck);
    RegionOptions ro;
    ro.size = workload::kRegionBytes;
    ro.block_size = workload::kBlockSize;
    absl::StatusOr<Region*> region = checkpointer_->AddRegion("grid", ro);
    if (!region.ok()) return region.status();
    KeyedStateOptions ko;
    ko.key_groups = workload::kKeyGroups;
    absl::StatusOr<KeyedState*> keyed = checkpointer_->AddKeyedState("counts", ko);
    if (!keyed.ok()) return keyed.status();
    region_ = *region;
    keyed_ = *keyed;
    return checkpointer_.get();
  }

  bool Restored(const PollResult& r) {
    assignment_ = r.assignment;
    done_ = 0;
    if (r.restored.has_value()) {
      auto it = r.restored->metadata.find(StrCat("step/", flags_.name));
      uint64_t next = 0;
      if (it == r.restored->metadata.end() || !absl::SimpleAtoi(it->second, &next) || next < 1) {
        Report(StrCat("restored ", assignment_->sequence, " ", r.restored->id, " ? MISMATCH"));
        return false;
      }
      done_ = next - 1;
    }
    const workload::State expected =
        workload::StateAt(flags_.name, done_, keyed_->group_first(), keyed_->group_end());
    const workload::State now = Current();
    const bool ok = now.region == expected.region && now.keyed == expected.keyed;
    Report(StrCat("restored ", assignment_->sequence, " ",
                  r.restored.has_value() ? StrCat(r.restored->id) : std::string("none"), " ",
                  done_, ok ? " ok" : " MISMATCH"));
    return ok;
  }

  void Step() {
    ++done_;
    workload::ApplyStep(flags_.name, done_, keyed_->group_first(), keyed_->group_end(),
                        region_->data(), [&](const std::string& k, const std::string& v) {
                          absl::Status s = keyed_->Put(k, v);
                          if (!s.ok()) std::cerr << "put " << k << ": " << s << "\n";
                        });
  }

  workload::State Current() const {
    workload::State s;
    s.region.assign(region_->data(), region_->size());
    keyed_->ForEach([&](std::string_view k, std::string_view v) {
      s.keyed[std::string(k)] = std::string(v);
    });
    return s;
  }

  void Report(const std::string& line) {
    report_ << line << "\n";
    report_.flush();
  }

  int Die(const absl::Status& s) {
    std::cerr << "coord_worker " << flags_.name << ": " << s << "\n";
    Report(StrCat("error ", s.ToString()));
    return 1;
  }

  Flags flags_;
  std::ofstream report_;
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<Checkpointer> checkpointer_;
  std::unique_ptr<Participant> participant_;
  Region* region_ = nullptr;
  KeyedState* keyed_ = nullptr;
  std::optional<Assignment> assignment_;
  uint64_t done_ = 0;
  uint64_t reported_done_ = 0;
};

}  // namespace
}  // namespace ickpt::coord

int main(int argc, char** argv) {
  ickpt::coord::Flags flags;
  if (!ickpt::coord::ParseFlags(argc, argv, &flags)) {
    std::cerr << "usage: coord_worker --etcd URL --job J --repo DIR --name N --report FILE "
                 "--stop-file FILE [--steps N] [--step-ms MS] [--lease-ttl S] "
                 "[--stall-at-step N --stall-ms MS]\n";
    return 2;
  }
  ickpt::coord::Worker worker(std::move(flags));
  return worker.Run();
}
