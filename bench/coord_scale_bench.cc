// The coordination scale benchmark (docs/benchmarks.md, "Coordination at scale"; issue 16): commit
// latency and the coordinator's own CPU per checkpoint with P participants (the 4, 64 and
// 1,024), over one real etcd on loopback, in one run.
//
// Set-up, per size P, each on a job and a repository of its own (the etcd is shared):
//   - P participants, threads spread over --processes child processes (this program re-executed
//     with --child): each a real Participant with its own etcd connection, lease and service thread
//     (safe-point callback mode, so the participant's own threads watch, capture, acknowledge and
//     settle by themselves), holding a tiny checkpointer: one region of one 4 KiB block (explicit
//     tracker, marked dirty at each safe point), persist_threads 1, capture_threads 1, so that what
//     is measured is the coordination, not data.
//   - One coordinator in this process, CoordinatorTestPeer::StartManual: its rounds run on this
//     thread, one RunRound() at a time, with the waits between them as Coordinator's own loop does
//     (WaitForChange on the job's prefix from the revision the round read, up to 1 s). Its CPU is
//     this thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so the participants' CPU is not in it. Its
//     etcd calls and its repository's object-store calls are timed apart (CPU of this thread inside
//     them). Maintenance (consolidation, GC) is off: it is data work on a thread of its own. The
//     lease keep-alive thread (one call per lease ttl / 3) is not counted.
//   - The repository is a local directory under --dir (default /dev/shm, a tmpfs: the fsyncs of P
//     acknowledgements per checkpoint are data, not coordination); etcd's data directory is under
//     --etcd-dir (default /tmp, a disk, as a real etcd's would be).
//
// Per checkpoint (after --warmup checkpoints that are not counted, and --gap-ms of quiet):
//   - latency: from the trigger's write (the coordinator's transaction that put triggers/<id>
//     returned) to the moment the last participant handed the outcome to its checkpointer
//     (ParticipantTestPeer::SetOutcomeObserver; CLOCK_MONOTONIC, the same clock in every process);
//     also to the outcome's write (trigger -> acknowledgements -> group commit -> outcome).
//   - coordinator CPU: this thread's CPU from the start of the round that triggers to the end of
//     the round that writes the outcome, rounds and waits between them; split into etcd reads
//     (GetPrefix and GetRanges: HTTP, and decoding the gateway's JSON), etcd writes (Txn), waits
//     (the watch stream), the repository's object store, and the rest (decoding the job's keys into
//     a snapshot, decisions, the group commit's own work).
//   - the participants' processes' and etcd's CPU (from /proc/PID/stat, 10 ms ticks) over the same
//     window (trigger to last settlement), and how many reads (GetPrefix, GetRanges) and watch
//     waits the participants made, with the bytes of keys and values the reads returned.
// A checkpoint counts in the summary if it committed, every participant learned it, and the round
// that triggered it was its first (no recovery in between); the others are printed and counted
// apart. The wait for the participants to learn an outcome ends early when none learns it for
// max(10 s, 2 lease ttl): a participant that lost its lease rejoined and never will.
// Before the first checkpoint of a size, --idle-ms of idle: the participants' and etcd's CPU per
// second while nothing happens (leases kept alive, a participant's watch renewed every 2 s).
//
// At the end, one table of every size side by side, and the goals: coordinator CPU under
// 10 ms per checkpoint at 64 participants, and at 1,024 no more than 16x the 64 figure (medians of
// this run; a ratio is the only figure to compare across runs on this shared machine).
//
// Configuration (flag, else environment, else default):
//   --sizes=A,B,...  ICKPT_BENCH_COORD_SIZES        participant counts (default 4,64,1024; the
//                                                   quick mode is 4,64)
//   --checkpoints=N  ICKPT_BENCH_COORD_CHECKPOINTS  measured checkpoints per size (default 20)
//   --warmup=N       ICKPT_BENCH_COORD_WARMUP       checkpoints first, not counted (default 1)
//   --processes=N    ICKPT_BENCH_COORD_PROCESSES    child processes per size (default 4; fewer if
//                                                   P is smaller)
//   --lease-ttl=S    ICKPT_BENCH_COORD_LEASE_TTL    participants' and coordinator's lease, seconds
//                                                   (default 5, the library's default)
//   --gap-ms=MS      ICKPT_BENCH_COORD_GAP_MS       quiet time before each checkpoint (default 200)
//   --idle-ms=MS     ICKPT_BENCH_COORD_IDLE_MS      idle measurement per size (default 3000)
//   --timeout-s=S    ICKPT_BENCH_COORD_TIMEOUT_S    the coordinator's checkpoint timeout, and how
//                                                   long to wait for the participants to learn an
//                                                   outcome (default 600: at most the retention
//                                                   policy's checkpoint_timeout)
//   --start-timeout-s=S  ICKPT_BENCH_COORD_START_TIMEOUT_S  how long a size may take to have every
//                                                   participant joined and assigned (default 600);
//                                                   a size that does not start is reported as such
//                                                   (not an error) and the run goes on
//   --dir=PATH       ICKPT_BENCH_DIR                where repositories go (default /dev/shm)
//   --etcd-dir=PATH  ICKPT_BENCH_ETCD_DIR           where etcd's data goes (default /tmp)
// Errors: a message on stderr and exit status 1. SIGINT or SIGTERM removes the temporary
// directories and exits (the children and etcd die with this process).
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench_options.h"
#include "ickpt/checkpointer.h"
#include "ickpt/coordination.h"
#include "ickpt/region.h"
#include "ickpt/repository.h"
#include "ickpt/store.h"
#include "src/coord/coordination_store.h"
#include "src/coord/coordinator_internal.h"
#include "src/coord/local_etcd.h"
#include "src/coord/protocol.h"
#include "src/util/str.h"

extern char** environ;

namespace ickpt {
namespace {

using bench::Check;
using Nanos = int64_t;

constexpr uint64_t kBlock = 4096;

Nanos ClockNanos(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<Nanos>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
Nanos MonoNow() { return ClockNanos(CLOCK_MONOTONIC); }
Nanos ThreadCpuNow() { return ClockNanos(CLOCK_THREAD_CPUTIME_ID); }
double Ms(Nanos n) { return static_cast<double>(n) / 1e6; }

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "coord_scale_bench: error: %s\n", what.c_str());
  std::exit(1);
}

// Raises the soft open-file limit to the hard one (every participant holds etcd connections).
uint64_t RaiseOpenFileLimit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return 0;
  if (r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
    ::getrlimit(RLIMIT_NOFILE, &r);
  }
  return static_cast<uint64_t>(r.rlim_cur);
}

// The first three fields of /proc/loadavg: the machine is shared.
std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return StrCat(a, " ", b, " ", c);
}

std::string ParticipantName(uint64_t index) {
  char name[16];
  std::snprintf(name, sizeof(name), "p%05" PRIu64, index);
  return name;
}

std::string JobName(uint64_t participants) { return StrCat("scale-", participants); }

// Forwards every call to `target`; the measuring stores below override some.
class ForwardingStore : public coord::CoordinationStore {
 public:
  explicit ForwardingStore(std::shared_ptr<coord::CoordinationStore> target)
      : target_(std::move(target)) {}
  std::string Describe() const override { return target_->Describe(); }
  absl::StatusOr<int64_t> Put(std::string_view key, std::string_view value,
                              int64_t lease) override {
    return target_->Put(key, value, lease);
  }
  absl::StatusOr<coord::RangeResult> Get(std::string_view key) override {
    return target_->Get(key);
  }
  absl::StatusOr<coord::RangeResult> GetPrefix(std::string_view prefix) override {
    return target_->GetPrefix(prefix);
  }
  absl::StatusOr<int64_t> Delete(std::string_view key) override { return target_->Delete(key); }
  absl::StatusOr<coord::TxnResult> Txn(const std::vector<coord::Compare>& compares,
                                       const std::vector<coord::TxnOp>& success,
                                       const std::vector<coord::TxnOp>& failure) override {
    return target_->Txn(compares, success, failure);
  }
  absl::StatusOr<int64_t> GrantLease(absl::Duration ttl) override {
    return target_->GrantLease(ttl);
  }
  absl::Status KeepAlive(int64_t lease) override { return target_->KeepAlive(lease); }
  absl::Status RevokeLease(int64_t lease) override { return target_->RevokeLease(lease); }
  absl::StatusOr<coord::MultiRangeResult> GetRanges(
      const std::vector<coord::KeyRange>& ranges) override {
    return target_->GetRanges(ranges);
  }
  absl::StatusOr<int64_t> WaitForChangeIn(const coord::KeyRange& range, int64_t after_revision,
                                          absl::Duration timeout,
                                          const coord::WaitCancel* cancel) override {
    return target_->WaitForChangeIn(range, after_revision, timeout, cancel);
  }

 protected:
  coord::CoordinationStore& target() { return *target_; }

 private:
  std::shared_ptr<coord::CoordinationStore> target_;
};

uint64_t RangeBytes(const std::vector<coord::KeyValue>& kvs) {
  uint64_t bytes = 0;
  for (const coord::KeyValue& kv : kvs) bytes += kv.key.size() + kv.value.size();
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Child mode: a process of participants.

// A participant's store: counts its reads (prefix reads and reads of several ranges; and the bytes
// of keys and values they returned) and its waits, for the driver.
struct ChildCounters {
  std::atomic<uint64_t> reads{0};
  std::atomic<uint64_t> read_bytes{0};
  std::atomic<uint64_t> waits{0};
};

class CountingStore final : public ForwardingStore {
 public:
  CountingStore(std::shared_ptr<coord::CoordinationStore> target, ChildCounters* counters)
      : ForwardingStore(std::move(target)), counters_(counters) {}
  absl::StatusOr<coord::RangeResult> GetPrefix(std::string_view prefix) override {
    absl::StatusOr<coord::RangeResult> r = target().GetPrefix(prefix);
    counters_->reads.fetch_add(1, std::memory_order_relaxed);
    if (r.ok()) counters_->read_bytes.fetch_add(RangeBytes(r->kvs), std::memory_order_relaxed);
    return r;
  }
  absl::StatusOr<coord::MultiRangeResult> GetRanges(
      const std::vector<coord::KeyRange>& ranges) override {
    absl::StatusOr<coord::MultiRangeResult> r = target().GetRanges(ranges);
    counters_->reads.fetch_add(1, std::memory_order_relaxed);
    if (r.ok()) {
      for (const auto& kvs : r->ranges) {
        counters_->read_bytes.fetch_add(RangeBytes(kvs), std::memory_order_relaxed);
      }
    }
    return r;
  }
  absl::StatusOr<int64_t> WaitForChangeIn(const coord::KeyRange& range, int64_t after_revision,
                                          absl::Duration timeout,
                                          const coord::WaitCancel* cancel) override {
    counters_->waits.fetch_add(1, std::memory_order_relaxed);
    return target().WaitForChangeIn(range, after_revision, timeout, cancel);
  }

 private:
  ChildCounters* counters_;
};

// Lines to the driver, on stdout, one write each.
class Reporter {
 public:
  void Line(const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string out = line + "\n";
    size_t done = 0;
    while (done < out.size()) {
      const ssize_t w = ::write(STDOUT_FILENO, out.data() + done, out.size() - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) std::_Exit(1);  // the driver is gone
      done += static_cast<size_t>(w);
    }
  }

 private:
  std::mutex mu_;
};

struct ChildMember {
  std::unique_ptr<Checkpointer> checkpointer;
  std::atomic<Region*> region{nullptr};
  std::atomic<bool> restored{false};
  std::unique_ptr<Participant> participant;
};

int ChildMain(int argc, char** argv) {
  // Dies with the driver (the thread that spawned it: its main thread).
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  const std::string endpoint = bench::StringOption(argc, argv, "etcd", "", "");
  const std::string job = bench::StringOption(argc, argv, "job", "", "");
  const std::string repo_path = bench::StringOption(argc, argv, "repo", "", "");
  const uint64_t first = bench::Option(argc, argv, "first", "", 0);
  const uint64_t count = bench::Option(argc, argv, "count", "", 0);
  const uint64_t lease_ttl = bench::Option(argc, argv, "lease-ttl", "", 5);
  if (endpoint.empty() || job.empty() || repo_path.empty() || count == 0) {
    Fail("--child needs --etcd, --job, --repo and --count");
  }
  RaiseOpenFileLimit();
  std::unique_ptr<Repository> repo = Check(Repository::OpenLocal(repo_path, /*create=*/false));
  Reporter reporter;
  ChildCounters counters;

  // When a participant of this process learned an outcome: a line each.
  auto observe = [&reporter](uint64_t id, CheckpointOutcome outcome) {
    const Nanos now = MonoNow();
    reporter.Line(StrCat("settled ", id, " ", outcome == CheckpointOutcome::kCommitted ? "c" : "a",
                         " ", now));
  };
  std::atomic<uint64_t> restored{0};

  std::vector<std::unique_ptr<ChildMember>> members;
  for (uint64_t i = 0; i < count; ++i) {
    auto m = std::make_unique<ChildMember>();
    ChildMember* member = m.get();
    std::shared_ptr<coord::CoordinationStore> store =
        std::make_shared<CountingStore>(Check(ConnectEtcd(endpoint)), &counters);
    ParticipantOptions po;
    po.job = job;
    po.name = ParticipantName(first + i);
    po.lease_ttl = absl::Seconds(static_cast<int64_t>(lease_ttl));
    po.prepare = [member, &repo](const Assignment& a) -> absl::StatusOr<Checkpointer*> {
      CheckpointerOptions base;
      base.persist_threads = 1;
      base.uploads_in_flight = 1;
      base.capture_threads = 1;
      base.consolidate_in_background = false;
      base.gc_after_commit = false;
      base.staging_budget_bytes = 1 << 20;
      member->region = nullptr;
      member->checkpointer.reset();
      absl::StatusOr<std::unique_ptr<Checkpointer>> ck =
          Checkpointer::Open(repo.get(), a.Apply(base));
      if (!ck.ok()) return ck.status();
      RegionOptions ro;
      ro.size = kBlock;
      ro.block_size = kBlock;
      ro.tracker = TrackerKind::kExplicit;
      absl::StatusOr<Region*> region = (*ck)->AddRegion("state", ro);
      if (!region.ok()) return region.status();
      member->checkpointer = *std::move(ck);
      member->region = *region;
      return member->checkpointer.get();
    };
    // The application at its safe point: one block changed since the last checkpoint.
    po.safe_point = [member](absl::FunctionRef<void()> at_safe_point) {
      if (Region* r = member->region.load(); r != nullptr) {
        ++r->data()[0];
        r->MarkDirty(0, kBlock);
      }
      at_safe_point();
    };
    po.on_restored = [member, &restored, &reporter, count](const Assignment&,
                                                           const std::optional<CommitRecord>&) {
      if (!member->restored.exchange(true) && restored.fetch_add(1) + 1 == count) {
        reporter.Line("ready");
      }
    };
    // An etcd that does not answer in time (Unavailable) is retried, as a launcher would; the
    // driver's start timeout bounds the whole start.
    absl::StatusOr<std::unique_ptr<Participant>> p = Participant::Join(store, repo.get(), po);
    while (!p.ok() && absl::IsUnavailable(p.status())) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      p = Participant::Join(store, repo.get(), po);
    }
    if (!p.ok()) {
      reporter.Line(StrCat("error joining ", po.name, ": ", p.status().ToString()));
      return 1;
    }
    coord::ParticipantTestPeer::SetOutcomeObserver(**p, observe);
    member->participant = *std::move(p);
    members.push_back(std::move(m));
  }
  reporter.Line("joined");

  // Runs until the driver closes stdin; each 'c' it sends asks for the counters.
  char buffer[256];
  while (true) {
    const ssize_t r = ::read(STDIN_FILENO, buffer, sizeof(buffer));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    for (ssize_t i = 0; i < r; ++i) {
      if (buffer[i] != 'c') continue;
      reporter.Line(StrCat("counters ", counters.reads.load(), " ", counters.read_bytes.load(), " ",
                           counters.waits.load()));
    }
  }
  // Leave in parallel: each participant's destructor waits for its service thread's watch.
  std::vector<std::thread> leaving;
  for (auto& m : members) {
    leaving.emplace_back([member = m.get()] {
      member->participant.reset();
      member->checkpointer.reset();
    });
  }
  for (std::thread& t : leaving) t.join();
  return 0;
}

// ---------------------------------------------------------------------------------------------
// The driver.

// The coordinator's store: CPU of this (the measuring) thread inside each kind of call, what the
// reads returned, and the trigger and outcome writes as they return.
enum Kind { kRead = 0, kWrite = 1, kWait = 2, kRepo = 3, kKinds = 4 };

struct CoordCounters {
  Nanos cpu[kKinds] = {};
  uint64_t calls[kKinds] = {};
  uint64_t keys_read = 0;
  // Kept across checkpoints.
  int64_t last_revision = 0;
  uint64_t trigger_id = 0;
  Nanos trigger_at = 0;
  uint64_t outcome_id = 0;
  Nanos outcome_at = 0;
  bool committed = false;

  void ResetPerCheckpoint() {
    std::fill(std::begin(cpu), std::end(cpu), 0);
    std::fill(std::begin(calls), std::end(calls), 0);
    keys_read = 0;
  }
};

// Accounts the CPU of the calling thread between construction and destruction, if it is the
// measuring thread.
class CpuScope {
 public:
  CpuScope(CoordCounters* counters, Kind kind, std::thread::id measured)
      : counters_(std::this_thread::get_id() == measured ? counters : nullptr), kind_(kind) {
    if (counters_ != nullptr) start_ = ThreadCpuNow();
  }
  ~CpuScope() {
    if (counters_ == nullptr) return;
    counters_->cpu[kind_] += ThreadCpuNow() - start_;
    ++counters_->calls[kind_];
  }

 private:
  CoordCounters* counters_;
  Kind kind_;
  Nanos start_ = 0;
};

class MeasuredStore final : public ForwardingStore {
 public:
  MeasuredStore(std::shared_ptr<coord::CoordinationStore> target, std::string job,
                CoordCounters* counters)
      : ForwardingStore(std::move(target)),
        triggers_(coord::TriggersPrefix(job)),
        outcomes_(coord::OutcomesPrefix(job)),
        counters_(counters),
        measured_(std::this_thread::get_id()) {}

  absl::StatusOr<int64_t> Put(std::string_view key, std::string_view value,
                              int64_t lease) override {
    CpuScope scope(counters_, kWrite, measured_);
    return target().Put(key, value, lease);
  }
  absl::StatusOr<coord::RangeResult> Get(std::string_view key) override {
    CpuScope scope(counters_, kRead, measured_);
    return target().Get(key);
  }
  absl::StatusOr<coord::RangeResult> GetPrefix(std::string_view prefix) override {
    absl::StatusOr<coord::RangeResult> r;
    {
      CpuScope scope(counters_, kRead, measured_);
      r = target().GetPrefix(prefix);
    }
    if (r.ok() && std::this_thread::get_id() == measured_) {
      counters_->last_revision = r->revision;
      counters_->keys_read += r->kvs.size();
    }
    return r;
  }
  absl::StatusOr<int64_t> Delete(std::string_view key) override {
    CpuScope scope(counters_, kWrite, measured_);
    return target().Delete(key);
  }
  absl::StatusOr<coord::TxnResult> Txn(const std::vector<coord::Compare>& compares,
                                       const std::vector<coord::TxnOp>& success,
                                       const std::vector<coord::TxnOp>& failure) override {
    absl::StatusOr<coord::TxnResult> r;
    {
      CpuScope scope(counters_, kWrite, measured_);
      r = target().Txn(compares, success, failure);
    }
    if (r.ok() && r->succeeded && std::this_thread::get_id() == measured_) {
      const Nanos now = MonoNow();
      for (const coord::TxnOp& op : success) {
        if (op.type != coord::TxnOp::Type::kPut) continue;
        uint64_t id = 0;
        if (op.key.rfind(triggers_, 0) == 0 &&
            absl::SimpleAtoi(op.key.substr(triggers_.size()), &id)) {
          counters_->trigger_id = id;
          counters_->trigger_at = now;
        } else if (op.key.rfind(outcomes_, 0) == 0 &&
                   absl::SimpleAtoi(op.key.substr(outcomes_.size()), &id)) {
          counters_->outcome_id = id;
          counters_->outcome_at = now;
          counters_->committed = op.value.find("\"committed\"") != std::string::npos;
        }
      }
    }
    return r;
  }
  absl::StatusOr<coord::MultiRangeResult> GetRanges(
      const std::vector<coord::KeyRange>& ranges) override {
    absl::StatusOr<coord::MultiRangeResult> r;
    {
      CpuScope scope(counters_, kRead, measured_);
      r = target().GetRanges(ranges);
    }
    if (r.ok() && std::this_thread::get_id() == measured_) {
      counters_->last_revision = r->revision;
      for (const auto& kvs : r->ranges) counters_->keys_read += kvs.size();
    }
    return r;
  }
  absl::StatusOr<int64_t> WaitForChangeIn(const coord::KeyRange& range, int64_t after_revision,
                                          absl::Duration timeout,
                                          const coord::WaitCancel* cancel) override {
    CpuScope scope(counters_, kWait, measured_);
    return target().WaitForChangeIn(range, after_revision, timeout, cancel);
  }

 private:
  const std::string triggers_;
  const std::string outcomes_;
  CoordCounters* counters_;
  const std::thread::id measured_;
};

// The coordinator's repository store: CPU of the measuring thread inside each call.
class MeasuredObjectStore final : public ObjectStoreWrapper {
 public:
  MeasuredObjectStore(std::unique_ptr<ObjectStore> target, CoordCounters* counters)
      : ObjectStoreWrapper(target.get()),
        owned_(std::move(target)),
        counters_(counters),
        measured_(std::this_thread::get_id()) {}
  absl::Status Put(std::string_view key, std::string_view data) override {
    CpuScope scope(counters_, kRepo, measured_);
    return ObjectStoreWrapper::Put(key, data);
  }
  absl::Status Publish(std::string_view key, std::string_view data) override {
    CpuScope scope(counters_, kRepo, measured_);
    return ObjectStoreWrapper::Publish(key, data);
  }
  absl::StatusOr<std::string> Get(std::string_view key) override {
    CpuScope scope(counters_, kRepo, measured_);
    return ObjectStoreWrapper::Get(key);
  }
  absl::StatusOr<std::string> GetRange(std::string_view key, uint64_t offset,
                                       uint64_t length) override {
    CpuScope scope(counters_, kRepo, measured_);
    return ObjectStoreWrapper::GetRange(key, offset, length);
  }
  absl::StatusOr<uint64_t> Size(std::string_view key) override {
    CpuScope scope(counters_, kRepo, measured_);
    return ObjectStoreWrapper::Size(key);
  }
  absl::StatusOr<ObjectPage> ListPage(std::string_view prefix, std::string_view start_after,
                                      size_t max_keys) override {
    CpuScope scope(counters_, kRepo, measured_);
    return ObjectStoreWrapper::ListPage(prefix, start_after, max_keys);
  }
  absl::Status Delete(std::string_view key) override {
    CpuScope scope(counters_, kRepo, measured_);
    return ObjectStoreWrapper::Delete(key);
  }

 private:
  std::unique_ptr<ObjectStore> owned_;
  CoordCounters* counters_;
  const std::thread::id measured_;
};

// A process's user + system CPU from /proc/PID/stat (clock ticks), in nanoseconds; 0 if gone.
Nanos ProcessCpu(pid_t pid) {
  std::ifstream in(StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(paren + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  // After "pid (comm) ": state is field 3; utime and stime are fields 14 and 15.
  for (int i = 3; i <= 15 && (fields >> field); ++i) {
    if (i == 14) absl::SimpleAtoi(field, &utime);
    if (i == 15) absl::SimpleAtoi(field, &stime);
  }
  static const long ticks = ::sysconf(_SC_CLK_TCK);
  return static_cast<Nanos>((utime + stime) * (1'000'000'000 / static_cast<uint64_t>(ticks)));
}

// The children of one size: spawned, their lines read on a thread each.
class Children {
 public:
  // The participants that learned an outcome, and when.
  struct Settlement {
    bool aborted = false;
    std::vector<Nanos> times;
  };

  Children(const std::string& self, const std::string& endpoint, const std::string& job,
           const std::string& repo, uint64_t participants, uint64_t processes, uint64_t lease_ttl) {
    processes = std::max<uint64_t>(1, std::min(processes, participants));
    uint64_t first = 0;
    for (uint64_t c = 0; c < processes; ++c) {
      const uint64_t count = participants / processes + (c < participants % processes ? 1 : 0);
      Spawn(self, {"--child", StrCat("--etcd=", endpoint), StrCat("--job=", job),
                   StrCat("--repo=", repo), StrCat("--first=", first), StrCat("--count=", count),
                   StrCat("--lease-ttl=", lease_ttl)});
      first += count;
    }
    // children_ no longer moves.
    for (size_t i = 0; i < children_.size(); ++i) {
      children_[i].reader = std::thread([this, i] { Read(i); });
    }
  }

  ~Children() { Stop(); }

  // Closes the children's stdin (they leave the job and exit) and waits for them (up to 120 s,
  // then SIGKILL).
  void Stop() {
    for (Child& c : children_) {
      if (c.to_child >= 0) ::close(c.to_child);
      c.to_child = -1;
    }
    const Nanos deadline = MonoNow() + 120'000'000'000;
    for (Child& c : children_) {
      if (c.pid <= 0) continue;
      int status = 0;
      while (::waitpid(c.pid, &status, WNOHANG) == 0) {
        if (MonoNow() > deadline) {
          ::kill(c.pid, SIGKILL);
          ::waitpid(c.pid, &status, 0);
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      c.pid = -1;
    }
    for (Child& c : children_) {
      if (c.reader.joinable()) c.reader.join();
      if (c.from_child >= 0) ::close(c.from_child);
      c.from_child = -1;
    }
  }

  size_t size() const { return children_.size(); }

  Nanos Cpu() const {
    Nanos total = 0;
    for (const Child& c : children_) total += c.pid > 0 ? ProcessCpu(c.pid) : 0;
    return total;
  }

  // Calls `between` until every child reports its participants assigned (true), a child reports
  // an error or the timeout passes (false). Shows `progress()` every 15 s.
  bool WaitReady(Nanos timeout, const std::function<void()>& between,
                 const std::function<std::string()>& progress) {
    const Nanos start = MonoNow();
    Nanos shown = start;
    while (MonoNow() - start < timeout) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_.empty()) return false;
        if (ready_ == children_.size()) return true;
      }
      if (MonoNow() - shown > 15'000'000'000) {
        shown = MonoNow();
        std::string counts;
        {
          std::lock_guard<std::mutex> lock(mu_);
          counts = StrCat(joined_, " of ", children_.size(), " processes joined all theirs, ",
                          ready_, " assigned");
        }
        std::printf("# %.0f s: %s; %s\n", Ms(shown - start) / 1000, counts.c_str(),
                    progress().c_str());
        std::fflush(stdout);
      }
      between();
    }
    return false;
  }

  // Waits until `expected` participants learned outcome `id`, a child reports an error, `stall`
  // passes without another one learning it (a participant that lost its lease rejoins and forgets
  // what it captured: it never will) or `timeout` passes; returns those that did.
  Settlement WaitSettled(uint64_t id, size_t expected, Nanos stall, Nanos timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    const Nanos deadline = MonoNow() + timeout;
    size_t seen = settled_[id].times.size();
    while (error_.empty() && seen < expected && MonoNow() < deadline) {
      cv_.wait_for(lock, std::chrono::nanoseconds(std::min(stall, deadline - MonoNow())));
      if (settled_[id].times.size() == seen) break;  // none came within `stall`
      seen = settled_[id].times.size();
    }
    Settlement s = std::move(settled_[id]);
    // Settlements of earlier checkpoints that came late (participants that rejoined) are dropped.
    settled_.erase(settled_.begin(), settled_.upper_bound(id));
    return s;
  }

  // The participants' prefix reads, the bytes they returned, and their waits so far: asks every
  // child and waits (up to 10 s) for the answers.
  void Counters(uint64_t* reads, uint64_t* bytes, uint64_t* waits) {
    std::unique_lock<std::mutex> lock(mu_);
    const uint64_t wanted = ++counter_requests_;
    for (Child& c : children_) {
      if (c.to_child >= 0 && ::write(c.to_child, "c", 1) != 1) error_ = "a child is gone";
    }
    cv_.wait_for(lock, std::chrono::seconds(10), [&] {
      return !error_.empty() ||
             std::all_of(children_.begin(), children_.end(),
                         [&](const Child& c) { return c.counter_replies >= wanted; });
    });
    *reads = *bytes = *waits = 0;
    for (const Child& c : children_) {
      *reads += c.reads;
      *bytes += c.read_bytes;
      *waits += c.waits;
    }
  }

  std::string error() {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

 private:
  struct Child {
    pid_t pid = -1;
    int to_child = -1;
    int from_child = -1;
    std::thread reader;
    uint64_t reads = 0, read_bytes = 0, waits = 0;
    uint64_t counter_replies = 0;
  };

  void Spawn(const std::string& self, const std::vector<std::string>& args) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
      Fail(StrCat("pipe: ", std::strerror(errno)));
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    std::vector<std::string> all = {self};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    // The driver blocks SIGINT and SIGTERM on every thread but one; a child must not inherit that.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, self.c_str(), &actions, &attr, argv.data(), environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    ::close(in[0]);
    ::close(out[1]);
    if (rc != 0) Fail(StrCat("posix_spawn ", self, ": ", std::strerror(rc)));
    children_.emplace_back();
    Child& c = children_.back();
    c.pid = pid;
    c.to_child = in[1];
    c.from_child = out[0];
  }

  void Read(size_t index) {
    const int fd = children_[index].from_child;
    std::string pending;
    char buffer[65536];
    while (true) {
      const ssize_t r = ::read(fd, buffer, sizeof(buffer));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      pending.append(buffer, static_cast<size_t>(r));
      size_t newline;
      while ((newline = pending.find('\n')) != std::string::npos) {
        Handle(index, pending.substr(0, newline));
        pending.erase(0, newline + 1);
      }
    }
  }

  void Handle(size_t index, const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    if (line == "joined") {
      ++joined_;
    } else if (line == "ready") {
      ++ready_;
    } else if (line.rfind("counters ", 0) == 0) {
      std::vector<std::string> f = absl::StrSplit(line, ' ');
      Child& c = children_[index];
      if (f.size() != 4 || !absl::SimpleAtoi(f[1], &c.reads) ||
          !absl::SimpleAtoi(f[2], &c.read_bytes) || !absl::SimpleAtoi(f[3], &c.waits)) {
        error_ = StrCat("child ", index, ": bad line: ", line.substr(0, 200));
      }
      ++c.counter_replies;
    } else if (line.rfind("settled ", 0) == 0) {
      std::vector<std::string> f = absl::StrSplit(line, ' ');
      uint64_t id = 0;
      Nanos t = 0;
      if (f.size() != 4 || !absl::SimpleAtoi(f[1], &id) || !absl::SimpleAtoi(f[3], &t)) {
        error_ = StrCat("child ", index, ": bad line: ", line.substr(0, 200));
      } else {
        Settlement& s = settled_[id];
        s.aborted = s.aborted || f[2] == "a";
        s.times.push_back(t);
      }
    } else {
      error_ = StrCat("child ", index, ": ", line.substr(0, 500));
    }
    cv_.notify_all();
  }

  std::vector<Child> children_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t joined_ = 0;
  size_t ready_ = 0;
  uint64_t counter_requests_ = 0;
  std::map<uint64_t, Settlement> settled_;
  std::string error_;
};

struct CheckpointSample {
  uint64_t id = 0;
  bool committed = false;
  // The round that triggered was the first of the checkpoint (no recovery or re-campaign before).
  bool clean = false;
  size_t settled = 0;       // participants that learned the outcome
  double latency_ms = 0;    // trigger write -> last participant settled
  double first_ms = 0;      // trigger write -> first participant settled
  double outcome_ms = 0;    // trigger write -> outcome write
  double coord_cpu_ms = 0;  // the coordinator thread, triggering round to outcome round
  double kind_cpu_ms[kKinds] = {};
  double other_cpu_ms = 0;
  uint64_t rounds = 0;
  uint64_t reads = 0;
  double keys_per_read = 0;
  double children_cpu_s = 0;  // trigger -> last settlement
  double etcd_cpu_s = 0;
  uint64_t participant_reads = 0;
  double participant_read_mib = 0;
  uint64_t participant_waits = 0;
};

struct SizeResult {
  uint64_t participants = 0;
  uint64_t processes = 0;
  double start_s = 0;            // spawn -> every participant assigned
  double idle_children_cpu = 0;  // CPU seconds per second, idle
  double idle_etcd_cpu = 0;
  double idle_participant_reads = 0;  // per second
  std::vector<CheckpointSample> samples;
  int64_t start_members = 0;
  double start_etcd_cpu_s = 0;
  double start_children_cpu_s = 0;
  uint64_t start_rounds = 0;
  double start_coord_cpu_ms = 0;   // rounds and waits
  double start_keys_per_read = 0;  // the last round's
  bool failed = false;
  bool not_started = false;  // a measured outcome, not an error: the job never started
  std::string failure;
};

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  rank = std::clamp<size_t>(rank, 1, v.size());
  return v[rank - 1];
}

template <typename F>
double MedianOf(const std::vector<CheckpointSample>& samples, F field) {
  std::vector<double> v;
  for (const CheckpointSample& s : samples) v.push_back(field(s));
  return Percentile(v, 0.5);
}
template <typename F>
double P90Of(const std::vector<CheckpointSample>& samples, F field) {
  std::vector<double> v;
  for (const CheckpointSample& s : samples) v.push_back(field(s));
  return Percentile(v, 0.9);
}

struct Config {
  std::vector<uint64_t> sizes;
  uint64_t checkpoints = 20;
  uint64_t warmup = 1;
  uint64_t processes = 4;
  uint64_t lease_ttl = 5;
  uint64_t gap_ms = 200;
  uint64_t idle_ms = 3000;
  uint64_t timeout_s = 600;
  uint64_t start_timeout_s = 600;
  std::string dir;
  std::string etcd_dir;
  std::string self;
};

class SizeRun {
 public:
  SizeRun(const Config& config, const std::string& endpoint, pid_t etcd_pid, uint64_t participants,
          const std::string& repo_dir)
      : config_(config),
        endpoint_(endpoint),
        etcd_pid_(etcd_pid),
        participants_(participants),
        repo_dir_(repo_dir),
        job_(JobName(participants)) {}

  SizeResult Run() {
    SizeResult result;
    result.participants = participants_;
    // The repository: created, then opened again for the coordinator through a measured store.
    Check(Repository::OpenLocal(repo_dir_, /*create=*/true).status());
    LocalStoreOptions lso;
    std::unique_ptr<ObjectStore> local = Check(OpenLocalStore(repo_dir_, lso));
    repo_ = Check(
        Repository::Open(std::make_unique<MeasuredObjectStore>(std::move(local), &counters_)));
    etcd_ = Check(ConnectEtcd(endpoint_));
    store_ = std::make_shared<MeasuredStore>(etcd_, job_, &counters_);
    CoordinatorOptions co;
    co.job = job_;
    co.name = "bench-coordinator";
    co.interval = absl::Milliseconds(1);  // this loop decides when the next round runs
    co.timeout = absl::Seconds(static_cast<int64_t>(config_.timeout_s));
    co.participants = static_cast<uint32_t>(participants_);
    co.lease_ttl = absl::Seconds(static_cast<int64_t>(config_.lease_ttl));
    co.maintenance = false;
    coordinator_ = Check(coord::CoordinatorTestPeer::StartManual(store_, repo_.get(), co));

    const Nanos start = MonoNow();
    const Nanos etcd_start = ProcessCpu(etcd_pid_);
    children_ = std::make_unique<Children>(config_.self, endpoint_, job_, repo_dir_, participants_,
                                           config_.processes, config_.lease_ttl);
    result.processes = children_->size();
    const Nanos start_cpu = ThreadCpuNow();
    auto round_and_wait = [&] {
      const uint64_t keys = counters_.keys_read, reads = counters_.calls[kRead];
      Round().IgnoreError();  // logged by Round
      ++result.start_rounds;
      if (counters_.calls[kRead] > reads) {
        result.start_keys_per_read = static_cast<double>(counters_.keys_read - keys) /
                                     static_cast<double>(counters_.calls[kRead] - reads);
      }
      store_
          ->WaitForChange(coord::JobPrefix(job_), counters_.last_revision, absl::Milliseconds(200))
          .IgnoreError();  // the next round reads again
    };
    auto progress = [&] {
      return StrCat(Members(), " members, etcd ", Ms(ProcessCpu(etcd_pid_) - etcd_start) / 1000,
                    " CPU-s, participants ", Ms(children_->Cpu()) / 1000, " CPU-s");
    };
    const bool ready = children_->WaitReady(
        static_cast<Nanos>(config_.start_timeout_s) * 1'000'000'000, round_and_wait, progress);
    result.start_s = Ms(MonoNow() - start) / 1000;
    result.start_coord_cpu_ms = Ms(ThreadCpuNow() - start_cpu);
    result.start_etcd_cpu_s = Ms(ProcessCpu(etcd_pid_) - etcd_start) / 1000;
    result.start_children_cpu_s = Ms(children_->Cpu()) / 1000;
    result.start_members = Members();
    if (!ready) {
      if (!children_->error().empty()) return Failed(result, children_->error());
      result.not_started = true;
      return Failed(result, StrCat("not every participant was assigned within ",
                                   config_.start_timeout_s, " s: ", progress()));
    }
    std::printf("# P=%" PRIu64 ": %zu processes, every participant assigned after %.1f s (%s)\n",
                participants_, children_->size(), result.start_s, progress().c_str());
    std::fflush(stdout);

    for (uint64_t i = 0; i < config_.warmup; ++i) {
      CheckpointSample s;
      if (!Checkpoint(&s)) return Failed(result, failure_);
      std::printf("# P=%" PRIu64 ": warm-up checkpoint %" PRIu64 " %s in %.1f ms\n", participants_,
                  s.id, s.committed ? "committed" : "aborted", s.latency_ms);
      std::fflush(stdout);
    }
    Idle(&result);
    for (uint64_t i = 0; i < config_.checkpoints; ++i) {
      CheckpointSample s;
      if (!Checkpoint(&s)) return Failed(result, failure_);
      PrintSample(s);
      result.samples.push_back(s);
    }
    children_->Stop();
    coordinator_.reset();
    return result;
  }

 private:
  SizeResult& Failed(SizeResult& result, const std::string& why) {
    result.failed = true;
    result.failure = why;
    std::fprintf(stderr, "coord_scale_bench: P=%" PRIu64 ": %s\n", participants_, why.c_str());
    children_->Stop();
    coordinator_.reset();
    return result;
  }

  // The job's members now (a read of their prefix, not counted), or -1 if the read failed.
  int64_t Members() {
    absl::StatusOr<coord::RangeResult> r = etcd_->GetPrefix(coord::MembersPrefix(job_));
    return r.ok() ? static_cast<int64_t>(r->kvs.size()) : -1;
  }

  absl::Status Round() {
    absl::Status s = coord::CoordinatorTestPeer::RunRound(*coordinator_);
    if (!s.ok()) std::fprintf(stderr, "# coordinator round: %s\n", s.ToString().c_str());
    return s;
  }

  // Idle: nothing triggered for --idle-ms.
  void Idle(SizeResult* result) {
    uint64_t reads0, bytes0, waits0, reads1, bytes1, waits1;
    children_->Counters(&reads0, &bytes0, &waits0);
    const Nanos children0 = children_->Cpu(), etcd0 = ProcessCpu(etcd_pid_), t0 = MonoNow();
    std::this_thread::sleep_for(std::chrono::milliseconds(config_.idle_ms));
    const double seconds = Ms(MonoNow() - t0) / 1000;
    result->idle_children_cpu = Ms(children_->Cpu() - children0) / 1000 / seconds;
    result->idle_etcd_cpu = Ms(ProcessCpu(etcd_pid_) - etcd0) / 1000 / seconds;
    children_->Counters(&reads1, &bytes1, &waits1);
    result->idle_participant_reads = static_cast<double>(reads1 - reads0) / seconds;
  }

  // One checkpoint: rounds until the coordinator writes an outcome, then the wait for every
  // participant to learn it.
  bool Checkpoint(CheckpointSample* s) {
    std::this_thread::sleep_for(std::chrono::milliseconds(config_.gap_ms));
    uint64_t reads0, bytes0, waits0;
    children_->Counters(&reads0, &bytes0, &waits0);
    const uint64_t previous_outcome = counters_.outcome_id;
    const Nanos children0 = children_->Cpu(), etcd0 = ProcessCpu(etcd_pid_);
    counters_.ResetPerCheckpoint();
    const Nanos cpu0 = ThreadCpuNow();
    const Nanos wall0 = MonoNow();
    const Nanos limit = static_cast<Nanos>(config_.timeout_s) * 1'000'000'000 * 2;
    const uint64_t previous_trigger = counters_.trigger_id;
    while (true) {
      Round().IgnoreError();  // logged; the next round retries
      if (++s->rounds == 1) s->clean = counters_.trigger_id != previous_trigger;
      if (counters_.outcome_id != previous_outcome) break;
      if (MonoNow() - wall0 > limit) {
        failure_ = "no outcome was written";
        return false;
      }
      store_->WaitForChange(coord::JobPrefix(job_), counters_.last_revision, absl::Seconds(1))
          .IgnoreError();  // the next round reads again
    }
    const Nanos cpu = ThreadCpuNow() - cpu0;
    s->id = counters_.outcome_id;
    s->committed = counters_.committed;
    const bool triggered_here =
        counters_.trigger_id == s->id && counters_.trigger_id != previous_trigger;
    s->clean = s->clean && triggered_here;
    const Nanos trigger_at = triggered_here ? counters_.trigger_at : wall0;
    // Every participant learns a commit; an abort (a participant lost, which rejoins with a new
    // incarnation and forgets what it captured) only reaches those still holding the capture.
    const Nanos settle_timeout =
        static_cast<Nanos>(s->committed ? config_.timeout_s
                                        : std::min<uint64_t>(config_.timeout_s, 10)) *
        1'000'000'000;
    const Nanos stall =
        static_cast<Nanos>(std::max<uint64_t>(10, 2 * config_.lease_ttl)) * 1'000'000'000;
    Children::Settlement settled =
        children_->WaitSettled(s->id, participants_, stall, settle_timeout);
    const Nanos children1 = children_->Cpu(), etcd1 = ProcessCpu(etcd_pid_);
    if (!children_->error().empty()) {
      failure_ = children_->error();
      return false;
    }
    s->settled = settled.times.size();
    if (!settled.times.empty()) {
      const auto [first, last] = std::minmax_element(settled.times.begin(), settled.times.end());
      s->latency_ms = Ms(*last - trigger_at);
      s->first_ms = Ms(*first - trigger_at);
    }
    s->outcome_ms = Ms(counters_.outcome_at - trigger_at);
    s->coord_cpu_ms = Ms(cpu);
    Nanos accounted = 0;
    for (int k = 0; k < kKinds; ++k) {
      s->kind_cpu_ms[k] = Ms(counters_.cpu[k]);
      accounted += counters_.cpu[k];
    }
    s->other_cpu_ms = Ms(cpu - accounted);
    s->reads = counters_.calls[kRead];
    s->keys_per_read =
        s->reads > 0 ? static_cast<double>(counters_.keys_read) / static_cast<double>(s->reads) : 0;
    s->children_cpu_s = Ms(children1 - children0) / 1000;
    s->etcd_cpu_s = Ms(etcd1 - etcd0) / 1000;
    uint64_t reads1, bytes1, waits1;
    children_->Counters(&reads1, &bytes1, &waits1);
    s->participant_reads = reads1 - reads0;
    s->participant_read_mib = static_cast<double>(bytes1 - bytes0) / (1 << 20);
    s->participant_waits = waits1 - waits0;
    return true;
  }

  void PrintSample(const CheckpointSample& s) {
    std::printf(
        "P=%-5" PRIu64 " ckpt %-4" PRIu64
        " %s%s %zu learned, latency %9.1f ms (first %8.1f, outcome written %8.1f)  coordinator CPU "
        "%8.2f ms [read %.2f write %.2f wait %.2f repo %.2f other %.2f] %" PRIu64
        " rounds, %.0f keys/read  participants %.2f CPU-s, %" PRIu64 " reads (%.1f MiB), %" PRIu64
        " waits  etcd %.2f CPU-s\n",
        participants_, s.id, s.committed ? "committed" : "ABORTED  ",
        s.clean ? "" : " (after a recovery)", s.settled, s.latency_ms, s.first_ms, s.outcome_ms,
        s.coord_cpu_ms, s.kind_cpu_ms[kRead], s.kind_cpu_ms[kWrite], s.kind_cpu_ms[kWait],
        s.kind_cpu_ms[kRepo], s.other_cpu_ms, s.rounds, s.keys_per_read, s.children_cpu_s,
        s.participant_reads, s.participant_read_mib, s.participant_waits, s.etcd_cpu_s);
    std::fflush(stdout);
  }

  const Config& config_;
  const std::string endpoint_;
  const pid_t etcd_pid_;
  const uint64_t participants_;
  const std::string repo_dir_;
  const std::string job_;
  CoordCounters counters_;
  std::unique_ptr<Repository> repo_;
  std::shared_ptr<coord::CoordinationStore> etcd_;  // unmeasured, for the driver's own reads
  std::shared_ptr<MeasuredStore> store_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<Children> children_;
  std::string failure_;
};

// The samples that count: committed, learned by every participant, and triggered by the first
// round of the checkpoint (no recovery in between).
std::vector<CheckpointSample> Counted(const SizeResult& r) {
  std::vector<CheckpointSample> v;
  for (const CheckpointSample& s : r.samples) {
    if (s.committed && s.clean && s.settled == r.participants) v.push_back(s);
  }
  return v;
}

void PrintSummary(const std::vector<SizeResult>& results) {
  std::printf("\n## Start (spawn to every participant assigned)\n\n");
  std::printf(
      "| participants | processes | seconds | members at the end | etcd CPU-s "
      "| participants CPU-s | coordinator rounds | coordinator CPU ms per round "
      "| keys per coordinator read |\n|---|---|---|---|---|---|---|---|---|\n");
  for (const SizeResult& r : results) {
    std::printf("| %" PRIu64 " | %" PRIu64 " | %.1f%s | %" PRId64 " | %.1f | %.1f | %" PRIu64
                " | %.2f | %.0f |\n",
                r.participants, r.processes, r.start_s, r.not_started ? " (not started)" : "",
                r.start_members, r.start_etcd_cpu_s, r.start_children_cpu_s, r.start_rounds,
                r.start_rounds > 0 ? r.start_coord_cpu_ms / static_cast<double>(r.start_rounds) : 0,
                r.start_keys_per_read);
  }
  std::printf("\n## Checkpoints (medians over the counted checkpoints; p90 after the slash)\n\n");
  std::printf(
      "Counted: committed, learned by every participant, triggered by the checkpoint's first "
      "round (no recovery in between).\n\n");
  std::printf(
      "| participants | measured (committed, counted) | latency ms | outcome written ms "
      "| coordinator CPU ms | read | write | wait | repo | other | rounds | keys/read "
      "| participants CPU-s | participant reads | etcd CPU-s | idle: CPU/s participants, etcd; "
      "participant reads/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const SizeResult& r : results) {
    size_t committed = 0;
    for (const CheckpointSample& s : r.samples) committed += s.committed ? 1 : 0;
    const std::vector<CheckpointSample> v = Counted(r);
    if (v.empty()) {
      std::printf("| %" PRIu64 " | %zu (%zu, 0) | %s |\n", r.participants, r.samples.size(),
                  committed, r.failed ? r.failure.c_str() : "no checkpoint counted");
      continue;
    }
    std::printf("| %" PRIu64
                " | %zu (%zu, %zu) | %.1f / %.1f | %.1f / %.1f | %.2f / %.2f "
                "| %.2f | %.2f | %.2f | %.2f | %.2f | %.0f | %.0f | %.2f | %.0f | %.2f "
                "| %.2f, %.2f; %.0f |\n",
                r.participants, r.samples.size(), committed, v.size(),
                MedianOf(v, [](auto& s) { return s.latency_ms; }),
                P90Of(v, [](auto& s) { return s.latency_ms; }),
                MedianOf(v, [](auto& s) { return s.outcome_ms; }),
                P90Of(v, [](auto& s) { return s.outcome_ms; }),
                MedianOf(v, [](auto& s) { return s.coord_cpu_ms; }),
                P90Of(v, [](auto& s) { return s.coord_cpu_ms; }),
                MedianOf(v, [](auto& s) { return s.kind_cpu_ms[kRead]; }),
                MedianOf(v, [](auto& s) { return s.kind_cpu_ms[kWrite]; }),
                MedianOf(v, [](auto& s) { return s.kind_cpu_ms[kWait]; }),
                MedianOf(v, [](auto& s) { return s.kind_cpu_ms[kRepo]; }),
                MedianOf(v, [](auto& s) { return s.other_cpu_ms; }),
                MedianOf(v, [](auto& s) { return static_cast<double>(s.rounds); }),
                MedianOf(v, [](auto& s) { return s.keys_per_read; }),
                MedianOf(v, [](auto& s) { return s.children_cpu_s; }),
                MedianOf(v, [](auto& s) { return static_cast<double>(s.participant_reads); }),
                MedianOf(v, [](auto& s) { return s.etcd_cpu_s; }), r.idle_children_cpu,
                r.idle_etcd_cpu, r.idle_participant_reads);
  }
  auto cpu = [](const SizeResult& r) {
    return MedianOf(Counted(r), [](auto& s) { return s.coord_cpu_ms; });
  };
  auto latency = [](const SizeResult& r) {
    return MedianOf(Counted(r), [](auto& s) { return s.latency_ms; });
  };
  auto find = [&](uint64_t p) -> const SizeResult* {
    for (const SizeResult& r : results) {
      if (r.participants == p && !Counted(r).empty()) return &r;
    }
    return nullptr;
  };
  std::printf("\n## Ratios (this run, medians)\n\n");
  const SizeResult* previous = nullptr;
  for (const SizeResult& r : results) {
    if (Counted(r).empty()) continue;
    if (previous != nullptr) {
      std::printf("%" PRIu64 " / %" PRIu64
                  " participants (x%.0f): coordinator CPU x%.2f, latency "
                  "x%.2f\n",
                  r.participants, previous->participants,
                  static_cast<double>(r.participants) / static_cast<double>(previous->participants),
                  cpu(r) / cpu(*previous), latency(r) / latency(*previous));
    }
    previous = &r;
  }
  std::printf("\n## Goals (issue 16)\n\n");
  const SizeResult* p64 = find(64);
  const SizeResult* p1024 = find(1024);
  if (p64 != nullptr) {
    std::printf("coordinator CPU per checkpoint at 64 participants: %.2f ms (goal < 10 ms): %s\n",
                cpu(*p64), cpu(*p64) < 10 ? "met" : "NOT MET");
  } else {
    std::printf("coordinator CPU per checkpoint at 64 participants: not measured in this run\n");
  }
  if (p64 != nullptr && p1024 != nullptr) {
    const double ratio = cpu(*p1024) / cpu(*p64);
    std::printf("coordinator CPU 1024 / 64: %.2f ms / %.2f ms = x%.2f (goal <= x16): %s\n",
                cpu(*p1024), cpu(*p64), ratio, ratio <= 16 ? "met" : "NOT MET");
  } else {
    std::printf(
        "coordinator CPU 1024 / 64: not measured in this run (no counted checkpoint at %s)\n",
        p64 == nullptr ? "64" : "1024");
  }
  std::fflush(stdout);
}

int DriverMain(int argc, char** argv) {
  Config config;
  const std::string sizes =
      bench::StringOption(argc, argv, "sizes", "ICKPT_BENCH_COORD_SIZES", "4,64,1024");
  for (const std::string& part :
       std::vector<std::string>(absl::StrSplit(sizes, ',', absl::SkipEmpty()))) {
    uint64_t n = 0;
    if (!absl::SimpleAtoi(part, &n) || n == 0) Fail(StrCat("bad --sizes: ", sizes));
    config.sizes.push_back(n);
  }
  config.checkpoints =
      bench::Option(argc, argv, "checkpoints", "ICKPT_BENCH_COORD_CHECKPOINTS", 20);
  config.warmup = bench::Option(argc, argv, "warmup", "ICKPT_BENCH_COORD_WARMUP", 1);
  config.processes = bench::Option(argc, argv, "processes", "ICKPT_BENCH_COORD_PROCESSES", 4);
  config.lease_ttl = bench::Option(argc, argv, "lease-ttl", "ICKPT_BENCH_COORD_LEASE_TTL", 5);
  config.gap_ms = bench::Option(argc, argv, "gap-ms", "ICKPT_BENCH_COORD_GAP_MS", 200);
  config.idle_ms = bench::Option(argc, argv, "idle-ms", "ICKPT_BENCH_COORD_IDLE_MS", 3000);
  config.timeout_s = bench::Option(argc, argv, "timeout-s", "ICKPT_BENCH_COORD_TIMEOUT_S", 600);
  config.start_timeout_s =
      bench::Option(argc, argv, "start-timeout-s", "ICKPT_BENCH_COORD_START_TIMEOUT_S", 600);
  config.dir = bench::StringOption(argc, argv, "dir", "ICKPT_BENCH_DIR",
                                   std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp");
  config.etcd_dir = bench::StringOption(argc, argv, "etcd-dir", "ICKPT_BENCH_ETCD_DIR", "/tmp");
  if (config.checkpoints == 0 || config.processes == 0 || config.lease_ttl == 0 ||
      config.timeout_s == 0) {
    Fail("--checkpoints, --processes, --lease-ttl and --timeout-s must be positive");
  }
  std::error_code ec;
  config.self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec) Fail(StrCat("/proc/self/exe: ", ec.message()));
  const uint64_t nofile = RaiseOpenFileLimit();  // children and etcd inherit it

  auto make_temp = [](const std::string& parent, const char* what) {
    std::string pattern = parent + "/coord-scale-" + what + "-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      Fail(StrCat("mkdtemp ", pattern, ": ", std::strerror(errno)));
    }
    return pattern;
  };
  const std::string repo_root = make_temp(config.dir, "repo");
  const std::string etcd_root = make_temp(config.etcd_dir, "etcd");
  // SIGINT and SIGTERM: remove them and exit, from a thread of its own (blocked everywhere else;
  // the children get an empty mask back at their spawn, etcd at its).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::thread([stop_signals, repo_root, etcd_root] {
    int signal = 0;
    sigwait(&stop_signals, &signal);
    std::error_code ignored;
    std::filesystem::remove_all(repo_root, ignored);
    std::filesystem::remove_all(etcd_root, ignored);
    std::fprintf(stderr, "coord_scale_bench: signal %d: temporary directories removed\n", signal);
    std::_Exit(128 + signal);
  }).detach();
  coord::LocalEtcdOptions eo;
  eo.dir = etcd_root;
  std::unique_ptr<coord::LocalEtcd> etcd = Check(coord::LocalEtcd::Start(eo));

  std::printf("# coord_scale_bench: sizes %s, %" PRIu64 " checkpoints (+%" PRIu64
              " warm-up) per size, up to %" PRIu64 " processes, lease ttl %" PRIu64
              " s, gap %" PRIu64 " ms\n",
              sizes.c_str(), config.checkpoints, config.warmup, config.processes, config.lease_ttl,
              config.gap_ms);
  std::printf("# etcd %s (pid %d, data in %s), repositories in %s, open files %" PRIu64
              ", nproc %u\n",
              etcd->endpoint().c_str(), static_cast<int>(etcd->pid()), etcd_root.c_str(),
              repo_root.c_str(), nofile, std::thread::hardware_concurrency());
  std::fflush(stdout);

  std::vector<SizeResult> results;
  for (uint64_t p : config.sizes) {
    std::printf("# P=%" PRIu64 ": load average %s\n", p, LoadAverage().c_str());
    SizeRun run(config, etcd->endpoint(), etcd->pid(), p, StrCat(repo_root, "/repo-", p));
    results.push_back(run.Run());
    std::filesystem::remove_all(StrCat(repo_root, "/repo-", p), ec);
  }
  std::printf("# load average at the end: %s\n", LoadAverage().c_str());
  PrintSummary(results);
  etcd.reset();
  std::filesystem::remove_all(repo_root, ec);
  std::filesystem::remove_all(etcd_root, ec);
  for (const SizeResult& r : results) {
    if (r.failed && !r.not_started) return 1;
  }
  return 0;
}

}  // namespace
}  // namespace ickpt

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--child") == 0) return ickpt::ChildMain(argc, argv);
  }
  return ickpt::DriverMain(argc, argv);
}
