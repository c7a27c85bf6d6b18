// Fuzz target: manifests (format.md §5), DecodeManifest.
//
// Each input is decoded as it is, then with its xxh3 trailer recomputed, so that mutations reach
// the body. A manifest that decodes must satisfy ValidateManifest and survive EncodeManifest ->
// DecodeManifest unchanged; the re-encoding is canonical (encoding it again gives the same bytes).
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "src/repo/manifest.h"
#include "src/util/coding.h"
#include "src/util/hash.h"

namespace ickpt {
namespace {

constexpr std::string_view kKey = "manifests/ab/fuzz";

void DecodeAndCheck(std::string_view bytes) {
  absl::StatusOr<Manifest> manifest = DecodeManifest(bytes, kKey);
  if (!manifest.ok()) return;
  const absl::Status valid = ValidateManifest(*manifest);
  ICKPT_FUZZ_CHECK(valid.ok(), valid.ToString());
  const std::string encoded = EncodeManifest(*manifest);
  absl::StatusOr<Manifest> again = DecodeManifest(encoded, kKey);
  ICKPT_FUZZ_CHECK(again.ok(), again.status().ToString());
  ICKPT_FUZZ_CHECK(*again == *manifest, "manifest does not round-trip");
  ICKPT_FUZZ_CHECK(EncodeManifest(*again) == encoded, "manifest encoding is not canonical");
}

}  // namespace
}  // namespace ickpt

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ickpt;
  const std::string_view bytes = fuzz::AsView(data, size);
  DecodeAndCheck(bytes);
  if (bytes.size() >= 8) {
    std::string sealed(bytes.substr(0, bytes.size() - 8));
    PutFixed64(&sealed, Xxh3(sealed));
    DecodeAndCheck(sealed);
  }
  return 0;
}
