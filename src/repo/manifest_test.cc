#include "src/repo/manifest.h"

#include <random>
#include <string>

#include "gtest/gtest.h"
#include "src/util/coding.h"
#include "src/util/hash.h"

namespace ickpt {
namespace {

constexpr std::string_view kKey = "manifests/ab/test";

Sha256Digest Digest(uint8_t seed) {
  Sha256Digest d{};
  for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<uint8_t>(seed * 31 + i);
  return d;
}

Manifest FullManifest() {
  Manifest m;
  m.checkpoint_id = 7;
  m.kind = CheckpointKind::kFull;
  m.participant = "worker-0";
  m.object_name = "heap";
  m.block_size = 4096;
  m.block_count = 100;
  m.packs = {Digest(1), Digest(2)};
  m.extents = {
      {.first_block = 0, .block_count = 10, .pack_ref = 1, .raw_offset = 0},
      {.first_block = 10, .block_count = 40, .pack_ref = 0},
      {.first_block = 50, .block_count = 50, .pack_ref = 2, .raw_offset = 1 << 20},
  };
  return m;
}

Manifest IncrementalManifest() {
  Manifest m;
  m.checkpoint_id = 9;
  m.base_id = 8;
  m.kind = CheckpointKind::kIncremental;
  m.depth = 2;
  m.participant = "worker-1";
  m.object_name = "arena";
  m.block_size = 65536;
  m.block_count = 1000;
  m.packs = {Digest(3)};
  m.extents = {
      {.first_block = 3, .block_count = 1, .pack_ref = 1, .raw_offset = 65536},
      {.first_block = 7, .block_count = 2, .pack_ref = 0},
      {.first_block = 999, .block_count = 1, .pack_ref = 1, .raw_offset = 0},
  };
  return m;
}

// Recomputes the trailer, to build manifests whose checksum verifies but whose content breaks a
// rule: what a buggy writer would produce.
std::string Resign(std::string bytes) {
  bytes.resize(bytes.size() - 8);
  PutFixed64(&bytes, Xxh3(bytes));
  return bytes;
}

// Header and body up to (not including) the pack count, for hand-built manifests.
std::string HeaderThroughBlockCount(uint64_t block_count, uint8_t object_type = 0) {
  std::string b = "ICKPMANI";
  PutFixed16(&b, 1);
  PutFixed16(&b, 0);
  PutVarint64(&b, 5);  // checkpoint_id
  PutVarint64(&b, 0);  // full
  b.push_back(0);
  PutVarint64(&b, 0);  // depth
  PutLengthPrefixed(&b, "p");
  PutLengthPrefixed(&b, "o");
  b.push_back(static_cast<char>(object_type));
  PutVarint64(&b, 4096);
  PutVarint64(&b, block_count);
  return b;
}

std::string Signed(std::string bytes) {
  PutFixed64(&bytes, Xxh3(bytes));
  return bytes;
}

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

TEST(ManifestTest, FullRoundTrip) {
  const Manifest m = FullManifest();
  ASSERT_TRUE(ValidateManifest(m).ok()) << ValidateManifest(m);
  const std::string bytes = EncodeManifest(m);
  EXPECT_EQ(bytes.substr(0, 8), "ICKPMANI");
  absl::StatusOr<Manifest> decoded = DecodeManifest(bytes, kKey);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, m);
}

TEST(ManifestTest, IncrementalRoundTrip) {
  const Manifest m = IncrementalManifest();
  ASSERT_TRUE(ValidateManifest(m).ok()) << ValidateManifest(m);
  absl::StatusOr<Manifest> decoded = DecodeManifest(EncodeManifest(m), kKey);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, m);
}

TEST(ManifestTest, EmptyRegionRoundTrips) {
  Manifest m = FullManifest();
  m.block_count = 0;
  m.packs.clear();
  m.extents.clear();
  ASSERT_TRUE(ValidateManifest(m).ok());
  absl::StatusOr<Manifest> decoded = DecodeManifest(EncodeManifest(m), kKey);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, m);
}

TEST(ManifestTest, GapIsRelativeToThePreviousExtentEnd) {
  Manifest m = IncrementalManifest();
  m.packs.clear();
  m.extents = {{.first_block = 5, .block_count = 2}, {.first_block = 10, .block_count = 1}};
  const std::string bytes = EncodeManifest(m);
  // The extents are the last 6 bytes before the trailer: gap 5, len 2, ref 0, gap 3, len 1, ref 0.
  EXPECT_EQ(bytes.substr(bytes.size() - 8 - 6, 6), std::string("\x05\x02\x00\x03\x01\x00", 6));
}

TEST(ManifestTest, HundredThousandIsolatedBlocksStaySmall) {
  Manifest m;
  m.checkpoint_id = 2;
  m.base_id = 1;
  m.kind = CheckpointKind::kIncremental;
  m.depth = 1;
  m.participant = "p";
  m.object_name = "o";
  m.block_size = 4096;
  m.block_count = 2'000'000;
  m.packs = {Digest(1), Digest(2), Digest(3)};
  std::mt19937 rng(1);
  uint64_t block = 0;
  for (int i = 0; i < 100'000; ++i) {
    block += 2 + rng() % 15;  // isolated: at least one unchanged block between two
    m.extents.push_back({.first_block = block,
                         .block_count = 1,
                         .pack_ref = static_cast<uint32_t>(1 + i % 3),
                         .raw_offset = uint64_t(i) * 4096});
    block += 1;
  }
  ASSERT_TRUE(ValidateManifest(m).ok()) << ValidateManifest(m);
  const std::string bytes = EncodeManifest(m);
  EXPECT_LE(bytes.size(), 100'000 * 4096 / 50) << "format.md §5.1";
  RecordProperty("encoded_bytes", static_cast<int>(bytes.size()));
  absl::StatusOr<Manifest> decoded = DecodeManifest(bytes, kKey);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, m);
}

TEST(ManifestTest, ValidateRejectsBrokenRules) {
  auto rejects = [](const Manifest& m) { return absl::IsInvalidArgument(ValidateManifest(m)); };
  Manifest m = FullManifest();
  m.extents[1].first_block = 11;  // hole: a full manifest must cover every block
  EXPECT_TRUE(rejects(m));
  m = FullManifest();
  m.extents.pop_back();  // ends before block_count
  EXPECT_TRUE(rejects(m));
  m = FullManifest();
  m.extents[2].block_count = 51;  // past block_count
  EXPECT_TRUE(rejects(m));
  m = FullManifest();
  m.base_id = 3;  // full with a base
  EXPECT_TRUE(rejects(m));
  m = FullManifest();
  m.depth = 1;
  EXPECT_TRUE(rejects(m));
  m = FullManifest();
  m.extents[0].pack_ref = 3;  // only two packs
  EXPECT_TRUE(rejects(m));
  m = FullManifest();
  m.block_size = 4096 + 512;
  EXPECT_TRUE(rejects(m));
  m.block_size = 32 << 20;
  EXPECT_TRUE(rejects(m));
  m = FullManifest();
  m.checkpoint_id = 0;
  EXPECT_TRUE(rejects(m));
  m = IncrementalManifest();
  m.base_id.reset();
  EXPECT_TRUE(rejects(m));
  m = IncrementalManifest();
  m.base_id = 9;  // not below its own id
  EXPECT_TRUE(rejects(m));
  m = IncrementalManifest();
  m.depth = 0;
  EXPECT_TRUE(rejects(m));
  m = IncrementalManifest();
  m.extents[1].first_block = 3;  // overlaps the first
  EXPECT_TRUE(rejects(m));
  m = IncrementalManifest();
  std::swap(m.extents[0], m.extents[2]);  // unsorted
  EXPECT_TRUE(rejects(m));
  m = IncrementalManifest();
  m.extents[0].block_count = 0;
  EXPECT_TRUE(rejects(m));
  m = IncrementalManifest();
  m.extents[0].raw_offset = UINT64_MAX - 100;  // its byte range overflows
  EXPECT_TRUE(rejects(m));
}

// Every byte is covered by the trailer, so any flip is DataLoss (or FailedPrecondition when it
// lands on the major version and makes it look newer).
TEST(ManifestTest, EveryFlippedByteIsCaught) {
  for (const Manifest& m : {FullManifest(), IncrementalManifest()}) {
    const std::string bytes = EncodeManifest(m);
    for (size_t i = 0; i < bytes.size(); ++i) {
      for (uint8_t mask : {0x01, 0x80, 0xff}) {
        std::string damaged = bytes;
        damaged[i] = static_cast<char>(damaged[i] ^ mask);
        absl::Status s = DecodeManifest(damaged, kKey).status();
        EXPECT_FALSE(s.ok()) << "byte " << i;
        EXPECT_NE(Msg(s).find(kKey), std::string::npos) << s;
      }
    }
  }
}

TEST(ManifestTest, EveryTruncationIsCaught) {
  const std::string bytes = EncodeManifest(IncrementalManifest());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_TRUE(absl::IsDataLoss(DecodeManifest(bytes.substr(0, n), kKey).status())) << n;
  }
}

TEST(ManifestTest, ResignedRuleViolationsAreDataLoss) {
  // Trailing byte after the extents.
  std::string bytes = EncodeManifest(FullManifest());
  bytes.insert(bytes.size() - 8, "x");
  absl::Status s = DecodeManifest(Resign(bytes), kKey).status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(Msg(s).find("trailing"), std::string::npos) << s;

  // A full manifest with a hole, checksum intact.
  Manifest m = FullManifest();
  m.extents[2].first_block = 51;
  m.extents[2].block_count = 49;
  s = DecodeManifest(EncodeManifest(m), kKey).status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(Msg(s).find("checkpoint 7"), std::string::npos) << s;
}

TEST(ManifestTest, HugeCountsAreRejectedBeforeAllocating) {
  std::string b = HeaderThroughBlockCount(10);
  PutVarint64(&b, kMaxManifestPacks);  // a million packs in a few bytes
  EXPECT_TRUE(absl::IsDataLoss(DecodeManifest(Signed(b), kKey).status()));
  b = HeaderThroughBlockCount(10);
  PutVarint64(&b, kMaxManifestPacks + 1);
  EXPECT_TRUE(absl::IsDataLoss(DecodeManifest(Signed(b), kKey).status()));

  b = HeaderThroughBlockCount(UINT64_MAX);
  PutVarint64(&b, 0);
  PutVarint64(&b, uint64_t{1} << 62);  // extents
  EXPECT_TRUE(absl::IsDataLoss(DecodeManifest(Signed(b), kKey).status()));

  b = HeaderThroughBlockCount(2);
  PutVarint64(&b, 0);
  PutVarint64(&b, 3);  // more extents than blocks
  for (int i = 0; i < 3; ++i) b += std::string("\x00\x01\x00", 3);
  EXPECT_TRUE(absl::IsDataLoss(DecodeManifest(Signed(b), kKey).status()));
}

TEST(ManifestTest, GapOverflowIsRejected) {
  std::string b = HeaderThroughBlockCount(UINT64_MAX);
  PutVarint64(&b, 0);
  PutVarint64(&b, 2);
  PutVarint64(&b, 10);  // first: [10, 11)
  PutVarint64(&b, 1);
  PutVarint64(&b, 0);
  PutVarint64(&b, UINT64_MAX - 5);  // gap that wraps around
  PutVarint64(&b, 1);
  PutVarint64(&b, 0);
  EXPECT_TRUE(absl::IsDataLoss(DecodeManifest(Signed(b), kKey).status()));
}

TEST(ManifestTest, NewerMajorIsRefusedNamingVersions) {
  std::string bytes = EncodeManifest(FullManifest());
  bytes[8] = 3;
  bytes[10] = 4;
  absl::Status s = DecodeManifest(Resign(bytes), kKey).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(Msg(s).find("3.4"), std::string::npos) << s;
  EXPECT_NE(Msg(s).find("1.x"), std::string::npos) << s;
  EXPECT_NE(Msg(s).find(kKey), std::string::npos) << s;
}

TEST(ManifestTest, NewerMinorIsAccepted) {
  std::string bytes = EncodeManifest(FullManifest());
  bytes[10] = 9;
  EXPECT_TRUE(DecodeManifest(Resign(bytes), kKey).ok());
}

TEST(ManifestTest, UnknownObjectTypeIsRefusedByName) {
  // Type 2 (channel state) is reserved: no reader of this version knows it.
  std::string b = HeaderThroughBlockCount(0, /*object_type=*/2);
  PutVarint64(&b, 0);
  PutVarint64(&b, 0);
  absl::Status s = DecodeManifest(Signed(b), kKey).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(Msg(s).find("channel state"), std::string::npos) << s;
}

}  // namespace
}  // namespace ickpt
