// What the checkpointer needs of a Region beyond its public API: creation, the read-and-reset of
// the dirty set at capture, merging a failed checkpoint's dirty set back, resizing at restore.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "ickpt/region.h"
#include "src/state/dirty_bitmap.h"

namespace ickpt {

class RegionAccess {
 public:
  // Maps a zero-filled region. `block_size` is final (options.block_size already defaulted).
  static absl::StatusOr<std::unique_ptr<Region>> Create(std::string_view name,
                                                        const RegionOptions& options,
                                                        uint32_t block_size);
  // The capture point: returns every block changed since the last Collect (tracker, MarkDirty and
  // carried-over blocks) and resets them all. On error nothing is reset.
  static absl::StatusOr<DirtyBitmap> Collect(Region& region);
  // A capture that did not commit: its blocks go back into the dirty set of the next capture.
  static void MergeBack(Region& region, const DirtyBitmap& blocks);
  // Restore: sets the size to `block_count` blocks (the memory may move), then after the content
  // was written, Rebaseline() makes it the tracker's baseline with an empty dirty set.
  static absl::Status Resize(Region& region, uint64_t block_count);
  static absl::Status Rebaseline(Region& region);
};

}  // namespace ickpt
