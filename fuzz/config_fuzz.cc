// Fuzz target: the repository config (format.md §3, envelope §3.1), DecodeConfig.
//
// Each input is decoded as it is, then "resealed" (payload length and xxh3 trailer recomputed) and
// decoded again, so that mutations get past the checksum and reach the JSON reader. A config that
// decodes must re-encode to a config that decodes to the same values.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "src/repo/commit_record.h"
#include "src/util/coding.h"
#include "src/util/hash.h"

namespace ickpt {
namespace {

constexpr std::string_view kKey = "config";

void DecodeAndCheck(std::string_view bytes) {
  absl::StatusOr<RepositoryConfig> config = DecodeConfig(bytes, kKey);
  if (!config.ok()) return;
  const std::string again_bytes = EncodeConfig(*config);
  absl::StatusOr<RepositoryConfig> again = DecodeConfig(again_bytes, kKey);
  ICKPT_FUZZ_CHECK(again.ok(), again.status().ToString());
  ICKPT_FUZZ_CHECK(EncodeConfig(*again) == again_bytes, "config does not round-trip");
}

}  // namespace
}  // namespace ickpt

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ickpt;
  const std::string_view bytes = fuzz::AsView(data, size);
  DecodeAndCheck(bytes);
  // Reseal: header (16) + payload + trailer (8), with the length field and checksum made right.
  if (bytes.size() >= 24) {
    std::string sealed(bytes.substr(0, bytes.size() - 8));
    std::string length;
    PutFixed32(&length, static_cast<uint32_t>(sealed.size() - 16));
    sealed.replace(12, 4, length);
    PutFixed64(&sealed, Xxh3(sealed));
    DecodeAndCheck(sealed);
  }
  return 0;
}
