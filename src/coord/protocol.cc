#include "src/coord/protocol.h"

#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "src/util/str.h"
#include "nlohmann/json.hpp"

namespace ickpt::coord {
namespace {


using json = nlohmann::json;

constexpr size_t kMaxNameLength = 64;

std::string Id20(uint64_t id) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%020" PRIu64, id);
  return buf;
}

// Reads the JSON object of a value; every accessor below throws on a wrong type, and the decoders
// turn that into DataLoss naming the key (nothing throws past this file).
json ParseObject(std::string_view bytes) {
  json j = json::parse(bytes.begin(), bytes.end());
  if (!j.is_object()) throw std::runtime_error("not a JSON object");
  return j;
}

uint64_t Unsigned(const json& j, const char* field) {
  const json& v = j.at(field);
  if (!v.is_number_unsigned()) {
    if (v.is_number_integer() && v.get<int64_t>() >= 0) return v.get<uint64_t>();
    throw std::runtime_error(StrCat("'", field, "' is not a non-negative integer"));
  }
  return v.get<uint64_t>();
}

// A non-negative integer that fits int64_t (pids, times).
int64_t NonNegativeInt64(const json& j, const char* field) {
  const uint64_t v = Unsigned(j, field);
  if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    throw std::runtime_error(StrCat("'", field, "' is out of range"));
  }
  return static_cast<int64_t>(v);
}

std::optional<uint64_t> OptionalUnsigned(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return std::nullopt;
  return Unsigned(j, field);
}

std::string String(const json& j, const char* field) {
  const json& v = j.at(field);
  if (!v.is_string()) throw std::runtime_error(StrCat("'", field, "' is not a string"));
  return v.get<std::string>();
}

std::string OptionalString(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return {};
  return String(j, field);
}

bool Bool(const json& j, const char* field) {
  const json& v = j.at(field);
  if (!v.is_boolean()) throw std::runtime_error(StrCat("'", field, "' is not a boolean"));
  return v.get<bool>();
}

json OptionalNumber(const std::optional<uint64_t>& v) { return v ? json(*v) : json(nullptr); }

template <typename T, typename Fn>
absl::StatusOr<T> Decode(std::string_view what, std::string_view key, std::string_view bytes,
                         Fn fn) {
  try {
    return fn(ParseObject(bytes));
  } catch (const std::exception& e) {
    return absl::DataLossError(StrCat(what, " at '", key, "' does not decode: ", e.what()));
  }
}

}  // namespace

std::optional<uint64_t> ParseId20(std::string_view s) {
  if (s.size() != 20) return std::nullopt;
  uint64_t id = 0;
  if (!std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      !absl::SimpleAtoi(ToAbsl(s), &id)) {
    return std::nullopt;
  }
  return id;
}

std::string ThisHostName() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) return "unknown";
  return host;
}

absl::Status ValidateCoordinationName(std::string_view what, std::string_view name) {
  bool ok = !name.empty() && name.size() <= kMaxNameLength && name != "." && name != "..";
  for (char c : name) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                c == '-');
  }
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(StrCat(what, " '", name,
                                           "' is not a valid name: use 1-64 lowercase letters, "
                                           "digits, '.', '_' and '-'"));
}

std::string JobPrefix(std::string_view job) { return StrCat("/ickpt/jobs/", job, "/"); }
std::string LeaderPrefix(std::string_view job) { return StrCat(JobPrefix(job), "leader/"); }
std::string LeaderKey(std::string_view job, int64_t lease) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, static_cast<uint64_t>(lease));
  return StrCat(LeaderPrefix(job), buf);
}
std::string MembersPrefix(std::string_view job) { return StrCat(JobPrefix(job), "members/"); }
std::string MemberKey(std::string_view job, std::string_view participant) {
  return StrCat(MembersPrefix(job), participant);
}
std::string TriggersPrefix(std::string_view job) { return StrCat(JobPrefix(job), "triggers/"); }
std::string TriggerKey(std::string_view job, uint64_t id) {
  return StrCat(TriggersPrefix(job), Id20(id));
}
std::string AllAcksPrefix(std::string_view job) { return StrCat(JobPrefix(job), "acks/"); }
std::string AcksPrefix(std::string_view job, uint64_t id) {
  return StrCat(AllAcksPrefix(job), Id20(id), "/");
}
std::string AckKey(std::string_view job, uint64_t id, std::string_view participant) {
  return StrCat(AcksPrefix(job, id), participant);
}
std::string OutcomesPrefix(std::string_view job) { return StrCat(JobPrefix(job), "outcomes/"); }
std::string OutcomeKey(std::string_view job, uint64_t id) {
  return StrCat(OutcomesPrefix(job), Id20(id));
}
std::string RecoveryKey(std::string_view job) { return StrCat(JobPrefix(job), "recovery"); }
std::string RecoveredPrefix(std::string_view job) { return StrCat(JobPrefix(job), "recovered/"); }
std::string RecoveredKey(std::string_view job, std::string_view participant) {
  return StrCat(RecoveredPrefix(job), participant);
}
std::string RequestKey(std::string_view job, std::string_view token) {
  return StrCat(JobPrefix(job), "requests/", token);
}

KeyRange ParticipantRange(std::string_view job) {
  return KeyRange::Between(RecoveryKey(job), PrefixRangeEnd(TriggersPrefix(job)));
}

std::string_view AckStatusName(AckStatus status) {
  switch (status) {
    case AckStatus::kAcknowledged:
      return "acknowledged";
    case AckStatus::kDeclined:
      return "declined";
    case AckStatus::kFailed:
      return "failed";
  }
  return "?";
}

std::string_view OutcomeName(Outcome outcome) {
  return outcome == Outcome::kCommitted ? "committed" : "aborted";
}

std::string EncodeLeader(const LeaderValue& v) {
  return json{{"name", v.name}, {"pid", v.pid}, {"host", v.host}}.dump();
}
std::string EncodeMember(const MemberValue& v) {
  return json{{"pid", v.pid}, {"host", v.host}}.dump();
}
std::string EncodeTrigger(const Trigger& v) {
  json participants = json::object();
  for (const auto& [name, incarnation] : v.participants) participants[name] = incarnation;
  return json{{"id", v.id},
              {"epoch", v.epoch},
              {"full", v.full},
              {"step", OptionalNumber(v.step)},
              {"participants", participants},
              {"created_ms", v.created_ms}}
      .dump();
}
std::string EncodeAck(const Ack& v) {
  return json{{"incarnation", v.incarnation},
              {"epoch", v.epoch},
              {"status", AckStatusName(v.status)},
              {"reason", v.reason}}
      .dump();
}
std::string EncodeOutcome(const OutcomeValue& v) {
  json j{{"id", v.id}, {"epoch", v.epoch}, {"outcome", OutcomeName(v.outcome)}, {"reason", v.reason}};
  if (v.decided_ms > 0) j["decided_ms"] = v.decided_ms;
  if (v.logical_bytes.has_value()) j["logical_bytes"] = *v.logical_bytes;
  if (v.stored_bytes.has_value()) j["stored_bytes"] = *v.stored_bytes;
  if (v.triggered_ms > 0) j["triggered_ms"] = v.triggered_ms;
  if (v.participants.has_value()) j["participants"] = *v.participants;
  return j.dump();
}
std::string EncodeRecovery(const RecoveryValue& v) {
  return json{{"sequence", v.sequence},
              {"epoch", v.epoch},
              {"checkpoint", OptionalNumber(v.checkpoint)},
              {"participants", v.participants}}
      .dump();
}
std::string EncodeRecovered(const Recovered& v) {
  return json{{"sequence", v.sequence},
              {"incarnation", v.incarnation},
              {"status", v.status == RecoveredStatus::kRestored ? "restored" : "failed"},
              {"reason", v.reason}}
      .dump();
}
std::string EncodeRequest(const Request& v) {
  json j{{"full", v.full}, {"step", OptionalNumber(v.step)}};
  if (v.id) j["id"] = *v.id;
  return j.dump();
}

absl::StatusOr<LeaderValue> DecodeLeader(std::string_view key, std::string_view bytes) {
  return Decode<LeaderValue>("leader value", key, bytes, [](const json& j) {
    LeaderValue v;
    v.name = String(j, "name");
    v.pid = NonNegativeInt64(j, "pid");
    v.host = OptionalString(j, "host");
    return v;
  });
}

absl::StatusOr<MemberValue> DecodeMember(std::string_view key, std::string_view bytes) {
  return Decode<MemberValue>("member value", key, bytes, [](const json& j) {
    MemberValue v;
    v.pid = NonNegativeInt64(j, "pid");
    v.host = OptionalString(j, "host");
    return v;
  });
}

absl::StatusOr<Trigger> DecodeTrigger(std::string_view key, std::string_view bytes) {
  return Decode<Trigger>("trigger", key, bytes, [](const json& j) {
    Trigger v;
    v.id = Unsigned(j, "id");
    if (v.id == 0) throw std::runtime_error("'id' is 0");
    v.epoch = Unsigned(j, "epoch");
    v.full = Bool(j, "full");
    v.step = OptionalUnsigned(j, "step");
    const json& participants = j.at("participants");
    if (!participants.is_object() || participants.empty()) {
      throw std::runtime_error("'participants' is not a non-empty object");
    }
    for (const auto& [name, incarnation] : participants.items()) {
      if (!ValidateCoordinationName("participant", name).ok()) {
        throw std::runtime_error(StrCat("participant name '", name, "' is not valid"));
      }
      if (!incarnation.is_number_unsigned()) {
        throw std::runtime_error(StrCat("incarnation of '", name, "' is not an integer"));
      }
      v.participants[name] = incarnation.get<uint64_t>();
    }
    v.created_ms = j.contains("created_ms") ? NonNegativeInt64(j, "created_ms") : 0;
    return v;
  });
}

absl::StatusOr<Ack> DecodeAck(std::string_view key, std::string_view bytes) {
  return Decode<Ack>("acknowledgement", key, bytes, [](const json& j) {
    Ack v;
    v.incarnation = Unsigned(j, "incarnation");
    v.epoch = Unsigned(j, "epoch");
    const std::string status = String(j, "status");
    if (status == "acknowledged") {
      v.status = AckStatus::kAcknowledged;
    } else if (status == "declined") {
      v.status = AckStatus::kDeclined;
    } else if (status == "failed") {
      v.status = AckStatus::kFailed;
    } else {
      throw std::runtime_error(StrCat("unknown status '", status, "'"));
    }
    v.reason = OptionalString(j, "reason");
    return v;
  });
}

absl::StatusOr<OutcomeValue> DecodeOutcome(std::string_view key, std::string_view bytes) {
  return Decode<OutcomeValue>("outcome", key, bytes, [](const json& j) {
    OutcomeValue v;
    v.id = Unsigned(j, "id");
    v.epoch = Unsigned(j, "epoch");
    const std::string outcome = String(j, "outcome");
    if (outcome == "committed") {
      v.outcome = Outcome::kCommitted;
    } else if (outcome == "aborted") {
      v.outcome = Outcome::kAborted;
    } else {
      throw std::runtime_error(StrCat("unknown outcome '", outcome, "'"));
    }
    v.reason = OptionalString(j, "reason");
    if (j.contains("decided_ms")) v.decided_ms = NonNegativeInt64(j, "decided_ms");
    v.logical_bytes = OptionalUnsigned(j, "logical_bytes");
    v.stored_bytes = OptionalUnsigned(j, "stored_bytes");
    if (j.contains("triggered_ms")) v.triggered_ms = NonNegativeInt64(j, "triggered_ms");
    v.participants = OptionalUnsigned(j, "participants");
    return v;
  });
}

absl::StatusOr<RecoveryValue> DecodeRecovery(std::string_view key, std::string_view bytes) {
  return Decode<RecoveryValue>("recovery record", key, bytes, [](const json& j) {
    RecoveryValue v;
    v.sequence = Unsigned(j, "sequence");
    if (v.sequence == 0) throw std::runtime_error("'sequence' is 0");
    v.epoch = Unsigned(j, "epoch");
    v.checkpoint = OptionalUnsigned(j, "checkpoint");
    const json& participants = j.at("participants");
    if (!participants.is_array() || participants.empty()) {
      throw std::runtime_error("'participants' is not a non-empty array");
    }
    for (const json& p : participants) {
      if (!p.is_string() || !ValidateCoordinationName("participant", p.get<std::string>()).ok()) {
        throw std::runtime_error("'participants' holds an invalid name");
      }
      v.participants.push_back(p.get<std::string>());
    }
    // Sorted and unique: a participant's place in the list is its index (§3).
    for (size_t i = 1; i < v.participants.size(); ++i) {
      if (!(v.participants[i - 1] < v.participants[i])) {
        throw std::runtime_error("'participants' is not sorted and unique");
      }
    }
    return v;
  });
}

absl::StatusOr<Recovered> DecodeRecovered(std::string_view key, std::string_view bytes) {
  return Decode<Recovered>("recovered value", key, bytes, [](const json& j) {
    Recovered v;
    v.sequence = Unsigned(j, "sequence");
    v.incarnation = Unsigned(j, "incarnation");
    const std::string status = String(j, "status");
    if (status == "restored") {
      v.status = RecoveredStatus::kRestored;
    } else if (status == "failed") {
      v.status = RecoveredStatus::kFailed;
    } else {
      throw std::runtime_error(StrCat("unknown status '", status, "'"));
    }
    v.reason = OptionalString(j, "reason");
    return v;
  });
}

absl::StatusOr<Request> DecodeRequest(std::string_view key, std::string_view bytes) {
  return Decode<Request>("request", key, bytes, [](const json& j) {
    Request v;
    v.full = Bool(j, "full");
    v.step = OptionalUnsigned(j, "step");
    v.id = OptionalUnsigned(j, "id");
    return v;
  });
}

JobSnapshot DecodeJobSnapshot(std::string_view job, const RangeResult& range,
                              const SnapshotDecodeOptions& options) {
  JobSnapshot snap;
  snap.revision = range.revision;
  const std::string prefix = JobPrefix(job);
  auto damaged = [&](const absl::Status& s) { snap.damaged.push_back(std::string(s.message())); };
  for (const KeyValue& kv : range.kvs) {
    if (kv.key.compare(0, prefix.size(), prefix) != 0) continue;
    std::string_view rest = std::string_view(kv.key).substr(prefix.size());
    auto take = [&](std::string_view dir) {
      if (rest.substr(0, dir.size()) != dir) return false;
      rest.remove_prefix(dir.size());
      return true;
    };
    if (take("leader/")) {
      absl::StatusOr<LeaderValue> v = DecodeLeader(kv.key, kv.value);
      if (!v.ok()) {
        // A candidate whose value is damaged still holds its place in the election: the order
        // is by create_revision, not by value.
        damaged(v.status());
        v = LeaderValue{};
      }
      snap.candidates.push_back({kv.lease, kv.create_revision, *std::move(v)});
    } else if (take("members/")) {
      if (!ValidateCoordinationName("participant", rest).ok()) continue;
      absl::StatusOr<MemberValue> v =
          options.member_values ? DecodeMember(kv.key, kv.value) : MemberValue{};
      if (!v.ok()) {
        damaged(v.status());
        v = MemberValue{};  // the incarnation is the key's revision, not its value
      }
      snap.members[std::string(rest)] = {static_cast<uint64_t>(kv.mod_revision), kv.lease, *v};
    } else if (take("triggers/")) {
      std::optional<uint64_t> id = ParseId20(rest);
      if (!id) continue;
      absl::StatusOr<Trigger> v = DecodeTrigger(kv.key, kv.value);
      if (!v.ok()) {
        damaged(v.status());
      } else if (v->id != *id) {
        damaged(absl::DataLossError(StrCat("trigger at '", kv.key, "' names checkpoint ", v->id)));
      } else {
        snap.triggers[*id] = *std::move(v);
      }
    } else if (take("acks/")) {
      std::optional<uint64_t> id = ParseId20(rest.substr(0, 20));
      if (!id || rest.size() < 22 || rest[20] != '/') continue;
      std::string_view participant = rest.substr(21);
      if (!ValidateCoordinationName("participant", participant).ok()) continue;
      if (options.acks_of.has_value() && *options.acks_of != *id) {
        snap.acks[*id];  // listed, not decoded
        continue;
      }
      absl::StatusOr<Ack> v = DecodeAck(kv.key, kv.value);
      if (!v.ok()) {
        damaged(v.status());
      } else {
        snap.acks[*id][std::string(participant)] = *std::move(v);
      }
    } else if (take("outcomes/")) {
      std::optional<uint64_t> id = ParseId20(rest);
      if (!id) continue;
      absl::StatusOr<OutcomeValue> v = DecodeOutcome(kv.key, kv.value);
      if (!v.ok()) {
        damaged(v.status());
      } else if (v->id != *id) {
        damaged(absl::DataLossError(StrCat("outcome at '", kv.key, "' names checkpoint ", v->id)));
      } else {
        snap.outcomes[*id] = *std::move(v);
      }
    } else if (rest == "recovery") {
      absl::StatusOr<RecoveryValue> v = DecodeRecovery(kv.key, kv.value);
      if (!v.ok()) {
        damaged(v.status());
      } else {
        snap.recovery = *std::move(v);
        snap.recovery_mod_revision = kv.mod_revision;
      }
    } else if (take("recovered/")) {
      if (!ValidateCoordinationName("participant", rest).ok()) continue;
      absl::StatusOr<Recovered> v = DecodeRecovered(kv.key, kv.value);
      if (!v.ok()) {
        damaged(v.status());
      } else {
        snap.recovered[std::string(rest)] = *std::move(v);
      }
    } else if (take("requests/")) {
      if (rest.empty()) continue;
      absl::StatusOr<Request> v = DecodeRequest(kv.key, kv.value);
      if (!v.ok()) {
        damaged(v.status());
      } else {
        snap.requests.push_back({std::string(rest), kv.mod_revision, *std::move(v)});
      }
    }
  }
  std::sort(snap.candidates.begin(), snap.candidates.end(),
            [](const auto& a, const auto& b) { return a.create_revision < b.create_revision; });
  std::sort(snap.requests.begin(), snap.requests.end(),
            [](const auto& a, const auto& b) { return a.mod_revision < b.mod_revision; });
  return snap;
}

TriggerFacts TriggerFactsOf(const JobSnapshot& snap, const OutcomeValue& outcome) {
  TriggerFacts facts{outcome.triggered_ms, outcome.participants};
  if (auto it = snap.triggers.find(outcome.id); it != snap.triggers.end()) {
    if (facts.triggered_ms <= 0) facts.triggered_ms = it->second.created_ms;
    if (!facts.participants.has_value()) facts.participants = it->second.participants.size();
  }
  return facts;
}

}  // namespace ickpt::coord
