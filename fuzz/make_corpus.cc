// Writes the seed corpora of the fuzz targets, fuzz/corpus/<target>/, from objects made by the
// library's own encoders, so that every seed is a valid object and the fuzzer starts from deep
// inside each format. Run after a format change and commit the result:
//   build-fuzz/fuzz/make_corpus fuzz/corpus
// Existing files of the same name are overwritten; files added by hand (regressions) are kept.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "ickpt/keyed_state.h"
#include "ickpt/maintenance.h"
#include "src/coord/protocol.h"
#include "src/repo/commit_record.h"
#include "src/repo/keyed_records.h"
#include "src/repo/keys.h"
#include "src/repo/manifest.h"
#include "src/repo/pack.h"
#include "src/util/coding.h"
#include "src/util/hash.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

std::filesystem::path g_root;

void Write(std::string_view target, std::string_view name, std::string_view bytes) {
  const std::filesystem::path dir = g_root / target;
  std::filesystem::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "make_corpus: cannot write %s/%s\n", dir.c_str(),
                 std::string(name).c_str());
    std::exit(1);
  }
}

Sha256Digest Digest(int seed) { return Sha256(StrCat("pack ", seed)); }

const absl::Time kCreated = absl::FromUnixSeconds(1795000000) + absl::Nanoseconds(123456789);

void Configs() {
  RepositoryConfig c;
  c.repository_id = "0123456789abcdef0123456789abcdef";
  c.created = kCreated;
  Write("config_fuzz", "default", EncodeConfig(c));
  c.block_size = 65536;
  c.compression_level = 19;
  c.pack_target_bytes = 64 << 20;
  c.minor = 1;
  Write("config_fuzz", "large-blocks-minor-1", EncodeConfig(c));
}

Manifest FullManifest() {
  Manifest m;
  m.checkpoint_id = 7;
  m.participant = "worker-0";
  m.object_name = "heap";
  m.block_size = 4096;
  m.block_count = 100;
  m.packs = {Digest(1), Digest(2)};
  m.extents = {{.first_block = 0, .block_count = 10, .pack_ref = 1, .raw_offset = 0},
               {.first_block = 10, .block_count = 40, .pack_ref = 0},
               {.first_block = 50, .block_count = 50, .pack_ref = 2, .raw_offset = 1 << 20}};
  return m;
}

Manifest IncrementalManifest() {
  Manifest m;
  m.checkpoint_id = 9;
  m.base_id = 8;
  m.kind = CheckpointKind::kIncremental;
  m.depth = 2;
  m.participant = "worker-1";
  m.object_name = "arena";
  m.block_size = 65536;
  m.block_count = 1000;
  m.packs = {Digest(3)};
  m.extents = {{.first_block = 3, .block_count = 1, .pack_ref = 1, .raw_offset = 65536},
               {.first_block = 7, .block_count = 2, .pack_ref = 0},
               {.first_block = 999, .block_count = 1, .pack_ref = 1, .raw_offset = 0}};
  return m;
}

// Keyed state manifests (format.md §5.3).
Manifest KeyedFullManifest() {
  Manifest m;
  m.checkpoint_id = 11;
  m.participant = "worker-0";
  m.object_name = "counts";
  m.object_type = StateObjectType::kKeyed;
  m.key_groups = 128;
  m.group_first = 0;
  m.group_end = 128;
  m.entry_count = 5000;
  m.entry_bytes = 180000;
  m.packs = {Digest(20), Digest(21)};
  m.groups = {{.group = 0, .pack_ref = 1, .raw_offset = 0, .raw_length = 1400, .records = 40},
              {.group = 1, .pack_ref = 1, .raw_offset = 1400, .raw_length = 1300, .records = 39},
              {.group = 77, .pack_ref = 2, .raw_offset = 0, .raw_length = 70000, .records = 41},
              {.group = 127, .pack_ref = 2, .raw_offset = 70000, .raw_length = 2, .records = 1}};
  return m;
}

Manifest KeyedIncrementalManifest() {
  Manifest m = KeyedFullManifest();
  m.checkpoint_id = 14;
  m.base_id = 13;
  m.kind = CheckpointKind::kIncremental;
  m.depth = 3;
  m.group_first = 32;  // participant 1 of 4
  m.group_end = 64;
  m.entry_count = 1200;
  m.entry_bytes = 40000;
  m.packs = {Digest(22)};
  m.groups = {{.group = 32,
               .pack_ref = 1,
               .raw_offset = 0,
               .raw_length = 30,
               .records = 3,
               .tombstones = 1},
              {.group = 40,
               .pack_ref = 1,
               .raw_offset = 30,
               .raw_length = 2,
               .records = 1,
               .tombstones = 1},
              {.group = 63, .pack_ref = 1, .raw_offset = 32, .raw_length = 500, .records = 9}};
  return m;
}

std::vector<std::pair<std::string, Manifest>> Manifests() {
  std::vector<std::pair<std::string, Manifest>> out;
  out.emplace_back("full", FullManifest());
  out.emplace_back("incremental", IncrementalManifest());
  Manifest unchanged = IncrementalManifest();
  unchanged.packs.clear();
  unchanged.extents.clear();
  out.emplace_back("incremental-zero-extents", unchanged);
  Manifest zero = FullManifest();
  zero.packs.clear();
  zero.extents = {{.first_block = 0, .block_count = 100, .pack_ref = 0}};
  out.emplace_back("full-all-zero", zero);
  Manifest empty = FullManifest();
  empty.block_count = 0;
  empty.packs.clear();
  empty.extents.clear();
  out.emplace_back("full-empty-region", empty);
  Manifest many = FullManifest();
  many.block_size = 16 << 20;
  many.block_count = 40;
  many.packs.clear();
  many.extents.clear();
  for (int i = 0; i < 20; ++i) {
    many.packs.push_back(Digest(100 + i));
    many.extents.push_back({.first_block = uint64_t(2 * i),
                            .block_count = 2,
                            .pack_ref = uint32_t(i + 1),
                            .raw_offset = uint64_t(i) << 24});
  }
  out.emplace_back("full-many-packs", many);
  out.emplace_back("keyed-full", KeyedFullManifest());
  out.emplace_back("keyed-incremental-tombstones", KeyedIncrementalManifest());
  Manifest keyed_unchanged = KeyedIncrementalManifest();
  keyed_unchanged.packs.clear();
  keyed_unchanged.groups.clear();
  out.emplace_back("keyed-incremental-unchanged", keyed_unchanged);
  Manifest keyed_one = KeyedFullManifest();
  keyed_one.key_groups = 1;
  keyed_one.group_end = 1;
  keyed_one.packs.resize(1);
  keyed_one.groups.resize(1);
  out.emplace_back("keyed-one-group", keyed_one);
  Manifest keyed_max = KeyedFullManifest();
  keyed_max.key_groups = kMaxKeyGroups;
  keyed_max.group_first = kMaxKeyGroups - 2;
  keyed_max.group_end = kMaxKeyGroups;
  keyed_max.groups = {{.group = kMaxKeyGroups - 1,
                       .pack_ref = 2,
                       .raw_offset = uint64_t{1} << 40,
                       .raw_length = 100,
                       .records = 50}};
  out.emplace_back("keyed-max-groups", keyed_max);
  return out;
}

void WriteManifests() {
  for (const auto& [name, m] : Manifests()) {
    if (!ValidateManifest(m).ok()) {
      std::fprintf(stderr, "make_corpus: manifest %s is invalid\n", name.c_str());
      std::exit(1);
    }
    Write("manifest_fuzz", name, EncodeManifest(m));
  }
}

StateObjectRecord ObjectRecord(const std::string& name, const Manifest& m) {
  StateObjectRecord o;
  o.name = name;
  const std::string hex = ToHex(Sha256(EncodeManifest(m)));
  o.manifest = ManifestKey(hex);
  o.manifest_sha256 = hex;
  o.manifest_bytes = EncodeManifest(m).size();
  o.kind = m.kind;
  o.depth = m.depth;
  o.tracker = "dirty-bits";
  o.logical_bytes = m.block_count * m.block_size;
  o.changed_blocks = m.extents.size();
  o.raw_bytes = 40960;
  o.stored_bytes = 1234;
  o.pause_ns = 15000;
  o.persist_ns = 2500000;
  return o;
}

StateObjectRecord KeyedObjectRecord(const std::string& name, const Manifest& m) {
  StateObjectRecord o = ObjectRecord(name, m);
  o.type = StateObjectType::kKeyed;
  o.tracker = "keyed";
  o.logical_bytes = m.entry_bytes;
  o.changed_blocks = 0;
  o.key_groups = m.key_groups;
  o.entries = m.entry_count;
  for (const KeyGroupSpan& g : m.groups) {
    o.changed_entries += g.records;
    o.tombstones += g.tombstones;
  }
  return o;
}

void CommitRecords() {
  CommitRecord full;
  full.id = 7;
  full.created = kCreated;
  full.logical_bytes = 409600;
  full.stored_bytes = 5000;
  full.participants.push_back(
      {.name = "worker-0", .state_objects = {ObjectRecord("heap", FullManifest())}});
  Write("commit_record_fuzz", "full-first", EncodeCommitRecord(full));

  CommitRecord inc;
  inc.id = 9;
  inc.parent = 8;
  inc.kind = CheckpointKind::kIncremental;
  inc.depth = 2;
  inc.created = kCreated + absl::Seconds(60);
  inc.epoch = 3;
  inc.logical_bytes = 65536000;
  inc.stored_bytes = 70000;
  inc.participants.push_back(
      {.name = "worker-0", .state_objects = {ObjectRecord("heap", FullManifest())}});
  inc.participants.push_back({.name = "worker-1",
                              .state_objects = {ObjectRecord("arena", IncrementalManifest()),
                                                ObjectRecord("heap", FullManifest())}});
  inc.metadata = {{"step", "1200"}, {"note", "epoch \"3\" \u00e9"}};
  Write("commit_record_fuzz", "incremental-metadata", EncodeCommitRecord(inc));

  CommitRecord none;
  none.id = 12;
  none.parent = 9;
  none.created = kCreated;
  Write("commit_record_fuzz", "full-no-participants", EncodeCommitRecord(none));

  // Keyed state objects (§6, since 1.1) beside a region, at two participants.
  CommitRecord keyed;
  keyed.id = 14;
  keyed.parent = 13;
  keyed.kind = CheckpointKind::kIncremental;
  keyed.depth = 3;
  keyed.created = kCreated + absl::Seconds(120);
  keyed.epoch = 2;
  keyed.participants.push_back(
      {.name = "worker-0",
       .state_objects = {ObjectRecord("heap", FullManifest()),
                         KeyedObjectRecord("counts", KeyedIncrementalManifest())}});
  keyed.participants.push_back(
      {.name = "worker-1", .state_objects = {KeyedObjectRecord("counts", KeyedFullManifest())}});
  Write("commit_record_fuzz", "keyed-two-participants", EncodeCommitRecord(keyed));

  // Acknowledgements (§11): one participant each, in their own envelope.
  CommitRecord ack = keyed;
  ack.participants.resize(1);
  Write("commit_record_fuzz", "ack-keyed", EncodeAck(ack));
  CommitRecord ack_full = full;
  ack_full.metadata = {{"step", "7"}};
  Write("commit_record_fuzz", "ack-region", EncodeAck(ack_full));

  for (const CommitRecord* r : {&full, &inc, &none, &keyed, &ack, &ack_full}) {
    if (!ValidateCommitRecord(*r).ok()) {
      std::fprintf(stderr, "make_corpus: commit record %llu is invalid\n",
                   static_cast<unsigned long long>(r->id));
      std::exit(1);
    }
  }
}

// Retention policies, pins and maintenance locks (format.md §13), the seeds of
// maintenance_objects_fuzz, which decodes them as policy generation 1, pin 'release-1' and any
// lock key (or against the generation and name their payloads hold).
void MaintenanceObjects() {
  constexpr std::string_view kTarget = "maintenance_objects_fuzz";
  RetentionPolicy keep_last = DefaultRetentionPolicy();
  keep_last.generation = 1;
  keep_last.created = kCreated;
  Write(kTarget, "policy-keep-last", EncodePolicy(keep_last));
  RetentionPolicy both;
  both.generation = 1;
  both.created = kCreated + absl::Seconds(3600);
  both.keep_last = 10;
  both.keep_within = absl::Hours(24 * 7);
  both.checkpoint_timeout = absl::Seconds(1);
  Write(kTarget, "policy-keep-last-and-within", EncodePolicy(both));
  RetentionPolicy within;
  within.generation = 12;  // decoded against the generation its payload holds
  within.created = kCreated;
  within.keep_within = absl::Seconds(int64_t{1} << 40);  // the largest a decoder takes
  within.checkpoint_timeout = absl::Seconds(86400);
  Write(kTarget, "policy-keep-within-generation-12", EncodePolicy(within));
  for (const RetentionPolicy* p : {&keep_last, &both, &within}) {
    if (!ValidateRetentionPolicy(*p).ok()) {
      std::fprintf(stderr, "make_corpus: retention policy %llu is invalid\n",
                   static_cast<unsigned long long>(p->generation));
      std::exit(1);
    }
  }

  Write(kTarget, "pin", EncodePin(Pin{.name = "release-1", .id = 42, .created = kCreated}));
  // The longest name a pin may have (128 characters), of every character class a key allows;
  // decoded against the name its payload holds.
  std::string long_name = "a0._-";
  while (long_name.size() < 128) long_name += "z9";
  long_name.resize(128);
  Write(kTarget, "pin-long-name",
        EncodePin(Pin{.name = long_name, .id = UINT64_MAX, .created = kCreated}));

  MaintenanceLock lock;
  lock.holder = "0123456789abcdef0123456789abcdef";
  lock.host = "node-17.cluster";
  lock.pid = 4242;
  lock.created = kCreated;
  Write(kTarget, "lock", EncodeMaintenanceLock(lock));
  MaintenanceLock renewed = lock;
  renewed.holder = "fedcba9876543210fedcba9876543210";
  renewed.host = "h\u00f4te";
  renewed.pid = -1;
  renewed.ttl = absl::Seconds(1);
  renewed.renewals = 99;
  Write(kTarget, "lock-renewed", EncodeMaintenanceLock(renewed));
}

// Consolidation records (format.md §14.1) and their keys, the seeds of consolidation_record_fuzz,
// which decodes them as checkpoint 42 generation 1 (or against the id and generation their
// payloads hold). Every manifest is full and of the consolidated checkpoint.
void ConsolidationRecords() {
  constexpr std::string_view kTarget = "consolidation_record_fuzz";
  auto full_of = [](Manifest m, uint64_t id) {
    m.checkpoint_id = id;
    m.base_id.reset();
    m.kind = CheckpointKind::kFull;
    m.depth = 0;
    return m;
  };

  ConsolidationRecord region;
  region.generation = 1;
  region.record.id = 42;
  region.record.parent = 41;
  region.record.created = kCreated + absl::Seconds(600);
  region.record.epoch = 4;
  region.record.logical_bytes = 409600;
  region.record.stored_bytes = 900;
  region.record.participants.push_back(
      {.name = "worker-0",
       .incarnation = 3,
       .state_objects = {ObjectRecord("heap", full_of(FullManifest(), 42))}});
  region.record.metadata = {{"step", "4200"}};
  Write(kTarget, "region-only", EncodeConsolidationRecord(region));

  // Keyed state beside a region, at two participants; the keyed manifests are the merges of
  // incremental chains (§14.3), so full without tombstones.
  ConsolidationRecord keyed;
  keyed.generation = 1;
  keyed.repacked_bytes = 4096;
  keyed.record.id = 14;
  keyed.record.parent = 13;
  keyed.record.created = kCreated + absl::Seconds(180);
  keyed.record.epoch = 2;
  keyed.record.logical_bytes = 589600;
  keyed.record.stored_bytes = 7000;
  Manifest counts = full_of(KeyedIncrementalManifest(), 14);
  for (KeyGroupSpan& g : counts.groups) g.tombstones = 0;
  keyed.record.participants.push_back(
      {.name = "worker-0",
       .incarnation = 1,
       .state_objects = {ObjectRecord("heap", full_of(FullManifest(), 14)),
                         KeyedObjectRecord("counts", counts)}});
  keyed.record.participants.push_back(
      {.name = "worker-1",
       .incarnation = 2,
       .state_objects = {KeyedObjectRecord("counts", full_of(KeyedFullManifest(), 14))}});
  Write(kTarget, "keyed-region-two-participants", EncodeConsolidationRecord(keyed));

  // A second consolidation of checkpoint 42, after repacking.
  ConsolidationRecord second = region;
  second.generation = 2;
  second.repacked_bytes = uint64_t{3} << 30;
  second.record.created = kCreated + absl::Seconds(7200);
  second.record.stored_bytes = (uint64_t{3} << 30) / 4;
  second.record.metadata = {{"step", "4200"}, {"note", "repacked \"twice\" \u00e9"}};
  Write(kTarget, "generation-2-repacked", EncodeConsolidationRecord(second));

  for (const ConsolidationRecord* c : {&region, &keyed, &second}) {
    if (!ValidateConsolidationRecord(*c).ok()) {
      std::fprintf(stderr, "make_corpus: consolidation record %llu/%llu is invalid\n",
                   static_cast<unsigned long long>(c->record.id),
                   static_cast<unsigned long long>(c->generation));
      std::exit(1);
    }
  }

  // The same target parses its input as a key too.
  Write(kTarget, "key", ConsolidationKey(42, 1));
  Write(kTarget, "key-max", ConsolidationKey(UINT64_MAX, UINT64_MAX));
}

// Epoch records (format.md §15.1), the seeds of epoch_record_fuzz, which decodes them as epoch 7
// (or against the epoch their payloads hold).
void EpochRecords() {
  constexpr std::string_view kTarget = "epoch_record_fuzz";
  EpochRecord first;
  first.epoch = 7;
  first.created = kCreated;
  first.leader = "coordinator-0";
  Write(kTarget, "first-no-base", EncodeEpochRecord(first));
  EpochRecord later = first;
  later.base = 41;
  later.previous = 6;
  later.created = kCreated + absl::Seconds(30);
  later.leader = "node-17.cluster:7070 \u00e9";
  Write(kTarget, "base-and-previous", EncodeEpochRecord(later));
  // The largest numbers a decoder takes, and the longest leader name; decoded against the epoch
  // its payload holds.
  EpochRecord largest;
  largest.epoch = UINT64_MAX;
  largest.base = UINT64_MAX;
  largest.previous = UINT64_MAX - 1;
  largest.created = kCreated;
  largest.leader = std::string(256, 'l');
  Write(kTarget, "largest-epoch", EncodeEpochRecord(largest));
  for (const EpochRecord* r : {&first, &later, &largest}) {
    if (!ValidateEpochRecord(*r).ok()) {
      std::fprintf(stderr, "make_corpus: epoch record %llu is invalid\n",
                   static_cast<unsigned long long>(r->epoch));
      std::exit(1);
    }
  }
}

// The group protocol's values in etcd (docs/protocol.md §3), the seeds of coord_protocol_fuzz: one
// of each kind, and a snapshot (key<TAB>value lines) holding one of each under its key.
void CoordProtocolValues() {
  constexpr std::string_view kTarget = "coord_protocol_fuzz";
  using namespace coord;
  Trigger trigger;
  trigger.id = 42;
  trigger.epoch = 7;
  trigger.full = true;
  trigger.step = 100;
  trigger.participants = {{"w0", 3}, {"w1", 5}};
  trigger.created_ms = 1700000000000;
  RecoveryValue recovery;
  recovery.sequence = 2;
  recovery.epoch = 7;
  recovery.checkpoint = 41;
  recovery.participants = {"w0", "w1"};
  const std::vector<std::pair<std::string, std::string>> values = {
      {"leader/0000000000000001", EncodeLeader({"c1", 1234, "node-1"})},
      {"members/w0", EncodeMember({4321, "node-2"})},
      {"triggers/00000000000000000042", EncodeTrigger(trigger)},
      {"acks/00000000000000000042/w0",
       EncodeAck({3, 7, AckStatus::kAcknowledged, ""})},
      {"acks/00000000000000000042/w1",
       EncodeAck({5, 7, AckStatus::kDeclined, "past step 100 (at step 101)"})},
      {"outcomes/00000000000000000042",
       EncodeOutcome({42, 7, Outcome::kAborted, "participant w1 declined"})},
      {"recovery", EncodeRecovery(recovery)},
      {"recovered/w0", EncodeRecovered({2, 3, RecoveredStatus::kRestored, ""})},
      {"requests/123-00ff", EncodeRequest({true, std::nullopt, 42})},
  };
  std::string snapshot;
  for (const auto& [key, value] : values) {
    std::string name = key;
    for (char& c : name) c = c == '/' ? '-' : c;
    Write(kTarget, name, value);
    snapshot += key + "\t" + value + "\n";
  }
  Write(kTarget, "snapshot", snapshot);
}

// Bytes with some structure, so that zstd compresses them.
std::string Data(size_t n, int seed) {
  std::string s;
  s.reserve(n);
  uint32_t x = static_cast<uint32_t>(seed) * 2654435761u + 1;
  while (s.size() < n) {
    x = x * 1103515245u + 12345u;
    s.append(StrCat("block ", (x >> 16) % 64, " "));
  }
  s.resize(n);
  return s;
}

std::string Random(size_t n, int seed) {
  std::string s(n, '\0');
  uint64_t x = static_cast<uint64_t>(seed) * 0x9e3779b97f4a7c15ull + 1;
  for (char& c : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return s;
}

void Packs() {
  std::vector<std::pair<std::string, std::vector<std::string>>> packs = {
      {"empty", {}},
      {"one-raw-frame", {Random(100, 1)}},
      {"one-zstd-frame", {Data(4096, 2)}},
      {"zstd-and-raw", {Data(4096, 3), Random(512, 4), Data(8192, 5)}},
      {"small-frames", {"a", "bb", std::string(64, '\0'), Data(300, 6)}},
  };
  for (const auto& [name, frames] : packs) {
    PackBuilder builder;
    for (const std::string& raw : frames) builder.AddFrame(EncodeFrame(raw, 3));
    const FinishedPack pack = builder.Finish();
    if (!VerifyPack(pack.bytes, pack.sha256_hex, name).ok()) {
      std::fprintf(stderr, "make_corpus: pack %s does not verify\n", name.c_str());
      std::exit(1);
    }
    Write("pack_fuzz", name, pack.bytes);
    // pack_index_fuzz input: u64 index_offset | u64 pack_size | index bytes.
    const std::string_view bytes = pack.bytes;
    const uint64_t index_offset = DecodeFixed64(bytes.data() + bytes.size() - kPackFooterBytes);
    const uint32_t index_length = DecodeFixed32(bytes.data() + bytes.size() - kPackFooterBytes + 8);
    std::string input;
    PutFixed64(&input, index_offset);
    PutFixed64(&input, bytes.size());
    input.append(bytes.substr(index_offset, index_length));
    Write("pack_index_fuzz", name, input);
  }
}

// keyed_records_fuzz input: u16 key_groups − 1 | u16 group | u16 records | u16 tombstones | the
// records of that group, as a writer lays them out.
struct KeyedEntry {
  std::string key;
  std::string value;
  bool tombstone = false;
};

// `count` distinct keys of `group` among `key_groups`, made from `stem` and a counter, sorted as
// §5.3 sorts them (std::string compares bytes unsigned, a prefix first).
std::set<std::string> KeysOfGroup(uint32_t key_groups, uint32_t group, size_t count,
                                  std::string_view stem) {
  std::set<std::string> keys;
  for (uint64_t n = 0; keys.size() < count; ++n) {
    std::string key(stem);
    PutVarint64(&key, n);
    if (KeyGroupOf(key, key_groups) == group) keys.insert(key);
  }
  return keys;
}

void WriteKeyedGroup(std::string_view name, uint32_t key_groups, uint32_t group,
                     const std::vector<KeyedEntry>& entries) {
  KeyGroupSpan span;
  span.group = group;
  std::string records;
  for (const KeyedEntry& e : entries) {
    AppendKeyedRecord(&records, e.key, e.value, e.tombstone);
    ++span.records;
    if (e.tombstone) ++span.tombstones;
  }
  span.raw_length = records.size();
  const absl::Status s =
      DecodeKeyedGroup(records, span, key_groups, [](std::string_view, std::string_view, bool) {});
  if (!s.ok()) {
    std::fprintf(stderr, "make_corpus: keyed group %s does not decode: %s\n",
                 std::string(name).c_str(), s.ToString().c_str());
    std::exit(1);
  }
  std::string input;
  PutFixed16(&input, static_cast<uint16_t>(key_groups - 1));
  PutFixed16(&input, static_cast<uint16_t>(group));
  PutFixed16(&input, static_cast<uint16_t>(span.records));
  PutFixed16(&input, static_cast<uint16_t>(span.tombstones));
  input.append(records);
  Write("keyed_records_fuzz", name, input);
}

void KeyedGroups() {
  // One group: every key is in it. The empty key sorts first; binary keys; a 0-byte value.
  std::vector<KeyedEntry> one = {{"", "empty key"}, {std::string("\0\xff", 2), ""},
                                 {"a", "1"},        {"ab", Data(200, 7)},
                                 {"b", "", true},   {"\xff\xff", Random(40, 8)}};
  WriteKeyedGroup("one-group-mixed", 1, 0, one);
  // Values only, as a full manifest holds them.
  std::vector<KeyedEntry> full;
  int i = 0;
  for (const std::string& key : KeysOfGroup(16, 5, 30, "key-")) {
    full.push_back({key, i % 7 == 0 ? std::string() : Random(1 + i * 13 % 90, i)});
    ++i;
  }
  WriteKeyedGroup("full-16-groups", 16, 5, full);
  // Puts and tombstones, as an incremental manifest holds them.
  std::vector<KeyedEntry> incremental;
  i = 0;
  for (const std::string& key : KeysOfGroup(128, 77, 12, std::string("\x01\x00k", 3))) {
    incremental.push_back({key, i % 3 == 1 ? std::string() : Data(20 + i, i), i % 3 == 1});
    ++i;
  }
  WriteKeyedGroup("incremental-128-groups", 128, 77, incremental);
  // Only tombstones, the empty key's first (the smallest record: 2 bytes), in the empty key's
  // group.
  const uint32_t empty_group = KeyGroupOf("", 4);
  std::vector<KeyedEntry> erased = {{"", "", true}};
  for (const std::string& key : KeysOfGroup(4, empty_group, 5, "gone")) {
    erased.push_back({key, "", true});
  }
  WriteKeyedGroup("tombstones-4-groups", 4, empty_group, erased);
  WriteKeyedGroup("single-tombstone-empty-key", 1, 0, {{"", "", true}});
  WriteKeyedGroup("max-groups", kMaxKeyGroups, KeyGroupOf("k", kMaxKeyGroups), {{"k", "v"}});
  // A key length written as a 2-byte varint (0x83 0x00 for 3): longer than needed, which §1
  // allows; it decodes, and re-encodes one byte shorter.
  std::string overlong;
  PutFixed16(&overlong, 0);
  PutFixed16(&overlong, 0);
  PutFixed16(&overlong, 1);
  PutFixed16(&overlong, 0);
  overlong.append(std::string("\x00\x83\x00\x01keyv", 8));
  Write("keyed_records_fuzz", "overlong-varint", overlong);
}

void Keys() {
  const std::string hex = ToHex(Sha256("manifest"));
  const std::vector<std::pair<std::string, std::string>> keys = {
      {"config", std::string(kConfigKey)},
      {"commit", CommitKey(42)},
      {"commit-max", CommitKey(UINT64_MAX)},
      {"id", IdReservationKey(7)},
      {"pack", PackKey(ToHex(Sha256("pack")))},
      {"manifest", ManifestKey(hex)},
      {"tmp", StrCat(ManifestKey(hex), ".tmp-3f2a")},
      {"dotdot", "packs/../config"},
      {"empty-component", "packs//ab"},
      {"upper-hex", ManifestKey("AB" + hex.substr(2))},
  };
  for (const auto& [name, key] : keys) Write("keys_fuzz", name, key);
}

void Sizes() {
  const std::vector<std::pair<std::string, std::string>> texts = {
      {"bytes", "4096"},
      {"kib", "64KiB"},
      {"mib-space", "1 MiB"},
      {"gb", "10GB"},
      {"t", "2t"},
      {"max", "18446744073709551615"},
      {"ms", "500ms"},
      {"fraction-s", "1.5s"},
      {"zero", "0"},
      {"hours", "2h"},
      {"us", "250us"},
      {"ws", " 3 KB\n"},
  };
  for (const auto& [name, text] : texts) Write("parse_fuzz", name, text);
}

void Varints() {
  // coding_fuzz input: opcode byte (op % 7 picks the read), then the bytes it reads.
  std::string varints;
  for (uint64_t v :
       {uint64_t{0}, uint64_t{127}, uint64_t{128}, uint64_t{300}, uint64_t{1} << 35, UINT64_MAX}) {
    varints.push_back(4);
    PutVarint64(&varints, v);
  }
  Write("coding_fuzz", "varints", varints);
  std::string mixed;
  mixed.push_back(1);
  PutFixed16(&mixed, 0xbeef);
  mixed.push_back(2);
  PutFixed32(&mixed, 0xdeadbeef);
  mixed.push_back(3);
  PutFixed64(&mixed, 0x0123456789abcdefull);
  mixed.push_back(5);
  PutLengthPrefixed(&mixed, "worker-0");
  mixed.push_back(6 + 7 * 3);
  mixed.append("abc");
  Write("coding_fuzz", "mixed", mixed);
  Write("coding_fuzz", "overlong-varint",
        std::string("\x04\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11));
}

}  // namespace
}  // namespace ickpt

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus <corpus directory, e.g. fuzz/corpus>\n");
    return 2;
  }
  ickpt::g_root = argv[1];
  ickpt::Configs();
  ickpt::WriteManifests();
  ickpt::CommitRecords();
  ickpt::MaintenanceObjects();
  ickpt::ConsolidationRecords();
  ickpt::EpochRecords();
  ickpt::CoordProtocolValues();
  ickpt::KeyedGroups();
  ickpt::Packs();
  ickpt::Keys();
  ickpt::Sizes();
  ickpt::Varints();
  return 0;
}
