// The Tracker interface: what finds the blocks of a region changed since the last capture.
// Kernel-assisted trackers (uffd-async, soft-dirty, uffd-sync, mprotect) implement the same
// interface. MarkDirty() reports are kept by the Region itself, for every tracker.
//
// Thread safety: Attach, Collect and Rebaseline are called by the checkpointer with the application
// stopped (capture, restore, grow); implementations need no locking against each other.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ickpt/region.h"
#include "src/state/dirty_bitmap.h"

namespace ickpt {

class Tracker {
 public:
  virtual ~Tracker() = default;
  virtual std::string_view name() const = 0;
  // The region's memory is [base, base + block_count * block_size). Called when the region is
  // created and after it grew (the memory may have moved; blocks below the old count kept their
  // content, blocks above are new and zero).
  virtual absl::Status Attach(const char* base, uint64_t block_count, uint32_t block_size) = 0;
  // Sets in `dirty` (sized block_count) every block changed since the last Collect, Attach or
  // Rebaseline, and resets the tracker so the next Collect starts from now. On error the tracker
  // must still report those blocks at the next Collect (nothing is lost).
  virtual absl::Status Collect(DirtyBitmap* dirty) = 0;
  // The whole content was replaced (restore): it is the new baseline.
  virtual absl::Status Rebaseline() = 0;
  // The region is about to be resized (mremap may move it, and a moved range loses userfaultfd
  // registration): report every block changed since the last Collect, as Collect does. Attach()
  // follows with the new range and makes the content as it then is the baseline.
  virtual absl::Status BeforeResize(DirtyBitmap* dirty) { return Collect(dirty); }
};

// A tracker of the given kind (not kAuto), or FailedPrecondition with the reason it does not work
// here. Attach() may still fail for a particular range (e.g. EBUSY: another userfaultfd owns it).
absl::StatusOr<std::unique_ptr<Tracker>> NewTracker(TrackerKind kind);

// Per-tracker probes and factories, one file each. A probe does the real thing on scratch pages
// and says why it fails; a factory assumes its probe passed.
TrackerReport ProbeUffdAsync();
TrackerReport ProbeSoftDirty();
TrackerReport ProbeUffdSync();
TrackerReport ProbeMprotect();
std::unique_ptr<Tracker> NewUffdAsyncTracker();
std::unique_ptr<Tracker> NewSoftDirtyTracker();
std::unique_ptr<Tracker> NewUffdSyncTracker();
std::unique_ptr<Tracker> NewMprotectTracker();

}  // namespace ickpt
