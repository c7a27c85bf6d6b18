// Fuzz target: whole packs (format.md §4). VerifyPack on the bytes; then what a restore does, which
// reads only the tail: ParsePackFooter on the last 32 bytes, ParsePackIndex on the bytes the footer
// names and, when both succeed, DecodeFrame of every frame the index lists.
//
// Each input is tried as it is and with the footer's index checksum recomputed, so that mutations
// of the index reach its parser. Whatever parses must be self-consistent: frames in order, inside
// the pack, and found again by FramesCovering.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "src/repo/pack.h"
#include "src/util/coding.h"
#include "src/util/hash.h"

namespace ickpt {
namespace {

constexpr std::string_view kKey = "packs/ab/fuzz";

void CheckIndex(const PackIndex& index, uint64_t index_offset) {
  uint64_t stored = kPackHeaderBytes;
  uint64_t raw = 0;
  for (size_t i = 0; i < index.frames.size(); ++i) {
    const FrameInfo& f = index.frames[i];
    ICKPT_FUZZ_CHECK(f.stored_offset == stored && f.raw_offset == raw, "frame ", i, " misplaced");
    ICKPT_FUZZ_CHECK(f.raw_len >= 1 && f.raw_len <= kMaxFrameRawBytes, "frame ", i, " raw_len");
    ICKPT_FUZZ_CHECK(f.stored_len >= 1 && f.stored_len <= kMaxFrameStoredBytes, "frame ", i);
    stored += f.stored_len;
    raw += f.raw_len;
    absl::StatusOr<std::pair<size_t, size_t>> covering =
        index.FramesCovering(f.raw_offset, f.raw_len);
    ICKPT_FUZZ_CHECK(covering.ok() && covering->first == i && covering->second == i,
                     "FramesCovering does not find frame ", i);
  }
  ICKPT_FUZZ_CHECK(stored == index_offset, "frames end at ", stored, ", index at ", index_offset);
  ICKPT_FUZZ_CHECK(raw == index.raw_size, "raw size ", index.raw_size, " != ", raw);
  ICKPT_FUZZ_CHECK(!index.FramesCovering(index.raw_size, 1).ok(), "range past the end covered");
}

// The restore path: footer, index, frames. Returns the footer when it parsed.
std::optional<PackFooter> ReadTail(std::string_view bytes) {
  if (bytes.size() < kPackFooterBytes) return std::nullopt;
  absl::StatusOr<PackFooter> footer =
      ParsePackFooter(bytes.substr(bytes.size() - kPackFooterBytes), bytes.size(), kKey);
  if (!footer.ok()) return std::nullopt;
  ICKPT_FUZZ_CHECK(footer->index_offset + footer->index_length + kPackFooterBytes == bytes.size(),
                   "footer places the index outside the pack");
  absl::StatusOr<PackIndex> index =
      ParsePackIndex(bytes.substr(footer->index_offset, footer->index_length), footer->index_offset,
                     bytes.size(), footer->index_xxh3, kKey);
  if (index.ok()) {
    CheckIndex(*index, footer->index_offset);
    for (const FrameInfo& frame : index->frames) {
      absl::StatusOr<std::string> raw =
          DecodeFrame(frame, bytes.substr(frame.stored_offset, frame.stored_len), kKey);
      if (raw.ok()) ICKPT_FUZZ_CHECK(raw->size() == frame.raw_len, "frame size");
    }
  }
  return *footer;
}

void VerifyAndRead(std::string_view bytes) {
  absl::StatusOr<PackIndex> verified = VerifyPack(bytes, "", kKey);
  if (verified.ok()) {
    ICKPT_FUZZ_CHECK(bytes.size() >= kPackFooterBytes, "tiny pack verified");
    CheckIndex(*verified, DecodeFixed64(bytes.data() + bytes.size() - kPackFooterBytes));
  }
  ReadTail(bytes);
}

}  // namespace
}  // namespace ickpt

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ickpt;
  const std::string_view bytes = fuzz::AsView(data, size);
  VerifyAndRead(bytes);
  // Reseal: recompute the index checksum in the footer (bytes [size - 16, size - 8)).
  if (std::optional<PackFooter> footer = ReadTail(bytes)) {
    std::string sealed(bytes);
    std::string xxh3;
    PutFixed64(&xxh3, Xxh3(bytes.substr(footer->index_offset, footer->index_length)));
    sealed.replace(sealed.size() - 16, 8, xxh3);
    VerifyAndRead(sealed);
  }
  return 0;
}
