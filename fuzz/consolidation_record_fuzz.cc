// Fuzz target: consolidation records (format.md §14.1, envelope §3.1), DecodeConsolidationRecord,
// and their keys (§2), ParseConsolidationKey.
//
// Each input is decoded as it is, then resealed (payload length and xxh3 trailer recomputed) and
// decoded again, so that mutations reach the JSON reader and the §6 and §14.1 rules. A record is
// decoded against the id and generation of its seed's key (merges/…42/…1), and again against the
// id and generation the payload itself holds (when it is JSON with such fields), so that a mutated
// id or generation gets past the comparison with the key and reaches the checks behind it.
//
// Every failure must be DataLoss or FailedPrecondition (a newer major version, an unknown state
// object type). What decodes must hold the key's id and generation, satisfy
// ValidateConsolidationRecord (what a writer checks: kind full, every manifest full, generation
// >= 1), hold a record that is itself a valid commit record, and re-encode to an object that
// decodes to the same fields (times to the nanosecond: SameTime) and encodes to the same bytes.
// No bytes are both a consolidation record and a commit record.
//
// The same input is also a key: if ParseConsolidationKey takes it, ConsolidationKey must rebuild
// it exactly and it must be a valid object key; the key built from the first 16 bytes (id,
// generation) must parse back to them.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "fuzz/envelope_fuzz.h"
#include "fuzz/fuzz_check.h"
#include "ickpt/repository.h"
#include "ickpt/store.h"
#include "nlohmann/json.hpp"
#include "src/repo/commit_record.h"
#include "src/repo/keys.h"
#include "src/util/coding.h"
#include "src/util/hash.h"

namespace ickpt {
namespace {

// What the first seed is stored under (fuzz/make_corpus.cc writes it with these).
constexpr uint64_t kId = 42;
constexpr uint64_t kGeneration = 1;

bool SameStateObject(const StateObjectRecord& a, const StateObjectRecord& b) {
  return a.name == b.name && a.type == b.type && a.manifest == b.manifest &&
         a.manifest_sha256 == b.manifest_sha256 && a.manifest_bytes == b.manifest_bytes &&
         a.kind == b.kind && a.depth == b.depth && a.tracker == b.tracker &&
         a.logical_bytes == b.logical_bytes && a.changed_blocks == b.changed_blocks &&
         a.raw_bytes == b.raw_bytes && a.stored_bytes == b.stored_bytes &&
         a.pause_ns == b.pause_ns && a.persist_ns == b.persist_ns && a.key_groups == b.key_groups &&
         a.entries == b.entries && a.changed_entries == b.changed_entries &&
         a.tombstones == b.tombstones;
}

bool SameParticipant(const ParticipantRecord& a, const ParticipantRecord& b) {
  if (a.name != b.name || a.incarnation != b.incarnation ||
      a.state_objects.size() != b.state_objects.size()) {
    return false;
  }
  for (size_t i = 0; i < a.state_objects.size(); ++i) {
    if (!SameStateObject(a.state_objects[i], b.state_objects[i])) return false;
  }
  return true;
}

bool SameConsolidation(const ConsolidationRecord& a, const ConsolidationRecord& b) {
  const CommitRecord& r = a.record;
  const CommitRecord& s = b.record;
  if (a.generation != b.generation || a.repacked_bytes != b.repacked_bytes || r.id != s.id ||
      r.parent != s.parent || r.kind != s.kind || r.depth != s.depth ||
      !fuzz::SameTime(r.created, s.created) || r.epoch != s.epoch ||
      r.logical_bytes != s.logical_bytes || r.stored_bytes != s.stored_bytes ||
      r.metadata != s.metadata || r.participants.size() != s.participants.size()) {
    return false;
  }
  for (size_t i = 0; i < r.participants.size(); ++i) {
    if (!SameParticipant(r.participants[i], s.participants[i])) return false;
  }
  return true;
}

// The id and generation a key names, read from the payload, if it is a JSON object that has them.
struct PayloadFields {
  std::optional<uint64_t> id;
  std::optional<uint64_t> generation;
};

PayloadFields ReadPayloadFields(std::string_view bytes) {
  PayloadFields out;
  const nlohmann::json j = fuzz::EnvelopePayload(bytes);
  if (!j.is_object()) return out;
  if (auto it = j.find("id"); it != j.end() && it->is_number_unsigned()) {
    out.id = it->get<uint64_t>();
  }
  if (auto it = j.find("generation"); it != j.end() && it->is_number_unsigned()) {
    out.generation = it->get<uint64_t>();
  }
  return out;
}

bool DecodeAndCheck(std::string_view bytes, uint64_t id, uint64_t generation) {
  const std::string key = ConsolidationKey(id, generation);
  ICKPT_FUZZ_CHECK(ParseConsolidationKey(key) == std::make_pair(id, generation), key);
  absl::StatusOr<ConsolidationRecord> decoded =
      DecodeConsolidationRecord(bytes, key, id, generation);
  if (!decoded.ok()) {
    fuzz::CheckEnvelopeErrorCode(decoded.status());
    return false;
  }
  ICKPT_FUZZ_CHECK(decoded->record.id == id && decoded->generation == generation, "checkpoint ",
                   decoded->record.id, " generation ", decoded->generation, " decoded under key ",
                   key);
  const absl::Status valid = ValidateConsolidationRecord(*decoded);
  ICKPT_FUZZ_CHECK(valid.ok(), valid.ToString());
  // §14.1: the record is of the commit record's schema, so it is a commit record too.
  const absl::StatusOr<CommitRecord> as_commit =
      DecodeCommitRecord(EncodeCommitRecord(decoded->record), CommitKey(id));
  ICKPT_FUZZ_CHECK(as_commit.ok(), as_commit.status().ToString());
  ICKPT_FUZZ_CHECK(!DecodeCommitRecord(bytes, CommitKey(id)).ok(),
                   "a consolidation record is a commit record");
  const std::string encoded = EncodeConsolidationRecord(*decoded);
  absl::StatusOr<ConsolidationRecord> again =
      DecodeConsolidationRecord(encoded, key, id, generation);
  ICKPT_FUZZ_CHECK(again.ok(), again.status().ToString());
  ICKPT_FUZZ_CHECK(
      SameConsolidation(*decoded, *again), "consolidation record does not round-trip: created ",
      ickpt::FormatTime(decoded->record.created), " vs ", ickpt::FormatTime(again->record.created));
  ICKPT_FUZZ_CHECK(EncodeConsolidationRecord(*again) == encoded,
                   "consolidation record encoding is not stable");
  return true;
}

void DecodeAllAndCheck(std::string_view bytes) {
  DecodeAndCheck(bytes, kId, kGeneration);
  const PayloadFields fields = ReadPayloadFields(bytes);
  // Id and generation 0 name no key (ParseConsolidationKey refuses them), so no reader asks.
  if (fields.id.has_value() && fields.generation.has_value() && *fields.id != 0 &&
      *fields.generation != 0 && (*fields.id != kId || *fields.generation != kGeneration)) {
    DecodeAndCheck(bytes, *fields.id, *fields.generation);
  }
}

void CheckKey(std::string_view key) {
  if (std::optional<std::pair<uint64_t, uint64_t>> parsed = ParseConsolidationKey(key)) {
    const auto [id, generation] = *parsed;
    ICKPT_FUZZ_CHECK(id > 0 && generation > 0, "id ", id, " generation ", generation);
    const std::string built = ConsolidationKey(id, generation);
    ICKPT_FUZZ_CHECK(built == key, "consolidation key ", key, " rebuilds as ", built);
    ICKPT_FUZZ_CHECK(key.starts_with(ConsolidationPrefix(id)), key);
    ICKPT_FUZZ_CHECK(ValidateObjectKey(key).ok(), "consolidation key ", key, " is not a valid key");
  }
}

}  // namespace
}  // namespace ickpt

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ickpt;
  const std::string_view bytes = fuzz::AsView(data, size);
  CheckKey(bytes);
  // Keys built from fuzzed numbers are valid and parse back.
  if (size >= 16) {
    const uint64_t id = DecodeFixed64(bytes.data());
    const uint64_t generation = DecodeFixed64(bytes.data() + 8);
    if (id != 0 && generation != 0) {
      const std::string key = ConsolidationKey(id, generation);
      ICKPT_FUZZ_CHECK(ValidateObjectKey(key).ok(), key);
      ICKPT_FUZZ_CHECK(ParseConsolidationKey(key) == std::make_pair(id, generation), key);
    }
  }
  DecodeAllAndCheck(bytes);
  if (std::optional<std::string> sealed = fuzz::Resealed(bytes)) DecodeAllAndCheck(*sealed);
  return 0;
}
