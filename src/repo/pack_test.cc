#include "src/repo/pack.h"

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ickpt/store.h"
#include "src/util/coding.h"
#include "src/util/hash.h"

namespace ickpt {
namespace {

constexpr std::string_view kKey = "packs/ab/test";

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// Text-like data that zstd shrinks well.
std::string CompressibleBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s;
  while (s.size() < n) s += "block " + std::to_string(rng() % 100) + " of region; ";
  s.resize(n);
  return s;
}

// A pack with a compressed frame, a raw frame, a full-size frame and a one-byte frame, and the raw
// stream it holds.
struct TestPack {
  FinishedPack pack;
  std::string raw_stream;
  std::vector<EncodedFrame> frames;
};

TestPack MakePack(const std::vector<std::string>& raws) {
  TestPack t;
  PackBuilder builder;
  for (const std::string& raw : raws) {
    EncodedFrame frame = EncodeFrame(raw, 3);
    t.frames.push_back(frame);
    EXPECT_EQ(builder.AddFrame(std::move(frame)), t.raw_stream.size());
    t.raw_stream += raw;
  }
  t.pack = builder.Finish();
  return t;
}

TestPack SmallPack() {
  return MakePack({CompressibleBytes(3000, 1), RandomBytes(700, 2), std::string(1, 'x'),
                   CompressibleBytes(5000, 3)});
}

// Reads every frame out of a verified pack.
std::string RawStreamOf(std::string_view bytes, const PackIndex& index) {
  std::string raw;
  for (const FrameInfo& frame : index.frames) {
    absl::StatusOr<std::string> data =
        DecodeFrame(frame, bytes.substr(frame.stored_offset, frame.stored_len), kKey);
    EXPECT_TRUE(data.ok()) << data.status();
    if (data.ok()) raw += *data;
  }
  return raw;
}

// Replaces a pack's index (and fixes footer and checksum) to build packs whose checksums verify
// but whose content lies: what a buggy or malicious writer could produce.
std::string WithIndex(const FinishedPack& pack, std::string_view index) {
  const uint64_t index_offset =
      DecodeFixed64(pack.bytes.data() + pack.bytes.size() - kPackFooterBytes);
  std::string out = pack.bytes.substr(0, index_offset);
  out.append(index);
  PutFixed64(&out, index_offset);
  PutFixed32(&out, static_cast<uint32_t>(index.size()));
  PutFixed32(&out, 0);
  PutFixed64(&out, Xxh3(index));
  out.append("ICKPEND1");
  return out;
}

TEST(EncodeFrameTest, CompressibleDataIsCompressed) {
  const std::string raw = CompressibleBytes(kMaxFrameRawBytes, 7);
  EncodedFrame frame = EncodeFrame(raw, 3);
  EXPECT_EQ(frame.codec, FrameCodec::kZstd);
  EXPECT_LT(frame.stored.size(), raw.size() / 2);
  EXPECT_EQ(frame.raw_len, raw.size());
  EXPECT_EQ(frame.raw_xxh3, Xxh3(raw));
}

TEST(EncodeFrameTest, IncompressibleDataIsStoredRaw) {
  const std::string raw = RandomBytes(kMaxFrameRawBytes, 8);
  EncodedFrame frame = EncodeFrame(raw, 3);
  EXPECT_EQ(frame.codec, FrameCodec::kRaw);
  EXPECT_EQ(frame.stored, raw);
}

TEST(EncodeFrameTest, SavingLessThanOneThirtySecondIsStoredRaw) {
  // Random bytes followed by a short run of zeros: zstd saves a little, less than 1/32.
  std::string raw = RandomBytes(64000, 9) + std::string(1000, '\0');
  EncodedFrame frame = EncodeFrame(raw, 3);
  EXPECT_EQ(frame.codec, FrameCodec::kRaw);
  // A run of 1/8 of the frame saves more than 1/32: compressed.
  raw = RandomBytes(56000, 9) + std::string(8000, '\0');
  EXPECT_EQ(EncodeFrame(raw, 3).codec, FrameCodec::kZstd);
}

TEST(PackTest, RoundTripThroughVerifyPack) {
  TestPack t = SmallPack();
  EXPECT_EQ(t.pack.sha256_hex, ToHex(Sha256(t.pack.bytes)));
  EXPECT_EQ(t.pack.raw_size, t.raw_stream.size());
  EXPECT_EQ(t.pack.bytes.substr(0, 8), "ICKPACK1");
  absl::StatusOr<PackIndex> index = VerifyPack(t.pack.bytes, t.pack.sha256_hex, kKey);
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->pack_size, t.pack.bytes.size());
  EXPECT_EQ(index->raw_size, t.raw_stream.size());
  ASSERT_EQ(index->frames.size(), 4u);
  EXPECT_EQ(index->frames[0].codec, FrameCodec::kZstd);
  EXPECT_EQ(index->frames[1].codec, FrameCodec::kRaw);
  EXPECT_EQ(index->frames[0].stored_offset, kPackHeaderBytes);
  EXPECT_EQ(RawStreamOf(t.pack.bytes, *index), t.raw_stream);
}

TEST(PackTest, FullSizeFramesRoundTrip) {
  TestPack t = MakePack({CompressibleBytes(kMaxFrameRawBytes, 1), RandomBytes(kMaxFrameRawBytes, 2),
                         std::string(kMaxFrameRawBytes, '\0')});
  absl::StatusOr<PackIndex> index = VerifyPack(t.pack.bytes, t.pack.sha256_hex, kKey);
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(RawStreamOf(t.pack.bytes, *index), t.raw_stream);
}

TEST(PackTest, EmptyPackVerifies) {
  PackBuilder builder;
  EXPECT_TRUE(builder.empty());
  FinishedPack pack = builder.Finish();
  absl::StatusOr<PackIndex> index = VerifyPack(pack.bytes, pack.sha256_hex, kKey);
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_TRUE(index->frames.empty());
}

TEST(PackTest, BuilderIsReusableAfterFinish) {
  PackBuilder builder;
  builder.AddFrame(EncodeFrame("abc", 3));
  EXPECT_EQ(builder.frame_count(), 1u);
  EXPECT_EQ(builder.raw_size(), 3u);
  EXPECT_EQ(builder.stored_size(), kPackHeaderBytes + 3);
  builder.Finish();
  EXPECT_TRUE(builder.empty());
  EXPECT_EQ(builder.raw_size(), 0u);
  EXPECT_EQ(builder.AddFrame(EncodeFrame("def", 3)), 0u);
  FinishedPack pack = builder.Finish();
  absl::StatusOr<PackIndex> index = VerifyPack(pack.bytes, pack.sha256_hex, kKey);
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(RawStreamOf(pack.bytes, *index), "def");
}

TEST(PackTest, ReadPackIndexMatchesVerifyPack) {
  TestPack t = SmallPack();
  std::unique_ptr<ObjectStore> store = NewMemoryStore();
  const std::string key = "packs/" + t.pack.sha256_hex.substr(0, 2) + "/" + t.pack.sha256_hex;
  ASSERT_TRUE(store->Put(key, t.pack.bytes).ok());
  absl::StatusOr<PackIndex> read = ReadPackIndex(store.get(), key);
  ASSERT_TRUE(read.ok()) << read.status();
  absl::StatusOr<PackIndex> verified = VerifyPack(t.pack.bytes, "", key);
  ASSERT_TRUE(verified.ok());
  ASSERT_EQ(read->frames.size(), verified->frames.size());
  for (size_t i = 0; i < read->frames.size(); ++i) {
    EXPECT_EQ(read->frames[i].stored_offset, verified->frames[i].stored_offset);
    EXPECT_EQ(read->frames[i].raw_offset, verified->frames[i].raw_offset);
    EXPECT_EQ(read->frames[i].raw_xxh3, verified->frames[i].raw_xxh3);
  }
  EXPECT_EQ(read->raw_size, t.raw_stream.size());
}

TEST(PackTest, ReadPackIndexOfMissingPackIsNotFound) {
  std::unique_ptr<ObjectStore> store = NewMemoryStore();
  EXPECT_TRUE(absl::IsNotFound(ReadPackIndex(store.get(), "packs/aa/missing").status()));
}

TEST(PackTest, ReadPackIndexRejectsEveryTruncation) {
  TestPack t = SmallPack();
  std::unique_ptr<ObjectStore> store = NewMemoryStore();
  for (size_t n = 0; n < t.pack.bytes.size(); ++n) {
    const std::string key = "packs/aa/t" + std::to_string(n);
    ASSERT_TRUE(store->Put(key, t.pack.bytes.substr(0, n)).ok());
    absl::StatusOr<PackIndex> index = ReadPackIndex(store.get(), key);
    EXPECT_TRUE(absl::IsDataLoss(index.status())) << "truncated to " << n;
  }
}

TEST(PackTest, WrongNameIsDataLoss) {
  TestPack t = SmallPack();
  std::string other = t.pack.sha256_hex;
  other[0] = other[0] == '0' ? '1' : '0';
  absl::Status s = VerifyPack(t.pack.bytes, other, kKey).status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(std::string(s.message()).find(kKey), std::string::npos) << s;
}

// Flips each bit pattern into every byte: header, frames, index and footer. VerifyPack must fail
// for all of them when it knows the name; without the name it may only succeed if every frame
// still decodes to the original bytes (a zstd bit that does not matter).
TEST(PackTest, EveryFlippedByteIsCaught) {
  TestPack t = SmallPack();
  for (size_t i = 0; i < t.pack.bytes.size(); ++i) {
    for (uint8_t mask : {0x01, 0x80, 0xff}) {
      std::string damaged = t.pack.bytes;
      damaged[i] = static_cast<char>(damaged[i] ^ mask);
      EXPECT_FALSE(VerifyPack(damaged, t.pack.sha256_hex, kKey).ok()) << "byte " << i;
      absl::StatusOr<PackIndex> index = VerifyPack(damaged, "", kKey);
      if (index.ok()) {
        EXPECT_EQ(RawStreamOf(damaged, *index), t.raw_stream) << "byte " << i;
      }
    }
  }
}

TEST(PackTest, EveryTruncationIsCaught) {
  TestPack t = SmallPack();
  for (size_t n = 0; n < t.pack.bytes.size(); ++n) {
    EXPECT_FALSE(VerifyPack(t.pack.bytes.substr(0, n), "", kKey).ok()) << "length " << n;
  }
  EXPECT_FALSE(VerifyPack(t.pack.bytes + "x", "", kKey).ok());
}

// Damage inside frame data must be caught by DecodeFrame itself, the only check a restore runs
// on the bytes it hands out.
TEST(PackTest, DecodeFrameCatchesDamagedFrameData) {
  TestPack t = SmallPack();
  absl::StatusOr<PackIndex> index = VerifyPack(t.pack.bytes, "", kKey);
  ASSERT_TRUE(index.ok());
  for (const FrameInfo& frame : index->frames) {
    const std::string stored = t.pack.bytes.substr(frame.stored_offset, frame.stored_len);
    absl::StatusOr<std::string> original = DecodeFrame(frame, stored, kKey);
    ASSERT_TRUE(original.ok());
    for (size_t i = 0; i < stored.size(); ++i) {
      std::string damaged = stored;
      damaged[i] = static_cast<char>(damaged[i] ^ 0x10);
      absl::StatusOr<std::string> raw = DecodeFrame(frame, damaged, kKey);
      if (raw.ok()) {
        EXPECT_EQ(*raw, *original) << "frame at " << frame.stored_offset << " byte " << i;
      } else {
        EXPECT_TRUE(absl::IsDataLoss(raw.status())) << raw.status();
      }
    }
    EXPECT_FALSE(DecodeFrame(frame, stored.substr(1), kKey).ok());
  }
}

TEST(PackTest, DecodeFrameRefusesZstdFrameLargerThanDeclared) {
  // A zstd frame that expands to 64 KiB, described as 100 bytes: no write past the buffer.
  EncodedFrame frame = EncodeFrame(std::string(kMaxFrameRawBytes, 'a'), 3);
  ASSERT_EQ(frame.codec, FrameCodec::kZstd);
  FrameInfo info;
  info.stored_len = static_cast<uint32_t>(frame.stored.size());
  info.raw_len = 100;
  info.codec = FrameCodec::kZstd;
  info.raw_xxh3 = frame.raw_xxh3;
  EXPECT_TRUE(absl::IsDataLoss(DecodeFrame(info, frame.stored, kKey).status()));
  // Two zstd frames back to back are not one frame.
  EncodedFrame small = EncodeFrame(std::string(1000, 'b'), 3);
  info.stored_len = static_cast<uint32_t>(2 * small.stored.size());
  info.raw_len = 2000;
  info.raw_xxh3 = Xxh3(std::string(2000, 'b'));
  EXPECT_TRUE(absl::IsDataLoss(DecodeFrame(info, small.stored + small.stored, kKey).status()));
}

TEST(PackTest, IndexClaimingTooManyFramesIsRejectedBeforeAllocating) {
  TestPack t = SmallPack();
  std::string index;
  PutFixed16(&index, 1);
  PutFixed16(&index, 0);
  PutVarint64(&index, uint64_t{1} << 60);
  const std::string bytes = WithIndex(t.pack, index);
  absl::Status s = VerifyPack(bytes, "", kKey).status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
}

TEST(PackTest, IndexRulesAreEnforced) {
  TestPack t = MakePack({RandomBytes(100, 1)});  // one raw frame of 100 bytes
  auto index_with = [](uint64_t stored_len, uint64_t raw_len, uint8_t codec, uint16_t major) {
    std::string index;
    PutFixed16(&index, major);
    PutFixed16(&index, 0);
    PutVarint64(&index, 1);
    PutVarint64(&index, stored_len);
    PutVarint64(&index, raw_len);
    index.push_back(static_cast<char>(codec));
    PutFixed64(&index, 0);
    return index;
  };
  // Frames that do not end where the index starts.
  EXPECT_TRUE(
      absl::IsDataLoss(VerifyPack(WithIndex(t.pack, index_with(99, 99, 0, 1)), "", kKey).status()));
  EXPECT_TRUE(absl::IsDataLoss(
      VerifyPack(WithIndex(t.pack, index_with(101, 101, 0, 1)), "", kKey).status()));
  // Raw frame whose lengths differ; unknown codec; raw_len 0.
  EXPECT_TRUE(absl::IsDataLoss(
      VerifyPack(WithIndex(t.pack, index_with(100, 50, 0, 1)), "", kKey).status()));
  EXPECT_TRUE(absl::IsDataLoss(
      VerifyPack(WithIndex(t.pack, index_with(100, 100, 2, 1)), "", kKey).status()));
  EXPECT_TRUE(
      absl::IsDataLoss(VerifyPack(WithIndex(t.pack, index_with(100, 0, 1, 1)), "", kKey).status()));
  // Right layout but a wrong frame checksum (the index says 0).
  EXPECT_TRUE(absl::IsDataLoss(
      VerifyPack(WithIndex(t.pack, index_with(100, 100, 0, 1)), "", kKey).status()));
  // Trailing bytes after the entries.
  EXPECT_TRUE(absl::IsDataLoss(
      VerifyPack(WithIndex(t.pack, index_with(100, 100, 0, 1) + "z"), "", kKey).status()));
  // A newer major index version is refused by version.
  absl::Status newer = VerifyPack(WithIndex(t.pack, index_with(100, 100, 0, 2)), "", kKey).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(newer)) << newer;
}

TEST(PackTest, FramesOverSixtyFourKiBAreRejected) {
  // Two raw frames of 65537 bytes can't come from EncodeFrame; write the pack by hand.
  std::string bytes = "ICKPACK1";
  PutFixed16(&bytes, 1);
  PutFixed16(&bytes, 0);
  PutFixed32(&bytes, 0);
  const std::string raw(kMaxFrameRawBytes + 1, 'q');
  bytes += raw;
  std::string index;
  PutFixed16(&index, 1);
  PutFixed16(&index, 0);
  PutVarint64(&index, 1);
  PutVarint64(&index, raw.size());
  PutVarint64(&index, raw.size());
  index.push_back(0);
  PutFixed64(&index, Xxh3(raw));
  const uint64_t index_offset = bytes.size();
  bytes += index;
  PutFixed64(&bytes, index_offset);
  PutFixed32(&bytes, static_cast<uint32_t>(index.size()));
  PutFixed32(&bytes, 0);
  PutFixed64(&bytes, Xxh3(index));
  bytes += "ICKPEND1";
  absl::Status s = VerifyPack(bytes, "", kKey).status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
}

TEST(PackTest, NewerHeaderVersionIsRefusedByVersion) {
  TestPack t = SmallPack();
  std::string bytes = t.pack.bytes;
  bytes[8] = 2;  // header major
  absl::Status s = VerifyPack(bytes, "", kKey).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(std::string(s.message()).find("2.0"), std::string::npos) << s;
}

TEST(PackIndexTest, FramesCovering) {
  TestPack t = MakePack({std::string(100, 'a'), std::string(50, 'b'), std::string(200, 'c')});
  absl::StatusOr<PackIndex> index = VerifyPack(t.pack.bytes, "", kKey);
  ASSERT_TRUE(index.ok());
  using Range = std::pair<size_t, size_t>;
  EXPECT_EQ(*index->FramesCovering(0, 1), Range(0, 0));
  EXPECT_EQ(*index->FramesCovering(0, 100), Range(0, 0));
  EXPECT_EQ(*index->FramesCovering(99, 2), Range(0, 1));
  EXPECT_EQ(*index->FramesCovering(100, 50), Range(1, 1));
  EXPECT_EQ(*index->FramesCovering(120, 31), Range(1, 2));
  EXPECT_EQ(*index->FramesCovering(0, 350), Range(0, 2));
  EXPECT_EQ(*index->FramesCovering(349, 1), Range(2, 2));
  EXPECT_TRUE(absl::IsOutOfRange(index->FramesCovering(0, 0).status()));
  EXPECT_TRUE(absl::IsOutOfRange(index->FramesCovering(350, 1).status()));
  EXPECT_TRUE(absl::IsOutOfRange(index->FramesCovering(300, 51).status()));
  EXPECT_TRUE(absl::IsOutOfRange(index->FramesCovering(1, UINT64_MAX).status()));
}

}  // namespace
}  // namespace ickpt
