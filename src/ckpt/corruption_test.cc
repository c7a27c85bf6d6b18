// Damaged repositories: every kind of object is truncated and has bytes flipped, one corruption at
// a time, on a real local-directory repository; the file is put back afterwards.
//
// The workload checkpoints a region and a keyed state (format.md §5.3) side by side: a full
// checkpoint and incrementals with puts, overwrites and erases (tombstones), binary keys, the empty
// key, 0-byte values, a value spanning frames, and an incremental that changes no entry. So the
// objects damaged include keyed packs, keyed manifests and commit records naming keyed objects.
//
// The rule checked (format.md §6, §9, §9.1, §10): a restore either returns exactly the region bytes
// and the keyed entries that were checkpointed, or fails with DataLoss (FailedPrecondition for a
// well-formed newer major version) naming the damaged object. Which checkpoints must fail is not
// guessed: a recording store wrapper notes, for each checkpoint, which objects and which byte
// ranges of them its restore reads. A checkpoint whose restore reads a damaged byte (or any part of
// a truncated object) must fail; every other checkpoint, older ones included, must still restore
// exactly.
//
// Bytes a restore never reads cannot change what it restores. In this format those are the 16-byte
// pack header (magic, version, reserved: restore locates frames through the footer and index),
// frames no checkpoint references, and the nonce frame that ends every pack since format 1.3.
// Damage there is counted separately and must be caught by a full check of the pack (VerifyPack:
// header, every frame, sha256 name) as `ickpt verify --data` does.
//
// Id reservations (`ids/<id>`) are empty objects: only their names carry information (the id
// high-water mark, format.md §7); no reader reads their content. Truncating one is a no-op and
// writing garbage into one changes nothing a reader looks at, so damage to their content is
// harmless. The test checks that such damage neither breaks restores nor makes the next
// reservation reuse an id.
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ickpt/checkpointer.h"
#include "ickpt/keyed_state.h"
#include "ickpt/repository.h"
#include "src/repo/commit_record.h"
#include "src/repo/keyed_records.h"
#include "src/repo/keys.h"
#include "src/repo/manifest.h"
#include "src/repo/pack.h"
#include "src/repo/repository_internal.h"
#include "src/testing/restore_util.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"
#include "src/util/coding.h"
#include "src/util/hash.h"
#include "src/util/mutex.h"

namespace ickpt {
namespace {

constexpr uint32_t kBlock = 4096;
constexpr uint64_t kBlocks = 96;  // 384 KiB region
constexpr uint32_t kKeyGroups = 8;

using KeyedMap = std::map<std::string, std::string>;

// What one checkpoint captured, and what its restore must give back exactly.
struct Snapshot {
  std::string grid;  // the region's bytes
  KeyedMap kv;       // the keyed state's entries
  bool operator==(const Snapshot&) const = default;
};

KeyedMap Contents(const KeyedState& state) {
  KeyedMap out;
  state.ForEach([&](std::string_view k, std::string_view v) { out.emplace(k, v); });
  return out;
}

// A binary key: a zero byte, the number big-endian, 0xff, and 0 to 4 more bytes, so keys share
// prefixes, hold 0x00 and 0xff, and differ in length.
std::string BinaryKey(uint32_t i) {
  std::string key = {'\0', static_cast<char>(i >> 8), static_cast<char>(i), '\xff'};
  for (uint32_t k = 0; k < i % 5; ++k) key.push_back(static_cast<char>(i * 37 + k));
  return key;
}

// Records the objects and byte ranges read through it.
class RecordingStore : public ObjectStoreWrapper {
 public:
  struct Reads {
    std::set<std::string> keys;  // any read, Size() included
    std::map<std::string, std::vector<std::pair<uint64_t, uint64_t>>> ranges;  // [begin, end)
  };
  explicit RecordingStore(std::unique_ptr<ObjectStore> target)
      : ObjectStoreWrapper(target.get()), owned_(std::move(target)) {}

  absl::StatusOr<std::string> Get(std::string_view key) override {
    auto r = ObjectStoreWrapper::Get(key);
    Note(key, 0, UINT64_MAX);
    return r;
  }
  absl::StatusOr<std::string> GetRange(std::string_view key, uint64_t offset,
                                       uint64_t length) override {
    Note(key, offset, offset + length);
    return ObjectStoreWrapper::GetRange(key, offset, length);
  }
  absl::StatusOr<uint64_t> Size(std::string_view key) override {
    Note(key, 0, 0);
    return ObjectStoreWrapper::Size(key);
  }
  // A pack's reader (ReadPackIndex) uses only the footer and the index of the tail it gets: the
  // frames, or the header of a small pack, that come along are not looked at there, so damage to
  // them counts as read only where their frames are read (or by verify --data).
  absl::StatusOr<ObjectTail> GetTail(std::string_view key, uint64_t length) override {
    absl::StatusOr<ObjectTail> tail = target()->GetTail(key, length);
    if (!tail.ok()) {
      Note(key, 0, 0);
      return tail;
    }
    const uint64_t size = tail->object_size;
    uint64_t used_from = size - tail->bytes.size();
    if (tail->bytes.size() >= kPackFooterBytes) {
      absl::StatusOr<PackFooter> footer = ParsePackFooter(
          std::string_view(tail->bytes).substr(tail->bytes.size() - kPackFooterBytes), size, key);
      used_from = footer.ok() ? std::max(used_from, footer->index_offset) : size - kPackFooterBytes;
    }
    Note(key, used_from, size);
    return tail;
  }
  Reads TakeReads() {
    MutexLock lock(&mu_);
    return std::exchange(reads_, {});
  }

 private:
  void Note(std::string_view key, uint64_t begin, uint64_t end) {
    MutexLock lock(&mu_);
    reads_.keys.insert(std::string(key));
    if (end > begin) reads_.ranges[std::string(key)].emplace_back(begin, end);
  }
  std::unique_ptr<ObjectStore> owned_;
  Mutex mu_;
  Reads reads_;
};

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
void WriteFileBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

enum class Outcome {
  kDetected,         // failed with DataLoss/FailedPrecondition naming the object
  kIntact,           // restored exactly; the damage was not read
  kWrongError,       // failed, but with another code or without naming the object
  kWrongBytes,       // succeeded with bytes different from the snapshot: the worst outcome
  kUndetected,       // read damaged bytes, yet succeeded with the right bytes
  kSpuriousFailure,  // failed although it did not read the damage
};

struct Tally {
  int trials = 0;
  int detected = 0;         // trials where every checkpoint that read the damage reported it
  int unread_verified = 0;  // damage no restore reads, caught by VerifyPack
  int unread_missed = 0;    // damage no restore reads and VerifyPack did not catch either
  std::map<Outcome, int> outcomes;
};

class CorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.Join("repo");
    RepositoryOptions options;
    options.config.pack_target_bytes = 64 << 10;  // many packs
    ASSERT_OK_AND_ASSIGN(auto repo, Repository::OpenLocal(root_, /*create=*/true, options));
    ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpointer::Open(repo.get()));
    RegionOptions ro;
    ro.size = kBlocks * kBlock;
    ro.block_size = kBlock;
    ro.tracker = TrackerKind::kHash;
    ASSERT_OK_AND_ASSIGN(Region * r, ckpt->AddRegion("grid", ro));
    KeyedStateOptions ko;
    ko.key_groups = kKeyGroups;
    ASSERT_OK_AND_ASSIGN(KeyedState * kv, ckpt->AddKeyedState("kv", ko));
    std::mt19937_64 rng(5);
    auto fill = [&](uint64_t block, bool compressible) {
      char* p = r->data() + block * kBlock;
      for (uint32_t k = 0; k < kBlock; k += 8) {
        uint64_t v = compressible ? (block * 0x0101010101010101ULL) ^ (k / 512) : rng();
        std::memcpy(p + k, &v, 8);
      }
    };
    // Values of up to 400 bytes, compressible or not.
    auto value = [&](uint32_t i) {
      std::string v(rng() % 401, '\0');
      for (size_t k = 0; k < v.size(); ++k) {
        v[k] = static_cast<char>(i % 2 == 0 ? 'a' + (k / 16 + i) % 4 : rng());
      }
      return v;
    };
    auto put = [&](const std::string& key, std::string v) {
      ASSERT_OK(kv->Put(key, v));
      kv_[key] = std::move(v);
    };
    auto erase = [&](const std::string& key) {
      ASSERT_EQ(kv->Erase(key), kv_.erase(key) == 1) << "key of " << key.size() << " bytes";
    };
    // A value of 70 KiB: its group's records span two frames and fill a pack, closed after that
    // group (format.md §5.3). Its key is in none of the last two groups, so that the full
    // checkpoint's records take two packs.
    std::string big = "big";
    while (KeyGroupOf(big, kKeyGroups) >= kKeyGroups - 2) big += '+';
    // 1: full, mixed data; keyed: 100 binary keys, a 0-byte value, the empty key, the big value.
    for (uint64_t b = 0; b < kBlocks; ++b) fill(b, b % 3 == 0);
    for (uint32_t i = 0; i < 100; ++i) put(BinaryKey(i), i == 7 ? std::string() : value(i));
    put("", "the empty key");
    put(big, std::string(70 << 10, 'b') + value(1));
    Checkpoint(ckpt.get(), r, kv);
    // 2: incremental; keyed: overwrites (one to 0 bytes) and new keys.
    for (uint64_t b = 10; b < 30; ++b) fill(b, false);
    for (uint32_t i = 0; i < 100; i += 7) put(BinaryKey(i), i == 14 ? std::string() : value(i + 1));
    for (uint32_t i = 100; i < 120; ++i) put(BinaryKey(i), value(i));
    Checkpoint(ckpt.get(), r, kv);
    // 3: incremental; keyed: erases (tombstones), the empty key erased, a key erased and put back,
    // a key put and erased again (a tombstone for a key the base did not hold, or none).
    for (uint64_t b = 40; b < 48; ++b) fill(b, b % 2 == 0);
    fill(2, false);
    for (uint32_t i = 0; i < 120; i += 5) erase(BinaryKey(i));
    erase("");
    put(BinaryKey(10), "back again");
    put(BinaryKey(1000), "short-lived");
    erase(BinaryKey(1000));
    Checkpoint(ckpt.get(), r, kv);
    // 4: incremental with zeroed blocks; the keyed state does not change (a manifest of no group).
    std::memset(r->data() + 12 * kBlock, 0, 4 * kBlock);
    fill(60, false);
    Checkpoint(ckpt.get(), r, kv);
    // 5: grown; keyed: erases, the big value overwritten with 0 bytes, the empty key back with a
    // 0-byte value.
    ASSERT_OK(r->Grow((kBlocks + 8) * kBlock));
    fill(kBlocks + 3, false);
    fill(5, true);
    for (uint32_t i = 1; i < 120; i += 13) erase(BinaryKey(i));
    put(big, "");
    put("", "");
    Checkpoint(ckpt.get(), r, kv);
    ckpt.reset();

    // Which objects and bytes each checkpoint's restore reads.
    for (const auto& [id, bytes] : snapshots_) {
      ASSERT_OK_AND_ASSIGN(auto store, OpenLocalStore(root_));
      auto recording = std::make_unique<RecordingStore>(std::move(store));
      RecordingStore* rec = recording.get();
      ASSERT_OK_AND_ASSIGN(auto repo2, Repository::Open(std::move(recording)));
      rec->TakeReads();  // the config: read by every open, handled separately
      ASSERT_OK_AND_ASSIGN(Snapshot restored, Restore(repo2.get(), id));
      ASSERT_TRUE(restored == bytes) << "checkpoint " << id << " does not restore before damage";
      reads_[id] = rec->TakeReads();
    }
    ASSERT_OK_AND_ASSIGN(auto repo3, Repository::OpenLocal(root_, false));
    for (std::string_view prefix : {kPacksPrefix, kManifestsPrefix, kCommitsPrefix, kIdsPrefix}) {
      ASSERT_OK_AND_ASSIGN(auto objects, RepositoryInternal::store(*repo3)->List(prefix));
      for (const ObjectInfo& info : objects) objects_[std::string(prefix)].push_back(info.key);
    }
    ASSERT_GE(objects_[std::string(kPacksPrefix)].size(), 8u) << "expected many packs";
    ASSERT_EQ(objects_[std::string(kCommitsPrefix)].size(), 5u);
    // Which manifests and packs hold the keyed state (format.md §5.3: keyed records never share a
    // pack with region blocks).
    std::set<std::string> region_packs;
    for (const std::string& key : Objects(kManifestsPrefix)) {
      ASSERT_OK_AND_ASSIGN(Manifest m, DecodeManifest(ReadFileBytes(root_ + "/" + key), key));
      const bool keyed = m.object_type == StateObjectType::kKeyed;
      if (keyed) keyed_manifests_[key] = m;
      for (const Sha256Digest& pack : m.packs) {
        (keyed ? keyed_packs_ : region_packs).insert(PackKey(ToHex(pack)));
      }
    }
    ASSERT_EQ(keyed_manifests_.size(), 5u);
    ASSERT_GE(keyed_packs_.size(), 5u);
    // The workload makes what it says: a full manifest of two packs, tombstones, a manifest of no
    // group, a group's records longer than a frame.
    uint64_t tombstones = 0, without_groups = 0, longest = 0;
    for (const auto& [key, m] : keyed_manifests_) {
      if (m.kind == CheckpointKind::kFull) {
        EXPECT_EQ(m.packs.size(), 2u) << key;
      }
      without_groups += m.groups.empty();
      for (const KeyGroupSpan& g : m.groups) {
        tombstones += g.tombstones;
        longest = std::max(longest, g.raw_length);
      }
    }
    EXPECT_GT(tombstones, 0u);
    EXPECT_EQ(without_groups, 1u);
    EXPECT_GT(longest, kMaxFrameRawBytes);
    for (const std::string& key : keyed_packs_) {
      EXPECT_FALSE(region_packs.contains(key)) << key << " holds region blocks and keyed records";
    }
  }

  void Checkpoint(Checkpointer* ckpt, Region* r, KeyedState* kv) {
    Snapshot snapshot{std::string(r->data(), r->size()), Contents(*kv)};
    ASSERT_EQ(snapshot.kv, kv_);
    auto handle = ckpt->Checkpoint();
    ASSERT_OK(handle.status());
    ASSERT_OK_AND_ASSIGN(CommitRecord record, handle->Wait());
    // The keyed state is full at the first checkpoint only (the default policy), so every later
    // restore reads a chain.
    const bool first = snapshots_.empty();
    bool found = false;
    for (const StateObjectRecord& o : record.participants.at(0).state_objects) {
      if (o.name != "kv") continue;
      found = true;
      EXPECT_EQ(o.type, StateObjectType::kKeyed);
      EXPECT_EQ(o.kind, first ? CheckpointKind::kFull : CheckpointKind::kIncremental);
      EXPECT_EQ(o.entries, kv_.size());
    }
    EXPECT_TRUE(found) << "checkpoint " << record.id << " has no keyed state";
    snapshots_[record.id] = std::move(snapshot);
  }

  // Restores `id` into a fresh checkpointer, which creates the region and the keyed state.
  static absl::StatusOr<Snapshot> Restore(Repository* repo, uint64_t id) {
    absl::StatusOr<testing::FreshRestore> restored = testing::RestoreFresh(repo, id);
    if (!restored.ok()) return restored.status();
    const Region* region = restored->checkpointer->FindRegion("grid");
    const KeyedState* kv = restored->checkpointer->FindKeyedState("kv");
    if (region == nullptr || kv == nullptr) {
      return absl::NotFoundError("checkpoint " + std::to_string(id) + " lacks 'grid' or 'kv'");
    }
    return Snapshot{std::string(region->data(), region->size()), Contents(*kv)};
  }

  // Whether checkpoint `id`'s restore read byte `offset` of `key` (any byte, for kAnyByte).
  static constexpr uint64_t kAnyByte = UINT64_MAX;
  bool ReadsByte(uint64_t id, const std::string& key, uint64_t offset) const {
    const RecordingStore::Reads& reads = reads_.at(id);
    if (offset == kAnyByte) return reads.keys.count(key) > 0;
    auto it = reads.ranges.find(key);
    if (it == reads.ranges.end()) return false;
    for (const auto& [begin, end] : it->second) {
      if (offset >= begin && offset < end) return true;
    }
    return false;
  }

  // Whether byte `offset` of pack bytes `pack` lies in its nonce frame (format.md §4, since 1.3):
  // the last frame, which no extent references. A restore may read it along with the frames
  // before it (one range read), but never uses it, so damage there is for verify --data to find.
  static bool InNonceFrame(const std::string& key, const std::string& pack, uint64_t offset) {
    if (!key.starts_with(kPacksPrefix) || pack.size() < kPackHeaderBytes + kPackFooterBytes) {
      return false;
    }
    absl::StatusOr<PackFooter> footer = ParsePackFooter(
        std::string_view(pack).substr(pack.size() - kPackFooterBytes), pack.size(), key);
    if (!footer.ok()) return false;
    absl::StatusOr<PackIndex> index =
        ParsePackIndex(std::string_view(pack).substr(footer->index_offset, footer->index_length),
                       footer->index_offset, pack.size(), footer->index_xxh3, key);
    if (!index.ok() || index->frames.empty()) return false;
    const FrameInfo& last = index->frames.back();
    return std::string_view(pack).substr(last.stored_offset, 8) == "ICKNONCE" &&
           offset >= last.stored_offset && offset < last.stored_offset + last.stored_len;
  }

  // The raw stream a pack's frames decode to (every frame checked), or nullopt if any does not.
  static std::optional<std::string> DecodedContent(const std::string& pack,
                                                   const std::string& key) {
    absl::StatusOr<PackIndex> index = VerifyPack(pack, "", key);
    if (!index.ok()) return std::nullopt;
    std::string raw;
    for (const FrameInfo& frame : index->frames) {
      absl::StatusOr<std::string> bytes = DecodeFrame(
          frame, std::string_view(pack).substr(frame.stored_offset, frame.stored_len), key);
      if (!bytes.ok()) return std::nullopt;
      raw += *bytes;
    }
    return raw;
  }

  static bool NamesKey(const absl::Status& s, const std::string& key) {
    return std::string(s.message()).find(key) != std::string::npos;
  }

  // Applies `damage` to `key` (given its original bytes), checks every checkpoint, puts the object
  // back. `damaged_offset` is the byte changed, or kAnyByte for a truncation. `allow_newer` accepts
  // FailedPrecondition (a well-formed newer major version). Returns the worst outcome and counts.
  void RunCase(const std::string& what, const std::string& key, const std::string& damaged,
               uint64_t damaged_offset, bool allow_newer, Tally* tally, bool expect_messages) {
    SCOPED_TRACE(what);
    const std::string path = root_ + "/" + key;
    const std::string original = ReadFileBytes(path);
    WriteFileBytes(path, damaged);
    ++tally->trials;
    bool all_detected = true;
    bool any_read = false;
    auto accept = [&](const absl::Status& s) {
      return (absl::IsDataLoss(s) || (allow_newer && absl::IsFailedPrecondition(s))) &&
             NamesKey(s, key);
    };
    auto repo = Repository::OpenLocal(root_, /*create=*/false);
    if (key == kConfigKey) {
      any_read = true;
      if (repo.ok()) {
        ++tally->outcomes[Outcome::kUndetected];
        all_detected = false;
        ADD_FAILURE() << what << ": the repository opened with a damaged config";
      } else if (!accept(repo.status())) {
        ++tally->outcomes[Outcome::kWrongError];
        all_detected = false;
        ADD_FAILURE() << what << ": " << repo.status();
      } else {
        ++tally->outcomes[Outcome::kDetected];
      }
    } else {
      EXPECT_OK(repo.status());
      // zstd ignores a few bits of a frame (measured: 112 of the 1,020,000 byte flips of the first
      // 4000 bytes of a zstd frame of 64 KiB of text left its output identical), so damage there
      // decodes to the very
      // bytes the frame's checksum covers: a restore that reads it restores the right bytes, and
      // only the pack's SHA-256 (verify --data) can notice. Such damage counts as unread below.
      const bool content_identical =
          key.starts_with(kPacksPrefix) &&
          DecodedContent(damaged, key) == std::optional<std::string>(DecodedContent(original, key));
      for (const auto& [id, snapshot] : snapshots_) {
        const bool reads_damage = ReadsByte(id, key, damaged_offset) &&
                                  !InNonceFrame(key, original, damaged_offset) &&
                                  !content_identical;
        any_read |= reads_damage;
        absl::StatusOr<Snapshot> restored =
            repo.ok() ? Restore(repo->get(), id) : absl::StatusOr<Snapshot>(repo.status());
        Outcome outcome;
        if (restored.ok()) {
          if (*restored != snapshot) {
            outcome = Outcome::kWrongBytes;
          } else {
            outcome = reads_damage ? Outcome::kUndetected : Outcome::kIntact;
          }
        } else if (!reads_damage) {
          outcome = Outcome::kSpuriousFailure;
        } else {
          outcome = accept(restored.status()) ? Outcome::kDetected : Outcome::kWrongError;
        }
        ++tally->outcomes[outcome];
        if (outcome != Outcome::kDetected && outcome != Outcome::kIntact) {
          all_detected = false;
          ADD_FAILURE() << what << ": checkpoint " << id << " (reads the damage: " << reads_damage
                        << ") outcome " << static_cast<int>(outcome) << ": "
                        << (restored.ok() ? std::string("OK") : restored.status().ToString());
        } else if (expect_messages && outcome == Outcome::kDetected) {
          std::cout << "  " << what << ", checkpoint " << id << ": " << restored.status() << "\n";
        }
      }
    }
    if (!any_read) {
      // Nothing restore reads changed; a full check of the object must still notice.
      absl::Status verified = absl::OkStatus();
      if (key.rfind(kPacksPrefix, 0) == 0) {
        verified = VerifyPack(damaged, *ParseHashKey(key, kPacksPrefix), key).status();
      } else if (damaged != original) {
        verified = absl::InternalError("only packs may hold bytes no restore reads");
      }
      if (!verified.ok() && NamesKey(verified, key)) {
        ++tally->unread_verified;
      } else if (damaged != original) {
        ++tally->unread_missed;
        ADD_FAILURE() << what << ": damage no restore reads and VerifyPack accepts: " << verified;
      }
    } else if (all_detected) {
      ++tally->detected;
    }
    WriteFileBytes(path, original);
  }

  // Truncations at 0, 1, half and size - 1, and single-bit... byte flips at the given offsets.
  void DamageObject(const std::string& label, const std::string& key,
                    const std::vector<std::pair<std::string, uint64_t>>& flips, Tally* tally) {
    const std::string original = ReadFileBytes(root_ + "/" + key);
    ASSERT_FALSE(original.empty()) << key;
    for (uint64_t len : {uint64_t{0}, uint64_t{1}, original.size() / 2, original.size() - 1}) {
      RunCase(label + " " + key + " truncated to " + std::to_string(len), key,
              original.substr(0, len), kAnyByte, false, tally, true);
    }
    for (const auto& [name, offset] : flips) {
      ASSERT_LT(offset, original.size()) << name;
      std::string damaged = original;
      damaged[offset] ^= 0x01;  // the lowest bit: the smallest possible change
      RunCase(label + " " + key + " byte " + std::to_string(offset) + " (" + name + ") flipped",
              key, damaged, offset, false, tally, true);
    }
  }

  const std::vector<std::string>& Objects(std::string_view prefix) {
    return objects_[std::string(prefix)];
  }
  uint64_t CommitIdOf(const std::string& key) { return *ParseIdKey(key, kCommitsPrefix); }
  bool IsKeyedObject(const std::string& key) const {
    return keyed_manifests_.contains(key) || keyed_packs_.contains(key);
  }

  testing::TempDir dir_;
  std::string root_;
  KeyedMap kv_;  // the keyed state's entries, mirrored while the workload runs
  std::map<uint64_t, Snapshot> snapshots_;
  std::map<uint64_t, RecordingStore::Reads> reads_;
  std::map<std::string, std::vector<std::string>> objects_;
  std::map<std::string, Manifest> keyed_manifests_;  // by key
  std::set<std::string> keyed_packs_;                // packs the keyed manifests refer to
};

// A JSON envelope (format.md §3.1): magic, major, payload length, middle, checksum.
std::vector<std::pair<std::string, uint64_t>> EnvelopeFlips(uint64_t size) {
  return {{"magic", 0},           {"major version", 8},         {"minor version", 10},
          {"payload length", 12}, {"payload middle", size / 2}, {"checksum last byte", size - 1}};
}

// Rewrites the major version of an envelope to 2 and fixes its checksum: a well-formed object of
// a newer format, which must be refused as such (format.md §1.1).
std::string EnvelopeWithMajor2(std::string bytes) {
  bytes[8] = 2;
  bytes[9] = 0;
  std::string sum;
  PutFixed64(&sum, Xxh3(std::string_view(bytes).substr(0, bytes.size() - 8)));
  bytes.replace(bytes.size() - 8, 8, sum);
  return bytes;
}

// The same for a manifest (format.md §5): major version 2, trailer fixed. The manifest's name no
// longer matches its hash, so a reader refuses it either way: as newer, or as damaged.
std::string ManifestWithMajor2(std::string bytes) {
  bytes[8] = 2;
  bytes[9] = 0;
  std::string sum;
  PutFixed64(&sum, Xxh3(std::string_view(bytes).substr(0, bytes.size() - 8)));
  bytes.replace(bytes.size() - 8, 8, sum);
  return bytes;
}

// The fields of a keyed manifest (format.md §5.3) worth damaging by name, found by walking its
// layout: the header fields of §5 (magic, version and checkpoint id lie where they lie in a region
// manifest, whose flips cover them), then the keyed body.
std::vector<std::pair<std::string, uint64_t>> KeyedManifestFlips(std::string_view bytes) {
  std::vector<std::pair<std::string, uint64_t>> flips;
  Decoder d(bytes.substr(12, bytes.size() - 20));
  auto at = [&]() -> uint64_t { return bytes.size() - 8 - d.remaining(); };
  uint64_t v = 0, packs = 0, groups = 0;
  uint8_t b = 0;
  std::string_view s;
  bool ok = d.GetVarint64(&v) && d.GetVarint64(&v);
  flips.emplace_back("kind (full or incremental)", at());
  ok = ok && d.GetFixed8(&b) && d.GetVarint64(&v) && d.GetLengthPrefixed(&s) &&
       d.GetLengthPrefixed(&s);
  flips.emplace_back("object_type (1: keyed)", at());
  ok = ok && d.GetFixed8(&b);
  flips.emplace_back("key_groups", at());
  ok = ok && d.GetVarint64(&v) && d.GetVarint64(&v);
  flips.emplace_back("group_end", at());
  ok = ok && d.GetVarint64(&v);
  flips.emplace_back("entry_count", at());
  ok = ok && d.GetVarint64(&v) && d.GetVarint64(&v);
  flips.emplace_back("pack count", at());
  ok = ok && d.GetVarint64(&packs);
  if (ok && packs > 0) flips.emplace_back("first pack's sha256, last byte", at() + 31);
  ok = ok && d.GetBytes(packs * 32, &s);
  flips.emplace_back("key group count", at());
  ok = ok && d.GetVarint64(&groups);
  for (uint64_t g = 0; ok && g < groups; ++g) {
    const bool first = g == 0, last = g + 1 == groups;
    if (first) flips.emplace_back("first span's group gap", at());
    ok = d.GetVarint64(&v);
    if (first) flips.emplace_back("first span's pack_ref", at());
    ok = ok && d.GetVarint64(&v);
    if (last) flips.emplace_back("last span's raw_offset", at());
    ok = ok && d.GetVarint64(&v);
    if (first) flips.emplace_back("first span's raw_length", at());
    ok = ok && d.GetVarint64(&v);
    if (first) flips.emplace_back("first span's records", at());
    ok = ok && d.GetVarint64(&v);
    if (last) flips.emplace_back("last span's tombstones", at());
    ok = ok && d.GetVarint64(&v);
  }
  EXPECT_TRUE(ok && d.empty()) << "keyed manifest layout not as format.md §5.3 says";
  flips.emplace_back("checksum last byte", bytes.size() - 1);
  return flips;
}

// A pack's raw stream and how its frames cut it (format.md §4).
struct UnpackedPack {
  std::string raw;
  std::vector<FrameInfo> frames;
};
UnpackedPack Unpack(std::string_view bytes, const std::string& key) {
  UnpackedPack out;
  absl::StatusOr<PackFooter> footer =
      ParsePackFooter(bytes.substr(bytes.size() - kPackFooterBytes), bytes.size(), key);
  EXPECT_OK(footer.status());
  if (!footer.ok()) return out;
  absl::StatusOr<PackIndex> index =
      ParsePackIndex(bytes.substr(footer->index_offset, footer->index_length), footer->index_offset,
                     bytes.size(), footer->index_xxh3, key);
  EXPECT_OK(index.status());
  if (!index.ok()) return out;
  for (const FrameInfo& f : index->frames) {
    absl::StatusOr<std::string> raw =
        DecodeFrame(f, bytes.substr(f.stored_offset, f.stored_len), key);
    EXPECT_OK(raw.status());
    out.raw += raw.value_or("");
  }
  out.frames = std::move(index->frames);
  return out;
}

// A pack of the same frame cuts holding `raw`, every checksum (frames, index, footer) computed
// afresh: a reader's checksums all verify, whatever `raw` holds.
std::string Repack(const UnpackedPack& pack) {
  PackBuilder builder;
  for (const FrameInfo& f : pack.frames) {
    builder.AddFrame(EncodeFrame(std::string_view(pack.raw).substr(f.raw_offset, f.raw_len), 3));
  }
  return builder.Finish().bytes;
}

// The first two records of a key group's span (format.md §5.3): where the first one's key lies
// in the span, and both keys.
struct FirstRecords {
  uint64_t key_offset = 0;
  std::string key;
  std::string next_key;
};
FirstRecords ParseFirstTwoRecords(std::string_view records) {
  FirstRecords out;
  Decoder d(records);
  for (int i = 0; i < 2; ++i) {
    uint8_t type = 0;
    uint64_t key_len = 0, value_len = 0;
    std::string_view key, value;
    bool ok = d.GetFixed8(&type) && d.GetVarint64(&key_len) &&
              (type == kKeyedRecordTombstone || d.GetVarint64(&value_len));
    if (i == 0) out.key_offset = records.size() - d.remaining();
    ok = ok && d.GetBytes(key_len, &key) && d.GetBytes(value_len, &value);
    EXPECT_TRUE(ok) << "record " << i << " of the span does not parse";
    (i == 0 ? out.key : out.next_key) = std::string(key);
  }
  return out;
}

TEST_F(CorruptionTest, DamagedConfigIsReportedWhenOpening) {
  Tally tally;
  const std::string key(kConfigKey);
  const uint64_t size = ReadFileBytes(root_ + "/config").size();
  DamageObject("config", key, EnvelopeFlips(size), &tally);
  const std::string newer = EnvelopeWithMajor2(ReadFileBytes(root_ + "/config"));
  RunCase("config with major version 2", key, newer, 8, /*allow_newer=*/true, &tally, true);
  // A damaged high byte of the major version: the checksum is verified before the version
  // (format.md §1.1), so this is damage (DataLoss), never "upgrade your reader".
  std::string high = ReadFileBytes(root_ + "/config");
  high[9] ^= 0x01;
  RunCase("config major version high byte flipped", key, high, 9, /*allow_newer=*/false, &tally,
          true);
  EXPECT_EQ(tally.detected, tally.trials);
}

TEST_F(CorruptionTest, DamagedCommitRecordsFailTheirDependentsOnly) {
  Tally tally;
  int naming_keyed = 0;
  for (const std::string& key : Objects(kCommitsPrefix)) {
    const std::string bytes = ReadFileBytes(root_ + "/" + key);
    std::vector<std::pair<std::string, uint64_t>> flips = EnvelopeFlips(bytes.size());
    // Every commit record names the keyed state (format.md §6: type "keyed" and its counts):
    // damage its entry too.
    ASSERT_OK_AND_ASSIGN(CommitRecord record, DecodeCommitRecord(bytes, key));
    for (const StateObjectRecord& o : record.participants.at(0).state_objects) {
      if (o.type == StateObjectType::kKeyed) ++naming_keyed;
    }
    // The 'k' of "keyed", the first digit of key_groups.
    for (const auto& [field, skip] :
         {std::pair<std::string_view, size_t>{"\"type\":\"keyed\"", 8}, {"\"key_groups\":", 13}}) {
      const size_t at = bytes.find(field);
      ASSERT_NE(at, std::string::npos) << key << " has no " << field;
      flips.emplace_back("keyed state object's " + std::string(field), at + skip);
    }
    DamageObject("commit", key, flips, &tally);
    RunCase("commit " + key + " with major version 2", key, EnvelopeWithMajor2(bytes), 8, true,
            &tally, false);
  }
  EXPECT_EQ(naming_keyed, 5);
  EXPECT_EQ(tally.detected, tally.trials);
  EXPECT_GT(tally.outcomes[Outcome::kIntact], 0) << "older checkpoints must still restore";
}

TEST_F(CorruptionTest, DamagedManifestsFailTheirDependentsOnly) {
  Tally tally;
  int keyed = 0;
  for (const std::string& key : Objects(kManifestsPrefix)) {
    const std::string bytes = ReadFileBytes(root_ + "/" + key);
    const uint64_t size = bytes.size();
    if (keyed_manifests_.contains(key)) {
      // Every field of the keyed body by name (format.md §5.3), and a newer major version.
      ++keyed;
      DamageObject("keyed manifest", key, KeyedManifestFlips(bytes), &tally);
      RunCase("keyed manifest " + key + " with major version 2", key, ManifestWithMajor2(bytes), 8,
              /*allow_newer=*/true, &tally, false);
      continue;
    }
    // Header: magic (0..7), major (8), minor (10); the first body varint (checkpoint id) at 12;
    // the trailer checksum ends the object.
    DamageObject("manifest", key,
                 {{"magic", 0},
                  {"major version", 8},
                  {"checkpoint id", 12},
                  {"middle", size / 2},
                  {"checksum last byte", size - 1}},
                 &tally);
  }
  EXPECT_EQ(keyed, 5);
  EXPECT_EQ(tally.detected, tally.trials);
  EXPECT_GT(tally.outcomes[Outcome::kIntact], 0);
}

TEST_F(CorruptionTest, DamagedPacksFailTheirDependentsOnly) {
  Tally tally;
  size_t keyed = 0;
  for (const std::string& key : Objects(kPacksPrefix)) {
    if (keyed_packs_.contains(key)) ++keyed;
    const std::string bytes = ReadFileBytes(root_ + "/" + key);
    const uint64_t size = bytes.size();
    ASSERT_OK_AND_ASSIGN(
        PackFooter footer,
        ParsePackFooter(std::string_view(bytes).substr(size - kPackFooterBytes), size, key));
    DamageObject("pack", key,
                 {{"header magic (not read by restore)", 0},
                  {"header major version (not read by restore)", 8},
                  {"first frame", kPackHeaderBytes},
                  {"middle", size / 2},
                  {"index major version", footer.index_offset},
                  {"index frame count", footer.index_offset + 4},
                  {"footer index length", size - kPackFooterBytes + 8},
                  {"footer index checksum", size - 16},
                  {"end magic last byte", size - 1}},
                 &tally);
    // A well-formed index of a newer major version (its checksum in the footer fixed up).
    std::string newer = bytes;
    newer[footer.index_offset] = 2;
    newer[footer.index_offset + 1] = 0;
    std::string sum;
    PutFixed64(&sum,
               Xxh3(std::string_view(newer).substr(footer.index_offset, footer.index_length)));
    newer.replace(size - 16, 8, sum);
    RunCase("pack " + key + " with index major version 2", key, newer, footer.index_offset,
            /*allow_newer=*/true, &tally, false);
  }
  std::cout << "packs: " << tally.trials << " cases over " << Objects(kPacksPrefix).size()
            << " packs (" << keyed << " keyed), " << tally.detected << " detected, "
            << tally.unread_verified << " in bytes no restore reads (caught by VerifyPack)\n";
  EXPECT_EQ(keyed, keyed_packs_.size());
  EXPECT_EQ(tally.detected + tally.unread_verified, tally.trials);
  EXPECT_EQ(tally.unread_missed, 0);
  EXPECT_GT(tally.outcomes[Outcome::kIntact], 0);
}

// Keyed records broken behind valid checksums, as a faulty writer would leave them: the pack is
// rebuilt with its frames, index and footer checksums recomputed, so only the record rules of
// format.md §5.3 (DecodeKeyedGroup) stand between the damage and the restored state. Each case
// changes the first record of a key group of the full keyed checkpoint, keeping every length: its
// type byte becomes 2 (unknown), its key moves to another key group, its key sorts after the next
// one. Every checkpoint reading the pack must fail with DataLoss naming it, never restore a map
// that differs from the reference.
TEST_F(CorruptionTest, KeyedRecordsBrokenBehindValidChecksumsAreRefused) {
  const Manifest* full = nullptr;
  std::string full_key;
  for (const auto& [key, m] : keyed_manifests_) {
    if (m.kind != CheckpointKind::kFull) continue;
    full = &m;
    full_key = key;
  }
  ASSERT_NE(full, nullptr);
  // A group whose first key is not empty and that has a second record.
  const KeyGroupSpan* span = nullptr;
  for (const KeyGroupSpan& g : full->groups) {
    if (g.records >= 2 && g.group != KeyGroupOf("", kKeyGroups)) {
      span = &g;
      break;
    }
  }
  ASSERT_NE(span, nullptr) << full_key;
  const std::string pack = PackKey(ToHex(full->packs[span->pack_ref - 1]));
  const UnpackedPack original = Unpack(ReadFileBytes(root_ + "/" + pack), pack);
  ASSERT_GE(original.raw.size(), span->raw_offset + span->raw_length);
  const FirstRecords first = ParseFirstTwoRecords(
      std::string_view(original.raw).substr(span->raw_offset, span->raw_length));
  ASSERT_FALSE(first.key.empty());
  const uint64_t key_at = span->raw_offset + first.key_offset;

  // The first key with its last byte replaced so that `accept` holds, or nullopt.
  auto replace_last_byte = [&](std::string key, auto accept) -> std::optional<std::string> {
    for (int c = 0; c < 256; ++c) {
      key.back() = static_cast<char>(c);
      if (accept(key)) return key;
    }
    return std::nullopt;
  };
  std::optional<std::string> other_group = replace_last_byte(
      first.key, [&](const std::string& k) { return KeyGroupOf(k, kKeyGroups) != span->group; });
  std::string high = first.key;
  high[0] = '\xff';  // binary keys start with 0x00: this sorts after every other key
  std::optional<std::string> out_of_order = replace_last_byte(high, [&](const std::string& k) {
    return KeyGroupOf(k, kKeyGroups) == span->group && k > first.next_key;
  });
  ASSERT_TRUE(other_group.has_value() && out_of_order.has_value());

  const std::vector<std::pair<std::string, std::function<void(std::string*)>>> cases = {
      {"record type 2", [&](std::string* raw) { (*raw)[span->raw_offset] = 2; }},
      {"key of another key group",
       [&](std::string* raw) { raw->replace(key_at, other_group->size(), *other_group); }},
      {"keys out of order",
       [&](std::string* raw) { raw->replace(key_at, out_of_order->size(), *out_of_order); }},
  };
  Tally tally;
  for (const auto& [what, edit] : cases) {
    UnpackedPack forged = original;
    edit(&forged.raw);
    ASSERT_EQ(forged.raw.size(), original.raw.size());
    RunCase("pack " + pack + " (key group " + std::to_string(span->group) + "): " + what +
                ", checksums recomputed",
            pack, Repack(forged), kAnyByte, /*allow_newer=*/false, &tally,
            /*expect_messages=*/true);
  }
  EXPECT_EQ(tally.detected, tally.trials);
  EXPECT_EQ(tally.outcomes[Outcome::kDetected], 3 * static_cast<int>(snapshots_.size()))
      << "every checkpoint's chain holds the full keyed checkpoint";
}

TEST_F(CorruptionTest, DamagedIdReservationsAreHarmlessAndIdsAreNotReused) {
  const auto& ids = Objects(kIdsPrefix);
  ASSERT_FALSE(ids.empty());
  uint64_t highest = 0;
  for (const std::string& key : ids) {
    EXPECT_EQ(ReadFileBytes(root_ + "/" + key), "") << key << " is not empty";
    highest = std::max(highest, *ParseIdKey(key, kIdsPrefix));
    // The only damage an empty object can take is gaining bytes.
    WriteFileBytes(root_ + "/" + key, std::string("garbage\xff\x00", 9));
  }
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::OpenLocal(root_, /*create=*/false));
  for (const auto& [id, snapshot] : snapshots_) {
    ASSERT_OK_AND_ASSIGN(Snapshot restored, Restore(repo.get(), id));
    EXPECT_TRUE(restored == snapshot) << "checkpoint " << id;
  }
  ASSERT_OK_AND_ASSIGN(uint64_t next, repo->ReserveCheckpointId());
  EXPECT_GT(next, highest);
  EXPECT_GT(next, snapshots_.rbegin()->first);
  ASSERT_OK_AND_ASSIGN(auto other, Repository::OpenLocal(root_, /*create=*/false));
  ASSERT_OK_AND_ASSIGN(uint64_t after, other->ReserveCheckpointId());
  EXPECT_GT(after, next);
}

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

// Random flips and truncations of random objects (config, commit records, manifests, packs; keyed
// manifests and packs among them).
TEST_F(CorruptionTest, RandomDamageIsNeverRestoredSilently) {
  const int trials = EnvInt("ICKPT_CORRUPTION_TRIALS", 2000);
  std::mt19937_64 rng(EnvInt("ICKPT_CORRUPTION_SEED", 11));
  std::vector<std::string> keys = {std::string(kConfigKey)};
  for (std::string_view prefix : {kCommitsPrefix, kManifestsPrefix, kPacksPrefix}) {
    for (const std::string& key : Objects(prefix)) keys.push_back(key);
  }
  std::map<std::string, std::string> originals;
  for (const std::string& key : keys) originals[key] = ReadFileBytes(root_ + "/" + key);
  Tally tally;
  int flips = 0, truncations = 0, keyed = 0;
  for (int t = 0; t < trials && !HasFailure(); ++t) {
    const std::string& key = keys[rng() % keys.size()];
    if (IsKeyedObject(key)) ++keyed;
    const std::string& original = originals[key];
    std::string damaged = original;
    uint64_t offset;
    std::string what;
    if (rng() % 5 == 0) {
      const uint64_t len = rng() % original.size();
      damaged.resize(len);
      offset = kAnyByte;
      what = "truncate to " + std::to_string(len);
      ++truncations;
    } else {
      offset = rng() % original.size();
      const auto mask = static_cast<char>(1 + rng() % 255);
      damaged[offset] ^= mask;
      what = "xor byte " + std::to_string(offset) + " with " + std::to_string(mask & 0xff);
      ++flips;
    }
    // Damage is damage wherever it lands, version fields included (format.md §1.1).
    const bool major_field = false;
    RunCase("trial " + std::to_string(t) + ": " + key + " " + what, key, damaged, offset,
            major_field, &tally, false);
  }
  std::cout << "corruption campaign: trials=" << tally.trials << " flips=" << flips
            << " truncations=" << truncations << " keyed_objects=" << keyed
            << " detected=" << tally.detected
            << " unread_caught_by_verify=" << tally.unread_verified
            << " restores_detected=" << tally.outcomes[Outcome::kDetected]
            << " restores_intact=" << tally.outcomes[Outcome::kIntact]
            << " wrong_bytes=" << tally.outcomes[Outcome::kWrongBytes]
            << " undetected=" << tally.outcomes[Outcome::kUndetected]
            << " wrong_error=" << tally.outcomes[Outcome::kWrongError]
            << " spurious_failures=" << tally.outcomes[Outcome::kSpuriousFailure] << std::endl;
  RecordProperty("trials", tally.trials);
  RecordProperty("keyed_object_trials", keyed);
  RecordProperty("detected", tally.detected);
  RecordProperty("unread_caught_by_verify", tally.unread_verified);
  RecordProperty("wrong_bytes", tally.outcomes[Outcome::kWrongBytes]);
  RecordProperty("undetected", tally.outcomes[Outcome::kUndetected]);
  EXPECT_EQ(tally.trials, trials);
  EXPECT_EQ(tally.outcomes[Outcome::kWrongBytes], 0);
  EXPECT_EQ(tally.outcomes[Outcome::kUndetected], 0);
  EXPECT_EQ(tally.outcomes[Outcome::kWrongError], 0);
  EXPECT_EQ(tally.outcomes[Outcome::kSpuriousFailure], 0);
  EXPECT_EQ(tally.unread_missed, 0);
  EXPECT_EQ(tally.detected + tally.unread_verified, tally.trials);
  if (trials >= 100) {
    EXPECT_GT(keyed, trials / 10) << "keyed manifests and packs must take their share of damage";
  }
}

}  // namespace
}  // namespace ickpt
