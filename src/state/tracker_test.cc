// Tracker correctness for every tracker of this version: several threads write between captures
// taken at safe points; nothing written before a capture is missing from it (checked against a
// shadow copy of what the last capture saw).
#include "src/state/tracker.h"

#include <atomic>
#include <cstring>
#include <random>
#include <thread>

#include "gtest/gtest.h"
#include "src/state/region_internal.h"
#include "src/testing/status_matchers.h"

namespace ickpt {
namespace {

constexpr uint32_t kBlock = 4096;

class TrackerRoundsTest : public ::testing::TestWithParam<TrackerKind> {};

TEST_P(TrackerRoundsTest, ThreadsWritingBetweenCapturesLoseNothing) {
  RegionOptions o;
  o.size = 256 * kBlock;
  o.tracker = GetParam();
  ASSERT_OK_AND_ASSIGN(auto r, RegionAccess::Create("r", o, kBlock));
  std::string shadow(r->size(), '\0');  // content as of the last capture, rebuilt from captures
  ASSERT_OK(RegionAccess::Collect(*r).status());
  std::mt19937_64 seed_rng(11);
  for (int round = 0; round < 1000; ++round) {
    std::vector<std::thread> writers;
    for (int t = 0; t < 3; ++t) {
      writers.emplace_back([&, seed = seed_rng()] {
        std::mt19937_64 rng(seed);
        for (int i = 0; i < 4; ++i) {
          const uint64_t off = rng() % (r->size() - 8);
          const uint64_t v = rng() | 1;
          std::memcpy(r->data() + off, &v, 8);
          if (GetParam() == TrackerKind::kExplicit) r->MarkDirty(off, 8);
        }
      });
    }
    for (auto& w : writers) w.join();
    // The capture point: apply captured blocks to the shadow; then the shadow must equal memory.
    ASSERT_OK_AND_ASSIGN(DirtyBitmap d, RegionAccess::Collect(*r));
    d.ForEachRun([&](uint64_t first, uint64_t count) {
      std::memcpy(shadow.data() + first * kBlock, r->data() + first * kBlock, count * kBlock);
    });
    ASSERT_EQ(0, std::memcmp(shadow.data(), r->data(), r->size())) << "round " << round;
  }
}

INSTANTIATE_TEST_SUITE_P(AllTrackers, TrackerRoundsTest,
                         ::testing::Values(TrackerKind::kHash, TrackerKind::kExplicit),
                         [](const auto& info) { return std::string(TrackerName(info.param)); });

TEST(TrackerTest, NamesParseAndAutoResolves) {
  ASSERT_OK_AND_ASSIGN(TrackerKind k, ParseTrackerName("hash"));
  EXPECT_EQ(k, TrackerKind::kHash);
  EXPECT_FALSE(ParseTrackerName("magic").ok());
  ASSERT_OK_AND_ASSIGN(auto t, NewTracker(TrackerKind::kAuto));
  EXPECT_EQ(t->name(), "hash");
}

}  // namespace
}  // namespace ickpt
