#include "src/repo/commit_record.h"

#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "src/repo/keys.h"
#include "src/util/coding.h"
#include "src/util/hash.h"

namespace ickpt {
namespace {

using json = nlohmann::json;

constexpr std::string_view kKey = "commits/00000000000000000042";
const std::string kSha(64, 'c');
const std::string kOtherSha = std::string(63, 'd') + "e";

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

StateObjectRecord Object(std::string name, CheckpointKind kind, uint64_t depth,
                         const std::string& sha) {
  StateObjectRecord o;
  o.name = std::move(name);
  o.manifest = ManifestKey(sha);
  o.manifest_sha256 = sha;
  o.manifest_bytes = 1234;
  o.kind = kind;
  o.depth = depth;
  o.tracker = "hash";
  o.logical_bytes = 1 << 30;
  o.changed_blocks = 17;
  o.raw_bytes = 17 * 4096;
  o.stored_bytes = 9000;
  o.pause_ns = 1'500'000;
  o.persist_ns = -1;  // signed on purpose: the type allows it
  return o;
}

CommitRecord IncrementalRecord() {
  CommitRecord r;
  r.id = 42;
  r.parent = 41;
  r.kind = CheckpointKind::kIncremental;
  r.depth = 3;
  r.created = absl::FromUnixNanos(1'795'000'000'123'456'789);
  r.epoch = 5;
  r.logical_bytes = 3ull << 30;
  r.stored_bytes = 123456;
  r.participants = {
      {.name = "worker-0",
       .state_objects = {Object("heap", CheckpointKind::kIncremental, 3, kSha),
                         Object("arena", CheckpointKind::kFull, 0, kOtherSha)}},
      {.name = "worker-1", .state_objects = {}},
  };
  r.metadata = {{"input.offset", "12345"}, {"note", "ünïcode ✓"}};
  return r;
}

CommitRecord FullRecord() {
  CommitRecord r;
  r.id = 1;
  r.created = absl::FromUnixSeconds(1'795'000'000);
  r.participants = {
      {.name = "solo", .state_objects = {Object("heap", CheckpointKind::kFull, 0, kSha)}}};
  return r;
}

void ExpectSame(const CommitRecord& a, const CommitRecord& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.parent, b.parent);
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.depth, b.depth);
  EXPECT_EQ(a.created, b.created);
  EXPECT_EQ(a.epoch, b.epoch);
  EXPECT_EQ(a.logical_bytes, b.logical_bytes);
  EXPECT_EQ(a.stored_bytes, b.stored_bytes);
  EXPECT_EQ(a.metadata, b.metadata);
  ASSERT_EQ(a.participants.size(), b.participants.size());
  for (size_t i = 0; i < a.participants.size(); ++i) {
    const ParticipantRecord& p = a.participants[i];
    const ParticipantRecord& q = b.participants[i];
    EXPECT_EQ(p.name, q.name);
    ASSERT_EQ(p.state_objects.size(), q.state_objects.size());
    for (size_t j = 0; j < p.state_objects.size(); ++j) {
      const StateObjectRecord& x = p.state_objects[j];
      const StateObjectRecord& y = q.state_objects[j];
      EXPECT_EQ(x.name, y.name);
      EXPECT_EQ(x.type, y.type);
      EXPECT_EQ(x.manifest, y.manifest);
      EXPECT_EQ(x.manifest_sha256, y.manifest_sha256);
      EXPECT_EQ(x.manifest_bytes, y.manifest_bytes);
      EXPECT_EQ(x.kind, y.kind);
      EXPECT_EQ(x.depth, y.depth);
      EXPECT_EQ(x.tracker, y.tracker);
      EXPECT_EQ(x.logical_bytes, y.logical_bytes);
      EXPECT_EQ(x.changed_blocks, y.changed_blocks);
      EXPECT_EQ(x.raw_bytes, y.raw_bytes);
      EXPECT_EQ(x.stored_bytes, y.stored_bytes);
      EXPECT_EQ(x.pause_ns, y.pause_ns);
      EXPECT_EQ(x.persist_ns, y.persist_ns);
    }
  }
}

std::string Envelope(std::string_view magic, uint16_t major, uint16_t minor,
                     std::string_view payload) {
  std::string out(magic);
  PutFixed16(&out, major);
  PutFixed16(&out, minor);
  PutFixed32(&out, static_cast<uint32_t>(payload.size()));
  out.append(payload);
  PutFixed64(&out, Xxh3(out));
  return out;
}

json PayloadOf(const std::string& bytes) {
  return json::parse(bytes.substr(16, bytes.size() - 24));
}

// Decodes a commit record whose JSON was edited by `edit`, re-enveloped with a valid checksum.
absl::Status DecodeEdited(const CommitRecord& r, void (*edit)(json&)) {
  json j = PayloadOf(EncodeCommitRecord(r));
  edit(j);
  return DecodeCommitRecord(Envelope("ICKPTCMT", 1, 0, j.dump()), kKey).status();
}

RepositoryConfig Config() {
  RepositoryConfig c;
  c.repository_id = "0123456789abcdef0123456789abcdef";
  c.created = absl::FromUnixNanos(1'700'000'000'000'000'001);
  c.block_size = 65536;
  c.compression_level = 7;
  c.pack_target_bytes = 8 << 20;
  return c;
}

absl::Status DecodeEditedConfig(void (*edit)(json&)) {
  json j = PayloadOf(EncodeConfig(Config()));
  edit(j);
  return DecodeConfig(Envelope("ICKPTCFG", 1, 0, j.dump()), "config").status();
}

TEST(FormatTimeTest, Rfc3339UtcWithNanoseconds) {
  EXPECT_EQ(ickpt::FormatTime(absl::FromUnixNanos(1'795'000'000'123'456'789)),
            "2026-11-18T11:06:40.123456789Z");
  EXPECT_EQ(ickpt::FormatTime(absl::FromUnixSeconds(0)), "1970-01-01T00:00:00.000000000Z");
}

TEST(EnumNamesTest, Names) {
  EXPECT_EQ(CheckpointKindName(CheckpointKind::kFull), "full");
  EXPECT_EQ(CheckpointKindName(CheckpointKind::kIncremental), "incremental");
  EXPECT_EQ(StateObjectTypeName(StateObjectType::kRegion), "region");
}

TEST(CommitRecordTest, RoundTrip) {
  for (const CommitRecord& r : {IncrementalRecord(), FullRecord()}) {
    ASSERT_TRUE(ValidateCommitRecord(r).ok()) << ValidateCommitRecord(r);
    const std::string bytes = EncodeCommitRecord(r);
    EXPECT_EQ(bytes.substr(0, 8), "ICKPTCMT");
    absl::StatusOr<CommitRecord> decoded = DecodeCommitRecord(bytes, kKey);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    ExpectSame(*decoded, r);
  }
}

TEST(CommitRecordTest, FieldNamesAreThoseOfTheFormat) {
  json j = PayloadOf(EncodeCommitRecord(IncrementalRecord()));
  EXPECT_EQ(j["format"], "ickpt-commit");
  EXPECT_EQ(j["id"], 42);
  EXPECT_EQ(j["parent"], 41);
  EXPECT_EQ(j["kind"], "incremental");
  EXPECT_EQ(j["created"], "2026-11-18T11:06:40.123456789Z");
  for (const char* f :
       {"depth", "epoch", "logical_bytes", "stored_bytes", "participants", "metadata"}) {
    EXPECT_TRUE(j.contains(f)) << f;
  }
  const json& o = j["participants"][0]["state_objects"][0];
  for (const char* f :
       {"name", "type", "manifest", "manifest_sha256", "manifest_bytes", "kind", "depth", "tracker",
        "logical_bytes", "changed_blocks", "raw_bytes", "stored_bytes", "pause_ns", "persist_ns"}) {
    EXPECT_TRUE(o.contains(f)) << f;
  }
  EXPECT_EQ(o["type"], "region");
  EXPECT_TRUE(PayloadOf(EncodeCommitRecord(FullRecord()))["parent"].is_null());
}

TEST(CommitRecordTest, EveryFlippedByteIsCaught) {
  const std::string bytes = EncodeCommitRecord(IncrementalRecord());
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (uint8_t mask : {0x01, 0x80, 0xff}) {
      std::string damaged = bytes;
      damaged[i] = static_cast<char>(damaged[i] ^ mask);
      absl::Status s = DecodeCommitRecord(damaged, kKey).status();
      EXPECT_FALSE(s.ok()) << "byte " << i;
      EXPECT_NE(Msg(s).find(kKey), std::string::npos) << s;
    }
  }
}

TEST(CommitRecordTest, EveryTruncationIsCaught) {
  const std::string bytes = EncodeCommitRecord(IncrementalRecord());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_TRUE(absl::IsDataLoss(DecodeCommitRecord(bytes.substr(0, n), kKey).status())) << n;
  }
  EXPECT_TRUE(absl::IsDataLoss(DecodeCommitRecord(bytes + "x", kKey).status()));
}

TEST(CommitRecordTest, NewerMajorIsRefusedNamingVersions) {
  const std::string payload = PayloadOf(EncodeCommitRecord(FullRecord())).dump();
  absl::Status s = DecodeCommitRecord(Envelope("ICKPTCMT", 2, 1, payload), kKey).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(Msg(s).find("2.1"), std::string::npos) << s;
  EXPECT_NE(Msg(s).find(kKey), std::string::npos) << s;
  // A newer minor is read; its unknown fields are ignored (§1.1).
  json j = PayloadOf(EncodeCommitRecord(FullRecord()));
  j["added_in_1_1"] = {1, 2, 3};
  j["participants"][0]["state_objects"][0]["also_new"] = "x";
  EXPECT_TRUE(DecodeCommitRecord(Envelope("ICKPTCMT", 1, 1, j.dump()), kKey).ok());
}

TEST(CommitRecordTest, EnvelopeRules) {
  const std::string payload = PayloadOf(EncodeCommitRecord(FullRecord())).dump();
  // Config magic on a commit record.
  EXPECT_TRUE(
      absl::IsDataLoss(DecodeCommitRecord(Envelope("ICKPTCFG", 1, 0, payload), kKey).status()));
  // Not JSON, not an object.
  EXPECT_TRUE(absl::IsDataLoss(DecodeCommitRecord(Envelope("ICKPTCMT", 1, 0, "{"), kKey).status()));
  EXPECT_TRUE(
      absl::IsDataLoss(DecodeCommitRecord(Envelope("ICKPTCMT", 1, 0, "[]"), kKey).status()));
  EXPECT_TRUE(absl::IsDataLoss(DecodeCommitRecord(Envelope("ICKPTCMT", 1, 0, ""), kKey).status()));
  // A declared length over 16 MiB is refused without reading it.
  std::string huge = "ICKPTCMT";
  PutFixed16(&huge, 1);
  PutFixed16(&huge, 0);
  PutFixed32(&huge, (16 << 20) + 1);
  huge += std::string(16, ' ');
  EXPECT_TRUE(absl::IsDataLoss(DecodeCommitRecord(huge, kKey).status()));
}

TEST(CommitRecordTest, ResignedViolationsAreRejected) {
  const CommitRecord inc = IncrementalRecord();
  auto data_loss = [&](void (*edit)(json&)) { return absl::IsDataLoss(DecodeEdited(inc, edit)); };
  EXPECT_TRUE(data_loss([](json& j) { j["format"] = "ickpt-config"; }));
  EXPECT_TRUE(data_loss([](json& j) { j.erase("epoch"); }));
  EXPECT_TRUE(data_loss([](json& j) { j["id"] = 0; }));
  EXPECT_TRUE(data_loss([](json& j) { j["id"] = -42; }));
  EXPECT_TRUE(data_loss([](json& j) { j["id"] = 42.5; }));
  EXPECT_TRUE(data_loss([](json& j) { j["id"] = "42"; }));
  EXPECT_TRUE(data_loss([](json& j) { j["parent"] = 42; }));       // not below id
  EXPECT_TRUE(data_loss([](json& j) { j["parent"] = nullptr; }));  // incremental needs a parent
  EXPECT_TRUE(data_loss([](json& j) { j["kind"] = "partial"; }));
  EXPECT_TRUE(data_loss([](json& j) { j["kind"] = "full"; }));  // a manifest is incremental
  EXPECT_TRUE(data_loss([](json& j) { j["depth"] = 2; }));      // max over manifests is 3
  EXPECT_TRUE(data_loss([](json& j) { j["created"] = "yesterday"; }));
  EXPECT_TRUE(data_loss([](json& j) { j["participants"] = json::object(); }));
  EXPECT_TRUE(data_loss([](json& j) { j["participants"][1]["name"] = "worker-0"; }));
  EXPECT_TRUE(data_loss([](json& j) { j["participants"][1]["name"] = ""; }));
  EXPECT_TRUE(data_loss([](json& j) { j["metadata"]["n"] = 5; }));
  EXPECT_TRUE(
      data_loss([](json& j) { j["participants"][0]["state_objects"][1]["name"] = "heap"; }));
  EXPECT_TRUE(data_loss([](json& j) {
    j["participants"][0]["state_objects"][0]["manifest"] = "manifests/../../etc/passwd";
  }));
  EXPECT_TRUE(data_loss([](json& j) {
    j["participants"][0]["state_objects"][0]["manifest"] = "packs/cc/" + std::string(64, 'c');
  }));
  EXPECT_TRUE(data_loss([](json& j) {
    // A valid key, but not the one the hash names.
    j["participants"][0]["state_objects"][0]["manifest"] = ManifestKey(std::string(64, 'a'));
  }));
  EXPECT_TRUE(data_loss([](json& j) {
    j["participants"][0]["state_objects"][0]["manifest_sha256"] = std::string(64, 'C');
  }));
  EXPECT_TRUE(
      data_loss([](json& j) { j["participants"][0]["state_objects"][0]["pause_ns"] = 1e30; }));
  EXPECT_TRUE(data_loss([](json& j) {
    j["participants"][0]["state_objects"][0]["raw_bytes"] = 18446744073709551616.0;
  }));
  // A state object type added by a later version is refused by name, not called damage.
  absl::Status s = DecodeEdited(
      inc, [](json& j) { j["participants"][0]["state_objects"][0]["type"] = "channel"; });
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(Msg(s).find("channel"), std::string::npos) << s;
  // A keyed state object needs its keyed fields.
  EXPECT_TRUE(
      data_loss([](json& j) { j["participants"][0]["state_objects"][0]["type"] = "keyed"; }));
}

TEST(CommitRecordTest, ValidateRejectsBadRecords) {
  CommitRecord r = IncrementalRecord();
  r.parent.reset();
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateCommitRecord(r)));
  r = IncrementalRecord();
  r.participants[0].state_objects[0].manifest = "manifests/x";
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateCommitRecord(r)));
  r = FullRecord();
  r.metadata["bad"] = "\xff\xfe";  // not UTF-8: JSON can't carry it unchanged
  absl::Status s = ValidateCommitRecord(r);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_FALSE(EncodeCommitRecord(r).empty());  // never throws
}

TEST(ConfigTest, RoundTrip) {
  const RepositoryConfig c = Config();
  const std::string bytes = EncodeConfig(c);
  EXPECT_EQ(bytes.substr(0, 8), "ICKPTCFG");
  absl::StatusOr<RepositoryConfig> d = DecodeConfig(bytes, "config");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->major, 1);
  EXPECT_EQ(d->minor, 1);
  EXPECT_EQ(d->repository_id, c.repository_id);
  EXPECT_EQ(d->created, c.created);
  EXPECT_EQ(d->block_size, c.block_size);
  EXPECT_EQ(d->checksum, "xxh3-64");
  EXPECT_EQ(d->compression, "zstd");
  EXPECT_EQ(d->compression_level, 7);
  EXPECT_EQ(d->object_name_hash, "sha256");
  EXPECT_EQ(d->key_group_hash, "xxh3-64-seed0");
  EXPECT_EQ(d->pack_target_bytes, c.pack_target_bytes);
  json j = PayloadOf(bytes);
  EXPECT_EQ(j["format"], "ickpt-config");
  EXPECT_EQ(j["created"], "2023-11-14T22:13:20.000000001Z");
}

TEST(ConfigTest, EveryFlippedByteAndTruncationIsCaught) {
  const std::string bytes = EncodeConfig(Config());
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (uint8_t mask : {0x01, 0x80, 0xff}) {
      std::string damaged = bytes;
      damaged[i] = static_cast<char>(damaged[i] ^ mask);
      EXPECT_FALSE(DecodeConfig(damaged, "config").ok()) << "byte " << i;
    }
  }
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_TRUE(absl::IsDataLoss(DecodeConfig(bytes.substr(0, n), "config").status())) << n;
  }
}

TEST(ConfigTest, NewerMajorIsRefused) {
  RepositoryConfig c = Config();
  c.major = 2;
  c.minor = 0;
  absl::Status s = DecodeConfig(EncodeConfig(c), "config").status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(Msg(s).find("2.0"), std::string::npos) << s;
}

TEST(ConfigTest, UnknownAlgorithmIsRefused) {
  for (auto edit :
       {+[](json& j) { j["compression"] = "lz4"; }, +[](json& j) { j["checksum"] = "crc32c"; },
        +[](json& j) { j["object_name_hash"] = "blake3"; },
        +[](json& j) { j["key_group_hash"] = "murmur"; }}) {
    absl::Status s = DecodeEditedConfig(edit);
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  }
}

TEST(ConfigTest, BadValuesAreDataLoss) {
  for (auto edit :
       {+[](json& j) { j["block_size"] = 1000; }, +[](json& j) { j["block_size"] = 32 << 20; },
        +[](json& j) { j["compression_level"] = 0; }, +[](json& j) { j["compression_level"] = 20; },
        +[](json& j) { j["repository_id"] = "xyz"; },
        +[](json& j) { j.erase("pack_target_bytes"); },
        +[](json& j) { j["format"] = "ickpt-commit"; }}) {
    absl::Status s = DecodeEditedConfig(edit);
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  }
}

}  // namespace
}  // namespace ickpt
