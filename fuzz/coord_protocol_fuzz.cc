// Fuzz target: the group protocol's values in etcd (docs/protocol.md §3), src/coord/protocol.h.
//
// Each input is decoded as every kind of value. A decoder either refuses it with DataLoss naming
// the key, or returns a value that re-encodes to bytes that decode to the same value (and encode
// to the same bytes again). The input is also split into key-value pairs under a job prefix and
// decoded as a snapshot: keys of every shape, damaged values included, must never crash it, every
// damaged value must be reported, and the decoded snapshot must keep its invariants (candidates by
// create_revision, recovery participants sorted and unique).
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "fuzz/fuzz_check.h"
#include "src/coord/coordination_store.h"
#include "src/coord/protocol.h"

namespace ickpt::coord {
namespace {

constexpr char kKey[] = "/ickpt/jobs/j/fuzz";

template <typename T, typename Decode, typename Encode, typename Same>
void RoundTrip(std::string_view bytes, Decode decode, Encode encode, Same same) {
  absl::StatusOr<T> v = decode(kKey, bytes);
  if (!v.ok()) {
    ICKPT_FUZZ_CHECK(absl::IsDataLoss(v.status()), v.status().ToString());
    ICKPT_FUZZ_CHECK(v.status().message().find(kKey) != std::string_view::npos,
                     "error does not name the key: ", v.status().ToString());
    return;
  }
  const std::string encoded = encode(*v);
  absl::StatusOr<T> again = decode(kKey, encoded);
  ICKPT_FUZZ_CHECK(again.ok(), "re-encoded value does not decode: ", again.status().ToString(),
                   " ", encoded);
  ICKPT_FUZZ_CHECK(same(*v, *again), "value does not round-trip: ", encoded);
  ICKPT_FUZZ_CHECK(encode(*again) == encoded, "encoding is not stable: ", encoded);
}

void DecodeEveryKind(std::string_view bytes) {
  RoundTrip<LeaderValue>(bytes, DecodeLeader, EncodeLeader, [](const auto& a, const auto& b) {
    return a.name == b.name && a.pid == b.pid && a.host == b.host;
  });
  RoundTrip<MemberValue>(bytes, DecodeMember, EncodeMember, [](const auto& a, const auto& b) {
    return a.pid == b.pid && a.host == b.host;
  });
  RoundTrip<Trigger>(bytes, DecodeTrigger, EncodeTrigger, [](const auto& a, const auto& b) {
    return a.id == b.id && a.epoch == b.epoch && a.full == b.full && a.step == b.step &&
           a.participants == b.participants && a.created_ms == b.created_ms;
  });
  RoundTrip<Ack>(bytes, DecodeAck, EncodeAck, [](const auto& a, const auto& b) {
    return a.incarnation == b.incarnation && a.epoch == b.epoch && a.status == b.status &&
           a.reason == b.reason;
  });
  RoundTrip<OutcomeValue>(bytes, DecodeOutcome, EncodeOutcome, [](const auto& a, const auto& b) {
    return a.id == b.id && a.epoch == b.epoch && a.outcome == b.outcome && a.reason == b.reason &&
           a.decided_ms == b.decided_ms && a.logical_bytes == b.logical_bytes &&
           a.stored_bytes == b.stored_bytes && a.triggered_ms == b.triggered_ms &&
           a.participants == b.participants;
  });
  RoundTrip<RecoveryValue>(bytes, DecodeRecovery, EncodeRecovery,
                           [](const auto& a, const auto& b) {
                             return a.sequence == b.sequence && a.epoch == b.epoch &&
                                    a.checkpoint == b.checkpoint &&
                                    a.participants == b.participants;
                           });
  RoundTrip<Recovered>(bytes, DecodeRecovered, EncodeRecovered, [](const auto& a, const auto& b) {
    return a.sequence == b.sequence && a.incarnation == b.incarnation && a.status == b.status &&
           a.reason == b.reason;
  });
  RoundTrip<Request>(bytes, DecodeRequest, EncodeRequest, [](const auto& a, const auto& b) {
    return a.full == b.full && a.step == b.step && a.id == b.id;
  });
}

// Lines "key<TAB>value" become key-value pairs of one job's range, with revisions from their
// position; keys are put under the job prefix so that every directory of §3 is reached.
void DecodeAsSnapshot(std::string_view bytes) {
  RangeResult range;
  int64_t revision = 2;
  size_t start = 0;
  while (start < bytes.size()) {
    size_t end = bytes.find('\n', start);
    if (end == std::string_view::npos) end = bytes.size();
    const std::string_view line = bytes.substr(start, end - start);
    start = end + 1;
    const size_t tab = line.find('\t');
    if (tab == std::string_view::npos) continue;
    KeyValue kv;
    kv.key = JobPrefix("j") + std::string(line.substr(0, tab));
    kv.value = std::string(line.substr(tab + 1));
    kv.create_revision = revision;
    kv.mod_revision = revision + static_cast<int64_t>(line.size() % 3);
    kv.version = 1;
    revision += 3;
    range.kvs.push_back(std::move(kv));
  }
  range.revision = revision;
  const JobSnapshot snap = DecodeJobSnapshot("j", range);
  ICKPT_FUZZ_CHECK(snap.revision == revision, "revision");
  for (size_t i = 1; i < snap.candidates.size(); ++i) {
    ICKPT_FUZZ_CHECK(snap.candidates[i - 1].create_revision <= snap.candidates[i].create_revision,
                     "candidates out of order");
  }
  if (snap.recovery.has_value()) {
    const auto& ps = snap.recovery->participants;
    ICKPT_FUZZ_CHECK(!ps.empty(), "recovery without participants");
    for (size_t i = 1; i < ps.size(); ++i) {
      ICKPT_FUZZ_CHECK(ps[i - 1] < ps[i], "recovery participants not sorted and unique");
    }
  }
  for (const auto& [id, trigger] : snap.triggers) {
    ICKPT_FUZZ_CHECK(trigger.id == id && id > 0, "trigger ", trigger.id, " under id ", id);
  }
  for (const auto& [id, outcome] : snap.outcomes) {
    ICKPT_FUZZ_CHECK(outcome.id == id, "outcome ", outcome.id, " under id ", id);
  }
  const size_t decoded = snap.candidates.size() + snap.members.size() + snap.triggers.size() +
                         snap.outcomes.size() + snap.recovered.size() + snap.requests.size() +
                         (snap.recovery.has_value() ? 1 : 0);
  size_t acks = 0;
  for (const auto& [id, by] : snap.acks) acks += by.size();
  ICKPT_FUZZ_CHECK(decoded + acks <= range.kvs.size(), "more values than keys");

  // The leader's decoding (members' values and other checkpoints' acknowledgements skipped)
  // agrees with the full one on everything it keeps.
  SnapshotDecodeOptions lean;
  lean.member_values = false;
  lean.acks_of = snap.acks.empty() ? 1 : snap.acks.begin()->first;
  const JobSnapshot leader = DecodeJobSnapshot("j", range, lean);
  ICKPT_FUZZ_CHECK(leader.members.size() == snap.members.size(), "lean members");
  for (const auto& [name, member] : snap.members) {
    auto it = leader.members.find(name);
    ICKPT_FUZZ_CHECK(it != leader.members.end() && it->second.incarnation == member.incarnation &&
                         it->second.lease == member.lease,
                     "lean member ", name);
  }
  for (const auto& [id, by] : leader.acks) {
    if (id == *lean.acks_of) {
      ICKPT_FUZZ_CHECK(snap.acks.count(id) > 0 && by.size() == snap.acks.at(id).size(),
                       "lean acks of ", id);
    } else {
      // Listed without decoding (a damaged value too, which the full decode leaves out).
      ICKPT_FUZZ_CHECK(by.empty(), "lean acks of ", id, " decoded");
    }
  }
  for (const auto& [id, by] : snap.acks) {
    ICKPT_FUZZ_CHECK(leader.acks.count(id) > 0, "ack id ", id, " missing from the lean decode");
  }
  ICKPT_FUZZ_CHECK(leader.triggers.size() == snap.triggers.size() &&
                       leader.outcomes.size() == snap.outcomes.size() &&
                       leader.recovery.has_value() == snap.recovery.has_value(),
                   "lean decode differs");
}

}  // namespace
}  // namespace ickpt::coord

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  ickpt::coord::DecodeEveryKind(bytes);
  ickpt::coord::DecodeAsSnapshot(bytes);
  return 0;
}
