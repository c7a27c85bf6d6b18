// Fuzz target: commit records (format.md §6, envelope §3.1), DecodeCommitRecord.
//
// Each input is decoded as it is, then resealed (payload length and xxh3 trailer recomputed) and
// decoded again, so that mutations reach the JSON reader and the §6 rules. A record that decodes
// must satisfy ValidateCommitRecord (what a writer checks) and re-encode to a record that decodes
// and encodes to the same bytes.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "src/repo/commit_record.h"
#include "src/util/coding.h"
#include "src/util/hash.h"

namespace ickpt {
namespace {

constexpr std::string_view kKey = "commits/00000000000000000042";

void DecodeAndCheck(std::string_view bytes) {
  absl::StatusOr<CommitRecord> record = DecodeCommitRecord(bytes, kKey);
  if (!record.ok()) return;
  const absl::Status valid = ValidateCommitRecord(*record);
  ICKPT_FUZZ_CHECK(valid.ok(), valid.ToString());
  const std::string encoded = EncodeCommitRecord(*record);
  absl::StatusOr<CommitRecord> again = DecodeCommitRecord(encoded, kKey);
  ICKPT_FUZZ_CHECK(again.ok(), again.status().ToString());
  ICKPT_FUZZ_CHECK(EncodeCommitRecord(*again) == encoded, "commit record does not round-trip");
}

}  // namespace
}  // namespace ickpt

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ickpt;
  const std::string_view bytes = fuzz::AsView(data, size);
  DecodeAndCheck(bytes);
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
