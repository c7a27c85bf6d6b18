// ickpt's side of bench/peers.sh, the comparison with restic, borg and fio on one generated state.
// The script runs the peers' own command lines; this program makes the state and changes it, and
// takes and restores ickpt's checkpoints of it, so that every tool sees the same bytes and the same
// changed pages.
//
//   peers_driver generate   --out FILE --size SIZE --seed N
//       The state: SIZE bytes (64MiB, 1GiB, ...; a multiple of 4096), the first half random (does
//       not compress), the second half 4 KiB pages of text-like records with varying numbers
//       (compresses several-fold, not to nothing). Written, then fsync'd.
//   peers_driver mutate     --file FILE --fraction F --seed N
//       Overwrites round(F x pages) distinct 4 KiB pages, chosen from the seed, with random bytes
//       from the seed, in place; then fsync.
//   peers_driver checkpoint --repo DIR --file FILE --fraction F --seed N [--persist-threads K]
//       Creates a repository at DIR (no retention policy; no background GC or consolidation),
//       registers one region of FILE's size (default tracker) and reads FILE into it (not timed).
//       Times Checkpoint() + Wait() of the first (full) checkpoint; applies the change `mutate`
//       makes with the same fraction and seed to the region (not timed); times the incremental
//       Checkpoint() + Wait(). Prints one JSON line.
//   peers_driver restore    --repo DIR --expect FILE [--threads K]
//       Restores the latest checkpoint of DIR into a fresh checkpointer (the region is created by
//       the restore), timing Checkpointer::Restore() only; then compares the region with FILE (not
//       timed): exit 1 if they differ. K sets CheckpointerOptions::persist_threads and
//       restore_threads (default: the library's). Prints one JSON line.
//
// JSON fields are seconds, milliseconds and bytes as named; *_cpu_seconds is the process's user +
// system time (every thread) over the timed call, so cpu / wall is the cores it kept busy.
// Errors: a message on stderr and exit status 1 (2 for a bad command line).
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "bench_options.h"
#include "ickpt/checkpointer.h"
#include "ickpt/region.h"
#include "ickpt/repository.h"
#include "ickpt/store.h"
#include "src/util/parse.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

constexpr uint64_t kPageSize = 4096;
constexpr const char* kRegionName = "state";
// Streams of the generator, so that the mutation's bytes are not the state's.
constexpr uint64_t kTextStream = 0x7465787400000000ull;         // "text"
constexpr uint64_t kMutateStream = 0x6d75746174650000ull;       // "mutate"
constexpr uint64_t kMutateBytesStream = 0x6279746573000000ull;  // "bytes"

using bench::Rng;
using Clock = std::chrono::steady_clock;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "peers_driver: error: %s\n", what.c_str());
  std::exit(1);
}

template <typename T>
T Check(absl::StatusOr<T> v, const std::string& what) {
  if (!v.ok()) Fail(StrCat(what, ": ", v.status().ToString()));
  return *std::move(v);
}

double CpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// ---------------------------------------------------------------------------------------------
// Files

class File {
 public:
  File(const std::string& path, int flags, mode_t mode = 0644) : path_(path) {
    fd_ = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    if (fd_ < 0) Fail(StrCat("open ", path, ": ", std::strerror(errno)));
  }
  ~File() {
    if (fd_ >= 0) ::close(fd_);
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  uint64_t Size() const {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) Fail(StrCat("stat ", path_, ": ", std::strerror(errno)));
    return static_cast<uint64_t>(st.st_size);
  }
  void WriteAt(const char* p, uint64_t n, uint64_t offset) {
    while (n > 0) {
      const ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(offset));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) Fail(StrCat("write ", path_, " at ", offset, ": ", std::strerror(errno)));
      p += w;
      n -= static_cast<uint64_t>(w);
      offset += static_cast<uint64_t>(w);
    }
  }
  void ReadAt(char* p, uint64_t n, uint64_t offset) {
    while (n > 0) {
      const ssize_t r = ::pread(fd_, p, n, static_cast<off_t>(offset));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) Fail(StrCat("read ", path_, " at ", offset, ": ", std::strerror(errno)));
      if (r == 0) Fail(StrCat("read ", path_, " at ", offset, ": unexpected end of file"));
      p += r;
      n -= static_cast<uint64_t>(r);
      offset += static_cast<uint64_t>(r);
    }
  }
  void Sync() {
    if (::fsync(fd_) != 0) Fail(StrCat("fsync ", path_, ": ", std::strerror(errno)));
  }

 private:
  std::string path_;
  int fd_ = -1;
};

// The size of a state file: a positive multiple of the page size.
uint64_t StateSize(const File& file, const std::string& path) {
  const uint64_t size = file.Size();
  if (size == 0 || size % kPageSize != 0) {
    Fail(StrCat(path, ": ", size, " bytes, not a positive multiple of ", kPageSize,
                " (not made by 'generate'?)"));
  }
  return size;
}

// ---------------------------------------------------------------------------------------------
// The state and its change

// Page `page` of the text half: JSON-lines records whose numbers vary from record to record, from
// words of a small vocabulary, padded with newlines. zstd finds the repeated structure (several-
// fold), not the numbers.
void FillTextPage(uint64_t seed, uint64_t page, char* out) {
  static constexpr const char* kWords[] = {"alpha", "bravo",   "charlie", "delta",
                                           "echo",  "foxtrot", "golf",    "hotel"};
  static constexpr const char* kStatus[] = {"ok", "retry", "failed", "pending"};
  Rng rng(seed ^ kTextStream ^ (page * 0x9e3779b97f4a7c15ull));
  uint64_t at = 0;
  uint64_t record = page * 40;
  char line[256];
  while (true) {
    const int n = std::snprintf(
        line, sizeof(line),
        "{\"id\":%llu,\"user\":\"user%04llu\",\"ts\":%llu,\"score\":%lld,\"tags\":[\"%s\",\"%s\"],"
        "\"status\":\"%s\",\"latency_us\":%llu}\n",
        static_cast<unsigned long long>(record++), static_cast<unsigned long long>(rng.Below(2000)),
        static_cast<unsigned long long>(1700000000 + page * 7 + rng.Below(100)),
        static_cast<long long>(rng.Below(200001)) - 100000, kWords[rng.Below(8)],
        kWords[rng.Below(8)], kStatus[rng.Below(4)],
        static_cast<unsigned long long>(rng.Below(1000) * rng.Below(1000) / 100));
    if (n <= 0 || at + static_cast<uint64_t>(n) > kPageSize) break;
    std::memcpy(out + at, line, static_cast<size_t>(n));
    at += static_cast<uint64_t>(n);
  }
  std::memset(out + at, '\n', kPageSize - at);
}

// The change `mutate` makes to a state of `pages` pages, and `checkpoint` to its region: calls
// `apply(page, bytes)` for round(fraction x pages) distinct pages in ascending order, chosen by
// the seed (a partial Fisher-Yates shuffle), each with kPageSize random bytes from the seed.
void ForEachChangedPage(uint64_t pages, double fraction, uint64_t seed,
                        const std::function<void(uint64_t page, const char* bytes)>& apply) {
  const uint64_t count = std::min<uint64_t>(
      pages, static_cast<uint64_t>(std::llround(fraction * static_cast<double>(pages))));
  std::vector<uint64_t> order(pages);
  for (uint64_t i = 0; i < pages; ++i) order[i] = i;
  Rng pick(seed ^ kMutateStream);
  for (uint64_t i = 0; i < count; ++i) std::swap(order[i], order[i + pick.Below(pages - i)]);
  order.resize(count);
  std::sort(order.begin(), order.end());
  Rng bytes(seed ^ kMutateBytesStream);
  std::vector<char> page(kPageSize);
  for (uint64_t p : order) {
    bytes.Fill(page.data(), page.size());
    apply(p, page.data());
  }
}

uint64_t ParseSizeOrFail(const std::string& text) {
  const uint64_t size = Check(ParseSize(text), "--size");
  if (size == 0 || size % kPageSize != 0) {
    Fail(StrCat("--size ", text, " is ", size, " bytes: must be a positive multiple of ",
                kPageSize));
  }
  return size;
}

// ---------------------------------------------------------------------------------------------
// Subcommands

int Generate(const std::string& out, const std::string& size_text, uint64_t seed) {
  const uint64_t size = ParseSizeOrFail(size_text);
  const uint64_t pages = size / kPageSize;
  const uint64_t random_pages = pages / 2;
  File file(out, O_WRONLY | O_CREAT | O_TRUNC);
  constexpr uint64_t kChunkPages = 2048;  // 8 MiB per write
  std::vector<char> chunk(kChunkPages * kPageSize);
  Rng rng(seed);
  for (uint64_t page = 0; page < pages;) {
    const uint64_t n = std::min(kChunkPages, pages - page);
    for (uint64_t i = 0; i < n; ++i) {
      char* p = chunk.data() + i * kPageSize;
      if (page + i < random_pages) {
        rng.Fill(p, kPageSize);
      } else {
        FillTextPage(seed, page + i, p);
      }
    }
    file.WriteAt(chunk.data(), n * kPageSize, page * kPageSize);
    page += n;
  }
  file.Sync();
  nlohmann::json j;
  j["file"] = out;
  j["bytes"] = size;
  j["random_bytes"] = random_pages * kPageSize;
  j["seed"] = seed;
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

int Mutate(const std::string& path, double fraction, uint64_t seed) {
  File file(path, O_RDWR);
  const uint64_t pages = StateSize(file, path) / kPageSize;
  uint64_t changed = 0;
  ForEachChangedPage(pages, fraction, seed, [&](uint64_t page, const char* bytes) {
    file.WriteAt(bytes, kPageSize, page * kPageSize);
    ++changed;
  });
  file.Sync();
  nlohmann::json j;
  j["file"] = path;
  j["changed_pages"] = changed;
  j["pages"] = pages;
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

CheckpointerOptions QuietCheckpointerOptions(std::optional<int> persist_threads) {
  CheckpointerOptions o;
  // Nothing in the background during the measurement: no collection (there is no retention
  // policy either), no consolidation (so no restore estimate).
  o.gc_after_commit = false;
  o.consolidate_in_background = false;
  if (persist_threads.has_value()) {
    o.persist_threads = *persist_threads;
    o.restore_threads = *persist_threads;
  }
  return o;
}

struct Timed {
  CommitRecord record;
  double seconds = 0;
  double cpu_seconds = 0;
  double pause_ms = 0;
};

Timed TimedCheckpoint(Checkpointer* c, const char* what) {
  Timed t;
  const double cpu0 = CpuSeconds();
  const Clock::time_point start = Clock::now();
  CheckpointHandle h = Check(c->Checkpoint(), StrCat(what, " checkpoint"));
  t.record = Check(h.Wait(), StrCat(what, " checkpoint ", h.id()));
  t.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  t.cpu_seconds = CpuSeconds() - cpu0;
  t.pause_ms = absl::ToDoubleMilliseconds(h.pause());
  return t;
}

void PutTimed(nlohmann::json& j, const std::string& prefix, const Timed& t) {
  j[prefix + "_seconds"] = t.seconds;
  j[prefix + "_stored_bytes"] = t.record.stored_bytes;
  j[prefix + "_pause_ms"] = t.pause_ms;
  j[prefix + "_cpu_seconds"] = t.cpu_seconds;
  j[prefix + "_kind"] = std::string(CheckpointKindName(t.record.kind));
  j[prefix + "_id"] = t.record.id;
  uint64_t changed = 0;
  for (const ParticipantRecord& p : t.record.participants) {
    for (const StateObjectRecord& o : p.state_objects) changed += o.changed_blocks;
  }
  j[prefix + "_changed_blocks"] = changed;
}

int TakeCheckpoints(const std::string& dir, const std::string& path, double fraction, uint64_t seed,
                    std::optional<int> persist_threads) {
  File file(path, O_RDONLY);
  const uint64_t size = StateSize(file, path);

  LocalStoreOptions lo;
  lo.create_if_missing = true;
  std::unique_ptr<ObjectStore> store = Check(OpenLocalStore(dir, lo), StrCat("open ", dir));
  RepositoryOptions ro;
  ro.retention = std::nullopt;  // keeps every checkpoint: nothing to collect
  std::unique_ptr<Repository> repo =
      Check(Repository::Create(std::move(store), ro), StrCat("create a repository in ", dir));
  std::unique_ptr<Checkpointer> c =
      Check(Checkpointer::Open(repo.get(), QuietCheckpointerOptions(persist_threads)),
            "open the checkpointer");
  RegionOptions region_options;
  region_options.size = size;
  Region* region = Check(c->AddRegion(kRegionName, region_options), "add the region");
  if (region->size() != size) {
    Fail(StrCat("region of ", region->size(), " bytes for a file of ", size, " (block size ",
                region->block_size(), ")"));
  }
  file.ReadAt(region->data(), size, 0);

  const Timed full = TimedCheckpoint(c.get(), "full");
  uint64_t changed = 0;
  ForEachChangedPage(size / kPageSize, fraction, seed, [&](uint64_t page, const char* bytes) {
    std::memcpy(region->data() + page * kPageSize, bytes, kPageSize);
    ++changed;
  });
  const Timed incremental = TimedCheckpoint(c.get(), "incremental");

  nlohmann::json j;
  j["bytes"] = size;
  j["tracker"] = std::string(region->tracker_name());
  j["persist_threads"] = persist_threads.value_or(CheckpointerOptions().persist_threads);
  j["changed_pages"] = changed;
  PutTimed(j, "full", full);
  PutTimed(j, "incremental", incremental);
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

int Restore(const std::string& dir, const std::string& expect, std::optional<int> threads) {
  std::unique_ptr<Repository> repo =
      Check(Repository::OpenLocal(dir, /*create=*/false), StrCat("open repository ", dir));
  std::unique_ptr<Checkpointer> c = Check(
      Checkpointer::Open(repo.get(), QuietCheckpointerOptions(threads)), "open the checkpointer");
  RestoreOptions ro;
  ro.on_unregistered = OnUnregistered::kCreate;
  const double cpu0 = CpuSeconds();
  const Clock::time_point start = Clock::now();
  const CommitRecord record =
      Check(c->Restore(ro), StrCat("restore the latest checkpoint of ", dir));
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu_seconds = CpuSeconds() - cpu0;

  Region* region = c->FindRegion(kRegionName);
  if (region == nullptr)
    Fail(StrCat("checkpoint ", record.id, " has no region '", kRegionName, "'"));
  File file(expect, O_RDONLY);
  const uint64_t size = file.Size();
  if (region->size() != size) {
    Fail(StrCat("restored region of ", region->size(), " bytes, but ", expect, " has ", size));
  }
  constexpr uint64_t kChunk = uint64_t{8} << 20;
  std::vector<char> chunk(kChunk);
  for (uint64_t at = 0; at < size; at += kChunk) {
    const uint64_t n = std::min(kChunk, size - at);
    file.ReadAt(chunk.data(), n, at);
    if (std::memcmp(chunk.data(), region->data() + at, n) != 0) {
      uint64_t i = 0;
      while (chunk[i] == region->data()[at + i]) ++i;
      Fail(StrCat("restore of checkpoint ", record.id, " differs from ", expect, " at offset ",
                  at + i, " (page ", (at + i) / kPageSize, ")"));
    }
  }
  nlohmann::json j;
  j["restore_seconds"] = seconds;
  j["restore_cpu_seconds"] = cpu_seconds;
  j["bytes"] = size;
  j["id"] = record.id;
  j["kind"] = std::string(CheckpointKindName(record.kind));
  j["depth"] = record.depth;
  j["verified"] = true;
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace
}  // namespace ickpt

int main(int argc, char** argv) {
  CLI::App app{
      "ickpt's side of bench/peers.sh: generate and mutate a state file, take and restore ickpt "
      "checkpoints of it."};
  app.name("peers_driver");
  app.require_subcommand(1);

  std::string out, file, repo, expect, size_text;
  uint64_t seed = 1;
  double fraction = 0.01;
  std::optional<int> threads;

  CLI::App* generate = app.add_subcommand("generate", "write a new state file, then fsync");
  generate->add_option("--out", out, "the state file")->required();
  generate->add_option("--size", size_text, "its size (64MiB, 1GiB, ...; a multiple of 4096)")
      ->required();
  generate->add_option("--seed", seed, "seed of its content")->required();

  CLI::App* mutate = app.add_subcommand("mutate", "overwrite pages of a state file, then fsync");
  mutate->add_option("--file", file, "the state file")->required()->check(CLI::ExistingFile);
  mutate->add_option("--fraction", fraction, "fraction of the pages overwritten")
      ->required()
      ->check(CLI::Range(0.0, 1.0));
  mutate->add_option("--seed", seed, "seed of the choice and the new bytes")->required();

  CLI::App* checkpoint = app.add_subcommand(
      "checkpoint", "a new repository: a full checkpoint, the mutation, an incremental one");
  checkpoint->add_option("--repo", repo, "the repository to create")->required();
  checkpoint->add_option("--file", file, "the state file")->required()->check(CLI::ExistingFile);
  checkpoint->add_option("--fraction", fraction, "as for mutate")
      ->required()
      ->check(CLI::Range(0.0, 1.0));
  checkpoint->add_option("--seed", seed, "as for mutate")->required();
  checkpoint
      ->add_option("--persist-threads", threads,
                   "CheckpointerOptions::persist_threads (default: the library's)")
      ->check(CLI::Range(1, 256));

  CLI::App* restore =
      app.add_subcommand("restore", "restore the latest checkpoint and compare it with a file");
  restore->add_option("--repo", repo, "the repository")->required()->check(CLI::ExistingDirectory);
  restore->add_option("--expect", expect, "the bytes the restore must give")
      ->required()
      ->check(CLI::ExistingFile);
  restore
      ->add_option("--threads", threads, "CheckpointerOptions::persist_threads and restore_threads")
      ->check(CLI::Range(1, 256));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  using namespace ickpt;
  if (generate->parsed()) return Generate(out, size_text, seed);
  if (mutate->parsed()) return Mutate(file, fraction, seed);
  if (checkpoint->parsed()) return TakeCheckpoints(repo, file, fraction, seed, threads);
  if (restore->parsed()) return Restore(repo, expect, threads);
  return 2;
}
