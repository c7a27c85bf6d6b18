#include "ickpt/region.h"

#include <sys/mman.h>

#include <cstring>

#include "gtest/gtest.h"
#include "src/state/region_internal.h"
#include "src/testing/status_matchers.h"

namespace ickpt {
namespace {

constexpr uint32_t kBlock = 4096;

std::unique_ptr<Region> MakeRegion(uint64_t size, TrackerKind tracker) {
  RegionOptions o;
  o.size = size;
  o.tracker = tracker;
  auto r = RegionAccess::Create("r", o, kBlock);
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

TEST(RegionTest, IsPageAlignedZeroFilledAndRoundedToBlocks) {
  auto r = MakeRegion(3 * kBlock + 1, TrackerKind::kHash);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(r->data()) % 4096, 0u);
  EXPECT_EQ(r->block_count(), 4u);
  for (uint64_t i = 0; i < r->size(); ++i) ASSERT_EQ(r->data()[i], 0);
}

TEST(RegionTest, RejectsBadNamesSizesAndBlockSizes) {
  RegionOptions o;
  o.size = 0;
  EXPECT_FALSE(RegionAccess::Create("r", o, kBlock).ok());
  o.size = kBlock;
  EXPECT_FALSE(RegionAccess::Create("r", o, 1000).ok());
  EXPECT_FALSE(RegionAccess::Create("", o, kBlock).ok());
}

TEST(RegionTest, HashTrackerFindsExactlyTheChangedBlocks) {
  auto r = MakeRegion(64 * kBlock, TrackerKind::kHash);
  ASSERT_OK(RegionAccess::Collect(*r).status());
  r->data()[5 * kBlock + 17] = 1;
  r->data()[63 * kBlock] = 2;
  ASSERT_OK_AND_ASSIGN(DirtyBitmap d, RegionAccess::Collect(*r));
  EXPECT_EQ(Blocks(d), (std::vector<uint64_t>{5, 63}));
  ASSERT_OK_AND_ASSIGN(DirtyBitmap again, RegionAccess::Collect(*r));
  EXPECT_FALSE(again.Any()) << "read-and-reset must reset";
}

TEST(RegionTest, ZeroedAndFreedBlocksCountAsChanged) {
  auto r = MakeRegion(8 * kBlock, TrackerKind::kHash);
  std::memset(r->data(), 5, r->size());
  ASSERT_OK(RegionAccess::Collect(*r).status());
  std::memset(r->data() + 2 * kBlock, 0, kBlock);
  ASSERT_EQ(0, madvise(r->data() + 6 * kBlock, kBlock, MADV_DONTNEED));
  ASSERT_OK_AND_ASSIGN(DirtyBitmap d, RegionAccess::Collect(*r));
  EXPECT_EQ(Blocks(d), (std::vector<uint64_t>{2, 6}));
}

TEST(RegionTest, ExplicitTrackerReportsOnlyMarkedRanges) {
  auto r = MakeRegion(16 * kBlock, TrackerKind::kExplicit);
  EXPECT_EQ(r->tracker_name(), "explicit");
  r->data()[0] = 1;                         // not reported: not captured
  r->MarkDirty(3 * kBlock + 10, kBlock);    // spans blocks 3 and 4
  r->MarkDirty(15 * kBlock, 100 * kBlock);  // clipped to the region
  ASSERT_OK_AND_ASSIGN(DirtyBitmap d, RegionAccess::Collect(*r));
  EXPECT_EQ(Blocks(d), (std::vector<uint64_t>{3, 4, 15}));
}

TEST(RegionTest, GrowKeepsContentAndCountsNewBlocksAsChanged) {
  auto r = MakeRegion(4 * kBlock, TrackerKind::kHash);
  std::memset(r->data(), 9, r->size());
  ASSERT_OK(RegionAccess::Collect(*r).status());
  ASSERT_OK(r->Grow(6 * kBlock));
  EXPECT_EQ(r->block_count(), 6u);
  EXPECT_EQ(r->data()[4 * kBlock - 1], 9);
  EXPECT_EQ(r->data()[5 * kBlock], 0);
  ASSERT_OK_AND_ASSIGN(DirtyBitmap d, RegionAccess::Collect(*r));
  EXPECT_EQ(Blocks(d), (std::vector<uint64_t>{4, 5}));
  EXPECT_FALSE(r->Grow(kBlock).ok()) << "shrinking is refused";
}

TEST(RegionTest, MergedBackBlocksAreReportedAgain) {
  auto r = MakeRegion(8 * kBlock, TrackerKind::kHash);
  ASSERT_OK(RegionAccess::Collect(*r).status());
  r->data()[kBlock] = 1;
  ASSERT_OK_AND_ASSIGN(DirtyBitmap d, RegionAccess::Collect(*r));
  RegionAccess::MergeBack(*r, d);  // the checkpoint failed
  r->data()[7 * kBlock] = 1;
  ASSERT_OK_AND_ASSIGN(DirtyBitmap next, RegionAccess::Collect(*r));
  EXPECT_EQ(Blocks(next), (std::vector<uint64_t>{1, 7}));
}

TEST(DirtyBitmapTest, RunsAcrossWordBoundaries) {
  DirtyBitmap d(200);
  d.SetRange(60, 10);
  d.SetRange(128, 64);
  d.Set(199);
  std::vector<std::pair<uint64_t, uint64_t>> runs;
  d.ForEachRun([&](uint64_t f, uint64_t c) { runs.emplace_back(f, c); });
  EXPECT_EQ(runs, (std::vector<std::pair<uint64_t, uint64_t>>{{60, 10}, {128, 64}, {199, 1}}));
  EXPECT_EQ(d.Count(), 75u);
  d.Resize(130);
  EXPECT_EQ(d.Count(), 12u);
}

}  // namespace
}  // namespace ickpt
