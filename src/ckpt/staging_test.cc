// Staging memory and the pause's parallel copy, alone (the checkpointer tests cover their use).
#include "src/ckpt/staging.h"

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "src/testing/status_matchers.h"

namespace ickpt {
namespace {

constexpr uint64_t kMiB = 1 << 20;

TEST(StagingPoolTest, BuffersAreReusedAndPreparedAheadForRecentNeeds) {
  StagingPool pool(64 * kMiB);
  ASSERT_OK_AND_ASSIGN(StagingBuffer first, pool.Acquire("a", 4 * kMiB));
  EXPECT_EQ(pool.in_use(), 4 * kMiB);
  EXPECT_EQ(pool.allocations_in_pause(), 1u);
  pool.Release("a", std::move(first));
  EXPECT_EQ(pool.in_use(), 0u);
  // Kept for the next capture of "a": no allocation in the pause.
  ASSERT_OK_AND_ASSIGN(StagingBuffer second, pool.Acquire("a", 3 * kMiB));
  EXPECT_EQ(pool.allocations_in_pause(), 1u);
  EXPECT_GE(second.capacity(), 3 * kMiB);
  pool.Release("a", std::move(second));
  // Prepare makes a buffer of the recent maximum plus headroom ahead of the pause.
  pool.Prepare();
  EXPECT_GE(pool.held(), 5 * kMiB);
  ASSERT_OK_AND_ASSIGN(StagingBuffer third, pool.Acquire("a", 5 * kMiB));
  EXPECT_EQ(pool.allocations_in_pause(), 1u);
  std::memset(third.data(), 1, 5 * kMiB);
  pool.Release("a", std::move(third));
}

TEST(StagingPoolTest, AWholeObjectCaptureIsNotKeptOrPreparedFor) {
  StagingPool pool(256 * kMiB);
  ASSERT_OK_AND_ASSIGN(StagingBuffer whole, pool.Acquire("a", 64 * kMiB, /*typical=*/false));
  pool.Release("a", std::move(whole));
  pool.Prepare();
  EXPECT_EQ(pool.held(), 0u);  // the first full checkpoint's size is not held on to
}

TEST(StagingPoolTest, TheBudgetBoundsWhatIsHeld) {
  StagingPool pool(8 * kMiB);
  ASSERT_OK_AND_ASSIGN(StagingBuffer a, pool.Acquire("a", 6 * kMiB));
  absl::StatusOr<StagingBuffer> b = pool.Acquire("b", 4 * kMiB);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(b.status().ToString().find("'b'"), std::string::npos) << b.status();
  EXPECT_FALSE(pool.Fits(4 * kMiB));
  pool.Release("a", std::move(a));
  EXPECT_TRUE(pool.Fits(4 * kMiB));
  // Kept buffers of other objects are dropped to make room.
  ASSERT_OK_AND_ASSIGN(StagingBuffer c, pool.Acquire("b", 7 * kMiB));
  EXPECT_LE(pool.held(), 8 * kMiB);
  pool.Release("b", std::move(c));
}

// Pieces span up to three 256 KiB chunks and end mid-chunk. Buffers are 4 MiB, not more: the test
// is about how pieces are cut and handed out, and under TSan every copied byte is instrumented
// (16 MiB buffers took 261 s of a TSan run).
TEST(ParallelCopierTest, CopiesEveryPieceExactlyOverManyRounds) {
  for (int threads : {1, 2, 4}) {
    ParallelCopier copier(threads);
    std::mt19937_64 rng(threads);
    std::vector<char> from(4 * kMiB), to(4 * kMiB);
    for (char& c : from) c = static_cast<char>(rng());
    for (int round = 0; round < 200; ++round) {
      // memset, not std::fill: at -O1 (the sanitizer builds) std::fill stays a byte loop that
      // TSan instruments byte by byte (140 s for this test); memset is one intercepted call.
      std::memset(to.data(), 0, to.size());
      std::vector<ParallelCopier::Piece> pieces;
      uint64_t out = 0;
      const int n = 1 + static_cast<int>(rng() % 40);
      for (int i = 0; i < n && out < to.size(); ++i) {
        const uint64_t len = std::min<uint64_t>(1 + rng() % (3 * kMiB / 4), to.size() - out);
        const uint64_t at = rng() % (from.size() - len);
        pieces.push_back({to.data() + out, from.data() + at, len});
        out += len;
      }
      copier.Copy(pieces);
      for (const auto& p : pieces) {
        ASSERT_EQ(0, std::memcmp(p.to, p.from, p.bytes))
            << "threads " << threads << " round " << round;
      }
    }
  }
}

}  // namespace
}  // namespace ickpt
