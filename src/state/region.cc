#include "ickpt/region.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "src/repo/manifest.h"
#include "src/state/region_internal.h"
#include "src/state/tracker.h"
#include "src/util/log.h"
#include "src/util/mutex.h"
#include "src/util/str.h"

namespace ickpt {

struct Region::DirtyState {
  // MarkDirty() reports, one bit per block; atomic so any thread may mark while others write.
  std::unique_ptr<std::atomic<uint64_t>[]> marks;
  size_t mark_words = 0;
  Mutex mu;
  // Blocks the next capture must include: growth, and captures that failed to commit.
  DirtyBitmap carry ABSL_GUARDED_BY(mu);

  void ResizeMarks(uint64_t block_count) {
    const size_t words = (block_count + 63) / 64;
    auto fresh = std::make_unique<std::atomic<uint64_t>[]>(words);
    for (size_t i = 0; i < words; ++i) {
      fresh[i].store(i < mark_words ? marks[i].load(std::memory_order_relaxed) : 0,
                     std::memory_order_relaxed);
    }
    marks = std::move(fresh);
    mark_words = words;
  }
};

namespace {

uint64_t PageSize() { return static_cast<uint64_t>(sysconf(_SC_PAGESIZE)); }

absl::Status ErrnoError(std::string_view what, std::string_view name) {
  const int err = errno;
  const std::string message = StrCat(what, " of region '", name, "': ", std::strerror(err));
  return err == ENOMEM ? absl::ResourceExhaustedError(message) : absl::InternalError(message);
}

void AdviseHugePages(char* data, uint64_t bytes, bool huge_pages) {
  // Without THP a kernel tracker's dirty unit stays one page; with it, 2 MiB. Advice only: the
  // region works either way, so a failure (e.g. THP compiled out) is not an error.
  (void)madvise(data, bytes, huge_pages ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
}

}  // namespace

Region::Region(std::string name, char* data, uint32_t block_size, uint64_t block_count,
               bool huge_pages, std::unique_ptr<Tracker> tracker)
    : name_(std::move(name)),
      data_(data),
      block_size_(block_size),
      block_count_(block_count),
      mapped_bytes_(block_count * block_size),
      huge_pages_(huge_pages),
      tracker_(std::move(tracker)),
      dirty_(std::make_unique<DirtyState>()) {
  dirty_->ResizeMarks(block_count);
  MutexLock lock(&dirty_->mu);
  dirty_->carry.Resize(block_count);
}

Region::~Region() {
  tracker_.reset();
  if (data_ != nullptr) munmap(data_, mapped_bytes_);
}

std::string_view Region::tracker_name() const { return tracker_->name(); }

void Region::MarkDirty(uint64_t offset, uint64_t length) {
  if (length == 0 || offset >= size()) return;
  const uint64_t end = std::min(size(), offset + length);
  const uint64_t first = offset / block_size_;
  const uint64_t last = (end - 1) / block_size_;
  for (uint64_t b = first; b <= last; ++b) {
    dirty_->marks[b / 64].fetch_or(uint64_t{1} << (b % 64), std::memory_order_relaxed);
  }
}

absl::Status Region::Grow(uint64_t new_size) {
  const uint64_t new_count = (new_size + block_size_ - 1) / block_size_;
  if (new_count < block_count_) {
    return absl::InvalidArgumentError(
        StrCat("region '", name_, "' cannot shrink from ", size(), " to ", new_size, " bytes"));
  }
  if (new_count == block_count_) return absl::OkStatus();
  const uint64_t old_count = block_count_;
  if (absl::Status s = RegionAccess::Resize(*this, new_count); !s.ok()) return s;
  MutexLock lock(&dirty_->mu);
  dirty_->carry.SetRange(old_count, new_count - old_count);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Region>> RegionAccess::Create(std::string_view name,
                                                             const RegionOptions& options,
                                                             uint32_t block_size) {
  const uint64_t page = PageSize();
  if (name.empty()) return absl::InvalidArgumentError("a region needs a name");
  if (block_size == 0 || block_size % page != 0) {
    return absl::InvalidArgumentError(StrCat("block size ", block_size, " of region '", name,
                                             "' is not a multiple of the page size ", page));
  }
  if (options.size == 0) {
    return absl::InvalidArgumentError(StrCat("region '", name, "' has size 0"));
  }
  if (options.size > kMaxStateObjectBytes) {
    return absl::InvalidArgumentError(StrCat("region '", name, "' of ", options.size,
                                             " bytes exceeds the 1 PiB limit of a state object"));
  }
  const uint64_t block_count = (options.size + block_size - 1) / block_size;
  const uint64_t bytes = block_count * block_size;
  void* data = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (data == MAP_FAILED) return ErrnoError("mmap", name);
  AdviseHugePages(static_cast<char*>(data), bytes, options.huge_pages);
  // The region owns the mapping from here on, so every error path below unmaps it.
  std::unique_ptr<Region> region(new Region(std::string(name), static_cast<char*>(data), block_size,
                                            block_count, options.huge_pages, nullptr));
  if (options.tracker != TrackerKind::kAuto) {
    absl::StatusOr<std::unique_ptr<Tracker>> tracker = NewTracker(options.tracker);
    if (!tracker.ok()) {
      return absl::Status(tracker.status().code(),
                          StrCat("region '", name, "': ", tracker.status().message()));
    }
    if (absl::Status s = (*tracker)->Attach(region->data_, block_count, block_size); !s.ok()) {
      return absl::Status(s.code(), StrCat("region '", name, "': tracker '",
                                           TrackerName(options.tracker), "': ", s.message()));
    }
    region->tracker_ = *std::move(tracker);
    return region;
  }
  // kAuto: the best tracker that works here and accepts this range. A kernel tracker can refuse a
  // particular range (e.g. EBUSY: another userfaultfd owns it); the next one takes over.
  for (const TrackerReport& report : DescribeTrackers()) {
    if (!report.works) continue;
    if (report.kind == TrackerKind::kExplicit) break;  // never picked silently: it sees nothing
    absl::StatusOr<std::unique_ptr<Tracker>> tracker = NewTracker(report.kind);
    absl::Status s = tracker.ok() ? (*tracker)->Attach(region->data_, block_count, block_size)
                                  : tracker.status();
    if (s.ok()) {
      region->tracker_ = *std::move(tracker);
      return region;
    }
    ICKPT_LOG_ONCE(StrCat("tracker-fallback-", TrackerName(report.kind)), LogLevel::kWarn,
                   "tracker '{}' refused region '{}' ({}); falling back to the next tracker",
                   TrackerName(report.kind), name, s.ToString());
  }
  return absl::InternalError(StrCat("region '", name, "': no tracker accepted it"));
}

absl::StatusOr<DirtyBitmap> RegionAccess::Collect(Region& region) {
  DirtyBitmap dirty(region.block_count_);
  if (absl::Status s = region.tracker_->Collect(&dirty); !s.ok()) return s;
  auto& state = *region.dirty_;
  for (size_t i = 0; i < state.mark_words; ++i) {
    // A plain load first: almost every word is zero, and an exchange is a locked instruction. A
    // mark set after the load is taken by the next capture.
    if (state.marks[i].load(std::memory_order_relaxed) == 0) continue;
    dirty.OrWord(i, state.marks[i].exchange(0, std::memory_order_acq_rel));
  }
  MutexLock lock(&state.mu);
  dirty.OrWith(state.carry);
  state.carry.Clear();
  return dirty;
}

void RegionAccess::MergeBack(Region& region, const DirtyBitmap& blocks) {
  MutexLock lock(&region.dirty_->mu);
  region.dirty_->carry.OrWith(blocks);
}

absl::Status RegionAccess::Resize(Region& region, uint64_t block_count) {
  if (block_count == region.block_count_) return absl::OkStatus();
  if (block_count == 0) return absl::InvalidArgumentError("a region cannot have 0 blocks");
  // Checked before the multiplication, which could wrap (a restore passes a count read from a
  // manifest; the decoder bounds it the same way).
  if (block_count > kMaxStateObjectBytes / region.block_size_) {
    return absl::InvalidArgumentError(
        StrCat("region '", region.name_, "' cannot hold ", block_count, " blocks of ",
               region.block_size_, " bytes: more than the 1 PiB limit of a state object"));
  }
  const uint64_t bytes = block_count * region.block_size_;
  {
    // What the tracker saw so far is kept in the carry set: a moved range starts over.
    DirtyBitmap seen(region.block_count_);
    if (absl::Status s = region.tracker_->BeforeResize(&seen); !s.ok()) {
      return absl::Status(s.code(),
                          StrCat("region '", region.name_, "': tracker '", region.tracker_->name(),
                                 "' before resizing: ", s.message()));
    }
    MutexLock lock(&region.dirty_->mu);
    region.dirty_->carry.OrWith(seen);
  }
  void* moved = mremap(region.data_, region.mapped_bytes_, bytes, MREMAP_MAYMOVE);
  if (moved == MAP_FAILED) {
    const absl::Status error = ErrnoError("mremap", region.name_);
    // The tracker was told the range would change: give it back the unchanged range.
    if (absl::Status s =
            region.tracker_->Attach(region.data_, region.block_count_, region.block_size_);
        !s.ok()) {
      ICKPT_LOG_WARN("region '{}': re-attaching tracker after a failed mremap: {}", region.name_,
                     s.ToString());
    }
    return error;
  }
  region.data_ = static_cast<char*>(moved);
  region.mapped_bytes_ = bytes;
  region.block_count_ = block_count;
  AdviseHugePages(region.data_, bytes, region.huge_pages_);
  region.dirty_->ResizeMarks(block_count);
  {
    MutexLock lock(&region.dirty_->mu);
    region.dirty_->carry.Resize(block_count);
  }
  absl::Status attached = region.tracker_->Attach(region.data_, block_count, region.block_size_);
  if (attached.ok()) return attached;
  // The tracker cannot follow the moved range (e.g. another userfaultfd took it). Hashing works
  // for any memory; every block counts as changed once, so nothing written before is lost.
  ICKPT_LOG_WARN("region '{}': tracker '{}' cannot track the resized range ({}); using 'hash'",
                 region.name_, region.tracker_->name(), attached.ToString());
  absl::StatusOr<std::unique_ptr<Tracker>> hash = NewTracker(TrackerKind::kHash);
  if (!hash.ok()) return hash.status();
  region.tracker_ = *std::move(hash);
  if (absl::Status s = region.tracker_->Attach(region.data_, block_count, region.block_size_);
      !s.ok()) {
    return s;
  }
  MutexLock lock(&region.dirty_->mu);
  region.dirty_->carry.SetAll();
  return absl::OkStatus();
}

absl::Status RegionAccess::Rebaseline(Region& region) {
  auto& state = *region.dirty_;
  for (size_t i = 0; i < state.mark_words; ++i) state.marks[i].store(0, std::memory_order_relaxed);
  {
    MutexLock lock(&state.mu);
    state.carry.Clear();
  }
  return region.tracker_->Rebaseline();
}

}  // namespace ickpt
