// Fuzz target: a pack's index alone (format.md §4), ParsePackIndex.
//
// Input: u64 index_offset | u64 pack_size | index bytes (make_corpus writes real ones). The index
// is parsed against the given offset and size with a wrong and with the right checksum, and against
// an offset and size that fit it (index_offset + index + footer = pack size), so that the fuzzer
// explores the entries rather than the fit checks. What parses must be self-consistent.
#include <cstdint>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "src/repo/pack.h"
#include "src/util/coding.h"
#include "src/util/hash.h"

namespace ickpt {
namespace {

constexpr std::string_view kKey = "packs/ab/fuzz";

void ParseAndCheck(std::string_view index, uint64_t index_offset, uint64_t pack_size,
                   uint64_t xxh3) {
  absl::StatusOr<PackIndex> parsed = ParsePackIndex(index, index_offset, pack_size, xxh3, kKey);
  if (!parsed.ok()) return;
  ICKPT_FUZZ_CHECK(Xxh3(index) == xxh3, "index with a wrong checksum parsed");
  ICKPT_FUZZ_CHECK(index_offset >= kPackHeaderBytes &&
                       index_offset + index.size() + kPackFooterBytes == pack_size,
                   "index does not fit the pack");
  ICKPT_FUZZ_CHECK(parsed->pack_size == pack_size, "pack_size");
  uint64_t stored = kPackHeaderBytes;
  uint64_t raw = 0;
  for (const FrameInfo& f : parsed->frames) {
    ICKPT_FUZZ_CHECK(f.stored_offset == stored && f.raw_offset == raw, "frames not contiguous");
    ICKPT_FUZZ_CHECK(f.raw_len >= 1 && f.raw_len <= kMaxFrameRawBytes, "raw_len ", f.raw_len);
    ICKPT_FUZZ_CHECK(f.stored_len >= 1 && f.stored_len <= kMaxFrameStoredBytes, "stored_len");
    ICKPT_FUZZ_CHECK(f.codec != FrameCodec::kRaw || f.stored_len == f.raw_len, "raw frame size");
    stored += f.stored_len;
    raw += f.raw_len;
  }
  ICKPT_FUZZ_CHECK(stored == index_offset, "frames end at ", stored, ", index at ", index_offset);
  ICKPT_FUZZ_CHECK(raw == parsed->raw_size, "raw_size");
}

}  // namespace
}  // namespace ickpt

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ickpt;
  if (size < 16) return 0;
  const std::string_view bytes = fuzz::AsView(data, size);
  const uint64_t index_offset = DecodeFixed64(bytes.data());
  const uint64_t pack_size = DecodeFixed64(bytes.data() + 8);
  const std::string_view index = bytes.substr(16);
  const uint64_t xxh3 = Xxh3(index);
  ParseAndCheck(index, index_offset, pack_size, xxh3);
  ParseAndCheck(index, index_offset, pack_size, xxh3 ^ 1);
  // An offset and size that fit the index, so that only its entries decide.
  if (index_offset <= UINT64_MAX - index.size() - kPackFooterBytes) {
    ParseAndCheck(index, index_offset, index_offset + index.size() + kPackFooterBytes, xxh3);
  }
  return 0;
}
