#include "src/state/page_holes.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "src/util/memory.h"
#include "src/util/str.h"

namespace ickpt {

namespace pagemap_scan {

int Run(int pagemap_fd, Arg arg, std::vector<PageRegion>* out) {
  // 512 ranges a call: the kernel merges adjacent pages of equal categories, so a mostly uniform
  // range needs one call; a fragmented one resumes from walk_end.
  PageRegion vec[512];
  const uint64_t end = arg.end;
  uint64_t start = arg.start;
  while (start < end) {
    arg.size = sizeof(Arg);
    arg.start = start;
    arg.end = end;
    arg.walk_end = 0;
    arg.vec = reinterpret_cast<uint64_t>(vec);
    arg.vec_len = sizeof(vec) / sizeof(vec[0]);
    const long n = ioctl(pagemap_fd, kIoctl, &arg);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    out->insert(out->end(), vec, vec + n);
    if (arg.walk_end <= start) return EIO;  // no progress: never loop forever
    start = arg.walk_end;
  }
  return 0;
}

}  // namespace pagemap_scan

namespace {

constexpr uint64_t kPresent = uint64_t{1} << 63;  // /proc/pid/pagemap entry bits
constexpr uint64_t kSwapped = uint64_t{1} << 62;

// Maps a page, reads it, and asks the kernel what the read mapped.
bool ProbeReadFaultMapsZeroPage() {
  const int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;  // nothing to learn; PageHoles reports the open error itself
  bool zero_page = true;
  void* mem = mmap(nullptr, kPageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem != MAP_FAILED) {
    (void)*static_cast<const volatile char*>(mem);  // a read fault
    const uint64_t start = reinterpret_cast<uint64_t>(mem);
    pagemap_scan::Arg arg{};
    arg.start = start;
    arg.end = start + kPageBytes;
    arg.return_mask = pagemap_scan::kIsPresent | pagemap_scan::kIsPfnZero;
    std::vector<pagemap_scan::PageRegion> ranges;
    // Without PAGEMAP_SCAN (Linux < 6.7) the zero page cannot be seen; such kernels map it.
    if (pagemap_scan::Run(fd, arg, &ranges) == 0) {
      for (const pagemap_scan::PageRegion& r : ranges) {
        if ((r.categories & pagemap_scan::kIsPresent) &&
            !(r.categories & pagemap_scan::kIsPfnZero)) {
          zero_page = false;
        }
      }
    }
    munmap(mem, kPageBytes);
  }
  close(fd);
  return zero_page;
}

}  // namespace

bool ReadFaultMapsZeroPage() {
  static const bool zero_page = ProbeReadFaultMapsZeroPage();
  return zero_page;
}

PageHoles::PageHoles() = default;

PageHoles::~PageHoles() {
  if (pagemap_fd_ >= 0) close(pagemap_fd_);
}

absl::Status PageHoles::Reset(const char* base, uint64_t bytes) {
  if (pagemap_fd_ < 0) {
    pagemap_fd_ = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (pagemap_fd_ < 0) {
      return absl::UnavailableError(StrCat("opening /proc/self/pagemap: ", std::strerror(errno)));
    }
  }
  base_ = base;
  pages_ = bytes / kPageBytes;
  DirtyBitmap holes(pages_);
  if (absl::Status s = Scan(&holes); !s.ok()) return s;
  holes_ = std::move(holes);
  return absl::OkStatus();
}

absl::Status PageHoles::Collect(uint32_t block_size, DirtyBitmap* dirty) {
  DirtyBitmap holes(pages_);
  if (absl::Status s = Scan(&holes); !s.ok()) return s;
  const uint64_t pages_per_block = block_size / kPageBytes;
  for (size_t w = 0; w < holes.word_count(); ++w) {
    uint64_t fresh = holes.word(w) & ~holes_.word(w);
    while (fresh != 0) {
      const uint64_t page = w * 64 + std::countr_zero(fresh);
      fresh &= fresh - 1;
      dirty->Set(page / pages_per_block);
    }
  }
  holes_ = std::move(holes);
  return absl::OkStatus();
}

absl::Status PageHoles::Scan(DirtyBitmap* holes) {
  if (pages_ == 0) return absl::OkStatus();
  const uint64_t start = reinterpret_cast<uint64_t>(base_);
  const uint64_t end = start + pages_ * kPageBytes;
  // PAGEMAP_SCAN first: no filter, categories returned, the kernel merges equal neighbours.
  pagemap_scan::Arg arg{};
  arg.start = start;
  arg.end = end;
  arg.return_mask = pagemap_scan::kIsPresent | pagemap_scan::kIsSwapped | pagemap_scan::kIsPfnZero;
  std::vector<pagemap_scan::PageRegion> ranges;
  const int err = pagemap_scan::Run(pagemap_fd_, arg, &ranges);
  if (err == 0) {
    for (const pagemap_scan::PageRegion& r : ranges) {
      const uint64_t c = r.categories;
      const bool hole = !(c & pagemap_scan::kIsSwapped) &&
                        (!(c & pagemap_scan::kIsPresent) || (c & pagemap_scan::kIsPfnZero));
      if (hole) holes->SetRange((r.start - start) / kPageBytes, (r.end - r.start) / kPageBytes);
    }
    // Pages the kernel returned nothing for have no category at all: holes too. A range with no
    // bit set in return_mask is still returned (categories 0), so nothing is missing here.
    return absl::OkStatus();
  }
  if (err != ENOTTY && err != EINVAL && err != EOPNOTSUPP) {
    return absl::InternalError(
        StrCat("PAGEMAP_SCAN over ", pages_, " pages: ", std::strerror(err)));
  }
  // The classic pagemap: one 64-bit entry a page. Cannot see the shared zero page without
  // CAP_SYS_ADMIN (the PFN is hidden), so a hole that was read after being dropped counts as
  // content; writes to it still fault and are tracked.
  return ReadPagemap(pagemap_fd_, start / kPageBytes, pages_,
                     [&](uint64_t first, const uint64_t* entries, uint64_t n) {
                       for (uint64_t i = 0; i < n; ++i) {
                         if (!(entries[i] & (kPresent | kSwapped))) holes->Set(first + i);
                       }
                     });
}

absl::Status ReadPagemap(int pagemap_fd, uint64_t first_page, uint64_t pages,
                         absl::FunctionRef<void(uint64_t, const uint64_t*, uint64_t)> fn) {
  std::vector<uint64_t> entries(std::min<uint64_t>(pages, 16384));
  for (uint64_t page = 0; page < pages;) {
    const uint64_t n = std::min<uint64_t>(entries.size(), pages - page);
    const off_t offset = static_cast<off_t>((first_page + page) * sizeof(uint64_t));
    const ssize_t got = pread(pagemap_fd, entries.data(), n * sizeof(uint64_t), offset);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      return absl::InternalError(StrCat("reading /proc/self/pagemap at page ", page, ": ",
                                        got < 0 ? std::strerror(errno) : "end of file"));
    }
    const uint64_t read_pages = static_cast<uint64_t>(got) / sizeof(uint64_t);
    fn(page, entries.data(), read_pages);
    page += read_pages;
  }
  return absl::OkStatus();
}

}  // namespace ickpt
