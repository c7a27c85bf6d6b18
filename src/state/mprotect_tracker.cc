// The "mprotect" tracker: the region is mprotect'ed PROT_READ; the first write to a block raises
// SIGSEGV, whose handler makes the block writable and sets its bit in an atomic dirty bitmap.
// Collect takes the bits and write-protects the taken blocks again. Works on any POSIX kernel; the
// first write to a block after a capture costs a signal and an mprotect (8-10 µs measured on a
// 6.18 kernel, against about 1 µs for uffd-async), later writes to it cost nothing.
//
// What it cannot see, and what the application must know:
// - Writes by the kernel into protected memory do not raise a signal: they fail. read(2),
//   recv(2), pread(2) ... into a block that is clean since the last capture return EFAULT
//   (tested). Touch the block first (a one-byte write), or read into another buffer.
// - The SIGSEGV handler is process-wide. It is installed once, by the first Attach (or by
//   ProbeMprotect), and forwards every fault that is not a write to a tracked block to the handler
//   the application had before (its sa_sigaction/sa_handler; SIG_DFL/SIG_IGN: the default action,
//   so the process dies as it would have). An application that installs its own SIGSEGV handler
//   later must chain to the previous one, as sanitizers and JVMs do, or tracked writes crash.
// - Each writable block inside a protected range is a VMA of its own (up to two more a block).
//   Past vm.max_map_count (65530 by default: about 30k scattered dirty blocks) mprotect fails
//   with ENOMEM. The tracker then degrades instead of failing: the whole range is made writable
//   (which merges its VMAs back into one) and marked "everything dirty"; the next Collect reports
//   every block and write-protects the range in one call. Logged once.
//
// Thread safety: Attach/Collect/Rebaseline/BeforeResize are called by the checkpointer under the
// capture's exclusion (tracker.h). The fault handler runs on any thread at any time, also during
// Collect: see the ordering argument at Range.
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>

#include "src/state/page_holes.h"
#include "src/state/tracker.h"
#include "src/util/log.h"
#include "src/util/mutex.h"
#include "src/util/str.h"

namespace ickpt {
namespace mprotect_internal {
// Test hooks (declared by mprotect_tracker_test.cc): the next `count` block unprotects in the fault
// handler fail as if mprotect had returned ENOMEM, which takes the degradation path without
// exhausting vm.max_map_count. And the number of write faults handled so far in this process.
void FailBlockUnprotectsForTest(int count);
uint64_t HandledFaultsForTest();
}  // namespace mprotect_internal

namespace {

static_assert(std::atomic<uint64_t>::is_always_lock_free,
              "the fault handler needs lock-free atomics");
static_assert(std::atomic<uintptr_t>::is_always_lock_free);
static_assert(std::atomic<bool>::is_always_lock_free);

// One attached range, read by the fault handler.
//
// Why no write is lost. Invariant: a block that is writable has its bit set (or everything_dirty
// is set), except while a fault handler is between its mprotect and its fetch_or, or Collect is
// between taking a bit and write-protecting that block again.
// - The handler first makes the block writable, THEN sets the bit. Had it set the bit first, a
//   Collect running in between could take the bit and re-protect the block, after which the
//   handler's mprotect would leave the block writable with its bit clear: later writes unseen.
//   In this order, a Collect that runs between the two steps either takes nothing (the bit is
//   set after it, and reported next time) or re-protects the block after the handler unprotected
//   it (then the bit is set with the block read-only: a spurious report, and the next write
//   simply faults again).
// - Collect first exchanges the words to zero, THEN re-protects the blocks it took. Had it
//   re-protected first, a write faulting in between would set a bit that the exchange then
//   clears, leaving a writable block with a clear bit. In this order, a write to a taken block
//   before the re-protection lands before the capture reads the block (the capture copies after
//   Collect returns); a write after it faults and sets the bit anew.
// - A faulting write is retried by the CPU when the handler returns: if Collect re-protected the
//   block meanwhile it faults again, so it is never applied unrecorded.
// everything_dirty follows the same two rules (set after the whole-range unprotect; exchanged
// before the whole-range re-protect).
struct Range {
  uintptr_t begin = 0;
  uintptr_t end = 0;
  uint32_t block_size = 0;
  uint64_t block_count = 0;
  size_t word_count = 0;
  std::unique_ptr<std::atomic<uint64_t>[]> words;  // one bit a block, set by the fault handler
  std::atomic<bool> everything_dirty{false};       // set when blocks could not be tracked singly
  std::atomic<bool> ran_out_of_maps{false};        // for Collect to log what the handler did
};

// The registry the handler searches: fixed slots, no allocation, no locks. A slot's range may be
// read by a handler only between its in_flight increment and decrement; Release() clears the
// pointer and then waits for in_flight to drop to zero, so a Range is never freed under a
// handler. begin/end are a cheap filter only; the Range's own bounds are authoritative.
struct Slot {
  std::atomic<uintptr_t> begin{0};
  std::atomic<uintptr_t> end{0};
  std::atomic<Range*> range{nullptr};
  std::atomic<uint32_t> in_flight{0};
};
constexpr size_t kMaxRanges = 1024;
Slot g_slots[kMaxRanges];
bool g_slot_claimed[kMaxRanges];      // guarded by RegistryMutex()
std::atomic<size_t> g_slot_limit{0};  // one past the highest slot ever claimed
struct sigaction g_previous;          // the handler before ours; written before ours runs
std::atomic<bool> g_installed{false};
std::atomic<int> g_fail_unprotects{0};  // test hook
std::atomic<uint64_t> g_handled_faults{0};

Mutex& RegistryMutex() {
  static Mutex* const mu = new Mutex();
  return *mu;
}

bool IsUserSent(const siginfo_t* info) { return info->si_code <= 0; }  // kill, sigqueue, tgkill

void WriteStderr(const char* message) {
  // Async-signal-safe: write(2) only; a short write is not worth a loop here.
  ssize_t ignored = write(STDERR_FILENO, message, std::strlen(message));
  (void)ignored;
}

void ResetToDefault(int sig) {
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, nullptr);
}

// A fault that is not ours: do what the application's handler would have done.
void Chain(int sig, siginfo_t* info, void* context) {
  const struct sigaction& prev = g_previous;
  if (prev.sa_handler == SIG_IGN) {
    // A real fault cannot be ignored (the kernel forces the default action when the fault
    // repeats); a SIGSEGV sent with kill() can.
    if (IsUserSent(info)) return;
    ResetToDefault(sig);
    return;  // the faulting instruction runs again and the process dies as without us
  }
  if (prev.sa_handler == SIG_DFL) {
    ResetToDefault(sig);
    if (IsUserSent(info)) raise(sig);  // pending until this handler returns, then default action
    return;
  }
  // Run the previous handler as the kernel would have: its mask added, SIGSEGV blocked unless it
  // asked for SA_NODEFER, reset to the default first if it asked for SA_RESETHAND.
  sigset_t mask;
  sigset_t old_mask;
  pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  for (int s = 1; s < NSIG; ++s) {
    if (sigismember(&prev.sa_mask, s) == 1) sigaddset(&mask, s);
  }
  if (prev.sa_flags & SA_NODEFER) {
    sigdelset(&mask, sig);
  } else {
    sigaddset(&mask, sig);
  }
  const bool siginfo = (prev.sa_flags & SA_SIGINFO) != 0;
  void (*const handler)(int) = prev.sa_handler;
  void (*const action)(int, siginfo_t*, void*) = prev.sa_sigaction;
  if (prev.sa_flags & SA_RESETHAND) ResetToDefault(sig);
  pthread_sigmask(SIG_SETMASK, &mask, &old_mask);
  if (siginfo) {
    action(sig, info, context);
  } else {
    handler(sig);
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
}

int ProtectRange(uintptr_t begin, uint64_t bytes, int prot) {
  return mprotect(reinterpret_cast<void*>(begin), bytes, prot);
}

// Blocks could not be unprotected one by one (ENOMEM: vm.max_map_count reached). Makes the whole
// range writable, which merges its VMAs, and marks it everything-dirty. If even that fails (the
// first or last VMA must be split, and the count is at the limit), first merges gaps between
// writable blocks: unprotecting a read-only run between two writable ones joins three VMAs into
// one, after which the whole-range call has room for its splits. Async-signal-safe.
bool Degrade(Range& range) {
  range.ran_out_of_maps.store(true, std::memory_order_relaxed);
  const uint64_t bytes = range.end - range.begin;
  bool ok = ProtectRange(range.begin, bytes, PROT_READ | PROT_WRITE) == 0;
  uint64_t b = 0;
  int merges = 0;
  while (!ok && b < range.block_count && merges < 64) {
    // The next clear run that has set bits on both sides.
    auto bit = [&](uint64_t i) {
      return (range.words[i / 64].load(std::memory_order_relaxed) >> (i % 64)) & 1;
    };
    while (b < range.block_count && !bit(b)) ++b;  // skip to a set bit
    while (b < range.block_count && bit(b)) ++b;   // to the end of its run
    const uint64_t gap = b;
    while (b < range.block_count && !bit(b)) ++b;
    if (b >= range.block_count || b == gap) break;
    if (ProtectRange(range.begin + gap * range.block_size, (b - gap) * range.block_size,
                     PROT_READ | PROT_WRITE) == 0) {
      ++merges;
      ok = ProtectRange(range.begin, bytes, PROT_READ | PROT_WRITE) == 0;
    }
  }
  // Set even on failure: the gap merges above made blocks writable without setting their bits.
  range.everything_dirty.store(true, std::memory_order_release);
  return ok;
}

// A write fault at `addr` inside `range`: unprotect, then record (in this order: see Range).
bool UnprotectAndRecord(Range& range, uintptr_t addr) {
  const uint64_t block = (addr - range.begin) / range.block_size;
  int rc;
  if (g_fail_unprotects.load(std::memory_order_relaxed) > 0 &&
      g_fail_unprotects.fetch_sub(1, std::memory_order_relaxed) > 0) {
    rc = -1;
    errno = ENOMEM;
  } else {
    rc = ProtectRange(range.begin + block * range.block_size, range.block_size,
                      PROT_READ | PROT_WRITE);
  }
  if (rc == 0) {
    range.words[block / 64].fetch_or(uint64_t{1} << (block % 64), std::memory_order_release);
    return true;
  }
  if (Degrade(range)) return true;
  WriteStderr(
      "ickpt: mprotect tracker: cannot make a tracked block writable (mprotect failed even for "
      "the whole region); passing the fault on\n");
  return false;
}

// True if the fault was a write to a tracked block and is handled (the write will be retried).
bool HandleTrackedWrite(const siginfo_t* info, const void* context) {
  if (info->si_code != SEGV_ACCERR) return false;
#if defined(__x86_64__)
  // Page-fault error code bit 4: instruction fetch. Unprotecting would not make the region
  // executable and the fault would repeat forever.
  if (context != nullptr &&
      (static_cast<const ucontext_t*>(context)->uc_mcontext.gregs[REG_ERR] & 0x10) != 0) {
    return false;
  }
#else
  (void)context;
#endif
  const uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  const size_t limit = g_slot_limit.load(std::memory_order_acquire);
  for (size_t i = 0; i < limit; ++i) {
    Slot& slot = g_slots[i];
    if (addr < slot.begin.load(std::memory_order_acquire) ||
        addr >= slot.end.load(std::memory_order_acquire)) {
      continue;
    }
    // Dekker with Release(): increment, then read the pointer; Release clears the pointer, then
    // reads the count (all seq_cst). Either we see null, or Release sees our increment and waits.
    slot.in_flight.fetch_add(1, std::memory_order_seq_cst);
    Range* range = slot.range.load(std::memory_order_seq_cst);
    bool handled = false;
    bool matched = false;
    if (range != nullptr && addr >= range->begin && addr < range->end) {
      matched = true;
      handled = UnprotectAndRecord(*range, addr);
    }
    slot.in_flight.fetch_sub(1, std::memory_order_release);
    if (matched) {
      if (handled) g_handled_faults.fetch_add(1, std::memory_order_relaxed);
      return handled;
    }
  }
  return false;
}

void OnSegv(int sig, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  const bool handled = HandleTrackedWrite(info, context);
  errno = saved_errno;
  if (!handled) Chain(sig, info, context);
  errno = saved_errno;
}

bool HandlerIsOurs() {
  struct sigaction now;
  if (sigaction(SIGSEGV, nullptr, &now) != 0) return false;
  return (now.sa_flags & SA_SIGINFO) && now.sa_sigaction == &OnSegv;
}

// fork(): the child has only the forking thread, which is in no handler and holds no registry
// lock, but may have copied counts of handlers that were running on other threads.
void LockBeforeFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { RegistryMutex().Lock(); }
void UnlockInParent() ABSL_NO_THREAD_SAFETY_ANALYSIS { RegistryMutex().Unlock(); }
void UnlockInChild() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  for (Slot& slot : g_slots) slot.in_flight.store(0, std::memory_order_relaxed);
  RegistryMutex().Unlock();
}

absl::Status InstallHandlerOnce() {
  MutexLock lock(&RegistryMutex());
  if (g_installed.load(std::memory_order_acquire)) {
    if (HandlerIsOurs()) return absl::OkStatus();
    return absl::FailedPreconditionError(
        "the SIGSEGV handler of the mprotect tracker was replaced by another one (a handler "
        "installed after ickpt's must chain to it)");
  }
  // g_previous is set before our handler can run; the second sigaction's old value catches a
  // handler installed by another thread in between.
  if (sigaction(SIGSEGV, nullptr, &g_previous) != 0) {
    return absl::InternalError(StrCat("sigaction(SIGSEGV): ", std::strerror(errno)));
  }
  struct sigaction ours;
  std::memset(&ours, 0, sizeof(ours));
  ours.sa_sigaction = &OnSegv;
  sigemptyset(&ours.sa_mask);
  // SA_ONSTACK: a stack overflow (not ours) must reach the application's handler, which can only
  // run on its alternate stack. SA_RESTART is moot for a fault but harmless for a kill().
  ours.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  struct sigaction before;
  if (sigaction(SIGSEGV, &ours, &before) != 0) {
    return absl::InternalError(StrCat("sigaction(SIGSEGV): ", std::strerror(errno)));
  }
  g_previous = before;
  if (!HandlerIsOurs()) {
    // e.g. AddressSanitizer without allow_user_segv_handler=1 keeps SIGSEGV to itself.
    return absl::FailedPreconditionError(
        "could not install a SIGSEGV handler (another one keeps it exclusively, e.g. a sanitizer "
        "without allow_user_segv_handler=1)");
  }
  pthread_atfork(&LockBeforeFork, &UnlockInParent, &UnlockInChild);
  g_installed.store(true, std::memory_order_release);
  return absl::OkStatus();
}

absl::StatusOr<size_t> Claim(Range* range) {
  MutexLock lock(&RegistryMutex());
  for (size_t i = 0; i < kMaxRanges; ++i) {
    if (g_slot_claimed[i]) continue;
    g_slot_claimed[i] = true;
    Slot& slot = g_slots[i];
    slot.range.store(range, std::memory_order_seq_cst);
    slot.begin.store(range->begin, std::memory_order_release);
    slot.end.store(range->end, std::memory_order_release);
    if (g_slot_limit.load(std::memory_order_relaxed) < i + 1) {
      g_slot_limit.store(i + 1, std::memory_order_release);
    }
    return i;
  }
  return absl::ResourceExhaustedError(
      StrCat("more than ", kMaxRanges, " regions use the mprotect tracker in this process"));
}

void Release(size_t index) {
  Slot& slot = g_slots[index];
  slot.range.store(nullptr, std::memory_order_seq_cst);
  while (slot.in_flight.load(std::memory_order_seq_cst) != 0) sched_yield();
  slot.begin.store(0, std::memory_order_release);
  slot.end.store(0, std::memory_order_release);
  MutexLock lock(&RegistryMutex());
  g_slot_claimed[index] = false;
}

absl::Status ErrnoStatus(std::string_view what, const Range& range, int err) {
  const std::string message = StrCat(what, " of [0x", fmt::format("{:x}", range.begin), ", +",
                                     range.end - range.begin, "): ", std::strerror(err));
  if (err == ENOMEM) {
    return absl::ResourceExhaustedError(
        StrCat(message, " (vm.max_map_count reached? each writable block splits a VMA)"));
  }
  return absl::InternalError(message);
}

class MprotectTracker final : public Tracker {
 public:
  MprotectTracker() = default;
  ~MprotectTracker() override { Detach(); }
  MprotectTracker(const MprotectTracker&) = delete;
  MprotectTracker& operator=(const MprotectTracker&) = delete;

  std::string_view name() const override { return "mprotect"; }

  absl::Status Attach(const char* base, uint64_t block_count, uint32_t block_size) override {
    Detach();
    if (absl::Status s = InstallHandlerOnce(); !s.ok()) return s;
    auto range = std::make_unique<Range>();
    range->begin = reinterpret_cast<uintptr_t>(base);
    range->end = range->begin + block_count * block_size;
    range->block_size = block_size;
    range->block_count = block_count;
    range->word_count = (block_count + 63) / 64;
    range->words = std::make_unique<std::atomic<uint64_t>[]>(range->word_count);
    for (size_t i = 0; i < range->word_count; ++i)
      range->words[i].store(0, std::memory_order_relaxed);
    absl::StatusOr<size_t> slot = Claim(range.get());
    if (!slot.ok()) return slot.status();
    const uint64_t bytes = range->end - range->begin;
    // Give the mapping its anon_vma now, while it is one VMA: the pieces that mprotect splits off
    // then share it. Otherwise each block's first write (in its own small VMA) creates an anon_vma
    // of its own, and VMAs with different anon_vmas never merge again: the whole-range mprotects
    // below would leave the range in thousands of VMAs, mremap would fail with EFAULT and the map
    // count would stay at the limit. An atomic OR of zero writes nothing a racing writer could
    // lose. (A forked child's VMAs get anon_vmas of their own, so there merging, and so growing a
    // region with dirty blocks, can fail; Region::Grow then reports the mremap error.)
    std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(range->begin))
        .fetch_or(0, std::memory_order_relaxed);
    // Registered before protecting, so that a write racing with Attach is handled, not fatal.
    if (ProtectRange(range->begin, bytes, PROT_READ) != 0) {
      const int err = errno;
      (void)ProtectRange(range->begin, bytes, PROT_READ | PROT_WRITE);
      Release(*slot);
      return ErrnoStatus("mprotect(PROT_READ)", *range, err);
    }
    if (absl::Status s = holes_.Reset(base, bytes); !s.ok()) {
      (void)ProtectRange(range->begin, bytes, PROT_READ | PROT_WRITE);
      Release(*slot);
      return s;
    }
    range_ = std::move(range);
    slot_ = *slot;
    return absl::OkStatus();
  }

  absl::Status Collect(DirtyBitmap* dirty) override {
    if (range_ == nullptr) return absl::FailedPreconditionError("mprotect tracker: not attached");
    // Pages the kernel dropped (MADV_DONTNEED of a clean, read-only block raises no fault). On
    // error nothing has been taken yet.
    if (absl::Status s = holes_.Collect(range_->block_size, dirty); !s.ok()) return s;
    TakeAndReprotect(dirty);
    return absl::OkStatus();
  }

  absl::Status Rebaseline() override {
    if (range_ == nullptr) return absl::FailedPreconditionError("mprotect tracker: not attached");
    DirtyBitmap discarded(range_->block_count);
    range_->everything_dirty.store(true, std::memory_order_relaxed);  // re-protect all of it
    TakeAndReprotect(&discarded);
    return holes_.Reset(reinterpret_cast<const char*>(range_->begin), range_->end - range_->begin);
  }

  absl::Status BeforeResize(DirtyBitmap* dirty) override {
    if (range_ == nullptr) return absl::FailedPreconditionError("mprotect tracker: not attached");
    // mremap fails on a range of several VMAs: make it writable, which merges them back. From
    // here on writes do not fault (the application is stopped while the region is resized).
    const uint64_t bytes = range_->end - range_->begin;
    if (ProtectRange(range_->begin, bytes, PROT_READ | PROT_WRITE) != 0) {
      const int err = errno;
      range_->everything_dirty.store(true, std::memory_order_release);  // some blocks may be RW
      return ErrnoStatus("mprotect(PROT_READ|PROT_WRITE) before resizing", *range_, err);
    }
    if (absl::Status s = holes_.Collect(range_->block_size, dirty); !s.ok()) {
      range_->everything_dirty.store(true, std::memory_order_release);
      return s;
    }
    if (range_->everything_dirty.exchange(false, std::memory_order_acq_rel)) dirty->SetAll();
    for (size_t i = 0; i < range_->word_count; ++i) {
      dirty->OrWord(i, range_->words[i].exchange(0, std::memory_order_acq_rel));
    }
    LogIfRanOutOfMaps();
    Release(slot_);
    range_.reset();
    return absl::OkStatus();
  }

 private:
  // Unregisters the range, writable again (so the memory behaves normally if the region keeps
  // it, and mremap/munmap see one VMA).
  void Detach() {
    if (range_ == nullptr) return;
    (void)ProtectRange(range_->begin, range_->end - range_->begin, PROT_READ | PROT_WRITE);
    Release(slot_);
    range_.reset();
  }

  // Takes every set bit (and everything_dirty) into `dirty`, then write-protects what it took.
  // Never fails: blocks that cannot be re-protected stay marked for the next Collect.
  void TakeAndReprotect(DirtyBitmap* dirty) {
    Range& r = *range_;
    const bool all = r.everything_dirty.exchange(false, std::memory_order_acq_rel);
    DirtyBitmap taken(r.block_count);
    for (size_t i = 0; i < r.word_count; ++i) {
      taken.OrWord(i, r.words[i].exchange(0, std::memory_order_acq_rel));
    }
    const uint64_t bytes = r.end - r.begin;
    // Many runs: one call over the whole range is cheaper than a call a run, and merges the
    // VMAs in one go. Blocks that were read-only already stay so.
    constexpr uint64_t kMaxCallsPerCollect = 1024;
    uint64_t runs = 0;
    if (!all) taken.ForEachRun([&](uint64_t, uint64_t) { ++runs; });
    bool whole = all || runs > kMaxCallsPerCollect;
    int failed_errno = 0;
    if (!whole) {
      taken.ForEachRun([&](uint64_t first, uint64_t count) {
        if (failed_errno != 0) return;
        if (ProtectRange(r.begin + first * r.block_size, count * r.block_size, PROT_READ) != 0) {
          failed_errno = errno;
        }
      });
      // A run that could not be re-protected (ENOMEM: re-protecting a run between two writable
      // neighbours needs no split, but one at the end of a VMA may): the whole range instead.
      whole = failed_errno != 0;
    }
    if (whole && ProtectRange(r.begin, bytes, PROT_READ) != 0) {
      failed_errno = errno;
      // Some blocks are still writable with their bits taken: report them all next time.
      r.everything_dirty.store(true, std::memory_order_release);
      ICKPT_LOG_ONCE("mprotect-reprotect-failed", LogLevel::kWarn,
                     "mprotect tracker: cannot write-protect a region of {} bytes again ({}); it "
                     "is reported whole at the next capture",
                     bytes, std::strerror(failed_errno));
    }
    if (all) dirty->SetAll();
    dirty->OrWith(taken);
    LogIfRanOutOfMaps();
  }

  void LogIfRanOutOfMaps() {
    if (range_->ran_out_of_maps.exchange(false, std::memory_order_relaxed)) {
      ICKPT_LOG_ONCE("mprotect-enomem", LogLevel::kWarn,
                     "mprotect tracker: mprotect of a block failed (vm.max_map_count reached: "
                     "each writable block splits a VMA); a region of {} bytes was reported whole "
                     "instead (raise vm.max_map_count or use another tracker)",
                     range_->end - range_->begin);
    }
  }

  std::unique_ptr<Range> range_;
  size_t slot_ = 0;
  PageHoles holes_;
};

}  // namespace

namespace mprotect_internal {
void FailBlockUnprotectsForTest(int count) {
  g_fail_unprotects.store(count, std::memory_order_relaxed);
}
uint64_t HandledFaultsForTest() { return g_handled_faults.load(std::memory_order_relaxed); }
}  // namespace mprotect_internal

TrackerReport ProbeMprotect() {
  TrackerReport report{TrackerKind::kMprotect, false, ""};
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  constexpr uint64_t kPages = 16;
  void* mem = mmap(nullptr, kPages * page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) {
    report.reason = StrCat("mmap of a scratch area failed: ", std::strerror(errno));
    return report;
  }
  char* base = static_cast<char*>(mem);
  std::string failure;
  {
    MprotectTracker tracker;
    absl::Status s = tracker.Attach(base, kPages, static_cast<uint32_t>(page));
    if (!s.ok()) {
      failure = std::string(s.message());
    } else {
      // Odd pages written: each write faults once; the handler must unprotect and record it.
      const auto start = std::chrono::steady_clock::now();
      for (uint64_t p = 1; p < kPages; p += 2) {
        *reinterpret_cast<volatile char*>(base + p * page) = static_cast<char>(p);
      }
      // The handler ran inside those stores; the compiler must not assume they changed nothing.
      std::atomic_signal_fence(std::memory_order_seq_cst);
      const double first_write_us =
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
              .count() /
          (kPages / 2);
      DirtyBitmap dirty(kPages);
      DirtyBitmap again(kPages);
      s = tracker.Collect(&dirty);
      if (s.ok()) {
        // After a Collect the blocks are protected again: a second write must fault and count.
        *reinterpret_cast<volatile char*>(base + 1 * page) = 1;
        std::atomic_signal_fence(std::memory_order_seq_cst);
        s = tracker.Collect(&again);
      }
      if (!s.ok()) {
        failure = StrCat("Collect: ", s.message());
      } else {
        DirtyBitmap expected(kPages);
        for (uint64_t p = 1; p < kPages; p += 2) expected.Set(p);
        DirtyBitmap expected_again(kPages);
        expected_again.Set(1);
        if (dirty.word(0) != expected.word(0)) {
          failure = fmt::format("written pages {:#x} but reported {:#x}", expected.word(0),
                                dirty.word(0));
        } else if (again.word(0) != expected_again.word(0)) {
          failure = "a write after Collect was not reported (re-protection failed)";
        }
        for (uint64_t p = 0; p < kPages && failure.empty(); ++p) {
          const char want = expected.Test(p) ? static_cast<char>(p) : 0;
          if (*reinterpret_cast<volatile const char*>(base + p * page) != want) {
            failure = StrCat("the write to page ", p, " did not land");
          }
        }
      }
      if (failure.empty()) {
        report.works = true;
        report.reason = fmt::format(
            "mprotect + SIGSEGV write faults: works (the first write to a block after a capture "
            "costs a signal and an mprotect, {:.1f} µs here; read(2) into a clean block fails with "
            "EFAULT)",
            first_write_us);
      }
    }
  }
  munmap(mem, kPages * page);
  if (!report.works) report.reason = StrCat("mprotect + SIGSEGV write faults: ", failure);
  return report;
}

std::unique_ptr<Tracker> NewMprotectTracker() { return std::make_unique<MprotectTracker>(); }

}  // namespace ickpt
