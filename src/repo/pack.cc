// Pack encoding and decoding, format.md §4.
#include "src/repo/pack.h"

#include <zstd.h>

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "src/util/coding.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

constexpr std::string_view kPackMagic = "ICKPACK1";
constexpr std::string_view kPackEndMagic = "ICKPEND1";
constexpr uint16_t kPackMajor = 1;
constexpr uint16_t kPackMinor = 0;
// Smallest index entry: 1-byte stored_len, 1-byte raw_len, codec, xxh3. Bounds frame_count by the
// index length before anything is allocated for it (format.md §10).
constexpr size_t kMinIndexEntryBytes = 1 + 1 + 1 + 8;
// u16 major | u16 minor | varint k (at least one byte).
constexpr size_t kMinIndexBytes = 5;

absl::Status PackDataLoss(std::string_view key, std::string_view what) {
  return absl::DataLossError(StrCat("pack ", key, ": ", what));
}

}  // namespace

namespace {

// format.md §4: `raw` compressed with zstd at `level` (through the caller's context and scratch
// buffer), or `raw` itself when compression saves less than 1/32, so that readers of barely
// compressible data do not pay for decompression that buys nothing. zstd gives up quickly on data
// that does not compress: on random 64 KiB frames it ran at about 6x the speed of compressing text
// (bench/frame_bench, docs/persist.md), so no guess is made beforehand. The view is valid until
// `scratch` changes.
std::pair<FrameCodec, std::string_view> CompressOrKeep(std::string_view raw, int level,
                                                       ZSTD_CCtx* cctx, std::string* scratch) {
  if (raw.empty()) return {FrameCodec::kRaw, raw};
  const size_t bound = ZSTD_compressBound(raw.size());
  if (scratch->size() < bound) scratch->resize(bound);
  const size_t n =
      ZSTD_compressCCtx(cctx, scratch->data(), scratch->size(), raw.data(), raw.size(), level);
  if (!ZSTD_isError(n) && n <= raw.size() - raw.size() / 32) {
    return {FrameCodec::kZstd, std::string_view(scratch->data(), n)};
  }
  return {FrameCodec::kRaw, raw};
}

}  // namespace

EncodedFrame EncodeFrame(std::string_view raw, int level) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  std::string scratch;
  const auto [codec, stored] = CompressOrKeep(raw, level, cctx, &scratch);
  ZSTD_freeCCtx(cctx);
  EncodedFrame frame;
  frame.raw_len = static_cast<uint32_t>(raw.size());
  frame.raw_xxh3 = Xxh3(raw);
  frame.codec = codec;
  frame.stored.assign(stored.data(), stored.size());
  return frame;
}

PackBuilder::PackBuilder() {
  bytes_.append(kPackMagic);
  PutFixed16(&bytes_, kPackMajor);
  PutFixed16(&bytes_, kPackMinor);
  PutFixed32(&bytes_, 0);
}

uint64_t PackBuilder::AddFrame(EncodedFrame frame) {
  return Append(frame.stored, frame.raw_len, frame.codec, frame.raw_xxh3);
}

uint64_t PackBuilder::AddFrame(std::string_view raw, int level, ZSTD_CCtx* cctx,
                               std::string* scratch) {
  const auto [codec, stored] = CompressOrKeep(raw, level, cctx, scratch);
  return Append(stored, raw.size(), codec, Xxh3(raw));
}

uint64_t PackBuilder::Append(std::string_view stored, uint64_t raw_len, FrameCodec codec,
                             uint64_t raw_xxh3) {
  const uint64_t raw_offset = raw_size_;
  bytes_.append(stored);
  PutVarint64(&index_entries_, stored.size());
  PutVarint64(&index_entries_, raw_len);
  index_entries_.push_back(static_cast<char>(codec));
  PutFixed64(&index_entries_, raw_xxh3);
  raw_size_ += raw_len;
  ++frame_count_;
  return raw_offset;
}

void PackBuilder::Reserve(size_t stored_bytes) { bytes_.reserve(bytes_.size() + stored_bytes); }

uint64_t PackBuilder::stored_size() const { return bytes_.size(); }
uint64_t PackBuilder::raw_size() const { return raw_size_; }
size_t PackBuilder::frame_count() const { return frame_count_; }
bool PackBuilder::empty() const { return frame_count_ == 0; }

FinishedPack PackBuilder::Finish() {
  std::string index;
  PutFixed16(&index, kPackMajor);
  PutFixed16(&index, kPackMinor);
  PutVarint64(&index, frame_count_);
  index.append(index_entries_);

  FinishedPack pack;
  pack.raw_size = raw_size_;
  pack.bytes = std::move(bytes_);
  const uint64_t index_offset = pack.bytes.size();
  pack.bytes.append(index);
  PutFixed64(&pack.bytes, index_offset);
  PutFixed32(&pack.bytes, static_cast<uint32_t>(index.size()));
  PutFixed32(&pack.bytes, 0);
  PutFixed64(&pack.bytes, Xxh3(index));
  pack.bytes.append(kPackEndMagic);
  pack.sha256_hex = ToHex(Sha256(pack.bytes));

  *this = PackBuilder();
  return pack;
}

absl::StatusOr<PackFooter> ParsePackFooter(std::string_view footer, uint64_t pack_size,
                                           std::string_view key) {
  if (footer.size() != kPackFooterBytes) {
    return PackDataLoss(key,
                        StrCat("footer is ", footer.size(), " bytes, expected ", kPackFooterBytes));
  }
  if (footer.substr(24) != kPackEndMagic) return PackDataLoss(key, "bad footer magic");
  Decoder d(footer);
  PackFooter f;
  uint32_t reserved = 0;
  d.GetFixed64(&f.index_offset);
  d.GetFixed32(&f.index_length);
  d.GetFixed32(&reserved);
  d.GetFixed64(&f.index_xxh3);
  if (reserved != 0) return PackDataLoss(key, "footer reserved field is not 0");
  // Written so that no sum can overflow: the index must lie between header and footer and end
  // exactly where the footer starts.
  if (pack_size < kPackHeaderBytes + kMinIndexBytes + kPackFooterBytes ||
      f.index_offset < kPackHeaderBytes || f.index_length < kMinIndexBytes ||
      f.index_offset > pack_size - kPackFooterBytes ||
      f.index_length != pack_size - kPackFooterBytes - f.index_offset) {
    return PackDataLoss(key, StrCat("footer places the index at [", f.index_offset, ", +",
                                    f.index_length, ") in a pack of ", pack_size, " bytes"));
  }
  return f;
}

absl::StatusOr<PackIndex> ParsePackIndex(std::string_view index, uint64_t index_offset,
                                         uint64_t pack_size, uint64_t expected_xxh3,
                                         std::string_view key) {
  if (index_offset < kPackHeaderBytes || index_offset > pack_size ||
      index.size() > pack_size - index_offset ||
      pack_size - index_offset - index.size() != kPackFooterBytes) {
    return PackDataLoss(key, StrCat("index of ", index.size(), " bytes at offset ", index_offset,
                                    " does not fit a pack of ", pack_size, " bytes"));
  }
  if (Xxh3(index) != expected_xxh3) return PackDataLoss(key, "index checksum mismatch");
  Decoder d(index);
  PackIndex result;
  uint64_t frame_count = 0;
  if (!d.GetFixed16(&result.major) || !d.GetFixed16(&result.minor) ||
      !d.GetVarint64(&frame_count)) {
    return PackDataLoss(key, "truncated index header");
  }
  if (result.major == 0) return PackDataLoss(key, "index version 0.x does not exist");
  if (result.major > kPackMajor) {
    return absl::FailedPreconditionError(
        StrCat("pack ", key, ": index version ", result.major, ".", result.minor,
               " is newer than this reader supports (", kPackMajor, ".x)"));
  }
  if (frame_count > d.remaining() / kMinIndexEntryBytes) {
    return PackDataLoss(
        key, StrCat("index claims ", frame_count, " frames in ", d.remaining(), " bytes"));
  }
  result.pack_size = pack_size;
  result.frames.reserve(frame_count);
  uint64_t stored_offset = kPackHeaderBytes;
  uint64_t raw_offset = 0;
  for (uint64_t i = 0; i < frame_count; ++i) {
    uint64_t stored_len = 0;
    uint64_t raw_len = 0;
    uint8_t codec = 0;
    uint64_t xxh3 = 0;
    if (!d.GetVarint64(&stored_len) || !d.GetVarint64(&raw_len) || !d.GetFixed8(&codec) ||
        !d.GetFixed64(&xxh3)) {
      return PackDataLoss(key, StrCat("truncated index entry ", i));
    }
    if (raw_len < 1 || raw_len > kMaxFrameRawBytes || stored_len < 1 ||
        stored_len > kMaxFrameStoredBytes) {
      return PackDataLoss(key, StrCat("frame ", i, " has stored_len ", stored_len, " raw_len ",
                                      raw_len, " (out of range)"));
    }
    if (codec > static_cast<uint8_t>(FrameCodec::kZstd)) {
      return PackDataLoss(key, StrCat("frame ", i, " has unknown codec ", static_cast<int>(codec)));
    }
    if (codec == static_cast<uint8_t>(FrameCodec::kRaw) && stored_len != raw_len) {
      return PackDataLoss(
          key, StrCat("raw frame ", i, " has stored_len ", stored_len, " != raw_len ", raw_len));
    }
    if (stored_len > index_offset - stored_offset) {
      return PackDataLoss(key, StrCat("frame ", i, " at offset ", stored_offset,
                                      " runs past the index at ", index_offset));
    }
    FrameInfo& frame = result.frames.emplace_back();
    frame.stored_offset = stored_offset;
    frame.stored_len = static_cast<uint32_t>(stored_len);
    frame.raw_offset = raw_offset;
    frame.raw_len = static_cast<uint32_t>(raw_len);
    frame.codec = static_cast<FrameCodec>(codec);
    frame.raw_xxh3 = xxh3;
    stored_offset += stored_len;
    raw_offset += raw_len;  // cannot overflow: ≤ 64 KiB per frame, frames bounded by pack size
  }
  if (!d.empty()) {
    return PackDataLoss(key, StrCat(d.remaining(), " trailing bytes after the index"));
  }
  if (stored_offset != index_offset) {
    return PackDataLoss(
        key, StrCat("frames end at ", stored_offset, " but the index starts at ", index_offset));
  }
  result.raw_size = raw_offset;
  return result;
}

absl::StatusOr<PackIndex> ReadPackIndex(ObjectStore* store, std::string_view key) {
  absl::StatusOr<ObjectTail> tail = store->GetTail(key, kPackTailReadBytes);
  if (!tail.ok()) return tail.status();
  const uint64_t size = tail->object_size;
  if (size < kPackHeaderBytes + kMinIndexBytes + kPackFooterBytes) {
    return PackDataLoss(key, StrCat("pack is only ", size, " bytes"));
  }
  const std::string_view bytes = tail->bytes;
  if (bytes.size() != std::min<uint64_t>(size, kPackTailReadBytes)) {
    return PackDataLoss(key, StrCat("read ", bytes.size(), " bytes of its end, expected ",
                                    std::min<uint64_t>(size, kPackTailReadBytes)));
  }
  // ParsePackFooter bounds index_length by the object size, so the read below is bounded too.
  absl::StatusOr<PackFooter> footer =
      ParsePackFooter(bytes.substr(bytes.size() - kPackFooterBytes), size, key);
  if (!footer.ok()) return footer.status();
  const uint64_t tail_offset = size - bytes.size();
  if (footer->index_offset >= tail_offset) {  // the usual case: the index came with the footer
    return ParsePackIndex(bytes.substr(footer->index_offset - tail_offset, footer->index_length),
                          footer->index_offset, size, footer->index_xxh3, key);
  }
  absl::StatusOr<std::string> index =
      store->GetRange(key, footer->index_offset, footer->index_length);
  if (!index.ok()) return index.status();
  return ParsePackIndex(*index, footer->index_offset, size, footer->index_xxh3, key);
}

FrameDecoder::FrameDecoder() : dctx_(ZSTD_createDCtx()) {}
FrameDecoder::~FrameDecoder() { ZSTD_freeDCtx(dctx_); }

absl::StatusOr<std::string_view> FrameDecoder::Decode(const FrameInfo& frame,
                                                      std::string_view stored,
                                                      std::string_view key) {
  auto frame_error = [&](std::string_view what) {
    return absl::DataLossError(
        StrCat("pack ", key, ": frame at offset ", frame.stored_offset, ": ", what));
  };
  if (frame.raw_len < 1 || frame.raw_len > kMaxFrameRawBytes) {
    return frame_error(StrCat("raw_len ", frame.raw_len, " out of range"));
  }
  if (stored.size() != frame.stored_len) {
    return frame_error(
        StrCat("got ", stored.size(), " stored bytes, index says ", frame.stored_len));
  }
  std::string_view raw;
  switch (frame.codec) {
    case FrameCodec::kRaw:
      if (stored.size() != frame.raw_len) {
        return frame_error("raw frame with stored_len != raw_len");
      }
      raw = stored;
      break;
    case FrameCodec::kZstd: {
      // One zstd frame, declaring exactly raw_len bytes: checked before decompressing so that a
      // damaged header cannot make us decompress more than the buffer holds.
      if (ZSTD_findFrameCompressedSize(stored.data(), stored.size()) != stored.size()) {
        return frame_error("not exactly one zstd frame");
      }
      const unsigned long long content = ZSTD_getFrameContentSize(stored.data(), stored.size());
      if (content != frame.raw_len) return frame_error("zstd content size != raw_len");
      if (scratch_.size() < frame.raw_len) scratch_.resize(kMaxFrameRawBytes);
      const size_t n =
          ZSTD_decompressDCtx(dctx_, scratch_.data(), frame.raw_len, stored.data(), stored.size());
      if (ZSTD_isError(n)) {
        return frame_error(StrCat("zstd: ", ZSTD_getErrorName(n)));
      }
      if (n != frame.raw_len) return frame_error("decompressed size != raw_len");
      raw = std::string_view(scratch_.data(), n);
      break;
    }
    default:
      return frame_error(StrCat("unknown codec ", static_cast<int>(frame.codec)));
  }
  // format.md §4: verified before any byte is handed out.
  if (Xxh3(raw) != frame.raw_xxh3) return frame_error("checksum mismatch");
  return raw;
}

absl::StatusOr<std::string> DecodeFrame(const FrameInfo& frame, std::string_view stored,
                                        std::string_view key) {
  FrameDecoder decoder;
  absl::StatusOr<std::string_view> raw = decoder.Decode(frame, stored, key);
  if (!raw.ok()) return raw.status();
  return std::string(*raw);
}

absl::StatusOr<PackIndex> VerifyPack(std::string_view bytes, std::string_view expected_sha256_hex,
                                     std::string_view key) {
  if (bytes.size() < kPackHeaderBytes + kMinIndexBytes + kPackFooterBytes) {
    return PackDataLoss(key, StrCat("pack is only ", bytes.size(), " bytes"));
  }
  if (bytes.substr(0, kPackMagic.size()) != kPackMagic) return PackDataLoss(key, "bad magic");
  const uint16_t major = DecodeFixed16(bytes.data() + 8);
  const uint16_t minor = DecodeFixed16(bytes.data() + 10);
  if (major == 0) return PackDataLoss(key, "header version 0.x does not exist");
  if (major > kPackMajor) {
    return absl::FailedPreconditionError(StrCat("pack ", key, ": version ", major, ".", minor,
                                                " is newer than this reader supports (", kPackMajor,
                                                ".x)"));
  }
  if (DecodeFixed32(bytes.data() + 12) != 0) {
    return PackDataLoss(key, "header reserved field is not 0");
  }
  absl::StatusOr<PackFooter> footer =
      ParsePackFooter(bytes.substr(bytes.size() - kPackFooterBytes), bytes.size(), key);
  if (!footer.ok()) return footer.status();
  absl::StatusOr<PackIndex> index =
      ParsePackIndex(bytes.substr(footer->index_offset, footer->index_length), footer->index_offset,
                     bytes.size(), footer->index_xxh3, key);
  if (!index.ok()) return index.status();
  for (const FrameInfo& frame : index->frames) {
    absl::StatusOr<std::string> raw =
        DecodeFrame(frame, bytes.substr(frame.stored_offset, frame.stored_len), key);
    if (!raw.ok()) return raw.status();
  }
  if (!expected_sha256_hex.empty()) {
    const std::string actual = ToHex(Sha256(bytes));
    if (actual != expected_sha256_hex) {
      return PackDataLoss(key, StrCat("sha256 is ", actual, ", expected ", expected_sha256_hex));
    }
  }
  return index;
}

absl::StatusOr<std::pair<size_t, size_t>> PackIndex::FramesCovering(uint64_t raw_offset,
                                                                    uint64_t length) const {
  if (length == 0 || raw_offset >= raw_size || length > raw_size - raw_offset) {
    return absl::OutOfRangeError(StrCat("raw range [", raw_offset, ", +", length,
                                        ") is empty or outside the raw stream of ", raw_size,
                                        " bytes"));
  }
  // The frame containing byte b is the last one whose raw_offset <= b.
  auto containing = [&](uint64_t b) -> size_t {
    auto it = std::upper_bound(frames.begin(), frames.end(), b,
                               [](uint64_t v, const FrameInfo& f) { return v < f.raw_offset; });
    return static_cast<size_t>(it - frames.begin()) - 1;
  };
  return std::make_pair(containing(raw_offset), containing(raw_offset + length - 1));
}

}  // namespace ickpt
