// The group protocol's keys and values (docs/protocol.md §3), and a decoded snapshot of one job's
// keys. Encoders and decoders only: no I/O. Every decoder refuses what does not decode or lacks a
// required field with DataLoss naming the key, and ignores unknown fields (a later version may add
// them); fuzz/coord_protocol_fuzz.cc runs them on arbitrary bytes.
//
// Thread safety: pure functions and plain values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/coord/coordination_store.h"

namespace ickpt::coord {

// This machine's host name, for the informational fields of members and leaders.
std::string ThisHostName();

// Job, participant and coordinator names: 1-64 of [a-z0-9._-] (docs/protocol.md §3).
absl::Status ValidateCoordinationName(std::string_view what, std::string_view name);

// Keys (docs/protocol.md §3).
std::string JobPrefix(std::string_view job);  // "/ickpt/jobs/<job>/"
std::string LeaderPrefix(std::string_view job);
std::string LeaderKey(std::string_view job, int64_t lease);
std::string MembersPrefix(std::string_view job);
std::string MemberKey(std::string_view job, std::string_view participant);
std::string TriggersPrefix(std::string_view job);
std::string TriggerKey(std::string_view job, uint64_t id);
std::string AckKey(std::string_view job, uint64_t id, std::string_view participant);
std::string AcksPrefix(std::string_view job, uint64_t id);
std::string AllAcksPrefix(std::string_view job);  // acks/ of every checkpoint
std::string OutcomeKey(std::string_view job, uint64_t id);
std::string RecoveryKey(std::string_view job);
std::string RecoveredKey(std::string_view job, std::string_view participant);
std::string RecoveredPrefix(std::string_view job);
std::string OutcomesPrefix(std::string_view job);
std::string RequestKey(std::string_view job, std::string_view token);
// The id in a key component of 20 digits (the <id:020> of triggers/, acks/, outcomes/); nullopt
// if it is not one.
std::optional<uint64_t> ParseId20(std::string_view s);
// The keys a participant watches (docs/protocol.md §6): the recovery record, requests/ and
// triggers/, which sort together ("recovery" < "requests/" < "triggers/"). Acknowledgements,
// members, leader keys, outcomes and recovered/ keys are outside it: none of them wakes every
// participant. An outcome is seen through its trigger's deletion in the same transaction (§5.9).
KeyRange ParticipantRange(std::string_view job);

struct LeaderValue {
  std::string name;
  int64_t pid = 0;
  std::string host;
};

struct MemberValue {
  int64_t pid = 0;
  std::string host;
};

struct Trigger {
  uint64_t id = 0;
  uint64_t epoch = 0;
  bool full = false;
  std::optional<uint64_t> step;
  std::map<std::string, uint64_t> participants;  // name -> expected incarnation
  int64_t created_ms = 0;
};

enum class AckStatus { kAcknowledged, kDeclined, kFailed };
std::string_view AckStatusName(AckStatus status);

struct Ack {
  uint64_t incarnation = 0;
  uint64_t epoch = 0;
  AckStatus status = AckStatus::kAcknowledged;
  std::string reason;
};

enum class Outcome { kCommitted, kAborted };
std::string_view OutcomeName(Outcome outcome);

struct OutcomeValue {
  uint64_t id = 0;
  uint64_t epoch = 0;
  Outcome outcome = Outcome::kAborted;
  std::string reason;
  // Informational, for `ickpt status` (protocol 1.1; absent from older leaders' outcomes): when
  // the leader decided (its clock, Unix ms; 0: unknown), and for a commit the commit record's
  // logical and stored bytes.
  int64_t decided_ms = 0;
  std::optional<uint64_t> logical_bytes = std::nullopt;
  std::optional<uint64_t> stored_bytes = std::nullopt;
  // Protocol 1.2: the leader deletes the trigger with the outcome (§5.9), so the outcome keeps
  // what `ickpt status` showed from it: when it was triggered (Unix ms; 0: unknown) and how many
  // participants it asked (absent: unknown).
  int64_t triggered_ms = 0;
  std::optional<uint64_t> participants = std::nullopt;
};

struct RecoveryValue {
  uint64_t sequence = 0;
  uint64_t epoch = 0;
  std::optional<uint64_t> checkpoint;
  std::vector<std::string> participants;  // sorted, unique
};

enum class RecoveredStatus { kRestored, kFailed };

struct Recovered {
  uint64_t sequence = 0;
  uint64_t incarnation = 0;
  RecoveredStatus status = RecoveredStatus::kRestored;
  std::string reason;
};

struct Request {
  bool full = false;
  std::optional<uint64_t> step;
  std::optional<uint64_t> id;  // set by the leader once it triggered for the request
};

std::string EncodeLeader(const LeaderValue& v);
std::string EncodeMember(const MemberValue& v);
std::string EncodeTrigger(const Trigger& v);
std::string EncodeAck(const Ack& v);
std::string EncodeOutcome(const OutcomeValue& v);
std::string EncodeRecovery(const RecoveryValue& v);
std::string EncodeRecovered(const Recovered& v);
std::string EncodeRequest(const Request& v);

// `key` only names the value in errors.
absl::StatusOr<LeaderValue> DecodeLeader(std::string_view key, std::string_view bytes);
absl::StatusOr<MemberValue> DecodeMember(std::string_view key, std::string_view bytes);
absl::StatusOr<Trigger> DecodeTrigger(std::string_view key, std::string_view bytes);
absl::StatusOr<Ack> DecodeAck(std::string_view key, std::string_view bytes);
absl::StatusOr<OutcomeValue> DecodeOutcome(std::string_view key, std::string_view bytes);
absl::StatusOr<RecoveryValue> DecodeRecovery(std::string_view key, std::string_view bytes);
absl::StatusOr<Recovered> DecodeRecovered(std::string_view key, std::string_view bytes);
absl::StatusOr<Request> DecodeRequest(std::string_view key, std::string_view bytes);

// One read of a job's keys, decoded. Keys that do not decode are left out and listed in `damaged`
// (with the cause), so one bad value cannot stop the job: the protocol acts as if it were absent.
struct JobSnapshot {
  int64_t revision = 0;
  struct Candidate {
    int64_t lease = 0;
    int64_t create_revision = 0;
    LeaderValue value;
  };
  std::vector<Candidate> candidates;  // leader/ keys, by create_revision ascending
  struct Member {
    uint64_t incarnation = 0;  // mod_revision of members/<name>
    int64_t lease = 0;
    MemberValue value;
  };
  std::map<std::string, Member> members;
  std::map<uint64_t, Trigger> triggers;
  std::map<uint64_t, std::map<std::string, Ack>> acks;  // id -> participant -> ack
  std::map<uint64_t, OutcomeValue> outcomes;
  std::optional<RecoveryValue> recovery;
  int64_t recovery_mod_revision = 0;
  std::map<std::string, Recovered> recovered;
  struct PendingRequest {
    std::string token;
    int64_t mod_revision = 0;
    Request request;
  };
  std::vector<PendingRequest> requests;
  std::vector<std::string> damaged;  // "key: cause"

  // The candidate that leads: the lowest create_revision, or nullptr.
  const Candidate* leader() const { return candidates.empty() ? nullptr : &candidates.front(); }
};

// When a decided checkpoint was triggered (Unix ms, 0: unknown) and how many participants it asked:
// from its outcome (protocol 1.2), or for an older leader's outcome from its trigger, if kept.
struct TriggerFacts {
  int64_t triggered_ms = 0;
  std::optional<uint64_t> participants;
};
TriggerFacts TriggerFactsOf(const JobSnapshot& snap, const OutcomeValue& outcome);

// What a reader of a snapshot may leave undecoded, to save its CPU on every read (the leader reads
// every member and acknowledgement at each round).
struct SnapshotDecodeOptions {
  // false: members/ values are left empty (the incarnation and lease come from the key).
  bool member_values = true;
  // Set: only this checkpoint's acknowledgements are decoded; the ids of the others are listed in
  // `acks` with no entries.
  std::optional<uint64_t> acks_of = std::nullopt;
};

// Decodes a GetPrefix(JobPrefix(job)) result. Keys of unknown shape are ignored (a later version).
JobSnapshot DecodeJobSnapshot(std::string_view job, const RangeResult& range,
                              const SnapshotDecodeOptions& options = {});

}  // namespace ickpt::coord
