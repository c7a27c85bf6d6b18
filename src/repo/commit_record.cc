// The JSON-in-envelope objects: envelope format.md §3.1, config §3, commit record §6, the objects
// of retention §13, consolidation records §14.1, epoch records §15.1.
#include "src/repo/commit_record.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "ickpt/store.h"
#include "nlohmann/json.hpp"
#include "src/repo/format.h"
#include "src/repo/keys.h"
#include "src/util/coding.h"
#include "src/util/hash.h"
#include "src/util/str.h"

namespace ickpt {

std::string_view CheckpointKindName(CheckpointKind kind) {
  switch (kind) {
    case CheckpointKind::kFull:
      return "full";
    case CheckpointKind::kIncremental:
      return "incremental";
  }
  return "unknown";
}

std::string_view StateObjectTypeName(StateObjectType type) {
  switch (type) {
    case StateObjectType::kRegion:
      return "region";
    case StateObjectType::kKeyed:
      return "keyed";
  }
  return "unknown";
}

std::string FormatTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E9SZ", t, absl::UTCTimeZone());
}

namespace {

using json = nlohmann::json;

constexpr std::string_view kConfigMagic = "ICKPTCFG";
constexpr std::string_view kCommitMagic = "ICKPTCMT";
constexpr std::string_view kAckMagic = "ICKPTACK";
constexpr std::string_view kPolicyMagic = "ICKPTPOL";
constexpr std::string_view kPinMagic = "ICKPTPIN";
constexpr std::string_view kLockMagic = "ICKPTLCK";
constexpr std::string_view kConsolidationMagic = "ICKPTMRG";
constexpr std::string_view kEpochMagic = "ICKPTEPO";
// §15.1: a leader's name is for messages and for recognizing its own record, not a document.
constexpr size_t kMaxLeaderBytes = 256;
constexpr uint16_t kEnvelopeMajor = kFormatMajor;
constexpr uint16_t kEnvelopeMinor = kFormatMinor;
constexpr size_t kEnvelopeHeaderBytes = 16;
constexpr size_t kEnvelopeTrailerBytes = 8;
constexpr uint32_t kMaxPayloadBytes = 16 << 20;

// Thrown by the field readers below and caught in the decoders, which turn it into a Status: it
// never leaves this file. `unsupported` marks a well-formed value this reader does not know
// (§1.1: rejected by name, FailedPrecondition) as opposed to damage (DataLoss).
struct FieldError {
  std::string what;
  bool unsupported = false;
};

std::string EncodeEnvelope(std::string_view magic, uint16_t major, uint16_t minor,
                           std::string_view payload) {
  std::string out;
  out.reserve(kEnvelopeHeaderBytes + payload.size() + kEnvelopeTrailerBytes);
  out.append(magic);
  PutFixed16(&out, major);
  PutFixed16(&out, minor);
  PutFixed32(&out, static_cast<uint32_t>(payload.size()));
  out.append(payload);
  PutFixed64(&out, Xxh3(out));
  return out;
}

struct Envelope {
  uint16_t major = 0;
  uint16_t minor = 0;
  json payload;
};

// `what` is "config" or "commit record", for messages.
absl::StatusOr<Envelope> DecodeEnvelope(std::string_view bytes, std::string_view magic,
                                        std::string_view what, std::string_view key) {
  auto damaged = [&](std::string_view why) {
    return absl::DataLossError(StrCat(what, " ", key, ": ", why));
  };
  if (bytes.size() < kEnvelopeHeaderBytes + kEnvelopeTrailerBytes) {
    return damaged(StrCat("only ", bytes.size(), " bytes"));
  }
  if (bytes.substr(0, magic.size()) != magic) return damaged("bad magic");
  Envelope env;
  env.major = DecodeFixed16(bytes.data() + 8);
  env.minor = DecodeFixed16(bytes.data() + 10);
  // Length and checksum come first (format.md §1.1): the envelope is laid out the same in every
  // version, and a damaged version field must read as damage, not as "upgrade your reader".
  const uint32_t length = DecodeFixed32(bytes.data() + 12);
  if (length > kMaxPayloadBytes ||
      bytes.size() != kEnvelopeHeaderBytes + length + kEnvelopeTrailerBytes) {
    return damaged(StrCat("payload length ", length, " does not match object size ", bytes.size()));
  }
  const size_t covered = kEnvelopeHeaderBytes + length;
  if (Xxh3(bytes.substr(0, covered)) != DecodeFixed64(bytes.data() + covered)) {
    return damaged("checksum mismatch");
  }
  if (env.major == 0) return damaged("version 0.x does not exist");
  if (env.major > kEnvelopeMajor) {
    return absl::FailedPreconditionError(StrCat(what, " ", key, ": version ", env.major, ".",
                                                env.minor, " is newer than this reader supports (",
                                                kEnvelopeMajor, ".x)"));
  }
  env.payload = json::parse(bytes.substr(kEnvelopeHeaderBytes, length), nullptr,
                            /*allow_exceptions=*/false);
  if (env.payload.is_discarded()) return damaged("payload is not valid JSON");
  if (!env.payload.is_object()) return damaged("payload is not a JSON object");
  return env;
}

// Field readers. A 1.0 field is required: minor versions only add fields (§1.1).
const json& Field(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end()) throw FieldError{StrCat("missing field \"", name, "\"")};
  return *it;
}

uint64_t U64(const json& obj, const char* name) {
  const json& v = Field(obj, name);
  // nlohmann stores non-negative integers as unsigned; negative ones, fractions and values
  // beyond 2^64 parse as other types and are rejected here rather than silently converted.
  if (!v.is_number_unsigned()) {
    throw FieldError{StrCat("field \"", name, "\" is not a non-negative integer")};
  }
  return v.get<uint64_t>();
}

// A field added by a later minor version: absent in older objects, `absent` then.
uint64_t OptionalU64(const json& obj, const char* name, uint64_t absent) {
  return obj.contains(name) ? U64(obj, name) : absent;
}

int64_t I64(const json& obj, const char* name) {
  const json& v = Field(obj, name);
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      throw FieldError{StrCat("field \"", name, "\" is out of range")};
    }
    return static_cast<int64_t>(u);
  }
  if (!v.is_number_integer()) {
    throw FieldError{StrCat("field \"", name, "\" is not an integer")};
  }
  return v.get<int64_t>();
}

std::string Str(const json& obj, const char* name) {
  const json& v = Field(obj, name);
  if (!v.is_string()) throw FieldError{StrCat("field \"", name, "\" is not a string")};
  return v.get<std::string>();
}

void Expect(const json& obj, const char* name, std::string_view expected, bool unsupported) {
  const std::string v = Str(obj, name);
  if (v != expected) {
    throw FieldError{
        StrCat("field \"", name, "\" is \"", v, "\", this reader knows only \"", expected, "\""),
        unsupported};
  }
}

absl::Time Time(const json& obj, const char* name) {
  const std::string s = Str(obj, name);
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, s, &t, &err)) {
    throw FieldError{StrCat("field \"", name, "\" is not an RFC 3339 time: ", err)};
  }
  // absl also parses "infinite-future" and "infinite-past", which no writer writes and which
  // would, say, keep a checkpoint forever under keep-within.
  if (t == absl::InfiniteFuture() || t == absl::InfinitePast()) {
    throw FieldError{StrCat("field \"", name, "\" is not a finite time")};
  }
  return t;
}

CheckpointKind Kind(const json& obj, const char* name) {
  const std::string s = Str(obj, name);
  if (s == "full") return CheckpointKind::kFull;
  if (s == "incremental") return CheckpointKind::kIncremental;
  throw FieldError{StrCat("field \"", name, "\" has unknown kind \"", s, "\"")};
}

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// The rules of §6 and §8.4 that a single record can be checked against. Shared by the encoder's
// validation (InvalidArgument) and the decoder (DataLoss); returns the first violation.
std::optional<std::string> FindViolation(const CommitRecord& r) {
  if (r.id == 0) return "id is 0 (ids are positive)";
  if (r.parent.has_value() && (*r.parent == 0 || *r.parent >= r.id)) {
    return StrCat("parent ", *r.parent, " is not an id below ", r.id);
  }
  if (r.kind == CheckpointKind::kIncremental && !r.parent.has_value()) {
    return "an incremental checkpoint has no parent";
  }
  bool all_full = true;
  uint64_t max_depth = 0;
  std::set<std::string_view> participant_names;
  for (const ParticipantRecord& p : r.participants) {
    if (p.name.empty()) return "a participant has an empty name";
    if (!participant_names.insert(p.name).second) {
      return StrCat("participant \"", p.name, "\" appears twice");
    }
    std::set<std::string_view> object_names;
    for (const StateObjectRecord& o : p.state_objects) {
      const std::string where =
          StrCat("state object \"", o.name, "\" of participant \"", p.name, "\"");
      if (o.name.empty()) return StrCat("participant \"", p.name, "\" has an unnamed state object");
      if (!object_names.insert(o.name).second) return StrCat(where, " appears twice");
      if (o.type != StateObjectType::kRegion && o.type != StateObjectType::kKeyed) {
        return StrCat(where, ": unknown type");
      }
      if (o.type == StateObjectType::kKeyed) {
        if (o.key_groups == 0 || o.key_groups > kMaxKeyGroups) {
          return StrCat(where, ": key_groups ", o.key_groups, " is not in 1..", kMaxKeyGroups);
        }
        if (o.tombstones > o.changed_entries) {
          return StrCat(where, ": ", o.tombstones, " tombstones among ", o.changed_entries,
                        " changed entries");
        }
        if (o.kind == CheckpointKind::kFull && o.tombstones != 0) {
          return StrCat(where, ": a full keyed state has tombstones");
        }
      }
      // §2: keys taken from an object are validated before use.
      if (absl::Status s = ValidateObjectKey(o.manifest); !s.ok()) {
        return StrCat(where, ": ", std::string(s.message()));
      }
      if (o.manifest_sha256.size() != 64 || !IsLowerHex(o.manifest_sha256)) {
        return StrCat(where, ": manifest_sha256 \"", o.manifest_sha256,
                      "\" is not 64 lowercase hex characters");
      }
      // Manifests are named by their sha256 (§2), so key and hash must agree.
      if (ParseHashKey(o.manifest, kManifestsPrefix) != o.manifest_sha256) {
        return StrCat(where, ": manifest key \"", o.manifest, "\" is not ",
                      ManifestKey(o.manifest_sha256));
      }
      if (o.kind == CheckpointKind::kFull && o.depth != 0) {
        return StrCat(where, ": full manifest with depth ", o.depth);
      }
      if (o.kind == CheckpointKind::kIncremental && o.depth == 0) {
        return StrCat(where, ": incremental manifest with depth 0");
      }
      if (o.kind == CheckpointKind::kIncremental && !r.parent.has_value()) {
        return StrCat(where, ": incremental manifest in a checkpoint without parent");
      }
      all_full = all_full && o.kind == CheckpointKind::kFull;
      max_depth = std::max(max_depth, o.depth);
    }
  }
  // §6: kind is full iff every manifest is full; depth is the max over the manifests.
  if ((r.kind == CheckpointKind::kFull) != all_full) {
    return StrCat("kind is ", CheckpointKindName(r.kind), " but ",
                  all_full ? "every manifest is full" : "some manifest is incremental");
  }
  if (r.depth != max_depth) {
    return StrCat("depth is ", r.depth, " but the manifests' maximum is ", max_depth);
  }
  return std::nullopt;
}

json ToJson(const CommitRecord& r, std::string_view format) {
  json participants = json::array();
  for (const ParticipantRecord& p : r.participants) {
    json objects = json::array();
    for (const StateObjectRecord& o : p.state_objects) {
      json& object = objects.emplace_back(json{
          {"name", o.name},
          {"type", StateObjectTypeName(o.type)},
          {"manifest", o.manifest},
          {"manifest_sha256", o.manifest_sha256},
          {"manifest_bytes", o.manifest_bytes},
          {"kind", CheckpointKindName(o.kind)},
          {"depth", o.depth},
          {"tracker", o.tracker},
          {"logical_bytes", o.logical_bytes},
          {"changed_blocks", o.changed_blocks},
          {"raw_bytes", o.raw_bytes},
          {"stored_bytes", o.stored_bytes},
          {"pause_ns", o.pause_ns},
          {"persist_ns", o.persist_ns},
      });
      if (o.type == StateObjectType::kKeyed) {
        object["key_groups"] = o.key_groups;
        object["entries"] = o.entries;
        object["changed_entries"] = o.changed_entries;
        object["tombstones"] = o.tombstones;
      }
    }
    // incarnation: format 1.2 (§6, §11).
    participants.push_back(
        {{"name", p.name}, {"incarnation", p.incarnation}, {"state_objects", std::move(objects)}});
  }
  json metadata = json::object();
  for (const auto& [k, v] : r.metadata) metadata[k] = v;
  return json{
      {"format", format},
      {"id", r.id},
      {"parent", r.parent.has_value() ? json(*r.parent) : json(nullptr)},
      {"kind", CheckpointKindName(r.kind)},
      {"depth", r.depth},
      {"created", ickpt::FormatTime(r.created)},
      {"epoch", r.epoch},
      {"logical_bytes", r.logical_bytes},
      {"stored_bytes", r.stored_bytes},
      {"participants", std::move(participants)},
      {"metadata", std::move(metadata)},
  };
}

CommitRecord CommitFromJson(const json& j, std::string_view format) {
  Expect(j, "format", format, /*unsupported=*/false);
  CommitRecord r;
  r.id = U64(j, "id");
  const json& parent = Field(j, "parent");
  if (!parent.is_null()) r.parent = U64(j, "parent");
  r.kind = Kind(j, "kind");
  r.depth = U64(j, "depth");
  r.created = Time(j, "created");
  r.epoch = U64(j, "epoch");
  r.logical_bytes = U64(j, "logical_bytes");
  r.stored_bytes = U64(j, "stored_bytes");
  const json& participants = Field(j, "participants");
  if (!participants.is_array()) throw FieldError{"field \"participants\" is not an array"};
  for (const json& pj : participants) {
    if (!pj.is_object()) throw FieldError{"a participant is not an object"};
    ParticipantRecord& p = r.participants.emplace_back();
    p.name = Str(pj, "name");
    p.incarnation = OptionalU64(pj, "incarnation", 0);
    const json& objects = Field(pj, "state_objects");
    if (!objects.is_array()) throw FieldError{"field \"state_objects\" is not an array"};
    for (const json& oj : objects) {
      if (!oj.is_object()) throw FieldError{"a state object is not an object"};
      StateObjectRecord& o = p.state_objects.emplace_back();
      o.name = Str(oj, "name");
      // §1.1: a type added by a later minor version is rejected by name, as unsupported.
      const std::string type = Str(oj, "type");
      if (type == StateObjectTypeName(StateObjectType::kRegion)) {
        o.type = StateObjectType::kRegion;
      } else if (type == StateObjectTypeName(StateObjectType::kKeyed)) {
        o.type = StateObjectType::kKeyed;
      } else {
        throw FieldError{StrCat("state object \"", o.name, "\" has type \"", type,
                                "\", which this reader does not know"),
                         /*unsupported=*/true};
      }
      o.manifest = Str(oj, "manifest");
      o.manifest_sha256 = Str(oj, "manifest_sha256");
      o.manifest_bytes = U64(oj, "manifest_bytes");
      o.kind = Kind(oj, "kind");
      o.depth = U64(oj, "depth");
      o.tracker = Str(oj, "tracker");
      o.logical_bytes = U64(oj, "logical_bytes");
      o.changed_blocks = U64(oj, "changed_blocks");
      o.raw_bytes = U64(oj, "raw_bytes");
      o.stored_bytes = U64(oj, "stored_bytes");
      o.pause_ns = I64(oj, "pause_ns");
      o.persist_ns = I64(oj, "persist_ns");
      if (o.type == StateObjectType::kKeyed) {
        const uint64_t key_groups = U64(oj, "key_groups");
        if (key_groups == 0 || key_groups > kMaxKeyGroups) {
          throw FieldError{StrCat("key_groups ", key_groups, " is not in 1..", kMaxKeyGroups)};
        }
        o.key_groups = static_cast<uint32_t>(key_groups);
        o.entries = U64(oj, "entries");
        o.changed_entries = U64(oj, "changed_entries");
        o.tombstones = U64(oj, "tombstones");
      }
    }
  }
  const json& metadata = Field(j, "metadata");
  if (!metadata.is_object()) throw FieldError{"field \"metadata\" is not an object"};
  for (const auto& [k, v] : metadata.items()) {
    if (!v.is_string()) throw FieldError{StrCat("metadata \"", k, "\" is not a string")};
    r.metadata[k] = v.get<std::string>();
  }
  return r;
}

RepositoryConfig ConfigFromJson(const json& j) {
  Expect(j, "format", "ickpt-config", /*unsupported=*/false);
  RepositoryConfig c;
  c.repository_id = Str(j, "repository_id");
  if (c.repository_id.size() != 32 || !IsLowerHex(c.repository_id)) {
    throw FieldError{"field \"repository_id\" is not 32 lowercase hex characters"};
  }
  c.created = Time(j, "created");
  const uint64_t block_size = U64(j, "block_size");
  if (block_size == 0 || block_size % 4096 != 0 || block_size > kMaxBlockSize) {
    throw FieldError{
        StrCat("block_size ", block_size, " is not a multiple of 4096 in [4096, 16 MiB]")};
  }
  c.block_size = static_cast<uint32_t>(block_size);
  // §3: a config naming an algorithm this reader does not know is refused.
  c.checksum = Str(j, "checksum");
  Expect(j, "checksum", "xxh3-64", /*unsupported=*/true);
  c.compression = Str(j, "compression");
  Expect(j, "compression", "zstd", /*unsupported=*/true);
  const uint64_t level = U64(j, "compression_level");
  if (level < 1 || level > 19) {
    throw FieldError{StrCat("compression_level ", level, " is not in 1..19")};
  }
  c.compression_level = static_cast<int>(level);
  c.object_name_hash = Str(j, "object_name_hash");
  Expect(j, "object_name_hash", "sha256", /*unsupported=*/true);
  c.key_group_hash = Str(j, "key_group_hash");
  Expect(j, "key_group_hash", "xxh3-64-seed0", /*unsupported=*/true);
  c.pack_target_bytes = U64(j, "pack_target_bytes");
  if (c.pack_target_bytes == 0) throw FieldError{"pack_target_bytes is 0"};
  return c;
}

// Runs `parse` on a decoded payload and maps every failure to a status naming the object.
template <typename T, typename Parse>
absl::StatusOr<T> ParsePayload(const json& payload, std::string_view what, std::string_view key,
                               Parse parse) {
  try {
    return parse(payload);
  } catch (const FieldError& e) {
    const std::string message = StrCat(what, " ", key, ": ", e.what);
    return e.unsupported ? absl::FailedPreconditionError(message) : absl::DataLossError(message);
  } catch (const json::exception& e) {
    // The readers check types first; this is a second line so that no JSON shape can throw
    // past the decoder.
    return absl::DataLossError(StrCat(what, " ", key, ": ", e.what()));
  }
}

// nlohmann's dump() throws on invalid UTF-8 by default. The encoders replace such bytes instead
// so that they never throw; ValidateCommitRecord rejects records that would be altered.
std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

bool IsValidUtf8ForJson(const std::string& s) {
  try {
    (void)json(s).dump();
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

// Whole seconds >= 1 of a duration field, or a FieldError.
absl::Duration Seconds(const json& obj, const char* name) {
  const uint64_t seconds = U64(obj, name);
  // Bounded so that absl::Seconds and the arithmetic of GC stay exact: about 31,700 years.
  if (seconds == 0 || seconds > (uint64_t{1} << 40)) {
    throw FieldError{StrCat("field \"", name, "\" is ", seconds, ", not in [1, 2^40] seconds")};
  }
  return absl::Seconds(static_cast<int64_t>(seconds));
}

bool IsWholeSeconds(absl::Duration d) {
  return d >= absl::Seconds(1) && d <= absl::Seconds(int64_t{1} << 40) &&
         d == absl::Seconds(absl::ToInt64Seconds(d));
}

RetentionPolicy PolicyFromJson(const json& j) {
  Expect(j, "format", "ickpt-policy", /*unsupported=*/false);
  RetentionPolicy p;
  p.generation = U64(j, "generation");
  if (p.generation == 0) throw FieldError{"field \"generation\" is 0"};
  p.created = Time(j, "created");
  if (!Field(j, "keep_last").is_null()) {
    p.keep_last = U64(j, "keep_last");
    if (*p.keep_last == 0) throw FieldError{"field \"keep_last\" is 0"};
  }
  if (!Field(j, "keep_within_seconds").is_null()) p.keep_within = Seconds(j, "keep_within_seconds");
  if (!p.keep_last.has_value() && !p.keep_within.has_value()) {
    throw FieldError{"neither keep_last nor keep_within_seconds is set"};
  }
  p.checkpoint_timeout = Seconds(j, "checkpoint_timeout_seconds");
  return p;
}

Pin PinFromJson(const json& j) {
  Expect(j, "format", "ickpt-pin", /*unsupported=*/false);
  Pin pin;
  pin.name = Str(j, "name");
  pin.id = U64(j, "id");
  if (pin.id == 0) throw FieldError{"field \"id\" is 0"};
  pin.created = Time(j, "created");
  return pin;
}

MaintenanceLock LockFromJson(const json& j) {
  Expect(j, "format", "ickpt-lock", /*unsupported=*/false);
  MaintenanceLock lock;
  lock.holder = Str(j, "holder");
  if (lock.holder.size() != 32 || !IsLowerHex(lock.holder)) {
    throw FieldError{"field \"holder\" is not 32 lowercase hex characters"};
  }
  lock.host = Str(j, "host");
  lock.pid = I64(j, "pid");
  if (lock.pid < 0) throw FieldError{"field \"pid\" is negative"};
  lock.operation = Str(j, "operation");
  lock.ttl = Seconds(j, "ttl_seconds");
  lock.created = Time(j, "created");
  lock.renewals = OptionalU64(j, "renewals", 0);
  return lock;
}

// §15.1, shared by the encoder's validation and the decoder; the first violation.
std::optional<std::string> FindEpochViolation(const EpochRecord& r) {
  if (r.epoch == 0) return std::string("epoch 0 (epochs are positive)");
  if (r.base.has_value() && *r.base == 0) return std::string("base 0 (ids are positive)");
  if (r.previous >= r.epoch) {
    return StrCat("previous ", r.previous, " is not an epoch below ", r.epoch);
  }
  if (r.leader.empty() || r.leader.size() > kMaxLeaderBytes) {
    return StrCat("leader name of ", r.leader.size(), " bytes (1 to ", kMaxLeaderBytes,
                  " allowed)");
  }
  return std::nullopt;
}

EpochRecord EpochFromJson(const json& j) {
  Expect(j, "format", "ickpt-epoch", /*unsupported=*/false);
  EpochRecord r;
  r.epoch = U64(j, "epoch");
  if (!Field(j, "base").is_null()) r.base = U64(j, "base");
  r.previous = U64(j, "previous");
  r.created = Time(j, "created");
  r.leader = Str(j, "leader");
  return r;
}

}  // namespace

std::string EncodeEpochRecord(const EpochRecord& r) {
  json j{{"format", "ickpt-epoch"},
         {"epoch", r.epoch},
         {"base", r.base.has_value() ? json(*r.base) : json(nullptr)},
         {"previous", r.previous},
         {"created", ickpt::FormatTime(r.created)},
         {"leader", r.leader}};
  return EncodeEnvelope(kEpochMagic, kEnvelopeMajor, kEnvelopeMinor, Dump(j));
}

absl::Status ValidateEpochRecord(const EpochRecord& r) {
  if (std::optional<std::string> violation = FindEpochViolation(r)) {
    return absl::InvalidArgumentError(StrCat("epoch record of epoch ", r.epoch, ": ", *violation));
  }
  if (!IsValidUtf8ForJson(r.leader)) {
    return absl::InvalidArgumentError(
        StrCat("epoch record of epoch ", r.epoch, ": leader name is not valid UTF-8"));
  }
  return absl::OkStatus();
}

absl::StatusOr<EpochRecord> DecodeEpochRecord(std::string_view bytes, std::string_view key,
                                              uint64_t epoch) {
  constexpr std::string_view kWhat = "epoch record";
  absl::StatusOr<Envelope> env = DecodeEnvelope(bytes, kEpochMagic, kWhat, key);
  if (!env.ok()) return env.status();
  absl::StatusOr<EpochRecord> r =
      ParsePayload<EpochRecord>(env->payload, kWhat, key, EpochFromJson);
  if (!r.ok()) return r.status();
  std::optional<std::string> violation = FindEpochViolation(*r);
  if (!violation.has_value() && r->epoch != epoch) {
    violation = StrCat("holds epoch ", r->epoch, ", its key says epoch ", epoch);
  }
  if (violation.has_value()) {
    return absl::DataLossError(StrCat(kWhat, " ", key, ": ", *violation));
  }
  return r;
}

std::string EncodePolicy(const RetentionPolicy& p) {
  json j{
      {"format", "ickpt-policy"},
      {"generation", p.generation},
      {"created", ickpt::FormatTime(p.created)},
      {"keep_last", p.keep_last.has_value() ? json(*p.keep_last) : json(nullptr)},
      {"keep_within_seconds",
       p.keep_within.has_value() ? json(absl::ToInt64Seconds(*p.keep_within)) : json(nullptr)},
      {"checkpoint_timeout_seconds", absl::ToInt64Seconds(p.checkpoint_timeout)},
  };
  return EncodeEnvelope(kPolicyMagic, kEnvelopeMajor, kEnvelopeMinor, Dump(j));
}

absl::Status ValidateRetentionPolicy(const RetentionPolicy& p) {
  if (!p.keep_last.has_value() && !p.keep_within.has_value()) {
    return absl::InvalidArgumentError(
        "a retention policy needs keep-last, keep-within or both (a repository without a policy "
        "keeps everything; a policy cannot be removed, only replaced)");
  }
  if (p.keep_last.has_value() && *p.keep_last == 0) {
    return absl::InvalidArgumentError("keep-last must be at least 1");
  }
  if (p.keep_within.has_value() && !IsWholeSeconds(*p.keep_within)) {
    return absl::InvalidArgumentError(StrCat("keep-within ", absl::FormatDuration(*p.keep_within),
                                             " is not a whole number of seconds >= 1 s"));
  }
  if (!IsWholeSeconds(p.checkpoint_timeout)) {
    return absl::InvalidArgumentError(StrCat("checkpoint timeout ",
                                             absl::FormatDuration(p.checkpoint_timeout),
                                             " is not a whole number of seconds >= 1 s"));
  }
  return absl::OkStatus();
}

absl::StatusOr<RetentionPolicy> DecodePolicy(std::string_view bytes, std::string_view key,
                                             uint64_t generation) {
  constexpr std::string_view kWhat = "retention policy";
  absl::StatusOr<Envelope> env = DecodeEnvelope(bytes, kPolicyMagic, kWhat, key);
  if (!env.ok()) return env.status();
  absl::StatusOr<RetentionPolicy> p =
      ParsePayload<RetentionPolicy>(env->payload, kWhat, key, PolicyFromJson);
  if (!p.ok()) return p.status();
  if (p->generation != generation) {
    return absl::DataLossError(
        StrCat(kWhat, " ", key, ": holds generation ", p->generation, ", its name ", generation));
  }
  return p;
}

std::string EncodePin(const Pin& pin) {
  json j{{"format", "ickpt-pin"},
         {"name", pin.name},
         {"id", pin.id},
         {"created", ickpt::FormatTime(pin.created)}};
  return EncodeEnvelope(kPinMagic, kEnvelopeMajor, kEnvelopeMinor, Dump(j));
}

absl::StatusOr<Pin> DecodePin(std::string_view bytes, std::string_view key, std::string_view name) {
  constexpr std::string_view kWhat = "pin";
  absl::StatusOr<Envelope> env = DecodeEnvelope(bytes, kPinMagic, kWhat, key);
  if (!env.ok()) return env.status();
  absl::StatusOr<Pin> pin = ParsePayload<Pin>(env->payload, kWhat, key, PinFromJson);
  if (!pin.ok()) return pin.status();
  if (pin->name != name || !ValidatePinName(pin->name).ok()) {
    return absl::DataLossError(StrCat(kWhat, " ", key, ": holds the name '",
                                      pin->name.substr(0, 80), "', its key '", name, "'"));
  }
  return pin;
}

std::string EncodeMaintenanceLock(const MaintenanceLock& lock) {
  json j{{"format", "ickpt-lock"},
         {"holder", lock.holder},
         {"host", lock.host},
         {"pid", lock.pid},
         {"operation", lock.operation},
         {"ttl_seconds", absl::ToInt64Seconds(lock.ttl)},
         {"created", ickpt::FormatTime(lock.created)},
         {"renewals", lock.renewals}};
  return EncodeEnvelope(kLockMagic, kEnvelopeMajor, kEnvelopeMinor, Dump(j));
}

absl::StatusOr<MaintenanceLock> DecodeMaintenanceLock(std::string_view bytes,
                                                      std::string_view key) {
  constexpr std::string_view kWhat = "maintenance lock";
  absl::StatusOr<Envelope> env = DecodeEnvelope(bytes, kLockMagic, kWhat, key);
  if (!env.ok()) return env.status();
  return ParsePayload<MaintenanceLock>(env->payload, kWhat, key, LockFromJson);
}

std::string EncodeCommitRecord(const CommitRecord& record) {
  return EncodeEnvelope(kCommitMagic, kEnvelopeMajor, kEnvelopeMinor,
                        Dump(ToJson(record, "ickpt-commit")));
}

// §14.1: what a consolidation record adds to the commit record's rules.
std::optional<std::string> FindConsolidationViolation(const ConsolidationRecord& consolidation) {
  if (std::optional<std::string> violation = FindViolation(consolidation.record)) return violation;
  if (consolidation.generation == 0) return std::string("generation 0");
  if (consolidation.record.kind != CheckpointKind::kFull) return std::string("kind is not full");
  for (const ParticipantRecord& p : consolidation.record.participants) {
    for (const StateObjectRecord& o : p.state_objects) {
      if (o.kind != CheckpointKind::kFull) {
        return StrCat("state object \"", o.name, "\" of participant \"", p.name,
                      "\" names an incremental manifest");
      }
    }
  }
  return std::nullopt;
}

std::string EncodeConsolidationRecord(const ConsolidationRecord& consolidation) {
  json j = ToJson(consolidation.record, "ickpt-consolidation");
  j["generation"] = consolidation.generation;
  j["repacked_bytes"] = consolidation.repacked_bytes;
  return EncodeEnvelope(kConsolidationMagic, kEnvelopeMajor, kEnvelopeMinor, Dump(j));
}

absl::Status ValidateConsolidationRecord(const ConsolidationRecord& consolidation) {
  if (absl::Status s = ValidateCommitRecord(consolidation.record); !s.ok()) return s;
  if (std::optional<std::string> violation = FindConsolidationViolation(consolidation)) {
    return absl::InvalidArgumentError(
        StrCat("consolidation record of checkpoint ", consolidation.record.id, ": ", *violation));
  }
  // Its own encoding is longer than the commit record's that ValidateCommitRecord measured.
  const std::string encoded = EncodeConsolidationRecord(consolidation);
  if (encoded.size() - kEnvelopeHeaderBytes - kEnvelopeTrailerBytes > kMaxPayloadBytes) {
    return absl::InvalidArgumentError(StrCat("consolidation record of checkpoint ",
                                             consolidation.record.id, " exceeds 16 MiB (",
                                             encoded.size(), " bytes)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ConsolidationRecord> DecodeConsolidationRecord(std::string_view bytes,
                                                              std::string_view key, uint64_t id,
                                                              uint64_t generation) {
  constexpr std::string_view kWhat = "consolidation record";
  absl::StatusOr<Envelope> env = DecodeEnvelope(bytes, kConsolidationMagic, kWhat, key);
  if (!env.ok()) return env.status();
  absl::StatusOr<ConsolidationRecord> consolidation =
      ParsePayload<ConsolidationRecord>(env->payload, kWhat, key, [](const json& j) {
        ConsolidationRecord m;
        m.record = CommitFromJson(j, "ickpt-consolidation");
        m.generation = U64(j, "generation");
        m.repacked_bytes = U64(j, "repacked_bytes");
        return m;
      });
  if (!consolidation.ok()) return consolidation.status();
  std::optional<std::string> violation = FindConsolidationViolation(*consolidation);
  if (!violation.has_value() &&
      (consolidation->record.id != id || consolidation->generation != generation)) {
    violation = StrCat("holds checkpoint ", consolidation->record.id, " generation ",
                       consolidation->generation, ", its key says checkpoint ", id, " generation ",
                       generation);
  }
  if (violation.has_value()) {
    return absl::DataLossError(StrCat("consolidation record ", key, ": ", *violation));
  }
  return consolidation;
}

std::string EncodeAck(const CommitRecord& ack) {
  return EncodeEnvelope(kAckMagic, kEnvelopeMajor, kEnvelopeMinor, Dump(ToJson(ack, "ickpt-ack")));
}

absl::Status ValidateCommitRecord(const CommitRecord& record) {
  if (std::optional<std::string> violation = FindViolation(record)) {
    return absl::InvalidArgumentError(
        StrCat("commit record of checkpoint ", record.id, ": ", *violation));
  }
  // JSON strings are UTF-8; a string that is not would be changed by encoding.
  auto check = [&](const std::string& s) -> absl::Status {
    if (IsValidUtf8ForJson(s)) return absl::OkStatus();
    return absl::InvalidArgumentError(
        StrCat("commit record of checkpoint ", record.id, ": string is not valid UTF-8"));
  };
  for (const ParticipantRecord& p : record.participants) {
    if (absl::Status s = check(p.name); !s.ok()) return s;
    for (const StateObjectRecord& o : p.state_objects) {
      if (absl::Status s = check(o.name); !s.ok()) return s;
      if (absl::Status s = check(o.tracker); !s.ok()) return s;
    }
  }
  for (const auto& [k, v] : record.metadata) {
    if (absl::Status s = check(k); !s.ok()) return s;
    if (absl::Status s = check(v); !s.ok()) return s;
  }
  const std::string encoded = EncodeCommitRecord(record);
  if (encoded.size() - kEnvelopeHeaderBytes - kEnvelopeTrailerBytes > kMaxPayloadBytes) {
    return absl::InvalidArgumentError(StrCat("commit record of checkpoint ", record.id,
                                             " exceeds 16 MiB (", encoded.size(), " bytes)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<CommitRecord> DecodeCommitRecord(std::string_view bytes, std::string_view key) {
  constexpr std::string_view kWhat = "commit record";
  absl::StatusOr<Envelope> env = DecodeEnvelope(bytes, kCommitMagic, kWhat, key);
  if (!env.ok()) return env.status();
  absl::StatusOr<CommitRecord> record = ParsePayload<CommitRecord>(
      env->payload, kWhat, key, [](const json& j) { return CommitFromJson(j, "ickpt-commit"); });
  if (!record.ok()) return record.status();
  if (std::optional<std::string> violation = FindViolation(*record)) {
    return absl::DataLossError(
        StrCat("commit record ", key, " of checkpoint ", record->id, ": ", *violation));
  }
  return record;
}

absl::StatusOr<CommitRecord> DecodeAck(std::string_view bytes, std::string_view key) {
  constexpr std::string_view kWhat = "acknowledgement";
  absl::StatusOr<Envelope> env = DecodeEnvelope(bytes, kAckMagic, kWhat, key);
  if (!env.ok()) return env.status();
  absl::StatusOr<CommitRecord> ack = ParsePayload<CommitRecord>(
      env->payload, kWhat, key, [](const json& j) { return CommitFromJson(j, "ickpt-ack"); });
  if (!ack.ok()) return ack.status();
  std::optional<std::string> violation = FindViolation(*ack);
  if (!violation.has_value() && ack->participants.size() != 1) {
    violation = StrCat("holds ", ack->participants.size(), " participants, not one");
  }
  if (violation.has_value()) {
    return absl::DataLossError(
        StrCat("acknowledgement ", key, " of checkpoint ", ack->id, ": ", *violation));
  }
  return ack;
}

std::string EncodeConfig(const RepositoryConfig& config) {
  json j{
      {"format", "ickpt-config"},
      {"repository_id", config.repository_id},
      {"created", ickpt::FormatTime(config.created)},
      {"block_size", config.block_size},
      {"checksum", config.checksum},
      {"compression", config.compression},
      {"compression_level", config.compression_level},
      {"object_name_hash", config.object_name_hash},
      {"key_group_hash", config.key_group_hash},
      {"pack_target_bytes", config.pack_target_bytes},
  };
  return EncodeEnvelope(kConfigMagic, config.major, config.minor, Dump(j));
}

absl::StatusOr<RepositoryConfig> DecodeConfig(std::string_view bytes, std::string_view key) {
  constexpr std::string_view kWhat = "config";
  absl::StatusOr<Envelope> env = DecodeEnvelope(bytes, kConfigMagic, kWhat, key);
  if (!env.ok()) return env.status();
  absl::StatusOr<RepositoryConfig> config =
      ParsePayload<RepositoryConfig>(env->payload, kWhat, key, ConfigFromJson);
  if (!config.ok()) return config.status();
  config->major = env->major;
  config->minor = env->minor;
  return config;
}

}  // namespace ickpt
