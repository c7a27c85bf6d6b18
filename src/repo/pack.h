// Packs (format.md §4): immutable objects holding the data of many blocks as a raw stream cut into
// checksummed, optionally zstd-compressed frames of at most 64 KiB, with the index at the end.
//
// Writing: PackBuilder assembles a pack frame by frame on one thread; the persist pipeline
// (pack_pipeline.h) builds several packs at once, each compressing through its thread's zstd
// context. EncodeFrame() encodes one frame on its own (tests, tools).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "ickpt/store.h"
#include "src/util/hash.h"

typedef struct ZSTD_CCtx_s ZSTD_CCtx;  // zstd.h's
typedef struct ZSTD_DCtx_s ZSTD_DCtx;

namespace ickpt {

inline constexpr uint32_t kMaxFrameRawBytes = 64 * 1024;
inline constexpr uint32_t kMaxFrameStoredBytes = kMaxFrameRawBytes + 512;
inline constexpr size_t kPackHeaderBytes = 16;
inline constexpr size_t kPackFooterBytes = 32;

enum class FrameCodec : uint8_t { kRaw = 0, kZstd = 1 };

struct EncodedFrame {
  std::string stored;
  uint32_t raw_len = 0;
  FrameCodec codec = FrameCodec::kRaw;
  uint64_t raw_xxh3 = 0;
};

// Compresses `raw` (1..kMaxFrameRawBytes bytes) with zstd at `level`, or stores it raw when that
// saves less than 1/32. Thread-safe.
EncodedFrame EncodeFrame(std::string_view raw, int level);

// One frame as described by a pack's index, with offsets resolved.
struct FrameInfo {
  uint64_t stored_offset = 0;  // in the pack
  uint32_t stored_len = 0;
  uint64_t raw_offset = 0;  // in the raw stream
  uint32_t raw_len = 0;
  FrameCodec codec = FrameCodec::kRaw;
  uint64_t raw_xxh3 = 0;
};

struct PackIndex {
  uint16_t major = 1;
  uint16_t minor = 0;
  uint64_t pack_size = 0;
  uint64_t raw_size = 0;
  std::vector<FrameInfo> frames;  // ordered by offset
  // Indices [first, last] of the frames covering raw bytes [raw_offset, raw_offset + length);
  // OutOfRange if the range is empty or not inside the raw stream.
  absl::StatusOr<std::pair<size_t, size_t>> FramesCovering(uint64_t raw_offset,
                                                           uint64_t length) const;
};

struct FinishedPack {
  std::string sha256_hex;  // the pack's name
  std::string bytes;
  uint64_t raw_size = 0;
};

class PackBuilder {
 public:
  PackBuilder();
  // Appends a frame; returns the raw-stream offset of its first byte.
  uint64_t AddFrame(EncodedFrame frame);
  // Encodes `raw` as EncodeFrame() does and appends it, compressing with the caller's context
  // through `scratch` (reused across frames, so no frame allocates): the persist pipeline's way.
  uint64_t AddFrame(std::string_view raw, int level, ZSTD_CCtx* cctx, std::string* scratch);
  // Makes room for `stored_bytes` more bytes of frames, so that a pack is built without regrowing.
  void Reserve(size_t stored_bytes);
  uint64_t stored_size() const;  // bytes so far, without index and footer
  uint64_t raw_size() const;
  size_t frame_count() const;
  bool empty() const;
  // Writes index and footer and names the pack. The builder is empty afterwards.
  FinishedPack Finish();

 private:
  // Appends one encoded frame and its index entry; returns its raw-stream offset.
  uint64_t Append(std::string_view stored, uint64_t raw_len, FrameCodec codec, uint64_t raw_xxh3);

  std::string bytes_;
  std::string index_entries_;
  uint64_t raw_size_ = 0;
  size_t frame_count_ = 0;
};

// What a pack's footer says about its index.
struct PackFooter {
  uint64_t index_offset = 0;
  uint32_t index_length = 0;
  uint64_t index_xxh3 = 0;
};

// Parses the footer (the last kPackFooterBytes of a pack of `pack_size` bytes): where the index
// lies and its checksum. DataLoss naming `key` if malformed or if the index does not fit between
// the header and the footer.
absl::StatusOr<PackFooter> ParsePackFooter(std::string_view footer, uint64_t pack_size,
                                           std::string_view key);
// Decodes and checks the index bytes against the footer's checksum and the pack size.
absl::StatusOr<PackIndex> ParsePackIndex(std::string_view index, uint64_t index_offset,
                                         uint64_t pack_size, uint64_t expected_xxh3,
                                         std::string_view key);
// How much of a pack's end ReadPackIndex asks for: the footer and, for a pack of up to about 1,600
// frames, its whole index (an entry takes at most 20 bytes, format.md §4; a 4 MiB pack has 64
// frames of 64 KiB, or 1,024 of 4 KiB blocks cut apart).
inline constexpr uint64_t kPackTailReadBytes = 32 * 1024;
// Reads footer and index of pack `key`: one ObjectStore::GetTail (one request on S3), and one more
// range read only for an index longer than that tail holds.
absl::StatusOr<PackIndex> ReadPackIndex(ObjectStore* store, std::string_view key);
// Decompresses one frame and verifies its checksum; DataLoss naming `key` and the frame offset.
absl::StatusOr<std::string> DecodeFrame(const FrameInfo& frame, std::string_view stored,
                                        std::string_view key);
// One reading thread's frame decoding, as DecodeFrame but with a zstd context and a buffer of its
// own, reused frame after frame (a raw frame is checked where it lies): restores use it so that
// every frame is verified in a buffer of its own before a byte of it reaches the region (§9), and
// nothing is allocated per frame. Not thread-safe: one per thread.
class FrameDecoder {
 public:
  FrameDecoder();
  ~FrameDecoder();
  FrameDecoder(const FrameDecoder&) = delete;
  FrameDecoder& operator=(const FrameDecoder&) = delete;
  // The frame's verified raw bytes, valid until the next call or until `stored` changes.
  absl::StatusOr<std::string_view> Decode(const FrameInfo& frame, std::string_view stored,
                                          std::string_view key);

 private:
  ZSTD_DCtx* dctx_;
  std::string scratch_;
};

// Checks a whole pack: header, footer, index, every frame's checksum, and that its sha256 is
// `expected_sha256_hex` (if not empty). Used by `verify --data`.
absl::StatusOr<PackIndex> VerifyPack(std::string_view bytes, std::string_view expected_sha256_hex,
                                     std::string_view key);

}  // namespace ickpt
