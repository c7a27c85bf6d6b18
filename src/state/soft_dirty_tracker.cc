// The "soft-dirty" tracker: writing "4" to /proc/self/clear_refs clears the soft-dirty bit of every
// page of the process (and write-protects them in the page tables, so the next write to each page
// takes a minor fault that sets the bit again); bit 55 of a /proc/self/pagemap entry is that bit.
// Needs a kernel built with CONFIG_MEM_SOFT_DIRTY; the probe finds out by doing it (a kernel
// without it accepts the clear_refs write and never sets the bit).
//
// clear_refs is process-wide: clearing for one region clears every region's bits. So every
// soft-dirty tracker of the process is in one registry, and whoever clears first harvests the
// soft-dirty pages of every registered range into that range's pending set, then clears. A
// tracker's Collect hands out its pending set plus what it harvests now.
//
// Not atomic: between reading a page's bit and the clear_refs write, a write to that page is
// neither in the harvest nor in the bits after the clear, so it is lost. The capture contract
// (tracker.h: the application is stopped during Collect) is what makes this tracker correct, and
// it must hold for every soft-dirty region of the process, not only the one being captured. The
// uffd-async tracker has no such window: PAGEMAP_SCAN with PM_SCAN_WP_MATCHING reads and
// re-protects each page atomically.
//
// Thread safety: the registry is guarded by one process-wide mutex; each tracker's pending set is
// guarded by it too. Methods of one tracker follow tracker.h's rule.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "src/state/page_holes.h"
#include "src/state/tracker.h"
#include "src/util/memory.h"
#include "src/util/mutex.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

constexpr uint64_t kSoftDirty = uint64_t{1} << 55;  // /proc/pid/pagemap entry bits
constexpr uint64_t kPresent = uint64_t{1} << 63;

class SoftDirtyTracker;

struct Registry {
  Mutex mu;
  std::vector<SoftDirtyTracker*> trackers ABSL_GUARDED_BY(mu);
  int pagemap_fd ABSL_GUARDED_BY(mu) = -1;  // opened once, never closed
};

Registry& GetRegistry() {
  static Registry* const registry = new Registry();
  return *registry;
}

absl::Status OpenPagemap(Registry& registry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(registry.mu) {
  if (registry.pagemap_fd >= 0) return absl::OkStatus();
  registry.pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (registry.pagemap_fd < 0) {
    return absl::UnavailableError(StrCat("opening /proc/self/pagemap: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// Sets in `dirty` every block of [base, base + block_count * block_size) with a soft-dirty page.
absl::Status ReadSoftDirty(int pagemap_fd, const char* base, uint64_t block_count,
                           uint32_t block_size, DirtyBitmap* dirty) {
  const uint64_t start = reinterpret_cast<uint64_t>(base);
  const uint64_t bytes = block_count * block_size;
  pagemap_scan::Arg arg{};
  arg.start = start;
  arg.end = start + bytes;
  arg.category_mask = pagemap_scan::kIsSoftDirty;
  arg.return_mask = pagemap_scan::kIsSoftDirty;
  std::vector<pagemap_scan::PageRegion> ranges;
  const int err = pagemap_scan::Run(pagemap_fd, arg, &ranges);
  if (err == 0) {
    for (const pagemap_scan::PageRegion& r : ranges) {
      if (!(r.categories & pagemap_scan::kIsSoftDirty)) continue;
      const uint64_t first = (r.start - start) / block_size;
      const uint64_t last = (r.end - 1 - start) / block_size;
      dirty->SetRange(first, last - first + 1);
    }
    return absl::OkStatus();
  }
  if (err != ENOTTY && err != EINVAL && err != EOPNOTSUPP) {
    return absl::InternalError(
        StrCat("PAGEMAP_SCAN for soft-dirty pages of ", bytes, " bytes: ", std::strerror(err)));
  }
  // Before Linux 6.7: one 64-bit entry a page.
  const uint64_t pages = bytes / kPageBytes;
  const uint64_t pages_per_block = block_size / kPageBytes;
  return ReadPagemap(pagemap_fd, start / kPageBytes, pages,
                     [&](uint64_t first, const uint64_t* entries, uint64_t n) {
                       for (uint64_t i = 0; i < n; ++i) {
                         if (entries[i] & kSoftDirty) dirty->Set((first + i) / pages_per_block);
                       }
                     });
}

absl::Status ClearSoftDirtyBits() {
  const int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::UnavailableError(StrCat("opening /proc/self/clear_refs: ", std::strerror(errno)));
  }
  ssize_t n;
  do {
    n = write(fd, "4", 1);
  } while (n < 0 && errno == EINTR);
  const int err = errno;
  close(fd);
  if (n != 1) {
    return absl::UnavailableError(
        StrCat("writing 4 to /proc/self/clear_refs: ", n < 0 ? std::strerror(err) : "short write"));
  }
  return absl::OkStatus();
}

class SoftDirtyTracker final : public Tracker {
 public:
  SoftDirtyTracker() = default;
  ~SoftDirtyTracker() override {
    Registry& registry = GetRegistry();
    MutexLock lock(&registry.mu);
    auto& all = registry.trackers;
    all.erase(std::remove(all.begin(), all.end(), this), all.end());
  }
  SoftDirtyTracker(const SoftDirtyTracker&) = delete;
  SoftDirtyTracker& operator=(const SoftDirtyTracker&) = delete;

  std::string_view name() const override { return "soft-dirty"; }

  absl::Status Attach(const char* base, uint64_t block_count, uint32_t block_size) override {
    Registry& registry = GetRegistry();
    MutexLock lock(&registry.mu);
    if (absl::Status s = OpenPagemap(registry); !s.ok()) return s;
    auto& all = registry.trackers;
    const bool registered = std::find(all.begin(), all.end(), this) != all.end();
    // Harvest and clear while still registered at the old range (or not yet registered): the
    // old range's bits were reported by BeforeResize, the new range's state is the baseline.
    if (absl::Status s = HarvestAllAndClear(registry); !s.ok()) return s;
    base_ = base;
    block_count_ = block_count;
    block_size_ = block_size;
    pending_.Resize(block_count);
    pending_.Clear();
    if (!registered) all.push_back(this);
    return holes_.Reset(base, block_count * block_size);
  }

  absl::Status Collect(DirtyBitmap* dirty) override {
    Registry& registry = GetRegistry();
    MutexLock lock(&registry.mu);
    if (base_ == nullptr) return absl::FailedPreconditionError("soft-dirty tracker: not attached");
    // Into pending_ first: an error after this point loses nothing.
    if (absl::Status s = holes_.Collect(block_size_, &pending_); !s.ok()) return s;
    if (absl::Status s = HarvestAllAndClear(registry); !s.ok()) return s;
    dirty->OrWith(pending_);
    pending_.Clear();
    return absl::OkStatus();
  }

  absl::Status Rebaseline() override {
    Registry& registry = GetRegistry();
    MutexLock lock(&registry.mu);
    if (base_ == nullptr) return absl::FailedPreconditionError("soft-dirty tracker: not attached");
    if (absl::Status s = HarvestAllAndClear(registry); !s.ok()) return s;
    pending_.Clear();
    return holes_.Reset(base_, block_count_ * block_size_);
  }

  // Every registered range's soft-dirty pages into its pending set, then one clear_refs. On
  // error, pending sets keep what was harvested (reported again later: never lost) and nothing is
  // cleared.
  static absl::Status HarvestAllAndClear(Registry& registry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(registry.mu) {
    if (absl::Status s = OpenPagemap(registry); !s.ok()) return s;
    for (SoftDirtyTracker* t : registry.trackers) {
      if (t->base_ == nullptr) continue;
      if (absl::Status s = ReadSoftDirty(registry.pagemap_fd, t->base_, t->block_count_,
                                         t->block_size_, &t->pending_);
          !s.ok()) {
        return s;
      }
    }
    return ClearSoftDirtyBits();
  }

 private:
  // Written under the registry mutex (HarvestAllAndClear of another tracker reads them).
  const char* base_ = nullptr;
  uint64_t block_count_ = 0;
  uint32_t block_size_ = 0;
  DirtyBitmap pending_;  // changed blocks not yet handed out by Collect
  PageHoles holes_;
};

// The pagemap entry of the page at `addr`, or an error message.
absl::StatusOr<uint64_t> PagemapEntry(int fd, const void* addr) {
  uint64_t entry = 0;
  const off_t offset =
      static_cast<off_t>(reinterpret_cast<uint64_t>(addr) / kPageBytes * sizeof(entry));
  if (pread(fd, &entry, sizeof(entry), offset) != static_cast<ssize_t>(sizeof(entry))) {
    return absl::UnavailableError(StrCat("reading /proc/self/pagemap: ", std::strerror(errno)));
  }
  return entry;
}

}  // namespace

TrackerReport ProbeSoftDirty() {
  TrackerReport report{TrackerKind::kSoftDirty, false, ""};
  void* mem = mmap(nullptr, kPageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    report.reason = StrCat("mmap of a scratch page failed: ", std::strerror(errno));
    return report;
  }
  (void)madvise(mem, kPageBytes, MADV_NOHUGEPAGE);  // advice only
  volatile char* page = static_cast<volatile char*>(mem);
  std::string failure;
  {
    Registry& registry = GetRegistry();
    MutexLock lock(&registry.mu);
    page[0] = 1;
    // The clear is process-wide: harvest the registered regions first so they lose nothing.
    absl::Status s = SoftDirtyTracker::HarvestAllAndClear(registry);
    absl::StatusOr<uint64_t> cleared =
        s.ok() ? PagemapEntry(registry.pagemap_fd, mem) : absl::StatusOr<uint64_t>(s);
    if (!cleared.ok()) {
      failure = std::string(cleared.status().message());
    } else if (*cleared & kSoftDirty) {
      failure = "writing 4 to /proc/self/clear_refs did not clear the soft-dirty bit";
    } else {
      page[0] = 2;
      absl::StatusOr<uint64_t> written = PagemapEntry(registry.pagemap_fd, mem);
      if (!written.ok()) {
        failure = std::string(written.status().message());
      } else if (!(*written & kPresent)) {
        failure = "the written scratch page is not present in /proc/self/pagemap";
      } else if (!(*written & kSoftDirty)) {
        failure =
            "the soft-dirty bit was never set after a write (kernel built without "
            "CONFIG_MEM_SOFT_DIRTY?)";
      }
    }
  }
  munmap(mem, kPageBytes);
  if (failure.empty()) {
    report.works = true;
    report.reason =
        "clear_refs + pagemap soft-dirty bits: works (reads 8 bytes of pagemap a page at every "
        "capture unless PAGEMAP_SCAN is available; clearing is process-wide)";
  } else {
    report.reason = StrCat("clear_refs + pagemap soft-dirty bits: ", failure);
  }
  return report;
}

std::unique_ptr<Tracker> NewSoftDirtyTracker() { return std::make_unique<SoftDirtyTracker>(); }

}  // namespace ickpt
