// Fuzz target: the objects of retention and garbage collection (format.md §13, envelope §3.1):
// retention policies (§13.1), DecodePolicy; pins (§13.2), DecodePin; the maintenance lock (§13.5),
// DecodeMaintenanceLock.
//
// Each input is decoded by all three as it is, then resealed (payload length and xxh3 trailer
// recomputed) and decoded again, so that mutations reach the JSON reader and the §13 rules; the
// seed corpus holds all three kinds. A policy and a pin are decoded against the generation and the
// name of their seeds' keys, and again against the generation and name the payload itself holds
// (when it is JSON with such fields), so that a mutated name or generation gets past the
// comparison with the key and reaches the checks behind it.
//
// Every failure must be DataLoss or FailedPrecondition (a newer major version). What decodes must
// satisfy what a writer guarantees (ValidateRetentionPolicy; a pin name that is a key component; a
// lock holder of 32 lowercase hex characters and a ttl of whole seconds) and re-encode to an object
// that decodes to the same fields (times to the nanosecond: SameTime) and encodes to the same
// bytes. No bytes are two kinds of object.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "fuzz/envelope_fuzz.h"
#include "fuzz/fuzz_check.h"
#include "ickpt/maintenance.h"
#include "ickpt/store.h"
#include "nlohmann/json.hpp"
#include "src/repo/commit_record.h"
#include "src/util/coding.h"
#include "src/util/hash.h"

namespace ickpt {
namespace {

// What the seeds are stored under (fuzz/make_corpus.cc writes them with these).
constexpr uint64_t kGeneration = 1;
constexpr std::string_view kPinName = "release-1";
constexpr std::string_view kLockKey = "locks/maintenance-00000000000000000003";

std::string PolicyKeyFor(uint64_t generation) {
  std::string digits = std::to_string(generation);
  return "policy/" + std::string(20 - digits.size(), '0') + digits;
}

bool IsWholeSecondsAtLeastOne(absl::Duration d) {
  return d >= absl::Seconds(1) && d == absl::Seconds(absl::ToInt64Seconds(d));
}

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// The fields a key names, read from the payload, if it is a JSON object that has them.
struct PayloadFields {
  std::optional<uint64_t> generation;
  std::optional<std::string> name;
};

PayloadFields ReadPayloadFields(std::string_view bytes) {
  PayloadFields out;
  const nlohmann::json j = fuzz::EnvelopePayload(bytes);
  if (!j.is_object()) return out;
  if (auto it = j.find("generation"); it != j.end() && it->is_number_unsigned()) {
    out.generation = it->get<uint64_t>();
  }
  if (auto it = j.find("name"); it != j.end() && it->is_string()) {
    out.name = it->get<std::string>();
  }
  return out;
}

// Whether `bytes` decoded as a policy, a pin or a lock: at most one may be true.
struct Kinds {
  bool policy = false;
  bool pin = false;
  bool lock = false;
};

bool SamePolicy(const RetentionPolicy& a, const RetentionPolicy& b) {
  return a.generation == b.generation && fuzz::SameTime(a.created, b.created) &&
         a.keep_last == b.keep_last && a.keep_within == b.keep_within &&
         a.checkpoint_timeout == b.checkpoint_timeout;
}

bool DecodePolicyAndCheck(std::string_view bytes, uint64_t generation) {
  const std::string key = PolicyKeyFor(generation);
  absl::StatusOr<RetentionPolicy> policy = DecodePolicy(bytes, key, generation);
  if (!policy.ok()) {
    fuzz::CheckEnvelopeErrorCode(policy.status());
    return false;
  }
  ICKPT_FUZZ_CHECK(policy->generation == generation, "generation ", policy->generation,
                   " decoded under key generation ", generation);
  const absl::Status valid = ValidateRetentionPolicy(*policy);
  ICKPT_FUZZ_CHECK(valid.ok(), valid.ToString());
  const std::string encoded = EncodePolicy(*policy);
  absl::StatusOr<RetentionPolicy> again = DecodePolicy(encoded, key, generation);
  ICKPT_FUZZ_CHECK(again.ok(), again.status().ToString());
  ICKPT_FUZZ_CHECK(SamePolicy(*policy, *again), "policy does not round-trip: created ",
                   ickpt::FormatTime(policy->created), " vs ", ickpt::FormatTime(again->created));
  ICKPT_FUZZ_CHECK(EncodePolicy(*again) == encoded, "policy encoding is not stable");
  return true;
}

bool DecodePinAndCheck(std::string_view bytes, std::string_view name) {
  const std::string key = "pins/" + std::string(name);
  absl::StatusOr<Pin> pin = DecodePin(bytes, key, name);
  if (!pin.ok()) {
    fuzz::CheckEnvelopeErrorCode(pin.status());
    return false;
  }
  ICKPT_FUZZ_CHECK(pin->name == name, "pin name '", pin->name, "' under key '", key, "'");
  ICKPT_FUZZ_CHECK(!pin->name.empty() && pin->name.find('/') == std::string::npos &&
                       ValidateObjectKey(pin->name).ok(),
                   "pin name '", pin->name, "' is not a key component");
  ICKPT_FUZZ_CHECK(pin->id >= 1, "pin of checkpoint 0");
  const std::string encoded = EncodePin(*pin);
  absl::StatusOr<Pin> again = DecodePin(encoded, key, name);
  ICKPT_FUZZ_CHECK(again.ok(), again.status().ToString());
  ICKPT_FUZZ_CHECK(again->name == pin->name && again->id == pin->id &&
                       fuzz::SameTime(pin->created, again->created),
                   "pin does not round-trip: created ", ickpt::FormatTime(pin->created), " vs ",
                   ickpt::FormatTime(again->created));
  ICKPT_FUZZ_CHECK(EncodePin(*again) == encoded, "pin encoding is not stable");
  return true;
}

bool SameLock(const MaintenanceLock& a, const MaintenanceLock& b) {
  return a.holder == b.holder && a.host == b.host && a.pid == b.pid && a.operation == b.operation &&
         a.ttl == b.ttl && fuzz::SameTime(a.created, b.created) && a.renewals == b.renewals;
}

bool DecodeLockAndCheck(std::string_view bytes) {
  absl::StatusOr<MaintenanceLock> lock = DecodeMaintenanceLock(bytes, kLockKey);
  if (!lock.ok()) {
    fuzz::CheckEnvelopeErrorCode(lock.status());
    return false;
  }
  ICKPT_FUZZ_CHECK(lock->holder.size() == 32 && IsLowerHex(lock->holder), "holder '", lock->holder,
                   "'");
  ICKPT_FUZZ_CHECK(IsWholeSecondsAtLeastOne(lock->ttl), "ttl ", absl::FormatDuration(lock->ttl));
  const std::string encoded = EncodeMaintenanceLock(*lock);
  absl::StatusOr<MaintenanceLock> again = DecodeMaintenanceLock(encoded, kLockKey);
  ICKPT_FUZZ_CHECK(again.ok(), again.status().ToString());
  ICKPT_FUZZ_CHECK(SameLock(*lock, *again), "lock does not round-trip: created ",
                   ickpt::FormatTime(lock->created), " vs ", ickpt::FormatTime(again->created));
  ICKPT_FUZZ_CHECK(EncodeMaintenanceLock(*again) == encoded, "lock encoding is not stable");
  return true;
}

void DecodeAllAndCheck(std::string_view bytes) {
  Kinds kinds;
  kinds.policy = DecodePolicyAndCheck(bytes, kGeneration);
  kinds.pin = DecodePinAndCheck(bytes, kPinName);
  kinds.lock = DecodeLockAndCheck(bytes);
  const PayloadFields fields = ReadPayloadFields(bytes);
  // Generation 0 names no key (ParseIdKey refuses it), so no reader asks for it.
  if (fields.generation.has_value() && *fields.generation != 0 &&
      *fields.generation != kGeneration) {
    kinds.policy |= DecodePolicyAndCheck(bytes, *fields.generation);
  }
  if (fields.name.has_value() && *fields.name != kPinName) {
    kinds.pin |= DecodePinAndCheck(bytes, *fields.name);
  }
  ICKPT_FUZZ_CHECK(int{kinds.policy} + int{kinds.pin} + int{kinds.lock} <= 1,
                   "bytes decode as more than one kind: policy ", kinds.policy, ", pin ", kinds.pin,
                   ", lock ", kinds.lock);
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
