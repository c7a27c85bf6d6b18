// A region: a named, page-aligned memory area owned by ickpt, filled by the application and
// checkpointed by blocks. A tracker finds the blocks changed since the last capture.
//
// Thread safety: the application may write region memory from any threads, except during
// Checkpointer::Checkpoint() (the capture) and Restore(). MarkDirty() may be called from any thread
// at any time. Grow() must not race with writes, captures or restores.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ickpt {

// How a region finds its changed blocks. Which ones work is found at run time by probing (doing
// the thing on a scratch page), never from headers or kernel version strings: see
// DescribeTrackers() and `ickpt doctor`. Listed in order of preference.
enum class TrackerKind {
  kAuto,       // the best tracker that works for this region here (falls back, logged once)
  kUffdAsync,  // "uffd-async": userfaultfd async write-protect + PAGEMAP_SCAN (Linux >= 6.7)
  kSoftDirty,  // "soft-dirty": /proc/self/clear_refs + pagemap soft-dirty bits
  kUffdSync,   // "uffd-sync": userfaultfd write-protect, faults handled by a thread (Linux >= 5.7)
  kMprotect,   // "mprotect": mprotect + SIGSEGV write faults (any POSIX system)
  kHash,       // "hash": XXH3 of every block compared with the last capture; works for any memory
  kExplicit,   // "explicit": only what the application reports with MarkDirty()
};
std::string_view TrackerName(TrackerKind kind);
// Parses a tracker name ("auto", "uffd-async", "soft-dirty", "uffd-sync", "mprotect", "hash",
// "explicit"); InvalidArgument otherwise.
absl::StatusOr<TrackerKind> ParseTrackerName(std::string_view name);

// Whether a tracker works in this process, and if not why. Page-level trackers see writes by the
// CPU through the page tables; none of them sees DMA/RDMA, io_uring fixed buffers or O_DIRECT
// reads into pinned pages: report those with Region::MarkDirty().
struct TrackerReport {
  TrackerKind kind;
  bool works = false;
  std::string reason;  // why it works or why not, for people
};
// Every tracker except kAuto, in order of preference. Probed once per process (cheap: a few
// scratch pages), then cached.
const std::vector<TrackerReport>& DescribeTrackers();
// What kAuto picks for a new region: the first tracker of DescribeTrackers() that works.
TrackerKind SelectedTracker();

struct RegionOptions {
  // Size in bytes; rounded up to a whole number of blocks. Required (> 0).
  uint64_t size = 0;
  // Block size: a multiple of the page size. Default 0: the repository's block size.
  uint32_t block_size = 0;
  // Default kAuto: the best tracker that works here (see SelectedTracker()). An explicitly named
  // tracker that does not work here makes AddRegion fail with FailedPrecondition and the reason.
  TrackerKind tracker = TrackerKind::kAuto;
  // Ask for transparent huge pages (MADV_HUGEPAGE). Default false: MADV_NOHUGEPAGE, so that the
  // dirty unit of kernel trackers stays one page.
  bool huge_pages = false;
};

class Tracker;

class Region {
 public:
  ~Region();
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  const std::string& name() const { return name_; }
  // The memory; page-aligned, zero-filled when created. Moves only when Grow() moves it.
  char* data() const { return data_; }
  uint64_t size() const { return block_count_ * block_size_; }
  uint32_t block_size() const { return block_size_; }
  uint64_t block_count() const { return block_count_; }
  std::string_view tracker_name() const;

  // Reports that [offset, offset + length) changed. Always honoured, whatever the tracker; required
  // for writes no tracker can see (DMA, io_uring fixed buffers, O_DIRECT into pinned pages).
  // Out-of-range parts are ignored.
  void MarkDirty(uint64_t offset, uint64_t length);

  // Grows the region to `new_size` bytes (rounded up to blocks). The memory may move: data()
  // changes. New blocks are zero and count as changed. InvalidArgument if smaller than size().
  absl::Status Grow(uint64_t new_size);

 private:
  friend class Checkpointer;
  friend class RegionAccess;
  Region(std::string name, char* data, uint32_t block_size, uint64_t block_count, bool huge_pages,
         std::unique_ptr<Tracker> tracker);

  std::string name_;
  char* data_;
  uint32_t block_size_;
  uint64_t block_count_;
  uint64_t mapped_bytes_;
  bool huge_pages_;
  std::unique_ptr<Tracker> tracker_;
  struct DirtyState;
  std::unique_ptr<DirtyState> dirty_;
};

}  // namespace ickpt
