// The S3 benchmark of issue 14 (docs/benchmarks.md, "Repositories on S3 (issue 14)"; docs/s3.md).
// The contract, in one run on the same gateway:
//   1. upload and download throughput of the S3 store at concurrency 1 to 16;
//   2. restore of a 1 GiB region from RGW vs from a local directory;
//   3. `s3cmd get` of one 1 GiB object of the same bytes.
// Goal: the 1 GiB restore from RGW at least 2x faster than that `s3cmd get`.
//
// 1. Store throughput. One store from OpenS3Store (the product's S3 store, as a repository opens
//    it), shared by C threads, C in --concurrency (1,2,4,8,16). --objects (N, default 64) objects
//    of --object-size (default 4 MiB, RepositoryConfig's pack_target_bytes), incompressible
//    (splitmix64), each named as a pack is, packs/<h[0:2]>/<h> with h its SHA-256 (computed before
//    the clock starts), so that the store sends the name as the payload hash and does not hash the
//    body itself: the product's path for packs. Per C: every object PUT (the threads take the next
//    object from a shared counter), then every object GET (the reply's size checked); MiB/s =
//    N x size / wall time. --rounds rounds, the order of C ascending in even rounds and descending
//    in odd ones; the table shows the median of the rounds and its ratio to C = 1. The same keys
//    are put again at every C (objects of one RGW head chunk: replaced in place). After the
//    rounds, every object is read back once more, untimed, and compared with what was put
//    (XXH3-64). Then, one request at a time on one connection, 32 each: HEAD, a ranged GET of an
//    object's last 64 bytes, a suffix-range GET of its last 32 KiB (GetTail), a ranged GET of its
//    first 4 KiB, and a whole-object GET: a restore sends, per pack, one GetTail (size, footer and
//    index: src/repo/pack.cc ReadPackIndex) and one ranged GET of its frames
//    (src/repo/region_reader.cc).
// 2. Persist and restore. A region of --size (default 1 GiB) of incompressible bytes (splitmix64:
//    compression stores them raw, so it flatters nothing; real data usually compresses, which
//    would shrink what moves) is checkpointed fully (Checkpoint({full}) + Wait()) by a fresh
//    Checkpointer into a fresh repository per persist: a local directory under --dir
//    (uploads_in_flight 2, the default), and `s3://BUCKET/PREFIX?endpoint=...` through
//    Repository::OpenUrl(url, create=true) once per value of --uploads (2,8: uploads_in_flight).
//    Background GC and consolidation are off. --persist-rounds rounds (default 2: a 1 GiB persist
//    to RGW takes 15-30 s here), the order rotated each round; the repositories of round 0 are kept
//    for the restores (the local one, and the S3 one of the first --uploads value), the others
//    deleted right after their persist (the gateway's memstore holds what is stored). Then
//    --rounds rounds, the order rotated each round, of restores of the latest checkpoint by a
//    fresh Repository and Checkpointer (RestoreOptions{latest, kCreate}) beside s3cmd get (3.
//    below); the time is that of Checkpointer::Restore()
//    (opening the repository is reported apart): from the local directory with its files in the
//    page cache ("warm", as RGW's memstore is memory) and after writing back and dropping them with
//    posix_fadvise(DONTNEED) ("cold"), and from S3 with restore_threads at each value of
//    --restore-threads (0,2; 0 is the default: the S3 store's default_read_concurrency(), 16; 2 was
//    the default before, one per core here). Every restored region's
//    XXH3-64 is compared with the original's: a difference ends the run with an error.
//    After the rounds, one more S3 restore (restore_threads default) through a store that times
//    every read by kind (HEAD, tail GETs, small and large ranged GETs, whole GETs, listing pages):
//    where its time goes. It is opened as Repository::OpenUrl opens a store (ParseS3Url, the
//    publish probe) and is not among the timed restores above. Also in the restore rounds, for
//    each --restore-threads value N (0: the default's count), "packs fetched whole": N threads GET
//    every pack of the S3 repository whole and drop the bytes (no index, no checksum, no copy):
//    the gateway's ceiling for any restore of those packs, reported beside the restore.
// 3. s3cmd. The same bytes written to a file under --dir, `s3cmd put` as one object (s3cmd's
//    defaults: multipart in 15 MiB parts above 15 MiB; timed, for information), then, in the
//    restore rounds beside the restores above, `s3cmd --no-progress --force get` of it into a file
//    under --dir, run as a child process (posix_spawn) and timed from spawn to exit (Python's
//    start-up included: `s3cmd ls` of the object, timed once per round, shows what that costs).
//    The file's XXH3-64 is checked after the clock stops. s3cmd gets its own config file (endpoint,
//    keys, path-style host_base/host_bucket, use_https False, signature_v2 False).
//
// CPU: the benchmark's own (getrusage), s3cmd's (wait4), and, when their PIDs are given (the
// cluster.env of scripts/ceph_cluster.sh has them), radosgw's and the OSD's (/proc/PID/stat), over
// each timed step, shown as cores (CPU seconds / wall seconds): the machine has 2.
//
// Everything the run stores goes under s3://BUCKET/s3bench-<random>/ and --dir/s3bench-<random>/,
// and is deleted at the end (unless --keep).
//
// Configuration (flag, as --flag=V or --flag V, else environment, else default):
//   --endpoint=URL          ICKPT_RGW_ENDPOINT       http://host:port (required)
//   --access-key=K          ICKPT_RGW_ACCESS_KEY     (required)
//   --secret-key=K          ICKPT_RGW_SECRET_KEY     (required)
//   --region=R              ICKPT_RGW_REGION         signing region (default us-east-1)
//   --bucket=NAME           ICKPT_RGW_BUCKET         an existing bucket (default ickpt-bench)
//   --size=SIZE             ICKPT_BENCH_SIZE         region size, e.g. 64MiB (default 1GiB)
//   --objects=N             ICKPT_BENCH_S3_OBJECTS   objects per throughput step (default 64)
//   --object-size=SIZE      ICKPT_BENCH_S3_OBJECT_SIZE  (default 4MiB)
//   --concurrency=LIST      ICKPT_BENCH_S3_CONCURRENCY  (default 1,2,4,8,16)
//   --uploads=LIST          ICKPT_BENCH_S3_UPLOADS   uploads_in_flight of S3 persists (default 2,8)
//   --restore-threads=LIST  ICKPT_BENCH_S3_RESTORE_THREADS  S3 restores (default 0,2)
//   --rounds=N              ICKPT_BENCH_ROUNDS       throughput and restore rounds (default 3)
//   --persist-rounds=N      ICKPT_BENCH_S3_PERSIST_ROUNDS  (default min(2, rounds))
//   --dir=PATH              ICKPT_BENCH_DIR          local repository and files (default /var/tmp)
//   --s3cmd=PATH            ICKPT_BENCH_S3CMD        (default s3cmd, from PATH)
//   --rgw-pid=PID           RGW_PID                  radosgw, for its CPU (default: not measured)
//   --osd-pid=PID           OSD_PID                  the OSD, for its CPU (default: not measured)
//   --seed=N                ICKPT_BENCH_S3_SEED      the bytes' seed (default 1)
//   --keep                  ICKPT_BENCH_S3_KEEP=1    keep what the run stored
// A smoke test: --size 64MiB --objects 16 --rounds 1 (well under a minute). Not in CTest: it needs
// a gateway (bench/s3_bench.sh starts one). Exit status: 0, or 1 on any error (wrong bytes
// included).
#include <fcntl.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
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
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "bench_options.h"
#include "ickpt/checkpointer.h"
#include "ickpt/region.h"
#include "ickpt/repository.h"
#include "ickpt/store.h"
#include "nlohmann/json.hpp"
#include "src/util/hash.h"
#include "src/util/parse.h"

extern char** environ;

namespace ickpt {
namespace {

constexpr const char* kRegionName = "heap";
constexpr double kGoal = 2.0;  // s3cmd get time / ickpt restore time
constexpr int kDeleteThreads = 16;

using Clock = std::chrono::steady_clock;
double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
constexpr double kMiB = 1048576.0;

using bench::Check;
using bench::Option;
using bench::Rng;
using bench::StringOption;
using json = nlohmann::ordered_json;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "s3_bench: error: %s\n", what.c_str());
  std::exit(1);
}

double Median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Nearest rank.
double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(p / 100 * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

// Index of the value nearest `m` (the round whose usage a table shows beside the median).
size_t NearestIndex(const std::vector<double>& v, double m) {
  size_t best = 0;
  for (size_t i = 1; i < v.size(); ++i) {
    if (std::abs(v[i] - m) < std::abs(v[best] - m)) best = i;
  }
  return best;
}

// The seconds of each round of a case, their median, the round nearest it, and "a, b, c" for the
// tables.
struct Rounds {
  std::vector<double> seconds;
  double median = 0;
  size_t nearest = 0;
  std::string each;
};
template <typename Round>
Rounds SummarizeRounds(const std::vector<Round>& rounds) {
  Rounds r;
  for (const Round& round : rounds) {
    r.seconds.push_back(round.seconds);
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%s%.2f", r.each.empty() ? "" : ", ", round.seconds);
    r.each += buf;
  }
  r.median = Median(r.seconds);
  r.nearest = NearestIndex(r.seconds, r.median);
  return r;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  double a = 0, b = 0, c = 0;
  if (!(in >> a >> b >> c)) return "unknown";
  char out[64];
  std::snprintf(out, sizeof(out), "%.2f %.2f %.2f", a, b, c);
  return out;
}

// When each part of the run started, for the log: which part took the time, under what load.
Clock::time_point g_run_start = Clock::now();
void Mark(const char* part) {
  std::printf("[%s at %.0f s, load average %s]\n", part, Seconds(Clock::now() - g_run_start),
              LoadAverage().c_str());
  std::fflush(stdout);
}

// ---------------------------------------------------------------------------------------------
// Flags: `--flag value` is read as `--flag=value`, `--keep` as `--keep=1`; unknown flags are
// refused (a misspelt flag silently ignored would measure the wrong thing).

const std::vector<std::string_view> kFlags = {
    "endpoint",    "access-key", "secret-key",      "region",
    "bucket",      "size",       "objects",         "object-size",
    "concurrency", "uploads",    "restore-threads", "rounds",
    "dir",         "s3cmd",      "rgw-pid",         "osd-pid",
    "seed",        "keep",       "persist-rounds"};

std::vector<int> ParseList(const std::string& flag, const std::string& text, int min) {
  std::vector<int> out;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = std::min(text.find(',', at), text.size());
    const std::string piece = text.substr(at, comma - at);
    char* end = nullptr;
    const long v = std::strtol(piece.c_str(), &end, 10);
    if (piece.empty() || *end != '\0' || v < min || v > 1024) {
      Fail("--" + flag + ": '" + text +
           "' is not a comma-separated list of integers >= " + std::to_string(min));
    }
    out.push_back(static_cast<int>(v));
    at = comma + 1;
  }
  return out;
}

uint64_t SizeOption(int argc, char** argv, const char* flag, const char* env,
                    const char* fallback) {
  const std::string text = StringOption(argc, argv, flag, env, fallback);
  absl::StatusOr<uint64_t> v = ParseSize(text);
  if (!v.ok()) Fail(std::string("--") + flag + ": " + std::string(v.status().message()));
  return *v;
}

struct Config {
  std::string endpoint;
  std::string access_key;
  std::string secret_key;
  std::string region;
  std::string bucket;
  uint64_t size = 0;
  uint64_t objects = 0;
  uint64_t object_size = 0;
  std::vector<int> concurrency;
  std::vector<int> uploads;
  std::vector<int> restore_threads;
  int rounds = 0;
  int persist_rounds = 0;
  std::string dir;
  std::string s3cmd;
  int rgw_pid = 0;
  int osd_pid = 0;
  uint64_t seed = 0;
  bool keep = false;
};

Config ParseConfig(int argc, char** argv) {
  std::vector<std::string> args = bench::NormalizeFlags(argc, argv, kFlags, {"keep"}, "s3_bench");
  std::vector<char*> ptrs;
  for (std::string& a : args) ptrs.push_back(a.data());
  const int n = static_cast<int>(ptrs.size());
  char** v = ptrs.data();
  Config c;
  c.endpoint = StringOption(n, v, "endpoint", "ICKPT_RGW_ENDPOINT", "");
  c.access_key = StringOption(n, v, "access-key", "ICKPT_RGW_ACCESS_KEY", "");
  c.secret_key = StringOption(n, v, "secret-key", "ICKPT_RGW_SECRET_KEY", "");
  c.region = StringOption(n, v, "region", "ICKPT_RGW_REGION", "us-east-1");
  c.bucket = StringOption(n, v, "bucket", "ICKPT_RGW_BUCKET", "ickpt-bench");
  c.size = SizeOption(n, v, "size", "ICKPT_BENCH_SIZE", "1GiB");
  c.objects = Option(n, v, "objects", "ICKPT_BENCH_S3_OBJECTS", 64);
  c.object_size = SizeOption(n, v, "object-size", "ICKPT_BENCH_S3_OBJECT_SIZE", "4MiB");
  c.concurrency =
      ParseList("concurrency",
                StringOption(n, v, "concurrency", "ICKPT_BENCH_S3_CONCURRENCY", "1,2,4,8,16"), 1);
  c.uploads =
      ParseList("uploads", StringOption(n, v, "uploads", "ICKPT_BENCH_S3_UPLOADS", "2,8"), 1);
  c.restore_threads =
      ParseList("restore-threads",
                StringOption(n, v, "restore-threads", "ICKPT_BENCH_S3_RESTORE_THREADS", "0,2"), 0);
  c.rounds = static_cast<int>(Option(n, v, "rounds", "ICKPT_BENCH_ROUNDS", 3));
  c.persist_rounds = static_cast<int>(
      Option(n, v, "persist-rounds", "ICKPT_BENCH_S3_PERSIST_ROUNDS", std::min(c.rounds, 2)));
  c.dir = StringOption(n, v, "dir", "ICKPT_BENCH_DIR", "/var/tmp");
  c.s3cmd = StringOption(n, v, "s3cmd", "ICKPT_BENCH_S3CMD", "s3cmd");
  c.rgw_pid = static_cast<int>(Option(n, v, "rgw-pid", "RGW_PID", 0));
  c.osd_pid = static_cast<int>(Option(n, v, "osd-pid", "OSD_PID", 0));
  c.seed = Option(n, v, "seed", "ICKPT_BENCH_S3_SEED", 1);
  c.keep = Option(n, v, "keep", "ICKPT_BENCH_S3_KEEP", 0) != 0;
  if (c.endpoint.empty() || c.access_key.empty() || c.secret_key.empty()) {
    Fail(
        "the endpoint and keys are required: --endpoint, --access-key, --secret-key or "
        "ICKPT_RGW_ENDPOINT, ICKPT_RGW_ACCESS_KEY, ICKPT_RGW_SECRET_KEY (`source DIR/cluster.env` "
        "of scripts/ceph_cluster.sh)");
  }
  if (c.size == 0 || c.objects == 0 || c.object_size == 0 || c.rounds < 1 || c.persist_rounds < 1) {
    Fail("--size, --objects, --object-size, --rounds and --persist-rounds must be positive");
  }
  return c;
}

// "127.0.0.1:7480" of "http://127.0.0.1:7480".
std::string HostPort(const std::string& endpoint) {
  const size_t scheme = endpoint.find("://");
  std::string rest = scheme == std::string::npos ? endpoint : endpoint.substr(scheme + 3);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  return rest;
}

// ---------------------------------------------------------------------------------------------
// CPU over a timed step: this process, and the gateway's daemons when their PIDs are known.

double SelfCpuSeconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

// utime + stime of a process (every thread), from /proc/PID/stat; 0 if unknown.
double ProcessCpuSeconds(int pid) {
  if (pid <= 0) return 0;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  // Fields after the command: state(3) ... utime(14) stime(15).
  std::vector<std::string> fields;
  size_t at = paren + 2;
  while (at < stat.size() && fields.size() < 13) {
    const size_t space = stat.find(' ', at);
    fields.push_back(stat.substr(at, space - at));
    if (space == std::string::npos) break;
    at = space + 1;
  }
  if (fields.size() < 13) return 0;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return (std::strtod(fields[11].c_str(), nullptr) + std::strtod(fields[12].c_str(), nullptr)) /
         ticks;
}

struct CpuSample {
  Clock::time_point at;
  double self = 0, rgw = 0, osd = 0;
};

struct Usage {
  double seconds = 0;
  double self_cores = 0, rgw_cores = 0, osd_cores = 0, child_cores = 0;
};

class CpuMeter {
 public:
  explicit CpuMeter(const Config& config) : rgw_pid_(config.rgw_pid), osd_pid_(config.osd_pid) {}
  CpuSample Now() const {
    CpuSample s;
    s.self = SelfCpuSeconds();
    s.rgw = ProcessCpuSeconds(rgw_pid_);
    s.osd = ProcessCpuSeconds(osd_pid_);
    s.at = Clock::now();
    return s;
  }
  Usage Since(const CpuSample& start) const {
    const CpuSample end = Now();
    Usage u;
    u.seconds = Seconds(end.at - start.at);
    u.self_cores = (end.self - start.self) / u.seconds;
    u.rgw_cores = (end.rgw - start.rgw) / u.seconds;
    u.osd_cores = (end.osd - start.osd) / u.seconds;
    return u;
  }
  bool daemons() const { return rgw_pid_ > 0 || osd_pid_ > 0; }

 private:
  int rgw_pid_, osd_pid_;
};

json UsageJson(const Usage& u) {
  return json{{"seconds", u.seconds},
              {"self_cores", u.self_cores},
              {"rgw_cores", u.rgw_cores},
              {"osd_cores", u.osd_cores},
              {"child_cores", u.child_cores}};
}

std::string Cores(const Usage& u) {
  char out[96];
  std::snprintf(out, sizeof(out), "%.2f / %.2f / %.2f", u.self_cores + u.child_cores, u.rgw_cores,
                u.osd_cores);
  return out;
}

// ---------------------------------------------------------------------------------------------
// S3 helpers

S3StoreOptions StoreOptions(const Config& c, const std::string& prefix) {
  S3StoreOptions o;
  o.endpoint = c.endpoint;
  o.bucket = c.bucket;
  o.prefix = prefix;
  o.region = c.region;
  o.credentials.access_key_id = c.access_key;
  o.credentials.secret_access_key = c.secret_key;
  return o;
}

std::string RepositoryUrl(const Config& c, const std::string& prefix) {
  return "s3://" + c.bucket + "/" + prefix + "?endpoint=" + c.endpoint + "&region=" + c.region;
}

// Runs `work(i)` for i in [0, n) on `threads` threads taking the next i from a shared counter.
void ParallelFor(size_t n, int threads, const std::function<void(size_t)>& work) {
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t i = next++; i < n; i = next++) work(i);
    });
  }
  for (std::thread& t : pool) t.join();
}

// Deletes every object under `prefix`; returns how many there were and their bytes.
std::pair<uint64_t, uint64_t> DeleteUnder(const Config& c, const std::string& prefix) {
  std::unique_ptr<ObjectStore> store = Check(OpenS3Store(StoreOptions(c, prefix)));
  const std::vector<ObjectInfo> objects = Check(store->List(""));
  uint64_t bytes = 0;
  for (const ObjectInfo& o : objects) bytes += o.size;
  ParallelFor(objects.size(), kDeleteThreads,
              [&](size_t i) { Check(store->Delete(objects[i].key)); });
  return {objects.size(), bytes};
}

// Objects and bytes under `prefix`, and how many of them are packs.
struct Stored {
  uint64_t objects = 0, bytes = 0, packs = 0;
};
Stored StoredUnder(const Config& c, const std::string& prefix) {
  std::unique_ptr<ObjectStore> store = Check(OpenS3Store(StoreOptions(c, prefix)));
  Stored s;
  for (const ObjectInfo& o : Check(store->List(""))) {
    ++s.objects;
    s.bytes += o.size;
    if (o.key.starts_with("packs/")) ++s.packs;
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// 1. Store throughput

struct Level {
  int concurrency = 0;
  std::vector<double> put_mibs, get_mibs;  // one per round
  std::vector<double> put_ms, get_ms;      // every request of every round
  std::vector<Usage> put_usage, get_usage;
};

struct Objects {
  std::vector<std::string> keys;
  std::vector<std::string> data;
  std::vector<uint64_t> xxh3;
};

Objects MakeObjects(const Config& c) {
  Objects o;
  o.data.resize(c.objects);
  o.keys.resize(c.objects);
  o.xxh3.resize(c.objects);
  ParallelFor(c.objects, 2, [&](size_t i) {
    std::string& d = o.data[i];
    d.resize(c.object_size);
    Rng(c.seed * 1000003 + i + 1).Fill(d.data(), d.size());
    const std::string h = ToHex(Sha256(d));
    o.keys[i] = "packs/" + h.substr(0, 2) + "/" + h;
    o.xxh3[i] = Xxh3(d);
  });
  return o;
}

// One step: every object put (or got) by `threads` threads sharing `store`.
double Step(ObjectStore& store, const Objects& objects, int threads, bool put,
            std::vector<double>* ms, const CpuMeter& meter, Usage* usage) {
  std::vector<double> latency(objects.keys.size());
  const CpuSample start = meter.Now();
  ParallelFor(objects.keys.size(), threads, [&](size_t i) {
    const auto t0 = Clock::now();
    if (put) {
      Check(store.Put(objects.keys[i], objects.data[i]));
    } else {
      const std::string got = Check(store.Get(objects.keys[i]));
      if (got.size() != objects.data[i].size()) {
        Fail("GET " + objects.keys[i] + ": " + std::to_string(got.size()) + " bytes, expected " +
             std::to_string(objects.data[i].size()));
      }
    }
    latency[i] = Seconds(Clock::now() - t0) * 1000;
  });
  *usage = meter.Since(start);
  ms->insert(ms->end(), latency.begin(), latency.end());
  return static_cast<double>(objects.keys.size()) * objects.data[0].size() / kMiB / usage->seconds;
}

std::vector<Level> MeasureThroughput(const Config& c, const std::string& prefix,
                                     const CpuMeter& meter) {
  std::printf(
      "\n1. store throughput: %llu objects of %.1f MiB, PUT then GET at each concurrency, "
      "%d round(s)\n",
      static_cast<unsigned long long>(c.objects), c.object_size / kMiB, c.rounds);
  const Objects objects = MakeObjects(c);
  std::unique_ptr<ObjectStore> store = Check(OpenS3Store(StoreOptions(c, prefix)));
  std::vector<Level> levels(c.concurrency.size());
  for (size_t k = 0; k < levels.size(); ++k) levels[k].concurrency = c.concurrency[k];
  for (int r = 0; r < c.rounds; ++r) {
    for (size_t step = 0; step < levels.size(); ++step) {
      Level& l = levels[r % 2 == 0 ? step : levels.size() - 1 - step];
      Usage put_usage, get_usage;
      const double put =
          Step(*store, objects, l.concurrency, /*put=*/true, &l.put_ms, meter, &put_usage);
      const double get =
          Step(*store, objects, l.concurrency, /*put=*/false, &l.get_ms, meter, &get_usage);
      l.put_mibs.push_back(put);
      l.get_mibs.push_back(get);
      l.put_usage.push_back(put_usage);
      l.get_usage.push_back(get_usage);
      std::printf(
          "  round %d, %2d threads: PUT %7.1f MiB/s (cores: bench %s), GET %7.1f MiB/s "
          "(%s)\n",
          r, l.concurrency, put, Cores(put_usage).c_str(), get, Cores(get_usage).c_str());
      std::fflush(stdout);
    }
  }
  // Read back, untimed: the bytes are what was put.
  ParallelFor(objects.keys.size(), 8, [&](size_t i) {
    const std::string got = Check(store->Get(objects.keys[i]));
    if (Xxh3(got) != objects.xxh3[i]) {
      Fail("GET " + objects.keys[i] + " returned WRONG BYTES (XXH3 differs from what was put)");
    }
  });
  std::printf("  every object read back once more and compared: identical\n");
  return levels;
}

// Sequential single requests on one connection, the kinds a restore sends per pack (the pack's
// size, its footer, its index, its frames): how long one round trip takes on its own.
struct RequestLatency {
  std::string what;
  double median_ms = 0, p90_ms = 0;
};

std::vector<RequestLatency> MeasureRequestLatency(const Config& c, const std::string& prefix) {
  constexpr int kRepeats = 32;
  std::unique_ptr<ObjectStore> store = Check(OpenS3Store(StoreOptions(c, prefix)));
  std::string data(c.object_size, '\0');
  Rng(c.seed + 7).Fill(data.data(), data.size());
  const std::string h = ToHex(Sha256(data));
  const std::string key = "packs/" + h.substr(0, 2) + "/" + h;
  Check(store->Put(key, data));
  const uint64_t size = data.size();
  const std::vector<std::pair<std::string, std::function<void()>>> kinds = {
      {"HEAD (Size)", [&] { Check(store->Size(key)); }},
      {"GET range, last 64 B", [&] { Check(store->GetRange(key, size - 64, 64)); }},
      {"GET tail, last 32 KiB", [&] { Check(store->GetTail(key, 32 * 1024)); }},
      {"GET range, first 4 KiB", [&] { Check(store->GetRange(key, 0, 4096)); }},
      {"GET whole object", [&] { Check(store->Get(key)); }},
  };
  std::vector<RequestLatency> out;
  std::printf("  one request at a time, %d of each, on one %.0f MiB object:", kRepeats,
              c.object_size / kMiB);
  for (const auto& [what, request] : kinds) {
    request();  // a connection, and the object in the gateway's caches
    std::vector<double> ms;
    for (int i = 0; i < kRepeats; ++i) {
      const auto t0 = Clock::now();
      request();
      ms.push_back(Seconds(Clock::now() - t0) * 1000);
    }
    out.push_back({what, Median(ms), Percentile(ms, 90)});
    std::printf(" %s %.1f ms;", what.c_str(), Median(ms));
  }
  std::printf("\n");
  Check(store->Delete(key));
  return out;
}

// A store that times every read call, by kind: where a restore's time goes.
class TimingStore final : public ObjectStoreWrapper {
 public:
  explicit TimingStore(std::unique_ptr<ObjectStore> target)
      : ObjectStoreWrapper(target.get()), owned_(std::move(target)) {}

  absl::StatusOr<std::string> Get(std::string_view key) override {
    const auto t0 = Clock::now();
    absl::StatusOr<std::string> r = target()->Get(key);
    Record("GET whole object", t0, r.ok() ? r->size() : 0);
    return r;
  }
  absl::StatusOr<std::string> GetRange(std::string_view key, uint64_t offset,
                                       uint64_t length) override {
    const auto t0 = Clock::now();
    absl::StatusOr<std::string> r = target()->GetRange(key, offset, length);
    Record(length < 65536 ? "GET range < 64 KiB" : "GET range >= 64 KiB", t0,
           r.ok() ? r->size() : 0);
    return r;
  }
  absl::StatusOr<uint64_t> Size(std::string_view key) override {
    const auto t0 = Clock::now();
    absl::StatusOr<uint64_t> r = target()->Size(key);
    Record("HEAD (Size)", t0, 0);
    return r;
  }
  // Forwarded (ObjectStoreWrapper would split it into Size and GetRange): the S3 store's one
  // suffix-range GET is what a restore sends per pack for its size, footer and index.
  absl::StatusOr<ObjectTail> GetTail(std::string_view key, uint64_t length) override {
    const auto t0 = Clock::now();
    absl::StatusOr<ObjectTail> r = target()->GetTail(key, length);
    Record("GET tail (size, footer, index)", t0, r.ok() ? r->bytes.size() : 0);
    return r;
  }
  absl::StatusOr<ObjectPage> ListPage(std::string_view prefix, std::string_view start_after,
                                      size_t max_keys) override {
    const auto t0 = Clock::now();
    absl::StatusOr<ObjectPage> r = target()->ListPage(prefix, start_after, max_keys);
    Record("LIST page", t0, 0);
    return r;
  }

  struct Kind {
    uint64_t calls = 0, bytes = 0;
    std::vector<double> ms;
  };
  std::map<std::string, Kind> kinds() const {
    std::lock_guard<std::mutex> l(mu_);
    return kinds_;
  }
  void Reset() {
    std::lock_guard<std::mutex> l(mu_);
    kinds_.clear();
  }

 private:
  void Record(const char* kind, Clock::time_point t0, uint64_t bytes) {
    const double ms = Seconds(Clock::now() - t0) * 1000;
    std::lock_guard<std::mutex> l(mu_);
    Kind& k = kinds_[kind];
    ++k.calls;
    k.bytes += bytes;
    k.ms.push_back(ms);
  }

  std::unique_ptr<ObjectStore> owned_;
  mutable std::mutex mu_;
  std::map<std::string, Kind> kinds_;
};

// ---------------------------------------------------------------------------------------------
// 2. Persist and restore

// The region's bytes: incompressible, the same for every persist.
void FillRegion(const Config& c, char* data, uint64_t size) { Rng(c.seed).Fill(data, size); }

struct Persisted {
  std::string label;
  int uploads = 0;
  int round = 0;
  double seconds = 0;
  double pause_ms = 0;
  uint64_t stored_bytes = 0;
  uint64_t raw_bytes = 0;
  Usage usage;
};

CheckpointerOptions QuietOptions() {
  CheckpointerOptions o;
  o.gc_after_commit = false;
  o.consolidate_in_background = false;
  return o;
}

// A full checkpoint of the region into `repo` by a fresh checkpointer.
Persisted Persist(const Config& c, Repository* repo, int uploads, uint64_t expected,
                  const CpuMeter& meter) {
  CheckpointerOptions co = QuietOptions();
  co.uploads_in_flight = uploads;
  std::unique_ptr<Checkpointer> ckpt = Check(Checkpointer::Open(repo, co));
  RegionOptions ro;
  ro.size = c.size;
  Region* region = Check(ckpt->AddRegion(kRegionName, ro));
  FillRegion(c, region->data(), region->size());
  if (Xxh3(region->data(), region->size()) != expected) {
    Fail("the region's bytes are not repeatable");
  }
  Persisted p;
  p.uploads = uploads;
  CheckpointOptions options;
  options.full = true;
  const CpuSample start = meter.Now();
  CheckpointHandle h = Check(ckpt->Checkpoint(options));
  const CommitRecord record = Check(h.Wait());
  p.usage = meter.Since(start);
  p.seconds = p.usage.seconds;
  p.pause_ms = absl::ToDoubleMilliseconds(h.pause());
  p.stored_bytes = record.stored_bytes;
  for (const ParticipantRecord& pr : record.participants) {
    for (const StateObjectRecord& so : pr.state_objects) p.raw_bytes += so.raw_bytes;
  }
  return p;
}

struct Restored {
  double seconds = 0;
  double open_seconds = 0;  // opening the repository (S3: HEAD bucket + the publish probe)
  Usage usage;
};

// Restores the latest checkpoint of `repo` by a fresh checkpointer and checks the bytes.
Restored Restore(const std::string& label, Repository* repo, int threads, uint64_t expected,
                 uint64_t size, const CpuMeter& meter) {
  CheckpointerOptions co = QuietOptions();
  co.restore_threads = threads;
  std::unique_ptr<Checkpointer> ckpt = Check(Checkpointer::Open(repo, co));
  RestoreOptions ro;
  ro.on_unregistered = OnUnregistered::kCreate;
  Restored out;
  const CpuSample start = meter.Now();
  const CommitRecord record = Check(ckpt->Restore(ro));
  out.usage = meter.Since(start);
  out.seconds = out.usage.seconds;
  Region* region = ckpt->FindRegion(kRegionName);
  if (region == nullptr) Fail(label + ": the restore has no region " + kRegionName);
  if (region->size() != size) {
    Fail(label + ": restored region of " + std::to_string(region->size()) + " bytes, expected " +
         std::to_string(size));
  }
  if (Xxh3(region->data(), region->size()) != expected) {
    Fail(label + ": restore of checkpoint " + std::to_string(record.id) +
         " returned WRONG BYTES (XXH3-64 differs from the original's)");
  }
  return out;
}

// The gateway's ceiling for a restore: every pack of the repository under `prefix` fetched whole
// (one GET each) by `threads` threads sharing one store, the bytes counted and dropped. No index,
// no checksum, no copy into a region: no restore that reads the same packs from this gateway can
// be faster.
Restored FetchPacks(const Config& c, const std::string& prefix, int threads,
                    const CpuMeter& meter) {
  std::unique_ptr<ObjectStore> store = Check(OpenS3Store(StoreOptions(c, prefix)));
  std::vector<ObjectInfo> packs = Check(store->List("packs/"));
  std::atomic<uint64_t> bytes{0};
  Restored out;
  const CpuSample start = meter.Now();
  ParallelFor(packs.size(), threads, [&](size_t i) {
    const std::string got = Check(store->Get(packs[i].key));
    if (got.size() != packs[i].size) Fail("fetch of " + packs[i].key + ": short read");
    bytes += got.size();
  });
  out.usage = meter.Since(start);
  out.seconds = out.usage.seconds;
  uint64_t expected = 0;
  for (const ObjectInfo& o : packs) expected += o.size;
  if (bytes != expected) Fail("fetching the packs read " + std::to_string(bytes.load()) + " bytes");
  return out;
}

// Writes back and drops the page cache of every file under `dir` (posix_fadvise DONTNEED); the
// kernel's inode and directory caches stay warm. Returns the bytes of the files.
uint64_t DropPageCache(const std::string& dir) {
  uint64_t bytes = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string path = e.path().string();
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) Fail("open " + path + ": " + std::strerror(errno));
    if (::fdatasync(fd) != 0) Fail("fdatasync " + path + ": " + std::strerror(errno));
    if (const int err = ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); err != 0) {
      Fail("posix_fadvise " + path + ": " + std::strerror(err));
    }
    ::close(fd);
    bytes += e.file_size();
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// 3. s3cmd

void WriteFile(const std::string& path, const char* data, uint64_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) Fail("open " + path + ": " + std::strerror(errno));
  for (uint64_t at = 0; at < size;) {
    const ssize_t n = ::write(fd, data + at, std::min<uint64_t>(size - at, 1 << 24));
    if (n < 0) {
      if (errno == EINTR) continue;
      Fail("write " + path + ": " + std::strerror(errno));
    }
    at += static_cast<uint64_t>(n);
  }
  if (::close(fd) != 0) Fail("close " + path + ": " + std::strerror(errno));
}

// XXH3-64 and size of a file (mapped).
std::pair<uint64_t, uint64_t> HashFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) Fail("open " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) Fail("fstat " + path + ": " + std::strerror(errno));
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  uint64_t h = Xxh3("", 0);
  if (size > 0) {
    void* m = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) Fail("mmap " + path + ": " + std::strerror(errno));
    h = Xxh3(m, size);
    ::munmap(m, size);
  }
  ::close(fd);
  return {h, size};
}

// Runs `argv` with stdout and stderr appended to `log`; fails unless it exits 0. The usage's
// child_cores is the child's CPU (wait4).
Usage RunChild(const std::vector<std::string>& argv, const std::string& log,
               const CpuMeter& meter) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const CpuSample start = meter.Now();
  pid_t pid = 0;
  const int err = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) Fail("cannot run " + argv[0] + ": " + std::strerror(err));
  int status = 0;
  rusage ru{};
  while (::wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) Fail(std::string("wait4: ") + std::strerror(errno));
  }
  Usage u = meter.Since(start);
  u.child_cores = (ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                   ru.ru_stime.tv_usec / 1e6) /
                  u.seconds;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string cmd;
    for (const std::string& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    Fail("'" + cmd + "' failed (status " + std::to_string(status) + "); its output is in " + log);
  }
  return u;
}

std::string WriteS3cmdConfig(const Config& c, const std::string& path) {
  const std::string host = HostPort(c.endpoint);
  const bool https = c.endpoint.starts_with("https://");
  std::ofstream out(path, std::ios::trunc);
  out << "[default]\n"
      << "access_key = " << c.access_key << "\n"
      << "secret_key = " << c.secret_key << "\n"
      << "host_base = " << host << "\n"
      << "host_bucket = " << host << "\n"
      << "bucket_location = " << c.region << "\n"
      << "use_https = " << (https ? "True" : "False") << "\n"
      << "signature_v2 = False\n";
  out.close();
  if (!out) Fail("cannot write " + path);
  ::chmod(path.c_str(), 0600);
  return path;
}

// ---------------------------------------------------------------------------------------------
// The run

struct RestoreCase {
  std::string label;
  enum Kind { kLocalWarm, kLocalCold, kS3, kS3cmd, kS3Fetch } kind;
  int threads = 0;
  std::vector<Restored> rounds;
};

int Main(int argc, char** argv) {
  const Config c = ParseConfig(argc, argv);
  const CpuMeter meter(c);
  g_run_start = Clock::now();
  const auto run_start = g_run_start;
  // Repository::OpenUrl takes credentials from the environment only. A session token left in the
  // environment would be sent with them and refused.
  ::setenv("AWS_ACCESS_KEY_ID", c.access_key.c_str(), 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", c.secret_key.c_str(), 1);
  ::unsetenv("AWS_SESSION_TOKEN");

  const std::string run = "s3bench-" + RandomHex128().substr(0, 12);
  const std::string local_root = c.dir + "/" + run;
  std::filesystem::create_directories(local_root);
  std::printf("s3_bench: endpoint %s, bucket %s, prefix %s/, local %s\n", c.endpoint.c_str(),
              c.bucket.c_str(), run.c_str(), local_root.c_str());
  std::printf(
      "region %.0f MiB of incompressible bytes (splitmix64), %d round(s); nproc %u; load "
      "average %s\n",
      c.size / kMiB, c.rounds, std::thread::hardware_concurrency(), LoadAverage().c_str());
  std::printf("cores below: this process (or s3cmd) / radosgw / OSD%s\n",
              meter.daemons() ? "" : " (daemon PIDs not given: 0)");

  // 1.
  Mark("throughput");
  const std::vector<Level> levels = MeasureThroughput(c, run + "/tput", meter);
  if (!c.keep) DeleteUnder(c, run + "/tput");
  const std::vector<RequestLatency> latency = MeasureRequestLatency(c, run + "/latency");

  // 2. Persists. The original's hash, and the file s3cmd puts.
  Mark("persists");
  uint64_t expected = 0;
  const std::string source_file = local_root + "/region.bin";
  {
    std::vector<char> bytes(c.size);
    FillRegion(c, bytes.data(), bytes.size());
    expected = Xxh3(bytes.data(), bytes.size());
    WriteFile(source_file, bytes.data(), bytes.size());
  }
  std::printf(
      "\n2. persist: a full checkpoint of the %.0f MiB region by a fresh checkpointer "
      "(Checkpoint + Wait), XXH3-64 of the region %016llx\n",
      c.size / kMiB, static_cast<unsigned long long>(expected));
  struct PersistCase {
    std::string label;
    bool s3 = false;
    int uploads = 2;
    std::vector<Persisted> rounds;
  };
  std::vector<PersistCase> persists;
  persists.push_back({"local directory, uploads_in_flight 2", false, 2, {}});
  for (int u : c.uploads) {
    persists.push_back({"S3, uploads_in_flight " + std::to_string(u), true, u, {}});
  }
  const std::string local_repo = local_root + "/repo-r0";
  const std::string s3_repo = run + "/repo-u" + std::to_string(c.uploads[0]) + "-r0";
  Stored s3_stored;
  for (int r = 0; r < c.persist_rounds; ++r) {
    for (size_t step = 0; step < persists.size(); ++step) {
      PersistCase& pc = persists[(step + r) % persists.size()];
      const std::string where =
          pc.s3 ? run + "/repo-u" + std::to_string(pc.uploads) + "-r" + std::to_string(r)
                : local_root + "/repo-r" + std::to_string(r);
      {
        std::unique_ptr<Repository> repo =
            pc.s3 ? Check(Repository::OpenUrl(RepositoryUrl(c, where), /*create=*/true))
                  : Check(Repository::OpenLocal(where, /*create=*/true));
        Persisted p = Persist(c, repo.get(), pc.uploads, expected, meter);
        p.round = r;
        std::printf(
            "  round %d, %-38s %6.2f s = %7.1f MiB/s, pause %6.0f ms, stored %.1f MiB "
            "(cores %s)\n",
            r, pc.label.c_str(), p.seconds, c.size / kMiB / p.seconds, p.pause_ms,
            p.stored_bytes / kMiB, Cores(p.usage).c_str());
        std::fflush(stdout);
        pc.rounds.push_back(p);
      }
      const bool kept = pc.s3 ? where == s3_repo : where == local_repo;
      if (pc.s3 && kept) s3_stored = StoredUnder(c, where);
      if (!kept && !c.keep) {
        if (pc.s3) {
          DeleteUnder(c, where);
        } else {
          std::filesystem::remove_all(where);
        }
      }
    }
  }
  std::printf("  kept for the restores: %s and s3://%s/%s (%llu objects, %llu packs, %.1f MiB)\n",
              local_repo.c_str(), c.bucket.c_str(), s3_repo.c_str(),
              static_cast<unsigned long long>(s3_stored.objects),
              static_cast<unsigned long long>(s3_stored.packs), s3_stored.bytes / kMiB);

  // 3. s3cmd put.
  Mark("s3cmd put");
  const std::string s3cmd_config = WriteS3cmdConfig(c, local_root + "/s3cmd.cfg");
  const std::string s3cmd_log = local_root + "/s3cmd.log";
  const std::string object_url = "s3://" + c.bucket + "/" + run + "/s3cmd/region.bin";
  const std::vector<std::string> s3cmd = {c.s3cmd, "-c", s3cmd_config, "--no-progress"};
  auto with = [&](std::initializer_list<std::string> more) {
    std::vector<std::string> v = s3cmd;
    v.insert(v.end(), more);
    return v;
  };
  const Usage put_usage = RunChild(with({"put", source_file, object_url}), s3cmd_log, meter);
  std::filesystem::remove(source_file);
  std::printf("\n3. s3cmd put of the same bytes as one object %s: %.2f s = %.1f MiB/s (cores %s)\n",
              object_url.c_str(), put_usage.seconds, c.size / kMiB / put_usage.seconds,
              Cores(put_usage).c_str());

  // 4. Restores and s3cmd get, side by side.
  Mark("restores");
  // What restore_threads 0 means on S3 (Checkpointer::Restore asks the store).
  const int default_threads =
      Check(OpenS3Store(StoreOptions(c, run + "/unused")))->default_read_concurrency();
  std::vector<RestoreCase> restores;
  restores.push_back({"local directory, warm page cache", RestoreCase::kLocalWarm, 0, {}});
  restores.push_back({"local directory, cold page cache", RestoreCase::kLocalCold, 0, {}});
  for (int t : c.restore_threads) {
    restores.push_back(
        {"S3, restore_threads " +
             (t == 0 ? "default (" + std::to_string(default_threads) + ")" : std::to_string(t)),
         RestoreCase::kS3,
         t,
         {}});
  }
  restores.push_back({"s3cmd get of one object", RestoreCase::kS3cmd, 0, {}});
  for (int t : c.restore_threads) {
    const int n = t == 0 ? default_threads : t;
    restores.push_back({"S3, packs fetched whole, " + std::to_string(n) + " threads (ceiling)",
                        RestoreCase::kS3Fetch,
                        n,
                        {}});
  }
  std::vector<double> s3cmd_startup;
  const std::string got_file = local_root + "/got.bin";
  std::printf(
      "\n4. restores of the latest checkpoint (fresh repository and checkpointer), and "
      "s3cmd get, each checked against the original's XXH3-64\n");
  for (int r = 0; r < c.rounds; ++r) {
    const Usage ls = RunChild(with({"ls", object_url}), s3cmd_log, meter);
    s3cmd_startup.push_back(ls.seconds);
    for (size_t step = 0; step < restores.size(); ++step) {
      RestoreCase& rc = restores[(step + r) % restores.size()];
      Restored out;
      if (rc.kind == RestoreCase::kS3cmd) {
        out.usage = RunChild(with({"--force", "get", object_url, got_file}), s3cmd_log, meter);
        out.seconds = out.usage.seconds;
        const auto [h, size] = HashFile(got_file);
        if (size != c.size || h != expected) {
          Fail("s3cmd get returned WRONG BYTES (" + std::to_string(size) + " bytes)");
        }
        std::filesystem::remove(got_file);
      } else if (rc.kind == RestoreCase::kS3Fetch) {
        out = FetchPacks(c, s3_repo, rc.threads, meter);
      } else if (rc.kind == RestoreCase::kS3) {
        const auto t0 = Clock::now();
        std::unique_ptr<Repository> repo =
            Check(Repository::OpenUrl(RepositoryUrl(c, s3_repo), /*create=*/false));
        const double open = Seconds(Clock::now() - t0);
        out = Restore(rc.label, repo.get(), rc.threads, expected, c.size, meter);
        out.open_seconds = open;
      } else {
        if (rc.kind == RestoreCase::kLocalCold) DropPageCache(local_repo);
        const auto t0 = Clock::now();
        std::unique_ptr<Repository> repo = Check(Repository::OpenLocal(local_repo, false));
        const double open = Seconds(Clock::now() - t0);
        out = Restore(rc.label, repo.get(), rc.threads, expected, c.size, meter);
        out.open_seconds = open;
      }
      char open[48] = "";
      if (rc.kind != RestoreCase::kS3cmd && rc.kind != RestoreCase::kS3Fetch) {
        std::snprintf(open, sizeof(open), "open %.3f s; ", out.open_seconds);
      }
      std::printf("  round %d, %-38s %6.2f s = %7.1f MiB/s (%scores %s)\n", r, rc.label.c_str(),
                  out.seconds, c.size / kMiB / out.seconds, open, Cores(out.usage).c_str());
      std::fflush(stdout);
      rc.rounds.push_back(out);
    }
  }

  // Where an S3 restore's time goes: one more restore (default restore_threads) through a store
  // that times each read. Opened as Repository::OpenUrl opens it (ParseS3Url, the publish probe).
  Mark("timed S3 restore");
  std::map<std::string, TimingStore::Kind> census;
  Restored census_restore;
  {
    S3StoreOptions o = Check(ParseS3Url(RepositoryUrl(c, s3_repo)));
    o.probe_publish = true;
    auto timing = std::make_unique<TimingStore>(Check(OpenS3Store(o)));
    TimingStore* t = timing.get();
    std::unique_ptr<Repository> repo = Check(Repository::Open(std::move(timing)));
    t->Reset();
    census_restore = Restore("timed S3 restore", repo.get(), 0, expected, c.size, meter);
    census = t->kinds();
  }
  std::printf(
      "\n5. one more S3 restore (restore_threads default: %d here), every read timed: %.2f "
      "s\n",
      default_threads, census_restore.seconds);
  for (const auto& [what, k] : census) {
    double sum = 0;
    for (double ms : k.ms) sum += ms;
    std::printf(
        "  %-22s %6llu calls, %8.1f MiB, median %7.1f ms, p90 %7.1f ms, %6.2f s in all "
        "(%.0f%% of %d threads x wall)\n",
        what.c_str(), static_cast<unsigned long long>(k.calls), k.bytes / kMiB, Median(k.ms),
        Percentile(k.ms, 90), sum / 1000,
        100 * sum / 1000 / (default_threads * census_restore.seconds), default_threads);
  }

  // Summary.
  Mark("summary");
  json j;
  j["bench"] = "s3_bench";
  j["endpoint"] = c.endpoint;
  j["size_bytes"] = c.size;
  j["rounds"] = c.rounds;
  j["persist_rounds"] = c.persist_rounds;
  j["objects"] = c.objects;
  j["object_bytes"] = c.object_size;
  j["nproc"] = std::thread::hardware_concurrency();

  std::printf("\nSUMMARY (medians of %d round(s); MiB/s = 2^20 bytes per second)\n\n", c.rounds);
  std::printf("Store throughput, %llu objects of %.0f MiB, threads sharing one OpenS3Store:\n\n",
              static_cast<unsigned long long>(c.objects), c.object_size / kMiB);
  std::printf(
      "| threads | PUT MiB/s | x 1 thread | PUT ms per object, median / p90 | GET MiB/s | "
      "x 1 thread | GET ms per object, median / p90 | cores PUT (bench / rgw / osd) | "
      "cores GET |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  const double put1 = Median(levels[0].put_mibs), get1 = Median(levels[0].get_mibs);
  json jt = json::array();
  for (const Level& l : levels) {
    const double put = Median(l.put_mibs), get = Median(l.get_mibs);
    // The usage of the round whose PUT (GET) throughput is nearest the median.
    const Usage pu = l.put_usage[NearestIndex(l.put_mibs, put)];
    const Usage gu = l.get_usage[NearestIndex(l.get_mibs, get)];
    std::printf("| %d | %.1f | %.2f | %.1f / %.1f | %.1f | %.2f | %.1f / %.1f | %s | %s |\n",
                l.concurrency, put, put / put1, Median(l.put_ms), Percentile(l.put_ms, 90), get,
                get / get1, Median(l.get_ms), Percentile(l.get_ms, 90), Cores(pu).c_str(),
                Cores(gu).c_str());
    jt.push_back({{"threads", l.concurrency},
                  {"put_mib_s", l.put_mibs},
                  {"get_mib_s", l.get_mibs},
                  {"put_mib_s_median", put},
                  {"get_mib_s_median", get},
                  {"put_ratio_to_1", put / put1},
                  {"get_ratio_to_1", get / get1},
                  {"put_ms_median", Median(l.put_ms)},
                  {"put_ms_p90", Percentile(l.put_ms, 90)},
                  {"get_ms_median", Median(l.get_ms)},
                  {"get_ms_p90", Percentile(l.get_ms, 90)},
                  {"put_usage", UsageJson(pu)},
                  {"get_usage", UsageJson(gu)}});
  }
  j["throughput"] = jt;

  std::printf("\nOne request at a time (median / p90 ms): ");
  json jl = json::array();
  for (const RequestLatency& l : latency) {
    std::printf("%s%s %.1f / %.1f", &l == &latency[0] ? "" : "; ", l.what.c_str(), l.median_ms,
                l.p90_ms);
    jl.push_back({{"request", l.what}, {"median_ms", l.median_ms}, {"p90_ms", l.p90_ms}});
  }
  std::printf("\n");
  j["request_latency"] = jl;

  std::printf("\nPersist (full checkpoint) of %.0f MiB, medians of %d round(s):\n\n", c.size / kMiB,
              c.persist_rounds);
  std::printf(
      "| repository | seconds, median (each round) | MiB/s | x local | pause ms | stored "
      "MiB | cores (bench / rgw / osd) |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- |\n");
  std::vector<double> local_persist;
  for (const Persisted& p : persists[0].rounds) local_persist.push_back(p.seconds);
  const double local_persist_s = Median(local_persist);
  json jp = json::array();
  for (const PersistCase& pc : persists) {
    std::vector<double> pause;
    for (const Persisted& p : pc.rounds) pause.push_back(p.pause_ms);
    const Rounds rounds_of = SummarizeRounds(pc.rounds);
    const double m = rounds_of.median;
    const size_t mid = rounds_of.nearest;
    std::printf("| %s | %.2f (%s) | %.1f | %.2f | %.0f | %.1f | %s |\n", pc.label.c_str(), m,
                rounds_of.each.c_str(), c.size / kMiB / m, m / local_persist_s, Median(pause),
                pc.rounds[mid].stored_bytes / kMiB, Cores(pc.rounds[mid].usage).c_str());
    json rounds = json::array();
    for (const Persisted& p : pc.rounds) {
      rounds.push_back({{"round", p.round},
                        {"seconds", p.seconds},
                        {"pause_ms", p.pause_ms},
                        {"stored_bytes", p.stored_bytes},
                        {"raw_bytes", p.raw_bytes},
                        {"usage", UsageJson(p.usage)}});
    }
    jp.push_back({{"case", pc.label},
                  {"s3", pc.s3},
                  {"uploads_in_flight", pc.uploads},
                  {"seconds_median", m},
                  {"mib_s", c.size / kMiB / m},
                  {"ratio_to_local", m / local_persist_s},
                  {"rounds", rounds}});
  }
  j["persist"] = jp;
  j["s3cmd_put"] = UsageJson(put_usage);
  std::printf("| s3cmd put of one object (for scale) | %.2f | %.1f | %.2f | | | %s |\n",
              put_usage.seconds, c.size / kMiB / put_usage.seconds,
              put_usage.seconds / local_persist_s, Cores(put_usage).c_str());

  double s3cmd_get_s = std::nan("");
  for (const RestoreCase& rc : restores) {
    if (rc.kind == RestoreCase::kS3cmd) s3cmd_get_s = SummarizeRounds(rc.rounds).median;
  }
  std::printf(
      "\nRestore of %.0f MiB (Checkpointer::Restore; s3cmd: spawn to exit) and s3cmd get "
      "of the same bytes; S3 repository: %llu packs in %llu objects:\n\n",
      c.size / kMiB, static_cast<unsigned long long>(s3_stored.packs),
      static_cast<unsigned long long>(s3_stored.objects));
  std::printf(
      "| source | seconds, median (each round) | MiB/s | s3cmd get / this | cores (bench "
      "or s3cmd / rgw / osd) |\n");
  std::printf("| --- | --- | --- | --- | --- |\n");
  json jr = json::array();
  for (const RestoreCase& rc : restores) {
    const Rounds rounds_of = SummarizeRounds(rc.rounds);
    const double m = rounds_of.median;
    const size_t mid = rounds_of.nearest;
    std::printf("| %s | %.2f (%s) | %.1f | %.2f | %s |\n", rc.label.c_str(), m,
                rounds_of.each.c_str(), c.size / kMiB / m, s3cmd_get_s / m,
                Cores(rc.rounds[mid].usage).c_str());
    json rounds = json::array();
    for (const Restored& r : rc.rounds) {
      rounds.push_back({{"seconds", r.seconds},
                        {"open_seconds", r.open_seconds},
                        {"usage", UsageJson(r.usage)}});
    }
    jr.push_back({{"case", rc.label},
                  {"restore_threads", rc.threads},
                  {"seconds_median", m},
                  {"mib_s", c.size / kMiB / m},
                  {"s3cmd_get_over_this", s3cmd_get_s / m},
                  {"rounds", rounds}});
  }
  j["restore"] = jr;
  j["s3_repository"] = {
      {"objects", s3_stored.objects}, {"packs", s3_stored.packs}, {"bytes", s3_stored.bytes}};
  j["s3cmd_startup_seconds"] = s3cmd_startup;
  std::printf("\nThe reads of one S3 restore (restore_threads %d, %.2f s, every read timed):\n\n",
              default_threads, census_restore.seconds);
  std::printf(
      "| request | calls | MiB | ms, median / p90 | seconds in all (share of %d threads "
      "x wall) |\n| --- | --- | --- | --- | --- |\n",
      default_threads);
  json jc = json::array();
  for (const auto& [what, k] : census) {
    double sum = 0;
    for (double ms : k.ms) sum += ms;
    const double share = sum / 1000 / (default_threads * census_restore.seconds);
    std::printf("| %s | %llu | %.1f | %.1f / %.1f | %.2f (%.0f%%) |\n", what.c_str(),
                static_cast<unsigned long long>(k.calls), k.bytes / kMiB, Median(k.ms),
                Percentile(k.ms, 90), sum / 1000, 100 * share);
    jc.push_back({{"request", what},
                  {"calls", k.calls},
                  {"bytes", k.bytes},
                  {"median_ms", Median(k.ms)},
                  {"p90_ms", Percentile(k.ms, 90)},
                  {"seconds", sum / 1000}});
  }
  j["restore_reads"] = {
      {"restore_threads", default_threads}, {"seconds", census_restore.seconds}, {"requests", jc}};
  std::printf("\ns3cmd start-up plus one request (`s3cmd ls` of the object), median: %.2f s\n",
              Median(s3cmd_startup));

  std::printf("\n| goal (issue 14) | measured | |\n| --- | --- | --- |\n");
  json goals = json::array();
  for (const RestoreCase& rc : restores) {
    if (rc.kind != RestoreCase::kS3) continue;
    const double ratio = s3cmd_get_s / SummarizeRounds(rc.rounds).median;
    std::printf("| restore from RGW >= %.0fx faster than s3cmd get (%s) | %.2fx | **%s** |\n",
                kGoal, rc.label.c_str(), ratio, ratio >= kGoal ? "met" : "NOT met");
    goals.push_back({{"case", rc.label}, {"ratio", ratio}, {"met", ratio >= kGoal}});
  }
  // How near each S3 restore comes to fetching the same packs with as many threads.
  std::printf(
      "\n| S3 restore | fetching its packs whole, same threads: s | restore s | fetch / restore "
      "|\n"
      "| --- | --- | --- | --- |\n");
  json ceilings = json::array();
  for (const RestoreCase& rc : restores) {
    if (rc.kind != RestoreCase::kS3) continue;
    const int n = rc.threads == 0 ? default_threads : rc.threads;
    for (const RestoreCase& fc : restores) {
      if (fc.kind != RestoreCase::kS3Fetch || fc.threads != n) continue;
      const double restore_s = SummarizeRounds(rc.rounds).median;
      const double fetch_s = SummarizeRounds(fc.rounds).median;
      std::printf("| %s | %.2f | %.2f | %.2f |\n", rc.label.c_str(), fetch_s, restore_s,
                  fetch_s / restore_s);
      ceilings.push_back({{"case", rc.label},
                          {"fetch_seconds_median", fetch_s},
                          {"restore_seconds_median", restore_s},
                          {"fetch_over_restore", fetch_s / restore_s}});
    }
  }
  j["restore_vs_fetch"] = ceilings;
  j["goal"] = goals;
  j["load_average_end"] = LoadAverage();

  if (!c.keep) {
    const auto [objects, bytes] = DeleteUnder(c, run);
    std::error_code ec;
    std::filesystem::remove_all(local_root, ec);
    std::printf("\nremoved what the run stored (%llu objects, %.1f MiB left on S3; %s)\n",
                static_cast<unsigned long long>(objects), bytes / kMiB, local_root.c_str());
  } else {
    std::printf("\nkept s3://%s/%s/ and %s\n", c.bucket.c_str(), run.c_str(), local_root.c_str());
  }
  j["total_seconds"] = Seconds(Clock::now() - run_start);
  std::printf("total %.0f s; load average at end: %s\n", Seconds(Clock::now() - run_start),
              LoadAverage().c_str());
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace
}  // namespace ickpt

int main(int argc, char** argv) { return ickpt::Main(argc, argv); }
