// The userfaultfd trackers (docs/trackers.md):
//  - "uffd-async": asynchronous write-protect (UFFD_FEATURE_WP_ASYNC, Linux >= 6.7). A write to a
//    protected page is resolved by the kernel itself (about 1 us, no thread, no signal) and the
//    page loses its protection; one PAGEMAP_SCAN ioctl with PM_SCAN_WP_MATCHING returns the written
//    pages and protects them again, page by page under the page-table lock, so a write racing with
//    the scan lands either before its page is read (and is reported now) or after it was protected
//    again (and loses the protection again, and is reported next time).
//  - "uffd-sync": synchronous write-protect (Linux >= 5.7): a write to a protected page stops the
//    writer until this tracker's fault thread removes the protection. The set of unprotected pages
//    is read from /proc/self/pagemap (bit 57, "uffd-wp"), so it covers every way a page can lose
//    protection (a fault, a page dropped and written again, a page the kernel never protected).
// Both learn of pages the kernel dropped (MADV_DONTNEED) from UFFD_EVENT_REMOVE, see below.
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include "src/state/page_holes.h"  // pagemap_scan
#include "src/state/tracker.h"
#include "src/util/log.h"
#include "src/util/memory.h"
#include "src/util/mutex.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

// Features newer than Debian 12's headers (Linux 6.1); values from
// include/uapi/linux/userfaultfd.h.
constexpr uint64_t kFeatureWpUnpopulated = 1ull << 13;  // UFFD_FEATURE_WP_UNPOPULATED (6.4)
constexpr uint64_t kFeatureWpAsync = 1ull << 15;        // UFFD_FEATURE_WP_ASYNC (6.7)
constexpr uint64_t kPagemapUffdWp = uint64_t{1} << 57;  // pagemap: the pte is uffd write-protected

std::string Errno(int err) { return std::strerror(err); }

// A userfaultfd with the given features enabled, or the reason there is none. Tries the full
// syscall first (kernel-mode faults, e.g. read(2) into the region, are then handled too), then
// UFFD_USER_MODE_ONLY (allowed without privilege where vm.unprivileged_userfaultfd is 0), then
// /dev/userfaultfd (Linux >= 6.1, access set by its file mode).
struct Uffd {
  int fd = -1;
  uint64_t features = 0;  // what UFFDIO_API granted
  bool user_mode_only = false;
  std::string error;
};

// A raw descriptor (UFFDIO_API not yet called), or -1 with the attempts in `error`.
int OpenRawUffd(bool* user_mode_only, std::string* error) {
  int fd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd >= 0) return fd;
  std::string attempts = StrCat("userfaultfd(): ", Errno(errno));
  fd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY));
  if (fd >= 0) {
    *user_mode_only = true;
    return fd;
  }
  attempts += StrCat("; with UFFD_USER_MODE_ONLY: ", Errno(errno));
  const int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev < 0) {
    attempts += StrCat("; /dev/userfaultfd: ", Errno(errno));
  } else {
    fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) attempts += StrCat("; USERFAULTFD_IOC_NEW: ", Errno(errno));
    close(dev);
  }
  if (fd < 0) *error = attempts;
  return fd;
}

Uffd OpenUffd(uint64_t required_features, uint64_t wanted_features) {
  Uffd u;
  // UFFDIO_API fails as a whole when one requested feature is unknown and may be called once per
  // descriptor: ask a first descriptor what the kernel offers, then enable it on a second.
  const int query_fd = OpenRawUffd(&u.user_mode_only, &u.error);
  if (query_fd < 0) return u;
  uffdio_api query{};
  query.api = UFFD_API;
  const bool known = ioctl(query_fd, UFFDIO_API, &query) == 0;
  const int query_errno = errno;
  close(query_fd);
  if (!known) {
    u.error = StrCat("UFFDIO_API: ", Errno(query_errno));
    return u;
  }
  const uint64_t available = query.features;
  if ((required_features & ~available) != 0) {
    u.error = fmt::format(
        "the kernel's userfaultfd lacks features 0x{:x} (it offers 0x{:x}; write-protect async "
        "mode needs Linux >= 6.7)",
        required_features & ~available, available);
    return u;
  }
  const int fd = OpenRawUffd(&u.user_mode_only, &u.error);
  if (fd < 0) return u;
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = required_features | (wanted_features & available);
  if (ioctl(fd, UFFDIO_API, &api) != 0) {
    u.error = fmt::format("UFFDIO_API with features 0x{:x}: {}", api.features, Errno(errno));
    close(fd);
    return u;
  }
  u.fd = fd;
  u.features = api.features;
  return u;
}

absl::Status RegisterWp(int fd, const char* base, uint64_t bytes) {
  uffdio_register reg{};
  reg.range.start = reinterpret_cast<uint64_t>(base);
  reg.range.len = bytes;
  reg.mode = UFFDIO_REGISTER_MODE_WP;
  if (ioctl(fd, UFFDIO_REGISTER, &reg) != 0) {
    const int err = errno;
    return err == EBUSY
               ? absl::FailedPreconditionError(
                     "UFFDIO_REGISTER: EBUSY (another userfaultfd already tracks this range)")
               : absl::UnavailableError(StrCat("UFFDIO_REGISTER: ", Errno(err)));
  }
  return absl::OkStatus();
}

absl::Status WriteProtect(int fd, uint64_t start, uint64_t bytes, bool protect) {
  uffdio_writeprotect wp{};
  wp.range.start = start;
  wp.range.len = bytes;
  wp.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0;
  while (ioctl(fd, UFFDIO_WRITEPROTECT, &wp) != 0) {
    if (errno == EAGAIN || errno == EINTR) continue;  // the mm changed under us: retry
    return absl::InternalError(StrCat("UFFDIO_WRITEPROTECT ", protect ? "on" : "off", " of ", bytes,
                                      " bytes: ", Errno(errno)));
  }
  return absl::OkStatus();
}

// Scratch pages for probes: mapped, the first `populated` written, unmapped on destruction.
struct Scratch {
  explicit Scratch(uint64_t pages) : bytes(pages * kPageBytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    base = p == MAP_FAILED ? nullptr : static_cast<char*>(p);
  }
  ~Scratch() {
    if (base != nullptr) munmap(base, bytes);
  }
  char* base = nullptr;
  uint64_t bytes;
};

void SetBlocksOfPages(uint64_t first_page, uint64_t page_count, uint32_t block_size,
                      DirtyBitmap* dirty) {
  if (page_count == 0) return;
  const uint64_t per_block = block_size / kPageBytes;
  const uint64_t first = first_page / per_block;
  const uint64_t last = (first_page + page_count - 1) / per_block;
  dirty->SetRange(first, last - first + 1);
}

// ---------------------------------------------------------------------------------------------
// What both userfaultfd trackers share: the descriptor, registration of the range, and a thread
// that reads its events.
//
// MADV_DONTNEED (and MADV_REMOVE, MADV_FREE) drops pages of an anonymous range together with
// their write protection: they read as zero afterwards without any write, so no write-protect
// mechanism sees the change. UFFD_FEATURE_EVENT_REMOVE makes the kernel tell us first: the
// madvise() caller waits until the event is read, so by the time madvise() returns the blocks are
// recorded here. (A MADV_FREE page may be reclaimed later: its content is then either the old
// bytes or zero, and the application said it does not care which.) This costs nothing per
// capture, unlike scanning for holes, which doubles the scan time (docs/trackers.md).

class UffdTrackerBase : public Tracker {
 public:
  ~UffdTrackerBase() override { Stop(); }

  absl::Status Attach(const char* base, uint64_t block_count, uint32_t block_size) override {
    if (uffd_ < 0) {
      Uffd u = OpenUffd(required_features_ | UFFD_FEATURE_EVENT_REMOVE, wanted_features_);
      if (u.fd < 0) return absl::UnavailableError(u.error);
      uffd_ = u.fd;
      stop_fd_ = eventfd(0, EFD_CLOEXEC);
      pagemap_fd_ = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
      if (stop_fd_ < 0 || pagemap_fd_ < 0) {
        const int err = errno;
        Stop();
        // A process that dropped privileges is not dumpable and may not open its own pagemap
        // (docs/trackers.md, "Non-root").
        return absl::UnavailableError(
            StrCat(stop_fd_ < 0 ? "eventfd: " : "opening /proc/self/pagemap: ", Errno(err)));
      }
      event_thread_ = std::thread([this] { ReadEvents(); });
    }
    {
      MutexLock lock(&mu_);
      base_ = base;
      bytes_ = block_count * block_size;
      block_size_ = block_size;
      pending_ = DirtyBitmap(block_count);
    }
    // Registering a range this descriptor already covers is allowed; a range that moved (mremap)
    // lost its registration and gets it back here.
    if (absl::Status s = RegisterWp(uffd_, base, block_count * block_size); !s.ok()) return s;
    return Rebaseline();
  }

  absl::Status Rebaseline() override {
    {
      MutexLock lock(&mu_);
      pending_.Clear();
    }
    return WriteProtect(uffd_, reinterpret_cast<uint64_t>(base_), bytes_, true);
  }

 protected:
  UffdTrackerBase(uint64_t required_features, uint64_t wanted_features)
      : required_features_(required_features), wanted_features_(wanted_features) {}

  // Called on the event thread for every page fault message (sync mode only), with mu_ held.
  virtual void OnPageFault(const uffd_msg& msg) = 0;

  // Adds `blocks` to the pending set.
  void AddBlocks(const DirtyBitmap& blocks) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    pending_.OrWith(blocks);
  }
  // Moves the pending set into `dirty`.
  void TakePending(DirtyBitmap* dirty) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    dirty->OrWith(pending_);
    pending_.Clear();
  }

  int uffd_ = -1;
  int pagemap_fd_ = -1;
  // Written only by Attach (with the application stopped), read by the event thread.
  const char* base_ = nullptr;
  uint64_t bytes_ = 0;
  uint32_t block_size_ = 0;

 private:
  void Stop() {
    if (event_thread_.joinable()) {
      const uint64_t one = 1;
      if (write(stop_fd_, &one, sizeof(one)) != sizeof(one)) {
        ICKPT_LOG_WARN("userfaultfd tracker: waking its event thread failed: {}", Errno(errno));
      }
      event_thread_.join();
    }
    if (uffd_ >= 0) close(uffd_);  // closing unregisters the range
    if (stop_fd_ >= 0) close(stop_fd_);
    if (pagemap_fd_ >= 0) close(pagemap_fd_);
    uffd_ = stop_fd_ = pagemap_fd_ = -1;
  }

  void ReadEvents() {
    pollfd fds[2] = {{uffd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    for (;;) {
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        ICKPT_LOG_ONCE("uffd-poll", LogLevel::kError, "userfaultfd tracker: poll failed: {}",
                       Errno(errno));
        return;
      }
      if (fds[1].revents != 0) return;
      // Read and handled under mu_: the kernel lets a madvise() caller go on as soon as its
      // event is read, so a Collect() that follows must find the event's blocks recorded.
      MutexLock lock(&mu_);
      uffd_msg msgs[64];
      const ssize_t got = read(uffd_, msgs, sizeof(msgs));
      if (got < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        ICKPT_LOG_ONCE("uffd-read", LogLevel::kError, "userfaultfd tracker: read failed: {}",
                       Errno(errno));
        return;
      }
      for (ssize_t i = 0; i < got / static_cast<ssize_t>(sizeof(uffd_msg)); ++i) {
        const uffd_msg& msg = msgs[i];
        if (msg.event == UFFD_EVENT_PAGEFAULT) {
          OnPageFault(msg);
        } else if (msg.event == UFFD_EVENT_REMOVE) {
          const uint64_t base = reinterpret_cast<uint64_t>(base_);
          const uint64_t start = std::max<uint64_t>(msg.arg.remove.start, base);
          const uint64_t end = std::min<uint64_t>(msg.arg.remove.end, base + bytes_);
          if (end > start) {
            const uint64_t first = (start - base) / kPageBytes;
            SetBlocksOfPages(first, (end - base + kPageBytes - 1) / kPageBytes - first, block_size_,
                             &pending_);
          }
        }
      }
    }
  }

  const uint64_t required_features_;
  const uint64_t wanted_features_;
  int stop_fd_ = -1;
  std::thread event_thread_;
  Mutex mu_;
  // Blocks seen changed and not yet returned: dropped pages (events), and written pages a failed
  // Collect had already reset.
  DirtyBitmap pending_ ABSL_GUARDED_BY(mu_);
};

// ---------------------------------------------------------------------------------------------
// uffd-async

class UffdAsyncTracker final : public UffdTrackerBase {
 public:
  // WP_UNPOPULATED too: protection markers on never-touched pages, so reading one maps the zero
  // page still protected (without it such a read would count as a write).
  UffdAsyncTracker() : UffdTrackerBase(kFeatureWpAsync | kFeatureWpUnpopulated, 0) {}

  std::string_view name() const override { return "uffd-async"; }

  absl::Status Collect(DirtyBitmap* dirty) override {
    // Exactly PAGE_IS_WRITTEN as category and return mask: the kernel's fast path for this scan.
    pagemap_scan::Arg arg{};
    arg.start = reinterpret_cast<uint64_t>(base_);
    arg.end = arg.start + bytes_;
    arg.flags = pagemap_scan::kWpMatching | pagemap_scan::kCheckWpAsync;
    arg.category_mask = pagemap_scan::kIsWritten;
    arg.return_mask = pagemap_scan::kIsWritten;
    ranges_.clear();
    const int err = pagemap_scan::Run(pagemap_fd_, arg, &ranges_);
    // Pages returned before a failure were protected again: keep them for the next Collect.
    DirtyBitmap found(bytes_ / block_size_);
    for (const pagemap_scan::PageRegion& r : ranges_) {
      SetBlocksOfPages((r.start - arg.start) / kPageBytes, (r.end - r.start) / kPageBytes,
                       block_size_, &found);
    }
    AddBlocks(found);
    if (err != 0) {
      return absl::InternalError(
          StrCat("PAGEMAP_SCAN (write-protect matching) over ", bytes_, " bytes: ", Errno(err)));
    }
    TakePending(dirty);
    return absl::OkStatus();
  }

 private:
  void OnPageFault(const uffd_msg&) override {}  // async mode: the kernel resolves faults itself

  std::vector<pagemap_scan::PageRegion> ranges_;
};

// ---------------------------------------------------------------------------------------------
// uffd-sync

class UffdSyncTracker final : public UffdTrackerBase {
 public:
  UffdSyncTracker() : UffdTrackerBase(UFFD_FEATURE_PAGEFAULT_FLAG_WP, kFeatureWpUnpopulated) {}

  std::string_view name() const override { return "uffd-sync"; }

  absl::Status Collect(DirtyBitmap* dirty) override {
    // Read which pages are not protected, then protect exactly those again. A write between the
    // two lands in a page that is still unprotected, so it precedes the copy of this capture; a
    // write after faults, and the fault thread unprotects its page for the next Collect.
    const uint64_t pages = bytes_ / kPageBytes;
    const uint64_t first_page = reinterpret_cast<uint64_t>(base_) / kPageBytes;
    DirtyBitmap unprotected(pages);
    // Present or swapped, and not write-protected: written since protected, or never protected
    // (a page written after being dropped, a kernel without WP_UNPOPULATED).
    if (absl::Status s =
            ReadPagemap(pagemap_fd_, first_page, pages,
                        [&](uint64_t first, const uint64_t* entries, uint64_t n) {
                          for (uint64_t i = 0; i < n; ++i) {
                            const uint64_t e = entries[i];
                            if ((e & (uint64_t{3} << 62)) != 0 && (e & kPagemapUffdWp) == 0) {
                              unprotected.Set(first + i);
                            }
                          }
                        });
        !s.ok()) {
      return s;
    }
    absl::Status protect_status;
    DirtyBitmap found(bytes_ / block_size_);
    unprotected.ForEachRun([&](uint64_t first, uint64_t count) {
      SetBlocksOfPages(first, count, block_size_, &found);
      if (protect_status.ok()) {
        protect_status = WriteProtect(uffd_, reinterpret_cast<uint64_t>(base_) + first * kPageBytes,
                                      count * kPageBytes, true);
      }
    });
    AddBlocks(found);
    // Pages left unprotected by a failure are read again next time: nothing is lost.
    if (!protect_status.ok()) return protect_status;
    DirtyBitmap taken(bytes_ / block_size_);
    TakePending(&taken);
    // Blocks dropped since the last capture lost their protection markers: protect them again, so
    // that reading one later maps the zero page protected instead of looking like a write.
    taken.ForEachRun([&](uint64_t first, uint64_t count) {
      if (!protect_status.ok()) return;
      protect_status = WriteProtect(uffd_, reinterpret_cast<uint64_t>(base_) + first * block_size_,
                                    count * block_size_, true);
    });
    dirty->OrWith(taken);
    if (!protect_status.ok()) {
      AddBlocks(taken);  // reported again next time rather than lost
      return protect_status;
    }
    return absl::OkStatus();
  }

 private:
  // Removes the protection of the faulting page, which wakes every thread waiting on it. The page
  // then shows as unprotected in pagemap until the next Collect.
  void OnPageFault(const uffd_msg& msg) override {
    const uint64_t page = msg.arg.pagefault.address & ~(kPageBytes - 1);
    if (absl::Status s = WriteProtect(uffd_, page, kPageBytes, false); !s.ok()) {
      ICKPT_LOG_ONCE("uffd-sync-unprotect", LogLevel::kError, "uffd-sync: {}", s.ToString());
    }
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Probes: the real thing on scratch pages.

TrackerReport ProbeUffdAsync() {
  TrackerReport report{TrackerKind::kUffdAsync, false, ""};
  Scratch scratch(4);
  if (scratch.base == nullptr) {
    report.reason = StrCat("mmap of scratch pages: ", Errno(errno));
    return report;
  }
  std::unique_ptr<Tracker> tracker = NewUffdAsyncTracker();
  if (absl::Status s = tracker->Attach(scratch.base, 4, kPageBytes); !s.ok()) {
    report.reason = std::string(s.message());
    return report;
  }
  DirtyBitmap dirty(4);
  scratch.base[kPageBytes] = 1;
  scratch.base[3 * kPageBytes] = 1;
  if (absl::Status s = tracker->Collect(&dirty); !s.ok()) {
    report.reason = std::string(s.message());
    return report;
  }
  DirtyBitmap again(4);
  scratch.base[3 * kPageBytes] = 2;
  if (absl::Status s = tracker->Collect(&again); !s.ok()) {
    report.reason = std::string(s.message());
    return report;
  }
  if (dirty.Count() != 2 || !dirty.Test(1) || !dirty.Test(3) || again.Count() != 1 ||
      !again.Test(3)) {
    report.reason = StrCat("written pages were not reported exactly (reported ", dirty.Count(),
                           " of 2, then ", again.Count(), " of 1)");
    return report;
  }
  report.works = true;
  report.reason =
      "userfaultfd async write-protect + PAGEMAP_SCAN: one ioctl reads and re-protects the "
      "written pages; a write costs a kernel fault, no signal and no thread switch";
  return report;
}

TrackerReport ProbeUffdSync() {
  TrackerReport report{TrackerKind::kUffdSync, false, ""};
  Scratch scratch(4);
  if (scratch.base == nullptr) {
    report.reason = StrCat("mmap of scratch pages: ", Errno(errno));
    return report;
  }
  std::memset(scratch.base, 0, scratch.bytes);
  std::unique_ptr<Tracker> tracker = NewUffdSyncTracker();
  if (absl::Status s = tracker->Attach(scratch.base, 4, kPageBytes); !s.ok()) {
    report.reason = std::string(s.message());
    return report;
  }
  DirtyBitmap dirty(4);
  scratch.base[2 * kPageBytes] = 1;  // faults; the fault thread unprotects
  if (absl::Status s = tracker->Collect(&dirty); !s.ok()) {
    report.reason = std::string(s.message());
    return report;
  }
  if (dirty.Count() != 1 || !dirty.Test(2)) {
    report.reason = StrCat("written pages were not reported exactly (", dirty.Count(),
                           " reported of 1): pagemap may lack the uffd-wp bit (Linux < 5.19?)");
    return report;
  }
  report.works = true;
  report.reason =
      "userfaultfd write-protect: a fault thread unprotects written pages; reads pagemap at "
      "capture";
  return report;
}

std::unique_ptr<Tracker> NewUffdAsyncTracker() { return std::make_unique<UffdAsyncTracker>(); }
std::unique_ptr<Tracker> NewUffdSyncTracker() { return std::make_unique<UffdSyncTracker>(); }

}  // namespace ickpt
