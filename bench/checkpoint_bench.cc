// The foundation's benchmark (docs/benchmarks.md): on a region of incompressible data, in one run,
//   1. a full checkpoint vs incremental ones with 1% and 10% of the blocks changed: wall time of
//      Checkpoint() + Wait(), capture pause, bytes written;
//   2. restore at chain depth 1, 16 and 100, with a warm and a cold page cache;
//   3. what an incremental of 1% isolated 4 KiB blocks stores beyond the changed bytes.
// Every case is measured by Google Benchmark (manual time, custom counters); the summary printed at
// the end gives the medians and the ratios between cases measured side by side in this run.
//
// Configuration (flag, else environment, else default):
//   --size=SIZE    ICKPT_BENCH_SIZE    region size, e.g. 64MiB, 256MiB (default 1GiB)
//   --dir=DIR      ICKPT_BENCH_DIR     where the temporary repositories go (default /tmp)
//   --rounds=N     ICKPT_BENCH_ROUNDS  interleaved rounds of every case (default 3)
//   --depth=N      ICKPT_BENCH_DEPTH   the deepest chain restored (default 100)
// Other flags go to Google Benchmark (--benchmark_filter, --benchmark_format, ...).
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench_options.h"
#include "ickpt/checkpointer.h"
#include "ickpt/repository.h"
#include "ickpt/store.h"
#include "src/repo/keys.h"
#include "src/repo/pack.h"
#include "src/repo/region_reader.h"
#include "src/repo/repository_internal.h"
#include "src/util/hash.h"
#include "src/util/parse.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

constexpr uint32_t kBlockSize = 4096;
constexpr std::string_view kRegionName = "data";

struct BenchConfig {
  uint64_t size = uint64_t{1} << 30;
  std::string base_dir = "/tmp";
  int rounds = 3;
  uint64_t max_depth = 100;
};
BenchConfig g_config;
std::string g_root;  // this run's temporary directory, removed at exit

// ---------------------------------------------------------------------------------------------
// Helpers

// splitmix64 (bench_options.h): its output does not compress, which is what "incompressible"
// needs.
using bench::Rng;

double NowMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// `count` distinct blocks of [0, block_count), sorted. With `isolated`, no two are adjacent, so
// each is its own extent and its own 4 KiB of data: the worst case for metadata per changed byte.
std::vector<uint64_t> PickBlocks(uint64_t block_count, uint64_t count, bool isolated, Rng& rng) {
  std::vector<bool> taken(block_count, false);
  std::vector<uint64_t> out;
  out.reserve(count);
  while (out.size() < count) {
    const uint64_t b = rng.Below(block_count);
    if (taken[b]) continue;
    if (isolated && ((b > 0 && taken[b - 1]) || (b + 1 < block_count && taken[b + 1]))) continue;
    taken[b] = true;
    out.push_back(b);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Overwrites each block with fresh random bytes (so the hash tracker sees every one change).
void ChangeBlocks(Region* region, const std::vector<uint64_t>& blocks, Rng& rng) {
  for (uint64_t b : blocks)
    rng.Fill(region->data() + b * region->block_size(), region->block_size());
}

// Forwards to a store it owns and counts what goes through: the restore's range reads and bytes
// fetched, the checkpoint's bytes written.
class CountingStore final : public ObjectStoreWrapper {
 public:
  explicit CountingStore(std::unique_ptr<ObjectStore> target)
      : ObjectStoreWrapper(target.get()), owned_(std::move(target)) {}
  absl::Status Put(std::string_view key, std::string_view data) override {
    puts_++;
    bytes_written_ += data.size();
    return target()->Put(key, data);
  }
  absl::Status Publish(std::string_view key, std::string_view data) override {
    puts_++;
    bytes_written_ += data.size();
    return target()->Publish(key, data);
  }
  absl::StatusOr<std::string> Get(std::string_view key) override {
    absl::StatusOr<std::string> r = target()->Get(key);
    gets_++;
    if (r.ok()) bytes_read_ += r->size();
    return r;
  }
  absl::StatusOr<std::string> GetRange(std::string_view key, uint64_t offset,
                                       uint64_t length) override {
    absl::StatusOr<std::string> r = target()->GetRange(key, offset, length);
    gets_++;
    if (r.ok()) bytes_read_ += r->size();
    return r;
  }
  void Reset() { puts_ = gets_ = bytes_written_ = bytes_read_ = 0; }
  uint64_t puts() const { return puts_; }
  uint64_t gets() const { return gets_; }
  uint64_t bytes_written() const { return bytes_written_; }
  uint64_t bytes_read() const { return bytes_read_; }

 private:
  std::unique_ptr<ObjectStore> owned_;
  std::atomic<uint64_t> puts_{0}, gets_{0}, bytes_written_{0}, bytes_read_{0};
};

struct OpenedRepo {
  std::unique_ptr<Repository> repo;
  CountingStore* store = nullptr;  // owned by repo
};

// A local-directory repository (what Repository::OpenLocal opens), seen through a CountingStore.
absl::StatusOr<OpenedRepo> OpenRepo(const std::string& dir, bool create) {
  LocalStoreOptions lo;
  lo.create_if_missing = create;
  absl::StatusOr<std::unique_ptr<ObjectStore>> local = OpenLocalStore(dir, lo);
  if (!local.ok()) return local.status();
  auto counting = std::make_unique<CountingStore>(*std::move(local));
  OpenedRepo out;
  out.store = counting.get();
  absl::StatusOr<std::unique_ptr<Repository>> repo =
      create ? Repository::OpenOrCreate(std::move(counting))
             : Repository::Open(std::move(counting));
  if (!repo.ok()) return repo.status();
  out.repo = *std::move(repo);
  return out;
}

absl::StatusOr<std::unique_ptr<Checkpointer>> OpenCheckpointer(Repository* repo) {
  CheckpointerOptions o;
  o.policy = NewFullEveryNPolicy(1000);  // so chains really reach depth 100
  return Checkpointer::Open(repo, std::move(o));
}

absl::StatusOr<Region*> AddDataRegion(Checkpointer* c) {
  RegionOptions ro;
  ro.size = g_config.size;
  ro.block_size = kBlockSize;
  return c->AddRegion(kRegionName, ro);
}

std::string NewDir(std::string_view name) {
  static int n = 0;
  const std::string dir = StrCat(g_root, "/", name, "-", n++);
  std::filesystem::remove_all(dir);
  return dir;
}

// Samples of one quantity, for medians in the summary.
std::map<std::string, std::vector<double>> g_samples;
std::map<std::string, std::string> g_notes;

void Sample(const std::string& key, double v) { g_samples[key].push_back(v); }

std::optional<double> Median(const std::string& key) {
  auto it = g_samples.find(key);
  if (it == g_samples.end() || it->second.empty()) return std::nullopt;
  std::vector<double> v = it->second;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void Fail(benchmark::State& state, const absl::Status& s, std::string_view what) {
  const std::string msg = StrCat(what, ": ", s.ToString());
  std::fprintf(stderr, "ERROR %s\n", msg.c_str());
  state.SkipWithError(msg.c_str());
}

// Adds `v` to a counter shown as its average over the entry's iterations.
void AddAvg(benchmark::State& state, const std::string& name, double v) {
  benchmark::Counter& c = state.counters[name];
  c.value += v;
  c.flags = benchmark::Counter::kAvgIterations;
}

struct TimedCheckpoint {
  CommitRecord record;
  double wall_ms = 0;   // Checkpoint() + Wait()
  double pause_ms = 0;  // handle.pause()
  uint64_t raw_bytes = 0;
  uint64_t bytes_put = 0;  // what went through Put/Publish, commit record and id reservation incl.
};

absl::StatusOr<TimedCheckpoint> Checkpoint(Checkpointer* c, CountingStore* store) {
  store->Reset();
  TimedCheckpoint t;
  const double start = NowMs();
  absl::StatusOr<CheckpointHandle> h = c->Checkpoint();
  if (!h.ok()) return h.status();
  absl::StatusOr<CommitRecord> r = h->Wait();
  t.wall_ms = NowMs() - start;
  if (!r.ok()) return r.status();
  t.record = *std::move(r);
  t.pause_ms = absl::ToDoubleMilliseconds(h->pause());
  for (const ParticipantRecord& p : t.record.participants) {
    for (const StateObjectRecord& o : p.state_objects) t.raw_bytes += o.raw_bytes;
  }
  t.bytes_put = store->bytes_written();
  return t;
}

void RecordCheckpoint(benchmark::State& state, const std::string& name, const TimedCheckpoint& t) {
  state.SetIterationTime(t.wall_ms / 1e3);
  Sample(name + ".wall_ms", t.wall_ms);
  Sample(name + ".pause_ms", t.pause_ms);
  Sample(name + ".stored_bytes", static_cast<double>(t.record.stored_bytes));
  Sample(name + ".raw_bytes", static_cast<double>(t.raw_bytes));
  Sample(name + ".bytes_put", static_cast<double>(t.bytes_put));
  // This entry's own values, averaged over its iterations; the summary takes medians over rounds.
  AddAvg(state, "pause_ms", t.pause_ms);
  AddAvg(state, "stored_MiB", t.record.stored_bytes / double(1 << 20));
  AddAvg(state, "raw_MiB", t.raw_bytes / double(1 << 20));
  AddAvg(state, "put_MiB", t.bytes_put / double(1 << 20));
}

// ---------------------------------------------------------------------------------------------
// 1. Full vs incremental checkpoints

// A full checkpoint: a fresh checkpointer (no base), so every block is written.
void BM_CheckpointFull(benchmark::State& state) {
  uint64_t round = 0;
  for (auto _ : state) {
    const std::string dir = NewDir("full");
    absl::StatusOr<OpenedRepo> repo = OpenRepo(dir, true);
    if (!repo.ok()) return Fail(state, repo.status(), "open repository");
    absl::StatusOr<std::unique_ptr<Checkpointer>> c = OpenCheckpointer(repo->repo.get());
    if (!c.ok()) return Fail(state, c.status(), "open checkpointer");
    absl::StatusOr<Region*> region = AddDataRegion(c->get());
    if (!region.ok()) return Fail(state, region.status(), "add region");
    Rng rng(1000 + round++);
    rng.Fill((*region)->data(), (*region)->size());
    absl::StatusOr<TimedCheckpoint> t = Checkpoint(c->get(), repo->store);
    if (!t.ok()) return Fail(state, t.status(), "full checkpoint");
    if (t->record.kind != CheckpointKind::kFull) {
      return Fail(state, absl::InternalError("not a full checkpoint"), "full checkpoint");
    }
    RecordCheckpoint(state, "full", *t);
    c->reset();
    repo->repo.reset();
    std::filesystem::remove_all(dir);
  }
}

// The repository incrementals are taken in: a full checkpoint of random data, then increments.
struct IncrementalEnv {
  std::string dir;
  OpenedRepo repo;
  std::unique_ptr<Checkpointer> checkpointer;
  Region* region = nullptr;
  Rng rng{7};
};
std::unique_ptr<IncrementalEnv> g_incremental;

absl::Status SetUpIncremental() {
  if (g_incremental) return absl::OkStatus();
  auto env = std::make_unique<IncrementalEnv>();
  env->dir = NewDir("incremental");
  absl::StatusOr<OpenedRepo> repo = OpenRepo(env->dir, true);
  if (!repo.ok()) return repo.status();
  env->repo = *std::move(repo);
  absl::StatusOr<std::unique_ptr<Checkpointer>> c = OpenCheckpointer(env->repo.repo.get());
  if (!c.ok()) return c.status();
  env->checkpointer = *std::move(c);
  absl::StatusOr<Region*> region = AddDataRegion(env->checkpointer.get());
  if (!region.ok()) return region.status();
  env->region = *region;
  env->rng.Fill(env->region->data(), env->region->size());
  absl::StatusOr<TimedCheckpoint> base = Checkpoint(env->checkpointer.get(), env->repo.store);
  if (!base.ok()) return base.status();
  g_incremental = std::move(env);
  return absl::OkStatus();
}

// What an incremental stored besides the changed bytes (goal 3), read back from the repository.
struct Overhead {
  uint64_t packs = 0;
  uint64_t pack_raw = 0;     // Σ raw-stream sizes of the packs the checkpoint wrote
  uint64_t pack_frames = 0;  // Σ stored frame bytes
  uint64_t pack_meta = 0;    // headers + indexes + footers
  uint64_t manifest = 0;
  uint64_t commit = 0;  // the commit record object
  uint64_t metadata() const { return pack_meta + manifest + commit; }
};

absl::StatusOr<Overhead> MeasureOverhead(const Repository& repo, const CommitRecord& record) {
  Overhead o;
  absl::StatusOr<uint64_t> commit_size =
      RepositoryInternal::store(repo)->Size(CommitKey(record.id));
  if (!commit_size.ok()) return commit_size.status();
  o.commit = *commit_size;
  for (const ParticipantRecord& p : record.participants) {
    for (const StateObjectRecord& so : p.state_objects) {
      o.manifest += so.manifest_bytes;
      absl::StatusOr<Manifest> m = ReadManifest(repo, record.id, so);
      if (!m.ok()) return m.status();
      // An incremental manifest's pack table holds only the packs its extents use: the new ones.
      for (const Sha256Digest& d : m->packs) {
        absl::StatusOr<PackIndex> index =
            ReadPackIndex(RepositoryInternal::store(repo), PackKey(ToHex(d)));
        if (!index.ok()) return index.status();
        uint64_t frames = 0;
        for (const FrameInfo& f : index->frames) frames += f.stored_len;
        ++o.packs;
        o.pack_raw += index->raw_size;
        o.pack_frames += frames;
        o.pack_meta += index->pack_size - frames;
      }
    }
  }
  return o;
}

void BM_CheckpointIncremental(benchmark::State& state, int percent, bool isolated) {
  const std::string name = StrCat("incr", percent);
  if (absl::Status s = SetUpIncremental(); !s.ok()) return Fail(state, s, "set up incrementals");
  IncrementalEnv& env = *g_incremental;
  const uint64_t blocks = env.region->block_count();
  const uint64_t changed = std::max<uint64_t>(1, blocks * percent / 100);
  for (auto _ : state) {
    ChangeBlocks(env.region, PickBlocks(blocks, changed, isolated, env.rng), env.rng);
    absl::StatusOr<TimedCheckpoint> t = Checkpoint(env.checkpointer.get(), env.repo.store);
    if (!t.ok()) return Fail(state, t.status(), "incremental checkpoint");
    const StateObjectRecord& so = t->record.participants.at(0).state_objects.at(0);
    if (t->record.kind != CheckpointKind::kIncremental || so.changed_blocks != changed) {
      return Fail(state,
                  absl::InternalError(
                      StrCat("expected an incremental of ", changed, " blocks, got kind ",
                             CheckpointKindName(t->record.kind), " with ", so.changed_blocks)),
                  name);
    }
    RecordCheckpoint(state, name, *t);
    absl::StatusOr<Overhead> o = MeasureOverhead(*env.repo.repo, t->record);
    if (!o.ok()) return Fail(state, o.status(), "read back the incremental");
    const double changed_bytes = static_cast<double>(changed) * kBlockSize;
    Sample(name + ".changed_bytes", changed_bytes);
    Sample(name + ".pack_raw_ratio", o->pack_raw / changed_bytes);
    Sample(name + ".metadata_ratio", o->metadata() / changed_bytes);
    Sample(name + ".manifest_bytes", static_cast<double>(o->manifest));
    Sample(name + ".pack_meta_bytes", static_cast<double>(o->pack_meta));
    Sample(name + ".commit_bytes", static_cast<double>(o->commit));
    Sample(name + ".packs", static_cast<double>(o->packs));
    state.counters["changed_blocks"] = static_cast<double>(changed);
    AddAvg(state, "pack_raw/changed", o->pack_raw / changed_bytes);
    AddAvg(state, "meta/changed_pct", o->metadata() / changed_bytes * 100);
  }
  if (isolated) g_notes[name] = "isolated (non-adjacent) random blocks";
}

// ---------------------------------------------------------------------------------------------
// 2. Restore vs chain depth

struct ChainEnv {
  std::string dir;
  std::map<uint64_t, uint64_t> id_at_depth;
  std::map<uint64_t, uint64_t> digest_at_depth;  // xxh3 of the region as checkpointed
  double build_s = 0;
};
std::unique_ptr<ChainEnv> g_chain;

absl::Status SetUpChain() {
  if (g_chain) return absl::OkStatus();
  g_incremental.reset();  // free its region and repository
  const double start = NowMs();
  auto env = std::make_unique<ChainEnv>();
  env->dir = NewDir("chain");
  absl::StatusOr<OpenedRepo> repo = OpenRepo(env->dir, true);
  if (!repo.ok()) return repo.status();
  absl::StatusOr<std::unique_ptr<Checkpointer>> c = OpenCheckpointer(repo->repo.get());
  if (!c.ok()) return c.status();
  absl::StatusOr<Region*> added = AddDataRegion(c->get());
  if (!added.ok()) return added.status();
  Region* region = *added;
  Rng rng(42);
  rng.Fill(region->data(), region->size());
  const uint64_t blocks = region->block_count();
  const uint64_t changed = std::max<uint64_t>(1, blocks / 100);
  const std::vector<uint64_t> wanted = {1, 16, g_config.max_depth};
  for (uint64_t depth = 0; depth <= g_config.max_depth; ++depth) {
    if (depth > 0) ChangeBlocks(region, PickBlocks(blocks, changed, /*isolated=*/false, rng), rng);
    absl::StatusOr<TimedCheckpoint> t = Checkpoint(c->get(), repo->store);
    if (!t.ok()) return t.status();
    if (t->record.depth != depth) {
      return absl::InternalError(
          StrCat("checkpoint ", t->record.id, " has depth ", t->record.depth, ", wanted ", depth));
    }
    if (std::find(wanted.begin(), wanted.end(), depth) != wanted.end()) {
      env->id_at_depth[depth] = t->record.id;
      env->digest_at_depth[depth] = Xxh3(region->data(), region->size());
    }
  }
  env->build_s = (NowMs() - start) / 1e3;
  std::fprintf(stderr, "chain of depth %llu built in %.1f s\n",
               static_cast<unsigned long long>(g_config.max_depth), env->build_s);
  g_chain = std::move(env);
  return absl::OkStatus();
}

// sync; echo 3 > /proc/sys/vm/drop_caches. Unavailable (with the reason) if it cannot be done.
absl::Status DropCaches() {
  ::sync();
  const int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return absl::UnavailableError(StrCat("open /proc/sys/vm/drop_caches: ", std::strerror(errno)));
  const ssize_t n = ::write(fd, "3", 1);
  const int err = errno;
  ::close(fd);
  if (n != 1)
    return absl::UnavailableError(StrCat("write /proc/sys/vm/drop_caches: ", std::strerror(err)));
  return absl::OkStatus();
}
std::string g_cold_unavailable;

struct TimedRestore {
  double ms = 0;
  uint64_t bytes_read = 0;
  uint64_t reads = 0;
};

// Restores the checkpoint at `depth` into a fresh checkpointer and checks the bytes.
absl::StatusOr<TimedRestore> Restore(uint64_t depth) {
  absl::StatusOr<OpenedRepo> repo = OpenRepo(g_chain->dir, false);
  if (!repo.ok()) return repo.status();
  absl::StatusOr<std::unique_ptr<Checkpointer>> c = OpenCheckpointer(repo->repo.get());
  if (!c.ok()) return c.status();
  RestoreOptions ro;
  ro.id = g_chain->id_at_depth.at(depth);
  ro.on_unregistered = OnUnregistered::kCreate;
  repo->store->Reset();
  TimedRestore t;
  const double start = NowMs();
  absl::StatusOr<CommitRecord> r = (*c)->Restore(ro);
  t.ms = NowMs() - start;
  if (!r.ok()) return r.status();
  t.bytes_read = repo->store->bytes_read();
  t.reads = repo->store->gets();
  Region* region = (*c)->FindRegion(kRegionName);
  if (region == nullptr || region->size() != g_config.size ||
      Xxh3(region->data(), region->size()) != g_chain->digest_at_depth.at(depth)) {
    return absl::InternalError(StrCat("restore of depth ", depth, " returned wrong bytes"));
  }
  return t;
}

void BM_Restore(benchmark::State& state, uint64_t depth, bool cold, bool warm_up) {
  const std::string name = StrCat("restore.", cold ? "cold" : "warm", ".d", depth);
  if (absl::Status s = SetUpChain(); !s.ok()) return Fail(state, s, "build the chain");
  if (warm_up) {
    // Untimed: brings every object this restore reads into the page cache.
    if (absl::StatusOr<TimedRestore> t = Restore(depth); !t.ok()) {
      return Fail(state, t.status(), "warm-up restore");
    }
  }
  for (auto _ : state) {
    if (cold) {
      if (absl::Status s = DropCaches(); !s.ok()) {
        g_cold_unavailable = std::string(s.message());
        return Fail(state, s, "cold restore unavailable");
      }
    }
    absl::StatusOr<TimedRestore> t = Restore(depth);
    if (!t.ok()) return Fail(state, t.status(), name);
    state.SetIterationTime(t->ms / 1e3);
    Sample(name + ".ms", t->ms);
    Sample(name + ".bytes_read", static_cast<double>(t->bytes_read));
    Sample(name + ".reads", static_cast<double>(t->reads));
    state.counters["read_MiB"] = t->bytes_read / double(1 << 20);
    state.counters["reads"] = static_cast<double>(t->reads);
    state.counters["MiB/s"] = g_config.size / double(1 << 20) / (t->ms / 1e3);
  }
}

// ---------------------------------------------------------------------------------------------
// Summary

std::string Num(std::optional<double> v, const char* fmt = "%.1f") {
  if (!v) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, *v);
  return buf;
}

std::optional<double> Ratio(const std::string& a, const std::string& b) {
  std::optional<double> x = Median(a), y = Median(b);
  if (!x || !y || *y == 0) return std::nullopt;
  return *x / *y;
}

std::string Verdict(std::optional<double> v, double limit) {
  if (!v) return "n/a";
  return *v <= limit ? "PASS" : "FAIL";
}

void PrintSummary() {
  const double mib = 1 << 20;
  auto mibs = [&](const std::string& k) -> std::optional<double> {
    std::optional<double> v = Median(k);
    if (v) *v /= mib;
    return v;
  };
  std::printf("\n==== ickpt checkpoint_bench summary ====\n");
  std::printf(
      "region %s of incompressible data, block %u B, medians over %d interleaved round(s) "
      "(incrementals: 2 per round)\n",
      FormatBytes(g_config.size).c_str(), kBlockSize, g_config.rounds);

  std::printf("\n1. Checkpoint: full (no base, every block written) vs incremental\n");
  std::printf("%-22s %10s %10s %12s %12s %12s\n", "case", "wall ms", "pause ms", "stored MiB",
              "raw MiB", "put MiB");
  for (const auto& [name, label] : std::vector<std::pair<std::string, std::string>>{
           {"full", "full"}, {"incr1", "incremental 1%"}, {"incr10", "incremental 10%"}}) {
    std::printf("%-22s %10s %10s %12s %12s %12s\n", label.c_str(),
                Num(Median(name + ".wall_ms")).c_str(),
                Num(Median(name + ".pause_ms"), "%.2f").c_str(),
                Num(mibs(name + ".stored_bytes"), "%.2f").c_str(),
                Num(mibs(name + ".raw_bytes"), "%.2f").c_str(),
                Num(mibs(name + ".bytes_put"), "%.2f").c_str());
  }
  for (const std::string name : {"incr1", "incr10"}) {
    std::printf("ratio %-6s/full      wall %s  pause %s  stored %s  raw %s\n", name.c_str(),
                Num(Ratio(name + ".wall_ms", "full.wall_ms"), "%.4f").c_str(),
                Num(Ratio(name + ".pause_ms", "full.pause_ms"), "%.4f").c_str(),
                Num(Ratio(name + ".stored_bytes", "full.stored_bytes"), "%.4f").c_str(),
                Num(Ratio(name + ".raw_bytes", "full.raw_bytes"), "%.4f").c_str());
  }

  std::printf("\n2. Restore (fresh checkpointer, RestoreOptions{id, kCreate}) vs chain depth\n");
  std::printf("%-8s %10s %10s %12s %10s %10s %12s %10s\n", "depth", "warm ms", "warm MiB/s",
              "warm MiB rd", "warm reads", "cold ms", "cold MiB rd", "cold reads");
  const std::vector<uint64_t> depths = {1, 16, g_config.max_depth};
  for (uint64_t d : depths) {
    const std::string w = StrCat("restore.warm.d", d), k = StrCat("restore.cold.d", d);
    std::optional<double> rate;
    if (std::optional<double> ms = Median(w + ".ms")) rate = g_config.size / mib / (*ms / 1e3);
    std::printf("%-8llu %10s %10s %12s %10s %10s %12s %10s\n", static_cast<unsigned long long>(d),
                Num(Median(w + ".ms")).c_str(), Num(rate, "%.0f").c_str(),
                Num(mibs(w + ".bytes_read")).c_str(), Num(Median(w + ".reads"), "%.0f").c_str(),
                Num(Median(k + ".ms")).c_str(), Num(mibs(k + ".bytes_read")).c_str(),
                Num(Median(k + ".reads"), "%.0f").c_str());
  }
  for (const char* cache : {"warm", "cold"}) {
    for (uint64_t d : {uint64_t{16}, g_config.max_depth}) {
      std::optional<double> r =
          Ratio(StrCat("restore.", cache, ".d", d, ".ms"), StrCat("restore.", cache, ".d1.ms"));
      std::optional<double> rb = Ratio(StrCat("restore.", cache, ".d", d, ".bytes_read"),
                                       StrCat("restore.", cache, ".d1.bytes_read"));
      std::printf("ratio %s depth%llu/depth1: time %s, bytes read %s%s\n", cache,
                  static_cast<unsigned long long>(d), Num(r, "%.3f").c_str(),
                  Num(rb, "%.3f").c_str(),
                  d == 100 ? StrCat("  (goal time <= 1.2: ", Verdict(r, 1.2), ")").c_str() : "");
    }
  }
  if (!g_cold_unavailable.empty()) {
    std::printf("cold restore: UNAVAILABLE (%s)\n", g_cold_unavailable.c_str());
  }
  if (g_chain) std::printf("chain built in %.1f s\n", g_chain->build_s);

  std::printf("\n3. Incremental of 1%% isolated 4 KiB blocks: what is stored per changed byte\n");
  std::optional<double> changed_kib = Median("incr1.changed_bytes");
  if (changed_kib) *changed_kib /= 1024;
  std::printf(
      "changed %s KiB; packs %s, manifest %s B, pack header+index+footer %s B, commit "
      "record %s B\n",
      Num(changed_kib, "%.0f").c_str(), Num(Median("incr1.packs"), "%.0f").c_str(),
      Num(Median("incr1.manifest_bytes"), "%.0f").c_str(),
      Num(Median("incr1.pack_meta_bytes"), "%.0f").c_str(),
      Num(Median("incr1.commit_bytes"), "%.0f").c_str());
  std::optional<double> raw_ratio = Median("incr1.pack_raw_ratio");
  std::optional<double> meta_ratio = Median("incr1.metadata_ratio");
  std::printf("pack raw bytes / changed bytes = %s (goal <= 1.05: %s)\n",
              Num(raw_ratio, "%.4f").c_str(), Verdict(raw_ratio, 1.05).c_str());
  std::printf(
      "metadata / changed bytes       = %s%% (goal <= 2%%: %s)\n",
      Num(meta_ratio ? std::optional<double>(*meta_ratio * 100) : std::nullopt, "%.3f").c_str(),
      Verdict(meta_ratio, 0.02).c_str());
  std::fflush(stdout);
}

// Removes our flags from argv; the rest goes to Google Benchmark.
absl::Status ParseConfig(int* argc, char** argv) {
  auto env = [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
  std::optional<std::string> size = env("ICKPT_BENCH_SIZE"), dir = env("ICKPT_BENCH_DIR"),
                             rounds = env("ICKPT_BENCH_ROUNDS"), depth = env("ICKPT_BENCH_DEPTH");
  int out = 1;
  for (int i = 1; i < *argc; ++i) {
    std::string_view a = argv[i];
    auto take = [&](std::string_view flag, std::optional<std::string>* v) {
      if (a.substr(0, flag.size()) != flag) return false;
      *v = std::string(a.substr(flag.size()));
      return true;
    };
    if (take("--size=", &size) || take("--dir=", &dir) || take("--rounds=", &rounds) ||
        take("--depth=", &depth)) {
      continue;
    }
    argv[out++] = argv[i];
  }
  *argc = out;
  if (size) {
    absl::StatusOr<uint64_t> s = ParseSize(*size);
    if (!s.ok()) return s.status();
    if (*s < 200 * kBlockSize) return absl::InvalidArgumentError("size must be >= 800 KiB");
    g_config.size = (*s + kBlockSize - 1) / kBlockSize * kBlockSize;
  }
  if (dir) g_config.base_dir = *dir;
  if (rounds) g_config.rounds = std::max(1, std::atoi(rounds->c_str()));
  if (depth)
    g_config.max_depth = std::max<uint64_t>(16, std::strtoull(depth->c_str(), nullptr, 10));
  return absl::OkStatus();
}

}  // namespace
}  // namespace ickpt

int main(int argc, char** argv) {
  using namespace ickpt;
  if (absl::Status s = ParseConfig(&argc, argv); !s.ok()) {
    std::fprintf(stderr, "checkpoint_bench: %s\n", s.ToString().c_str());
    return 2;
  }
  std::string tmpl = g_config.base_dir + "/ickpt-bench-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::fprintf(stderr, "checkpoint_bench: mkdtemp %s: %s\n", tmpl.c_str(), std::strerror(errno));
    return 2;
  }
  g_root = tmpl;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::AddCustomContext("region_bytes", std::to_string(g_config.size));
  benchmark::AddCustomContext("repository_dir", g_root);

  // Cases compared by a ratio run interleaved, round by round, so that a slow spell of the shared
  // machine hits all of them alike. Each round of a case is its own benchmark entry.
  const int rounds = g_config.rounds;
  auto reg = [](const std::string& name, auto fn, int iterations) {
    benchmark::RegisterBenchmark(name.c_str(), fn)
        ->UseManualTime()
        ->Iterations(iterations)
        ->Unit(benchmark::kMillisecond);
  };
  for (int k = 0; k < rounds; ++k) {
    const std::string round = StrCat("/round:", k);
    reg("checkpoint/full" + round, BM_CheckpointFull, 1);
    // Incrementals are cheap and the noisiest: two samples a round.
    reg(
        "checkpoint/incremental/changed:1%/isolated" + round,
        [](benchmark::State& s) { BM_CheckpointIncremental(s, 1, true); }, 2);
    reg(
        "checkpoint/incremental/changed:10%" + round,
        [](benchmark::State& s) { BM_CheckpointIncremental(s, 10, false); }, 2);
  }
  for (bool cold : {false, true}) {
    for (int k = 0; k < rounds; ++k) {
      for (uint64_t d : {uint64_t{1}, uint64_t{16}, g_config.max_depth}) {
        reg(
            StrCat("restore/", cold ? "cold" : "warm", "/depth:", d, "/round:", k),
            [d, cold, k](benchmark::State& s) {
              BM_Restore(s, d, cold, /*warm_up=*/!cold && k == 0);
            },
            1);
      }
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  PrintSummary();
  g_incremental.reset();
  std::error_code ec;
  std::filesystem::remove_all(g_root, ec);
  return 0;
}
