// Fuzz target: commit records (format.md §6, envelope §3.1), DecodeCommitRecord, and participant
// acknowledgements (§11: the same schema in an envelope of magic ICKPTACK), DecodeAck.
//
// Each input is decoded by both as it is, then resealed (payload length and xxh3 trailer
// recomputed) and decoded again, so that mutations reach the JSON reader and the §6 rules; the seed
// corpus holds both kinds. A record that decodes must satisfy ValidateCommitRecord (what a writer
// checks) and re-encode to a record that decodes and encodes to the same bytes; an acknowledgement
// must in addition hold exactly one participant. No bytes are both a commit record and an
// acknowledgement.
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "fuzz/fuzz_check.h"
#include "src/repo/commit_record.h"
#include "src/util/coding.h"
#include "src/util/hash.h"

namespace ickpt {
namespace {

constexpr std::string_view kKey = "commits/00000000000000000042";
constexpr std::string_view kAckKey = "acks/00000000000000000042/worker-0";

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

void DecodeAckAndCheck(std::string_view bytes) {
  absl::StatusOr<CommitRecord> ack = DecodeAck(bytes, kAckKey);
  if (!ack.ok()) {
    ICKPT_FUZZ_CHECK(absl::IsDataLoss(ack.status()) || absl::IsFailedPrecondition(ack.status()),
                     ack.status().ToString());
    return;
  }
  ICKPT_FUZZ_CHECK(ack->participants.size() == 1, ack->participants.size(), " participants");
  const absl::Status valid = ValidateCommitRecord(*ack);
  ICKPT_FUZZ_CHECK(valid.ok(), valid.ToString());
  ICKPT_FUZZ_CHECK(!DecodeCommitRecord(bytes, kKey).ok(), "an acknowledgement is a commit record");
  const std::string encoded = EncodeAck(*ack);
  absl::StatusOr<CommitRecord> again = DecodeAck(encoded, kAckKey);
  ICKPT_FUZZ_CHECK(again.ok(), again.status().ToString());
  ICKPT_FUZZ_CHECK(EncodeAck(*again) == encoded, "acknowledgement does not round-trip");
  ICKPT_FUZZ_CHECK(!DecodeCommitRecord(encoded, kKey).ok(), "an encoded ack is a commit record");
}

}  // namespace
}  // namespace ickpt

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ickpt;
  const std::string_view bytes = fuzz::AsView(data, size);
  DecodeAndCheck(bytes);
  DecodeAckAndCheck(bytes);
  if (bytes.size() >= 24) {
    std::string sealed(bytes.substr(0, bytes.size() - 8));
    std::string length;
    PutFixed32(&length, static_cast<uint32_t>(sealed.size() - 16));
    sealed.replace(12, 4, length);
    PutFixed64(&sealed, Xxh3(sealed));
    DecodeAndCheck(sealed);
    DecodeAckAndCheck(sealed);
  }
  return 0;
}
