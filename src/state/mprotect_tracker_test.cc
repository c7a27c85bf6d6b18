// The mprotect tracker (write faults caught by a SIGSEGV handler) and the soft-dirty tracker
// (probe only on this machine: its kernel lacks CONFIG_MEM_SOFT_DIRTY).
//
// Covered: exact dirty sets, concurrent writers against a collecting thread (checked against a
// shadow), pages dropped by MADV_DONTNEED, EFAULT for kernel writes into clean blocks (documented
// behaviour), chaining of foreign SIGSEGVs to the application's handler, fork, the ENOMEM
// degradation (forced by a hook and for real past vm.max_map_count), resize.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "src/state/page_holes.h"
#include "src/state/region_internal.h"
#include "src/state/tracker.h"
#include "src/testing/status_matchers.h"

namespace ickpt {
namespace mprotect_internal {
// Defined in mprotect_tracker.cc (test hooks).
void FailBlockUnprotectsForTest(int count);
uint64_t HandledFaultsForTest();
}  // namespace mprotect_internal

namespace {

constexpr uint32_t kBlock = 4096;

std::unique_ptr<Region> MakeRegion(uint64_t blocks, TrackerKind tracker = TrackerKind::kMprotect,
                                   uint32_t block_size = kBlock) {
  RegionOptions o;
  o.size = blocks * block_size;
  o.tracker = tracker;
  auto r = RegionAccess::Create("r", o, block_size);
  EXPECT_OK(r.status());
  return r.ok() ? *std::move(r) : nullptr;
}

std::vector<uint64_t> Blocks(const DirtyBitmap& d) {
  std::vector<uint64_t> out;
  d.ForEachRun([&](uint64_t first, uint64_t count) {
    for (uint64_t b = first; b < first + count; ++b) out.push_back(b);
  });
  return out;
}

std::vector<uint64_t> CollectBlocks(Region& r) {
  absl::StatusOr<DirtyBitmap> d = RegionAccess::Collect(r);
  EXPECT_OK(d.status());
  return d.ok() ? Blocks(*d) : std::vector<uint64_t>{};
}

void WriteByte(Region& r, uint64_t offset, char value) {
  *reinterpret_cast<volatile char*>(r.data() + offset) = value;
}

size_t MapCount() {
  std::ifstream maps("/proc/self/maps");
  size_t n = 0;
  for (std::string line; std::getline(maps, line);) ++n;
  return n;
}

using Vec = std::vector<uint64_t>;

TEST(MprotectTrackerTest, ProbeWorksHereAndSaysWhatItCosts) {
  const TrackerReport report = ProbeMprotect();
  EXPECT_TRUE(report.works) << report.reason;
  EXPECT_NE(report.reason.find("SIGSEGV"), std::string::npos) << report.reason;
  ASSERT_OK_AND_ASSIGN(auto tracker, NewTracker(TrackerKind::kMprotect));
  EXPECT_EQ(tracker->name(), "mprotect");
}

TEST(MprotectTrackerTest, WrittenBlocksAreCollectedExactlyOnce) {
  auto r = MakeRegion(256);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->tracker_name(), "mprotect");
  EXPECT_EQ(CollectBlocks(*r), Vec{});
  for (uint64_t b : {0, 5, 63, 64, 200, 255}) WriteByte(*r, b * kBlock + 17, 1);
  WriteByte(*r, 5 * kBlock + 100, 2);  // a second write to a block: no second report
  EXPECT_EQ(CollectBlocks(*r), (Vec{0, 5, 63, 64, 200, 255}));
  EXPECT_EQ(CollectBlocks(*r), Vec{});
  WriteByte(*r, 5 * kBlock, 3);  // re-protected by Collect: faults and is seen again
  EXPECT_EQ(CollectBlocks(*r), Vec{5});
  EXPECT_EQ(r->data()[5 * kBlock + 17], 1);
  EXPECT_EQ(r->data()[5 * kBlock + 100], 2);
  EXPECT_EQ(r->data()[5 * kBlock], 3);
}

TEST(MprotectTrackerTest, ReadsDoNotCountAsWrites) {
  auto r = MakeRegion(16);
  ASSERT_NE(r, nullptr);
  uint64_t sum = 0;
  for (uint64_t i = 0; i < r->size(); i += 512) sum += static_cast<unsigned char>(r->data()[i]);
  EXPECT_EQ(sum, 0u);
  EXPECT_EQ(CollectBlocks(*r), Vec{});
}

TEST(MprotectTrackerTest, LargeBlocksFaultOncePerBlock) {
  constexpr uint32_t kLarge = 4 * 4096;
  auto r = MakeRegion(8, TrackerKind::kMprotect, kLarge);
  ASSERT_NE(r, nullptr);
  const uint64_t before = mprotect_internal::HandledFaultsForTest();
  for (uint64_t off = 0; off < kLarge; off += 4096) WriteByte(*r, 3 * kLarge + off, 7);
  // The handler unprotects the whole block: one fault for its four pages.
  EXPECT_EQ(mprotect_internal::HandledFaultsForTest() - before, 1u);
  EXPECT_EQ(CollectBlocks(*r), Vec{3});
}

TEST(MprotectTrackerTest, RebaselineForgetsWritesAndProtectsAgain) {
  auto r = MakeRegion(32);
  ASSERT_NE(r, nullptr);
  WriteByte(*r, 1 * kBlock, 1);
  WriteByte(*r, 9 * kBlock, 1);
  ASSERT_OK(RegionAccess::Rebaseline(*r));
  EXPECT_EQ(CollectBlocks(*r), Vec{});
  WriteByte(*r, 9 * kBlock, 2);
  EXPECT_EQ(CollectBlocks(*r), Vec{9});
}

TEST(MprotectTrackerTest, SeveralRegionsAreTrackedApart) {
  auto a = MakeRegion(16);
  auto b = MakeRegion(16);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  WriteByte(*a, 2 * kBlock, 1);
  WriteByte(*b, 7 * kBlock, 1);
  EXPECT_EQ(CollectBlocks(*a), Vec{2});
  a.reset();  // unregisters its range; b keeps working
  WriteByte(*b, 8 * kBlock, 1);
  EXPECT_EQ(CollectBlocks(*b), (Vec{7, 8}));
}

// Writers run while another thread collects over and over, copying every collected block into a
// shadow (the capture's copy). Whatever a writer stored after the copy of its block must make the
// block appear in a later Collect, so after the writers stop and one last Collect is applied the
// shadow equals memory. Stores and copies are atomic 8-byte accesses (a real capture stops the
// writers; here the race is the point).
TEST(MprotectTrackerTest, ConcurrentWritersAndCollectorLoseNothing) {
  constexpr uint64_t kBlocks = 512;
  auto r = MakeRegion(kBlocks);
  ASSERT_NE(r, nullptr);
  auto* words = reinterpret_cast<uint64_t*>(r->data());
  const uint64_t word_count = r->size() / 8;
  std::vector<uint64_t> shadow(word_count, 0);
  auto copy_block = [&](uint64_t block) {
    for (uint64_t w = block * kBlock / 8; w < (block + 1) * kBlock / 8; ++w) {
      shadow[w] = std::atomic_ref<uint64_t>(words[w]).load(std::memory_order_relaxed);
    }
  };
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> writes{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      std::mt19937_64 rng(1000 + t);
      uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        // Bursts in a few blocks, so blocks are rewritten soon after being re-protected.
        const uint64_t block = rng() % kBlocks;
        for (int i = 0; i < 8; ++i) {
          const uint64_t w = block * kBlock / 8 + rng() % (kBlock / 8);
          std::atomic_ref<uint64_t>(words[w]).store(
              (uint64_t{static_cast<uint64_t>(t)} << 56) | ++n, std::memory_order_relaxed);
        }
      }
      writes.fetch_add(n);
    });
  }
  uint64_t collected = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  int rounds = 0;
  while (std::chrono::steady_clock::now() < deadline || rounds < 50) {
    ASSERT_OK_AND_ASSIGN(DirtyBitmap d, RegionAccess::Collect(*r));
    for (uint64_t b : Blocks(d)) copy_block(b);
    collected += d.Count();
    ++rounds;
  }
  stop = true;
  for (auto& w : writers) w.join();
  ASSERT_OK_AND_ASSIGN(DirtyBitmap last, RegionAccess::Collect(*r));
  for (uint64_t b : Blocks(last)) copy_block(b);
  uint64_t mismatches = 0;
  for (uint64_t w = 0; w < word_count; ++w) mismatches += shadow[w] != words[w];
  EXPECT_EQ(mismatches, 0u) << "words written but never reported, " << rounds << " collects, "
                            << writes.load() << " writes";
  EXPECT_GT(collected, 0u);
  EXPECT_EQ(CollectBlocks(*r), Vec{});
}

TEST(MprotectTrackerTest, PagesDroppedByMadviseAreReported) {
  auto r = MakeRegion(16);
  ASSERT_NE(r, nullptr);
  WriteByte(*r, 3 * kBlock, 1);
  WriteByte(*r, 7 * kBlock, 1);
  EXPECT_EQ(CollectBlocks(*r), (Vec{3, 7}));
  // Block 3 is clean and read-only: dropping its content raises no fault, yet it changed (to
  // zero). Block 7 is written and then dropped before the capture.
  WriteByte(*r, 7 * kBlock, 2);
  ASSERT_EQ(madvise(r->data() + 3 * kBlock, kBlock, MADV_DONTNEED), 0);
  ASSERT_EQ(madvise(r->data() + 7 * kBlock, kBlock, MADV_DONTNEED), 0);
  // Read only after the collect: on a kernel whose read faults map fresh pages instead of the zero
  // page, a dropped page read before the collect is indistinguishable from content (documented in
  // docs/trackers.md; DroppedThenReadIsMissedWhereReadsMapFreshPages below).
  EXPECT_EQ(CollectBlocks(*r), (Vec{3, 7}));
  EXPECT_EQ(r->data()[3 * kBlock], 0);
  EXPECT_EQ(CollectBlocks(*r), Vec{});
}

// The documented limit of drop detection without userfaultfd: where a read fault maps a fresh page
// (ReadFaultMapsZeroPage() false), a page dropped and read again before the capture is present,
// not a hole, and the mprotect tracker misses it. Where reads map the zero page it is caught. This
// test pins whichever behaviour the kernel has, so a change is noticed.
TEST(MprotectTrackerTest, DroppedThenReadIsMissedWhereReadsMapFreshPages) {
  auto r = MakeRegion(16);
  ASSERT_NE(r, nullptr);
  WriteByte(*r, 5 * kBlock, 1);
  EXPECT_EQ(CollectBlocks(*r), (Vec{5}));
  ASSERT_EQ(madvise(r->data() + 5 * kBlock, kBlock, MADV_DONTNEED), 0);
  EXPECT_EQ(r->data()[5 * kBlock], 0);
  if (ReadFaultMapsZeroPage()) {
    EXPECT_EQ(CollectBlocks(*r), (Vec{5}));
  } else {
    EXPECT_EQ(CollectBlocks(*r), Vec{});
  }
}

// Documented behaviour: the kernel does not raise SIGSEGV for its own writes into user memory, so
// read(2) into a clean (write-protected) block fails with EFAULT. A block already written since the
// last capture is writable and takes the read.
TEST(MprotectTrackerTest, KernelWritesIntoCleanBlocksFailWithEfault) {
  auto r = MakeRegion(8);
  ASSERT_NE(r, nullptr);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  ASSERT_EQ(write(fds[1], "hello", 5), 5);
  errno = 0;
  EXPECT_EQ(read(fds[0], r->data() + 2 * kBlock, 5), -1);
  EXPECT_EQ(errno, EFAULT);
  WriteByte(*r, 2 * kBlock + 100, 1);  // the workaround: touch the block first
  ASSERT_EQ(write(fds[1], "hello", 5), 5);
  const ssize_t leftover = read(fds[0], r->data() + 2 * kBlock, 5);
  EXPECT_EQ(leftover, 5);
  EXPECT_EQ(std::string(r->data() + 2 * kBlock, 5), "hello");
  close(fds[0]);
  close(fds[1]);
  EXPECT_EQ(CollectBlocks(*r), Vec{2});
}

// The application's own SIGSEGV handler, installed before the first mprotect region (the child is
// a fresh process: the death test re-executes the binary). A kill()ed SIGSEGV and a real fault
// outside every region must reach it; writes to the region must not.
std::atomic<int> g_app_user_signals{0};
void AppHandler(int, siginfo_t* info, void*) {
  if (info->si_code <= 0) {  // sent with kill/raise: count and continue
    g_app_user_signals.fetch_add(1);
    return;
  }
  _exit(g_app_user_signals.load() == 1 ? 42 : 43);
}

void RunForeignFaultChild() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = &AppHandler;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, &sa, nullptr) != 0) _exit(2);
  auto r = MakeRegion(8);
  if (r == nullptr || r->tracker_name() != "mprotect") _exit(3);
  WriteByte(*r, kBlock, 5);  // ours: handled, not passed on
  if (g_app_user_signals.load() != 0) _exit(4);
  raise(SIGSEGV);  // not a fault: the application's handler sees it and execution continues
  if (g_app_user_signals.load() != 1) _exit(5);
  auto d = RegionAccess::Collect(*r);
  if (!d.ok() || Blocks(*d) != Vec{1}) _exit(6);
  void* none = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  *static_cast<volatile char*>(none) = 1;  // a real fault, not in a region
  _exit(7);
}

TEST(MprotectTrackerDeathTest, ForeignFaultsReachTheApplicationHandler) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(RunForeignFaultChild(), ::testing::ExitedWithCode(42), "");
}

// GCC defines __SANITIZE_ADDRESS__ / __SANITIZE_THREAD__; clang 14 (the ASan stage's compiler)
// says so only through __has_feature.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ICKPT_TEST_UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ICKPT_TEST_UNDER_SANITIZER 1
#endif
#endif
#ifndef ICKPT_TEST_UNDER_SANITIZER
#define ICKPT_TEST_UNDER_SANITIZER 0
#endif

void RunDefaultActionChild() {
  auto r = MakeRegion(8);
  if (r == nullptr) _exit(3);
  WriteByte(*r, kBlock, 5);
  void* none = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  *static_cast<volatile char*>(none) = 1;
  _exit(7);
}

TEST(MprotectTrackerDeathTest, ForeignFaultWithoutApplicationHandlerKillsAsUsual) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
#if ICKPT_TEST_UNDER_SANITIZER
  // The sanitizer's handler was there before ours: it reports the SEGV and exits non-zero.
  EXPECT_DEATH(RunDefaultActionChild(), "SEGV");
#else
  EXPECT_EXIT(RunDefaultActionChild(), ::testing::KilledBySignal(SIGSEGV), "");
#endif
}

// The child inherits the handler, the protections and its own copy of the bitmaps: its writes
// fault, are unprotected and recorded in the child only; the parent's tracking is unaffected.
TEST(MprotectTrackerTest, ForkedChildKeepsWorkingAndParentStaysCorrect) {
  auto r = MakeRegion(16);
  ASSERT_NE(r, nullptr);
  WriteByte(*r, 1 * kBlock, 1);
  ASSERT_EQ(CollectBlocks(*r), Vec{1});
  WriteByte(*r, 9 * kBlock, 1);  // dirty at fork time
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    WriteByte(*r, 2 * kBlock, 2);
    WriteByte(*r, 3 * kBlock, 3);
    auto d = RegionAccess::Collect(*r);
    if (!d.ok() || Blocks(*d) != Vec({2, 3, 9})) _exit(1);
    WriteByte(*r, 3 * kBlock, 4);
    d = RegionAccess::Collect(*r);
    if (!d.ok() || Blocks(*d) != Vec({3}) || r->data()[3 * kBlock] != 4) _exit(2);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(r->data()[2 * kBlock], 0);
  WriteByte(*r, 4 * kBlock, 1);
  EXPECT_EQ(CollectBlocks(*r), (Vec{4, 9}));
}

// The handler's mprotect fails (forced here; ENOMEM past vm.max_map_count in real life): the whole
// region becomes writable and is reported whole once, then tracking by block resumes.
TEST(MprotectTrackerTest, UnprotectFailureDegradesToEverythingDirtyOnce) {
  auto r = MakeRegion(64);
  ASSERT_NE(r, nullptr);
  WriteByte(*r, 5 * kBlock, 1);
  mprotect_internal::FailBlockUnprotectsForTest(1);
  WriteByte(*r, 10 * kBlock, 1);
  WriteByte(*r, 20 * kBlock, 1);  // the region is writable now: no fault, still reported
  WriteByte(*r, 30 * kBlock, 1);
  ASSERT_OK_AND_ASSIGN(DirtyBitmap all, RegionAccess::Collect(*r));
  EXPECT_EQ(all.Count(), 64u);
  WriteByte(*r, 30 * kBlock, 2);
  EXPECT_EQ(CollectBlocks(*r), Vec{30});
  EXPECT_EQ(r->data()[10 * kBlock], 1);
  EXPECT_EQ(r->data()[20 * kBlock], 1);
}

// For real: every other block of a big region written, so each write splits a VMA in three, until
// vm.max_map_count (65530 here) makes mprotect fail. No write may be lost, the process must not
// crash, and the VMAs must be merged back afterwards.
TEST(MprotectTrackerTest, RunningOutOfMapCountDegradesWithoutLosingWrites) {
  constexpr uint64_t kWritten = 40000;
  auto r = MakeRegion(2 * kWritten + 2);
  ASSERT_NE(r, nullptr);
  const size_t maps_before = MapCount();
  const uint64_t faults_before = mprotect_internal::HandledFaultsForTest();
  for (uint64_t i = 0; i < kWritten; ++i) WriteByte(*r, (2 * i + 1) * kBlock, 1);
  const uint64_t faults = mprotect_internal::HandledFaultsForTest() - faults_before;
  // Fewer faults than writes: after the degradation the region was writable.
  EXPECT_LT(faults, kWritten);
  EXPECT_GT(faults, 20000u);
  ASSERT_OK_AND_ASSIGN(DirtyBitmap d, RegionAccess::Collect(*r));
  for (uint64_t i = 0; i < kWritten; ++i) ASSERT_TRUE(d.Test(2 * i + 1)) << "block " << 2 * i + 1;
  // Merged back: about 2 * 32k VMAs at the limit, a handful now (allocators may add a few).
  EXPECT_LT(MapCount(), maps_before + 256);
  WriteByte(*r, 100 * kBlock, 2);
  WriteByte(*r, 102 * kBlock, 2);
  EXPECT_EQ(CollectBlocks(*r), (Vec{100, 102}));
  for (uint64_t i = 0; i < kWritten; ++i) ASSERT_EQ(r->data()[(2 * i + 1) * kBlock], 1);
}

TEST(MprotectTrackerTest, ResizeKeepsTrackingAcrossAMove) {
  auto r = MakeRegion(64);
  ASSERT_NE(r, nullptr);
  for (uint64_t b = 0; b < 64; b += 2) WriteByte(*r, b * kBlock, static_cast<char>(b + 1));
  // Many VMAs now (every other block writable): mremap needs them merged back.
  ASSERT_OK(RegionAccess::Resize(*r, 4096));
  ASSERT_OK_AND_ASSIGN(DirtyBitmap d, RegionAccess::Collect(*r));
  for (uint64_t b = 0; b < 64; ++b) EXPECT_EQ(d.Test(b), b % 2 == 0) << b;
  for (uint64_t b = 0; b < 64; b += 2) ASSERT_EQ(r->data()[b * kBlock], static_cast<char>(b + 1));
  WriteByte(*r, 3 * kBlock, 1);
  WriteByte(*r, 4000 * kBlock, 1);
  EXPECT_EQ(CollectBlocks(*r), (Vec{3, 4000}));
  // Grow reports the new blocks as changed, and tracking goes on.
  ASSERT_OK(r->Grow(5000 * kBlock));
  ASSERT_OK_AND_ASSIGN(DirtyBitmap grown, RegionAccess::Collect(*r));
  EXPECT_EQ(grown.Count(), 5000u - 4096u);
  WriteByte(*r, 4999 * kBlock, 1);
  EXPECT_EQ(CollectBlocks(*r), Vec{4999});
}

TEST(SoftDirtyTrackerTest, ProbeSaysWhetherItWorksAndWhy) {
  const TrackerReport report = ProbeSoftDirty();
  EXPECT_FALSE(report.reason.empty());
  EXPECT_NE(report.reason.find("soft-dirty"), std::string::npos) << report.reason;
  auto tracker = NewTracker(TrackerKind::kSoftDirty);
  EXPECT_EQ(tracker.ok(), report.works) << report.reason;
  if (!report.works) {
    // This machine: CONFIG_MEM_SOFT_DIRTY is off (see PLATFORM.md).
    EXPECT_EQ(tracker.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(tracker.status().message().find("never set"), absl::string_view::npos)
        << tracker.status();
  }
}

class SoftDirtyBehaviourTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const TrackerReport report = ProbeSoftDirty();
    if (!report.works) GTEST_SKIP() << "soft-dirty does not work here: " << report.reason;
  }
};

TEST_F(SoftDirtyBehaviourTest, WrittenBlocksAreCollected) {
  auto r = MakeRegion(64, TrackerKind::kSoftDirty);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(CollectBlocks(*r), Vec{});
  WriteByte(*r, 3 * kBlock, 1);
  WriteByte(*r, 40 * kBlock, 1);
  EXPECT_EQ(CollectBlocks(*r), (Vec{3, 40}));
  EXPECT_EQ(CollectBlocks(*r), Vec{});
}

// clear_refs is process-wide: collecting one region must not lose another region's writes.
TEST_F(SoftDirtyBehaviourTest, CollectingOneRegionKeepsTheOthersWrites) {
  auto a = MakeRegion(16, TrackerKind::kSoftDirty);
  auto b = MakeRegion(16, TrackerKind::kSoftDirty);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  WriteByte(*a, 1 * kBlock, 1);
  WriteByte(*b, 2 * kBlock, 1);
  EXPECT_EQ(CollectBlocks(*a), Vec{1});
  WriteByte(*b, 5 * kBlock, 1);
  EXPECT_EQ(CollectBlocks(*b), (Vec{2, 5}));
}

TEST_F(SoftDirtyBehaviourTest, PagesDroppedByMadviseAreReported) {
  auto r = MakeRegion(8, TrackerKind::kSoftDirty);
  ASSERT_NE(r, nullptr);
  WriteByte(*r, 3 * kBlock, 1);
  EXPECT_EQ(CollectBlocks(*r), Vec{3});
  ASSERT_EQ(madvise(r->data() + 3 * kBlock, kBlock, MADV_DONTNEED), 0);
  EXPECT_EQ(CollectBlocks(*r), Vec{3});
}

}  // namespace
}  // namespace ickpt
