// Fuzz target: epoch records (format.md §15.1, envelope §3.1), DecodeEpochRecord, and the fencing
// rule over what decodes (§15.3), FencedBy.
//
// Each input is decoded as it is, then resealed (payload length and xxh3 trailer recomputed) and
// decoded again, so that mutations reach the JSON reader and the §15.1 rules. A record is decoded
// against the epoch of its seed's key (epochs/…7), and again against the epoch the payload itself
// holds (when it is JSON with such a field), so that a mutated epoch gets past the comparison with
// the key and reaches the checks behind it.
//
// Every failure must be DataLoss or FailedPrecondition (a newer major version). What decodes must
// hold the key's epoch, satisfy ValidateEpochRecord (what a writer checks: epoch >= 1, base >= 1 or
// null, previous below epoch, a leader of 1 to 256 bytes of UTF-8), and re-encode to an object that
// decodes to the same fields (times to the nanosecond: SameTime) and encodes to the same bytes. No
// bytes are both an epoch record and a commit record.
//
// The rule: with the decoded record alone, a commit of an older epoch is fenced exactly when its
// id is above the base, and names this epoch; commits of this epoch or newer never are.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "fuzz/envelope_fuzz.h"
#include "fuzz/fuzz_check.h"
#include "ickpt/repository.h"
#include "nlohmann/json.hpp"
#include "src/repo/commit_record.h"
#include "src/repo/keys.h"

namespace ickpt {
namespace {

// What the seeds are stored under (fuzz/make_corpus.cc writes them with this).
constexpr uint64_t kEpoch = 7;

std::optional<uint64_t> PayloadEpoch(std::string_view bytes) {
  const nlohmann::json j = fuzz::EnvelopePayload(bytes);
  if (!j.is_object()) return std::nullopt;
  if (auto it = j.find("epoch"); it != j.end() && it->is_number_unsigned()) {
    return it->get<uint64_t>();
  }
  return std::nullopt;
}

bool SameEpochRecord(const EpochRecord& a, const EpochRecord& b) {
  return a.epoch == b.epoch && a.base == b.base && a.previous == b.previous &&
         fuzz::SameTime(a.created, b.created) && a.leader == b.leader;
}

CommitRecord CommitOf(uint64_t id, uint64_t epoch) {
  CommitRecord r;
  r.id = id;
  r.epoch = epoch;
  return r;
}

void CheckRule(const EpochRecord& r) {
  const std::vector<EpochRecord> one = {r};
  const uint64_t base = r.base.value_or(0);
  // Ids just around the base, and the extremes.
  for (uint64_t id : {base, base + 1, uint64_t{1}, UINT64_MAX}) {
    if (id == 0) continue;
    // r.epoch + 1 wraps to 0 for the largest epoch: epoch 0, checked as such.
    for (uint64_t epoch : {uint64_t{0}, r.epoch - 1, r.epoch, r.epoch + 1}) {
      const std::optional<uint64_t> by = FencedBy(one, CommitOf(id, epoch));
      const bool expected = epoch < r.epoch && id > base;
      ICKPT_FUZZ_CHECK(by.has_value() == expected, "commit ", id, " of epoch ", epoch,
                       " under epoch ", r.epoch, " base ", base);
      if (by.has_value()) ICKPT_FUZZ_CHECK(*by == r.epoch, "fenced by ", *by);
    }
  }
}

bool DecodeAndCheck(std::string_view bytes, uint64_t epoch) {
  const std::string key = EpochKey(epoch);
  ICKPT_FUZZ_CHECK(ParseIdKey(key, kEpochsPrefix) == epoch, key);
  absl::StatusOr<EpochRecord> decoded = DecodeEpochRecord(bytes, key, epoch);
  if (!decoded.ok()) {
    fuzz::CheckEnvelopeErrorCode(decoded.status());
    return false;
  }
  ICKPT_FUZZ_CHECK(decoded->epoch == epoch, "epoch ", decoded->epoch, " decoded under key ", key);
  const absl::Status valid = ValidateEpochRecord(*decoded);
  ICKPT_FUZZ_CHECK(valid.ok(), valid.ToString());
  ICKPT_FUZZ_CHECK(!DecodeCommitRecord(bytes, CommitKey(1)).ok(),
                   "an epoch record is a commit record");
  const std::string encoded = EncodeEpochRecord(*decoded);
  absl::StatusOr<EpochRecord> again = DecodeEpochRecord(encoded, key, epoch);
  ICKPT_FUZZ_CHECK(again.ok(), again.status().ToString());
  ICKPT_FUZZ_CHECK(SameEpochRecord(*decoded, *again), "epoch record does not round-trip: created ",
                   ickpt::FormatTime(decoded->created), " vs ", ickpt::FormatTime(again->created));
  ICKPT_FUZZ_CHECK(EncodeEpochRecord(*again) == encoded, "epoch record encoding is not stable");
  CheckRule(*decoded);
  return true;
}

void DecodeAllAndCheck(std::string_view bytes) {
  DecodeAndCheck(bytes, kEpoch);
  // Epoch 0 names no key (ParseIdKey refuses it), so no reader asks.
  if (std::optional<uint64_t> epoch = PayloadEpoch(bytes);
      epoch.has_value() && *epoch != 0 && *epoch != kEpoch) {
    DecodeAndCheck(bytes, *epoch);
  }
}

}  // namespace
}  // namespace ickpt

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ickpt;
  const std::string_view bytes = fuzz::AsView(data, size);
  DecodeAllAndCheck(bytes);
  if (std::optional<std::string> sealed = fuzz::Resealed(bytes)) DecodeAllAndCheck(*sealed);
  return 0;
}
