// Finds the pages of a range that lost their content to the kernel: MADV_DONTNEED, MADV_REMOVE,
// a reclaimed MADV_FREE page. Such a page reads as zero afterwards, but no write happened, so no
// write-fault tracker sees it. A page that had content at the last scan and is a hole now changed
// (to zero); a page that was a hole then and is one now did not.
//
// "Hole" here: not present and not swapped (a pte marker counts as swapped), or mapped to the
// shared zero page. Uses PAGEMAP_SCAN where the kernel has it (Linux >= 6.7, one ioctl returning
// ranges), else reads /proc/self/pagemap (8 bytes a page).
//
// Some kernels (6.18 on these machines) do not map the shared zero page on a read fault but a
// fresh zeroed page: a dropped page that is read before the next scan is then present again, and
// no scan can tell it from untouched content (its frame number does not help either: the kernel
// often hands the freed frame straight back). ReadFaultMapsZeroPage() probes which kind of kernel
// this is.
//
// Thread safety: none; used by one tracker under the capture's exclusion.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "src/state/dirty_bitmap.h"

namespace ickpt {

class PageHoles {
 public:
  PageHoles();
  ~PageHoles();
  PageHoles(const PageHoles&) = delete;
  PageHoles& operator=(const PageHoles&) = delete;

  // The range as it is now is the baseline. `base` and `bytes` are page-aligned.
  absl::Status Reset(const char* base, uint64_t bytes);
  // Sets in `dirty` (blocks of `block_size` bytes from base) every block with a page that is a hole
  // now and was not at the last Reset or Collect; the current state becomes the baseline. On error
  // the baseline is unchanged.
  absl::Status Collect(uint32_t block_size, DirtyBitmap* dirty);

 private:
  // Every hole page of the range, one bit a page.
  absl::Status Scan(DirtyBitmap* holes);

  const char* base_ = nullptr;
  uint64_t pages_ = 0;
  int pagemap_fd_ = -1;
  DirtyBitmap holes_;  // at the last Reset or Collect
};

// True if a read fault on untouched anonymous memory maps the shared zero page (then a dropped page
// that is read again stays a hole); false if it maps a fresh page. Probed once.
bool ReadFaultMapsZeroPage();

// Reads the /proc/self/pagemap entries (one 64-bit word a page) of pages
// [first_page, first_page + pages) through `pagemap_fd`, in chunks, calling fn(index, entries, n)
// for entries of pages first_page + index .. + n. InternalError naming the page on a failed read.
absl::Status ReadPagemap(int pagemap_fd, uint64_t first_page, uint64_t pages,
                         absl::FunctionRef<void(uint64_t, const uint64_t*, uint64_t)> fn);

// PAGEMAP_SCAN: the ioctl and its constants, defined here because Debian 12's headers (Linux 6.1)
// lack them; values from the kernel's include/uapi/linux/fs.h (Linux 6.7).
namespace pagemap_scan {
struct PageRegion {
  uint64_t start;
  uint64_t end;
  uint64_t categories;
};
struct Arg {
  uint64_t size;
  uint64_t flags;
  uint64_t start;
  uint64_t end;
  uint64_t walk_end;
  uint64_t vec;
  uint64_t vec_len;
  uint64_t max_pages;
  uint64_t category_inverted;
  uint64_t category_mask;
  uint64_t category_anyof_mask;
  uint64_t return_mask;
};
constexpr uint64_t kWpMatching = 1 << 0;    // PM_SCAN_WP_MATCHING
constexpr uint64_t kCheckWpAsync = 1 << 1;  // PM_SCAN_CHECK_WPASYNC
constexpr uint64_t kIsWpAllowed = 1 << 0;   // PAGE_IS_WPALLOWED
constexpr uint64_t kIsWritten = 1 << 1;     // PAGE_IS_WRITTEN
constexpr uint64_t kIsFile = 1 << 2;        // PAGE_IS_FILE
constexpr uint64_t kIsPresent = 1 << 3;     // PAGE_IS_PRESENT
constexpr uint64_t kIsSwapped = 1 << 4;     // PAGE_IS_SWAPPED
constexpr uint64_t kIsPfnZero = 1 << 5;     // PAGE_IS_PFNZERO
constexpr uint64_t kIsHuge = 1 << 6;        // PAGE_IS_HUGE
constexpr uint64_t kIsSoftDirty = 1 << 7;   // PAGE_IS_SOFT_DIRTY
// _IOWR('f', 16, struct pm_scan_arg)
constexpr unsigned long kIoctl = (3ul << 30) | (sizeof(Arg) << 16) | ('f' << 8) | 16;

// Runs PAGEMAP_SCAN over [arg.start, arg.end) of this process (`arg.vec`/`vec_len`/`size`/
// `walk_end` are set here), appending every returned range to `out` and resuming where the kernel
// stopped when its vector filled. Returns 0, or the errno of the failed ioctl (ENOTTY or EINVAL:
// this kernel has no PAGEMAP_SCAN or not these flags).
int Run(int pagemap_fd, Arg arg, std::vector<PageRegion>* out);
}  // namespace pagemap_scan

}  // namespace ickpt
