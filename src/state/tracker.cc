#include "src/state/tracker.h"

#include <algorithm>
#include <thread>
#include <vector>

#include "src/util/hash.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

// Reports nothing itself: the region's MarkDirty() bitmap is the whole dirty set.
class ExplicitTracker final : public Tracker {
 public:
  std::string_view name() const override { return "explicit"; }
  absl::Status Attach(const char*, uint64_t, uint32_t) override { return absl::OkStatus(); }
  absl::Status Collect(DirtyBitmap*) override { return absl::OkStatus(); }
  absl::Status Rebaseline() override { return absl::OkStatus(); }
};

// XXH3 of every block, compared with the hashes taken at the last capture. Works for any memory
// at the cost of reading all of it at every capture; the kernel trackers avoid that read.
class HashTracker final : public Tracker {
 public:
  std::string_view name() const override { return "hash"; }

  absl::Status Attach(const char* base, uint64_t block_count, uint32_t block_size) override {
    if (block_size != block_size_) {
      // Hashes of another block size mean nothing; start over from the content.
      block_size_ = block_size;
      hashes_.clear();
    }
    base_ = base;
    const uint64_t old_count = hashes_.size();
    hashes_.resize(block_count);
    if (block_count > old_count) {
      // Blocks that are new are zero (their change is reported by the region as growth).
      const std::string zeros(block_size, '\0');
      const uint64_t zero_hash = Xxh3(zeros);
      std::fill(hashes_.begin() + old_count, hashes_.end(), zero_hash);
    }
    return absl::OkStatus();
  }

  absl::Status Collect(DirtyBitmap* dirty) override {
    ForEachSlice(
        [&](uint64_t first, uint64_t end, std::vector<uint64_t>* changed) {
          for (uint64_t b = first; b < end; ++b) {
            const uint64_t h = Xxh3(base_ + b * block_size_, block_size_);
            if (h != hashes_[b]) {
              hashes_[b] = h;
              changed->push_back(b);
            }
          }
        },
        dirty);
    return absl::OkStatus();
  }

  absl::Status Rebaseline() override {
    ForEachSlice(
        [&](uint64_t first, uint64_t end, std::vector<uint64_t>*) {
          for (uint64_t b = first; b < end; ++b)
            hashes_[b] = Xxh3(base_ + b * block_size_, block_size_);
        },
        nullptr);
    return absl::OkStatus();
  }

 private:
  // Hashing is memory-bound and the application is stopped: split large regions over the cores.
  template <typename Fn>
  void ForEachSlice(Fn&& fn, DirtyBitmap* dirty) {
    const uint64_t n = hashes_.size();
    const uint64_t kMinBytesPerThread = 32ull << 20;
    unsigned threads = std::max(1u, std::thread::hardware_concurrency());
    threads = static_cast<unsigned>(
        std::min<uint64_t>(threads, std::max<uint64_t>(1, n * block_size_ / kMinBytesPerThread)));
    std::vector<std::vector<uint64_t>> changed(threads);
    std::vector<std::thread> workers;
    const uint64_t per = (n + threads - 1) / threads;
    for (unsigned t = 1; t < threads; ++t) {
      workers.emplace_back(
          [&, t] { fn(std::min(n, t * per), std::min(n, (t + 1) * per), &changed[t]); });
    }
    fn(0, std::min(n, per), &changed[0]);
    for (auto& w : workers) w.join();
    if (dirty != nullptr) {
      for (const auto& list : changed) {
        for (uint64_t b : list) dirty->Set(b);
      }
    }
  }

  const char* base_ = nullptr;
  uint32_t block_size_ = 0;
  std::vector<uint64_t> hashes_;
};

}  // namespace

namespace {

constexpr TrackerKind kAllKinds[] = {TrackerKind::kAuto,      TrackerKind::kUffdAsync,
                                     TrackerKind::kSoftDirty, TrackerKind::kUffdSync,
                                     TrackerKind::kMprotect,  TrackerKind::kHash,
                                     TrackerKind::kExplicit};

std::vector<TrackerReport> ProbeAll() {
  std::vector<TrackerReport> reports;
  reports.push_back(ProbeUffdAsync());
  reports.push_back(ProbeSoftDirty());
  reports.push_back(ProbeUffdSync());
  reports.push_back(ProbeMprotect());
  reports.push_back(TrackerReport{TrackerKind::kHash, true,
                                  "hashes every block at every capture: works for any memory, "
                                  "reads all of it"});
  reports.push_back(TrackerReport{TrackerKind::kExplicit, true,
                                  "sees only what the application reports with MarkDirty()"});
  return reports;
}

}  // namespace

std::string_view TrackerName(TrackerKind kind) {
  switch (kind) {
    case TrackerKind::kAuto:
      return "auto";
    case TrackerKind::kUffdAsync:
      return "uffd-async";
    case TrackerKind::kSoftDirty:
      return "soft-dirty";
    case TrackerKind::kUffdSync:
      return "uffd-sync";
    case TrackerKind::kMprotect:
      return "mprotect";
    case TrackerKind::kHash:
      return "hash";
    case TrackerKind::kExplicit:
      return "explicit";
  }
  return "unknown";
}

absl::StatusOr<TrackerKind> ParseTrackerName(std::string_view name) {
  for (TrackerKind kind : kAllKinds) {
    if (TrackerName(kind) == name) return kind;
  }
  return absl::InvalidArgumentError(
      StrCat("unknown tracker '", name,
             "' (known: auto, uffd-async, soft-dirty, uffd-sync, mprotect, hash, explicit)"));
}

const std::vector<TrackerReport>& DescribeTrackers() {
  // Probed once: each probe maps scratch pages and does the real thing (a few ms in all).
  static const std::vector<TrackerReport>* const reports =
      new std::vector<TrackerReport>(ProbeAll());
  return *reports;
}

TrackerKind SelectedTracker() {
  for (const TrackerReport& report : DescribeTrackers()) {
    if (report.works) return report.kind;
  }
  return TrackerKind::kHash;
}

absl::StatusOr<std::unique_ptr<Tracker>> NewTracker(TrackerKind kind) {
  if (kind == TrackerKind::kAuto) kind = SelectedTracker();
  switch (kind) {
    case TrackerKind::kHash:
      return std::unique_ptr<Tracker>(new HashTracker());
    case TrackerKind::kExplicit:
      return std::unique_ptr<Tracker>(new ExplicitTracker());
    default:
      break;
  }
  for (const TrackerReport& report : DescribeTrackers()) {
    if (report.kind != kind) continue;
    if (!report.works) {
      return absl::FailedPreconditionError(
          StrCat("tracker '", TrackerName(kind), "' does not work here: ", report.reason));
    }
    switch (kind) {
      case TrackerKind::kUffdAsync:
        return NewUffdAsyncTracker();
      case TrackerKind::kSoftDirty:
        return NewSoftDirtyTracker();
      case TrackerKind::kUffdSync:
        return NewUffdSyncTracker();
      case TrackerKind::kMprotect:
        return NewMprotectTracker();
      default:
        break;
    }
  }
  return absl::InvalidArgumentError(StrCat("unknown tracker kind ", static_cast<int>(kind)));
}

}  // namespace ickpt
