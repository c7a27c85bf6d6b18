// Damaged repositories: every kind of object is truncated and has bytes flipped, one corruption at
// a time, on a real local-directory repository; the file is put back afterwards.
//
// The rule checked (format.md §6, §9, §10): a restore either returns exactly the bytes that were
// checkpointed, or fails with DataLoss (FailedPrecondition for a well-formed newer major version)
// naming the damaged object. Which checkpoints must fail is not guessed: a recording store wrapper
// notes, for each checkpoint, which objects and which byte ranges of them its restore reads. A
// checkpoint whose restore reads a damaged byte (or any part of a truncated object) must fail; every
// other checkpoint, older ones included, must still restore exactly.
//
// Bytes a restore never reads cannot change what it restores. In this format those are the 16-byte
// pack header (magic, version, reserved: restore locates frames through the footer and index) and
// frames no checkpoint references. Damage there is counted separately and must be caught by a full
// check of the pack (VerifyPack: header, every frame, sha256 name) as `ickpt verify --data` does.
//
// Id reservations (`ids/<id>`) are empty objects: only their names carry information (the id
// high-water mark, format.md §7); no reader reads their content. Truncating one is a no-op and
// writing garbage into one changes nothing a reader looks at, so damage to their content is
// harmless. The test checks that such damage neither breaks restores nor makes the next
// reservation reuse an id.
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "src/util/mutex.h"
#include "gtest/gtest.h"
#include "ickpt/checkpointer.h"
#include "ickpt/repository.h"
#include "src/repo/keys.h"
#include "src/repo/pack.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"
#include "src/util/coding.h"
#include "src/util/hash.h"

namespace ickpt {
namespace {

constexpr uint32_t kBlock = 4096;
constexpr uint64_t kBlocks = 96;  // 384 KiB region

// Records the objects and byte ranges read through it.
class RecordingStore : public ObjectStoreWrapper {
 public:
  struct Reads {
    std::set<std::string> keys;                                   // any read, Size() included
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
  kDetected,        // failed with DataLoss/FailedPrecondition naming the object
  kIntact,          // restored exactly; the damage was not read
  kWrongError,      // failed, but with another code or without naming the object
  kWrongBytes,      // succeeded with bytes different from the snapshot: the worst outcome
  kUndetected,      // read damaged bytes, yet succeeded with the right bytes
  kSpuriousFailure, // failed although it did not read the damage
};

struct Tally {
  int trials = 0;
  int detected = 0;       // trials where every checkpoint that read the damage reported it
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
    std::mt19937_64 rng(5);
    auto fill = [&](uint64_t block, bool compressible) {
      char* p = r->data() + block * kBlock;
      for (uint32_t k = 0; k < kBlock; k += 8) {
        uint64_t v = compressible ? (block * 0x0101010101010101ULL) ^ (k / 512) : rng();
        std::memcpy(p + k, &v, 8);
      }
    };
    // 1: full, mixed data. 2, 3: incrementals. 4: incremental with zeroed blocks. 5: grown.
    for (uint64_t b = 0; b < kBlocks; ++b) fill(b, b % 3 == 0);
    Checkpoint(ckpt.get(), r);
    for (uint64_t b = 10; b < 30; ++b) fill(b, false);
    Checkpoint(ckpt.get(), r);
    for (uint64_t b = 40; b < 48; ++b) fill(b, b % 2 == 0);
    fill(2, false);
    Checkpoint(ckpt.get(), r);
    std::memset(r->data() + 12 * kBlock, 0, 4 * kBlock);
    fill(60, false);
    Checkpoint(ckpt.get(), r);
    ASSERT_OK(r->Grow((kBlocks + 8) * kBlock));
    fill(kBlocks + 3, false);
    fill(5, true);
    Checkpoint(ckpt.get(), r);
    ckpt.reset();

    // Which objects and bytes each checkpoint's restore reads.
    for (const auto& [id, bytes] : snapshots_) {
      ASSERT_OK_AND_ASSIGN(auto store, OpenLocalStore(root_));
      auto recording = std::make_unique<RecordingStore>(std::move(store));
      RecordingStore* rec = recording.get();
      ASSERT_OK_AND_ASSIGN(auto repo2, Repository::Open(std::move(recording)));
      rec->TakeReads();  // the config: read by every open, handled separately
      ASSERT_OK_AND_ASSIGN(std::string restored, Restore(repo2.get(), id));
      ASSERT_TRUE(restored == bytes) << "checkpoint " << id << " does not restore before damage";
      reads_[id] = rec->TakeReads();
    }
    ASSERT_OK_AND_ASSIGN(auto repo3, Repository::OpenLocal(root_, false));
    for (std::string_view prefix : {kPacksPrefix, kManifestsPrefix, kCommitsPrefix, kIdsPrefix}) {
      ASSERT_OK_AND_ASSIGN(auto objects, repo3->store()->List(prefix));
      for (const ObjectInfo& info : objects) objects_[std::string(prefix)].push_back(info.key);
    }
    ASSERT_GE(objects_[std::string(kPacksPrefix)].size(), 8u) << "expected many packs";
    ASSERT_EQ(objects_[std::string(kCommitsPrefix)].size(), 5u);
  }

  void Checkpoint(Checkpointer* ckpt, Region* r) {
    std::string bytes(r->data(), r->size());
    auto handle = ckpt->Checkpoint();
    ASSERT_OK(handle.status());
    ASSERT_OK_AND_ASSIGN(CommitRecord record, handle->Wait());
    snapshots_[record.id] = std::move(bytes);
  }

  // Restores `id` into a fresh checkpointer.
  static absl::StatusOr<std::string> Restore(Repository* repo, uint64_t id) {
    absl::StatusOr<testing::RestoredRegion> restored = testing::RestoreRegionFresh(repo, id, "grid");
    if (!restored.ok()) return restored.status();
    return std::move(restored->bytes);
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
      for (const auto& [id, snapshot] : snapshots_) {
        const bool reads_damage = ReadsByte(id, key, damaged_offset);
        any_read |= reads_damage;
        absl::StatusOr<std::string> restored =
            repo.ok() ? Restore(repo->get(), id) : absl::StatusOr<std::string>(repo.status());
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

  testing::TempDir dir_;
  std::string root_;
  std::map<uint64_t, std::string> snapshots_;
  std::map<uint64_t, RecordingStore::Reads> reads_;
  std::map<std::string, std::vector<std::string>> objects_;
};

// A JSON envelope (format.md §3.1): magic, major, payload length, middle, checksum.
std::vector<std::pair<std::string, uint64_t>> EnvelopeFlips(uint64_t size) {
  return {{"magic", 0}, {"major version", 8}, {"minor version", 10}, {"payload length", 12},
          {"payload middle", size / 2}, {"checksum last byte", size - 1}};
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
  for (const std::string& key : Objects(kCommitsPrefix)) {
    const uint64_t size = ReadFileBytes(root_ + "/" + key).size();
    DamageObject("commit", key, EnvelopeFlips(size), &tally);
    RunCase("commit " + key + " with major version 2", key,
            EnvelopeWithMajor2(ReadFileBytes(root_ + "/" + key)), 8, true, &tally, false);
  }
  EXPECT_EQ(tally.detected, tally.trials);
  EXPECT_GT(tally.outcomes[Outcome::kIntact], 0) << "older checkpoints must still restore";
}

TEST_F(CorruptionTest, DamagedManifestsFailTheirDependentsOnly) {
  Tally tally;
  for (const std::string& key : Objects(kManifestsPrefix)) {
    const uint64_t size = ReadFileBytes(root_ + "/" + key).size();
    // Header: magic (0..7), major (8), minor (10); the first body varint (checkpoint id) at 12;
    // the trailer checksum ends the object.
    DamageObject("manifest", key,
                 {{"magic", 0}, {"major version", 8}, {"checkpoint id", 12}, {"middle", size / 2},
                  {"checksum last byte", size - 1}},
                 &tally);
  }
  EXPECT_EQ(tally.detected, tally.trials);
  EXPECT_GT(tally.outcomes[Outcome::kIntact], 0);
}

TEST_F(CorruptionTest, DamagedPacksFailTheirDependentsOnly) {
  Tally tally;
  for (const std::string& key : Objects(kPacksPrefix)) {
    const std::string bytes = ReadFileBytes(root_ + "/" + key);
    const uint64_t size = bytes.size();
    ASSERT_OK_AND_ASSIGN(PackFooter footer,
                         ParsePackFooter(std::string_view(bytes).substr(size - kPackFooterBytes),
                                         size, key));
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
    PutFixed64(&sum, Xxh3(std::string_view(newer).substr(footer.index_offset, footer.index_length)));
    newer.replace(size - 16, 8, sum);
    RunCase("pack " + key + " with index major version 2", key, newer, footer.index_offset,
            /*allow_newer=*/true, &tally, false);
  }
  std::cout << "packs: " << tally.trials << " cases, " << tally.detected << " detected, "
            << tally.unread_verified << " in bytes no restore reads (caught by VerifyPack)\n";
  EXPECT_EQ(tally.detected + tally.unread_verified, tally.trials);
  EXPECT_EQ(tally.unread_missed, 0);
  EXPECT_GT(tally.outcomes[Outcome::kIntact], 0);
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
    ASSERT_OK_AND_ASSIGN(std::string restored, Restore(repo.get(), id));
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

// Random flips and truncations of random objects (config, commit records, manifests, packs).
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
  int flips = 0, truncations = 0;
  for (int t = 0; t < trials && !HasFailure(); ++t) {
    const std::string& key = keys[rng() % keys.size()];
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
            << " truncations=" << truncations << " detected=" << tally.detected
            << " unread_caught_by_verify=" << tally.unread_verified
            << " restores_detected=" << tally.outcomes[Outcome::kDetected]
            << " restores_intact=" << tally.outcomes[Outcome::kIntact]
            << " wrong_bytes=" << tally.outcomes[Outcome::kWrongBytes]
            << " undetected=" << tally.outcomes[Outcome::kUndetected]
            << " wrong_error=" << tally.outcomes[Outcome::kWrongError]
            << " spurious_failures=" << tally.outcomes[Outcome::kSpuriousFailure] << std::endl;
  RecordProperty("trials", tally.trials);
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
}

}  // namespace
}  // namespace ickpt
