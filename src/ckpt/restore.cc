#include "src/ckpt/restore.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>

#include "src/util/str.h"
#include "src/util/mutex.h"
#include "src/repo/keys.h"
#include "src/repo/pack.h"

namespace ickpt {
namespace {

// Unneeded frames up to this many stored bytes between two needed ones are read along (and
// skipped) rather than split into two requests.
constexpr uint64_t kMaxReadGapBytes = 32 * 1024;

// A manifest chain longer than this is damage (a loop), not a real chain.
constexpr size_t kMaxChainLength = 1'000'000;

// A name taken from an object, cut short for an error message: it may be megabytes long.
std::string Quoted(std::string_view name) {
  constexpr size_t kMaxShown = 80;
  if (name.size() <= kMaxShown) return StrCat("\"", name, "\"");
  return StrCat("\"", name.substr(0, kMaxShown), "\"... (", name.size(), " bytes)");
}

// Bytes of memory this machine has; 0 if unknown.
uint64_t PhysicalMemoryBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return 0;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size);
}

}  // namespace

absl::Status MissingAsDataLoss(const absl::Status& status, std::string_view what) {
  if (absl::IsNotFound(status)) {
    return absl::DataLossError(StrCat(what, " is missing: ", status.message()));
  }
  return status;
}

absl::StatusOr<Manifest> ReadManifest(const Repository& repo, uint64_t checkpoint_id,
                                      const StateObjectRecord& record) {
  // format.md §2, §10: a key taken from an object is validated before it reaches the store, even if
  // the record did not come from DecodeCommitRecord (which checks the same): a key such as
  // "../../etc/passwd" or "/abs" never becomes a path.
  if (!ValidateObjectKey(record.manifest).ok() ||
      ParseHashKey(record.manifest, kManifestsPrefix) != record.manifest_sha256) {
    return absl::DataLossError(StrCat("checkpoint ", checkpoint_id, " names manifest ",
                                      Quoted(record.manifest), " for state object '",
                                      record.name, "': not the manifest key of sha256 ",
                                      Quoted(record.manifest_sha256), " (format.md §2)"));
  }
  absl::StatusOr<std::string> bytes = repo.store()->Get(record.manifest);
  if (!bytes.ok()) {
    return MissingAsDataLoss(bytes.status(),
                             StrCat("manifest ", record.manifest, " of checkpoint ",
                                          checkpoint_id, " (state object '", record.name, "')"));
  }
  const std::string actual = ToHex(Sha256(*bytes));
  if (actual != record.manifest_sha256) {
    return absl::DataLossError(StrCat("manifest ", record.manifest, " of checkpoint ",
                                            checkpoint_id, " is damaged: sha256 ", actual,
                                            " differs from the commit record's ",
                                            record.manifest_sha256));
  }
  absl::StatusOr<Manifest> manifest = DecodeManifest(*bytes, record.manifest);
  if (!manifest.ok()) return manifest.status();
  if (manifest->checkpoint_id != checkpoint_id || manifest->object_name != record.name) {
    return absl::DataLossError(StrCat("manifest ", record.manifest, " describes '",
                                            manifest->object_name, "' of checkpoint ",
                                            manifest->checkpoint_id, ", but checkpoint ",
                                            checkpoint_id, " names it for '", record.name, "'"));
  }
  return manifest;
}

absl::StatusOr<const ParticipantRecord*> FindParticipant(const CommitRecord& commit,
                                                         std::string_view name) {
  for (const ParticipantRecord& p : commit.participants) {
    if (p.name == name) return &p;
  }
  return absl::NotFoundError(
      StrCat("checkpoint ", commit.id, " has no participant '", name, "'"));
}

absl::StatusOr<ResolvedObject> ResolveObject(const Repository& repo, const CommitRecord& commit,
                                             std::string_view participant, std::string_view object,
                                             PackTable* packs) {
  ResolvedObject out;
  out.name = std::string(object);
  CommitRecord current = commit;
  uint64_t limit = 0;  // blocks at or above a newer base's block_count are zero (format.md §5)
  uint64_t expected_depth = 0;
  for (size_t step = 0;; ++step) {
    if (step >= kMaxChainLength) {
      return absl::DataLossError(StrCat("the chain of '", object, "' from checkpoint ",
                                              commit.id, " does not end (a loop?)"));
    }
    absl::StatusOr<const ParticipantRecord*> p = FindParticipant(current, participant);
    if (!p.ok()) {
      if (step == 0) return p.status();
      return absl::DataLossError(StrCat("checkpoint ", commit.id, " depends on checkpoint ",
                                              current.id, ", which lacks participant '",
                                              participant, "'"));
    }
    const StateObjectRecord* record = nullptr;
    for (const StateObjectRecord& r : (*p)->state_objects) {
      if (r.name == object) record = &r;
    }
    if (record == nullptr) {
      if (step == 0) {
        return absl::NotFoundError(StrCat("checkpoint ", commit.id, " has no state object '",
                                                object, "' for participant '", participant, "'"));
      }
      return absl::DataLossError(StrCat("checkpoint ", commit.id, " depends on checkpoint ",
                                              current.id, ", which lacks state object '", object,
                                              "'"));
    }
    absl::StatusOr<Manifest> manifest = ReadManifest(repo, current.id, *record);
    if (!manifest.ok()) return manifest.status();
    // A keyed manifest has no blocks (block_size 0): it is read by ResolveKeyed. A commit record
    // that calls it a region is damaged, and nothing below may divide by its block size.
    if (manifest->object_type != StateObjectType::kRegion) {
      return absl::DataLossError(StrCat("manifest ", record->manifest, " of checkpoint ",
                                        current.id, " describes a ",
                                        StateObjectTypeName(manifest->object_type), ", not the region '",
                                        object, "' its commit record names"));
    }
    out.manifest_bytes_read += record->manifest_bytes;
    if (step == 0) {
      // Memory is sized by block_count below (one location per block), then by the region. The
      // decoder bounds the object to 1 PiB (format.md §5); the location table must also fit this
      // machine, or the restore is refused before anything is allocated (format.md §10).
      if (manifest->block_count > kMaxStateObjectBytes / manifest->block_size) {
        return absl::DataLossError(StrCat("manifest ", record->manifest, " of checkpoint ",
                                          current.id, " describes ", manifest->block_count,
                                          " blocks of ", manifest->block_size,
                                          " bytes, more than the 1 PiB a state object may hold"));
      }
      const uint64_t table_bytes = manifest->block_count * sizeof(BlockLocation);
      if (const uint64_t memory = PhysicalMemoryBytes(); memory != 0 && table_bytes > memory / 2) {
        return absl::ResourceExhaustedError(StrCat(
            "restoring '", object, "' of checkpoint ", commit.id, " needs a table of ", table_bytes,
            " bytes for its ", manifest->block_count, " blocks (manifest ", record->manifest,
            "), more than half of this machine's ", memory, " bytes of memory"));
      }
      out.type = manifest->object_type;
      out.block_size = manifest->block_size;
      out.block_count = manifest->block_count;
      out.depth = manifest->depth;
      out.locations.assign(out.block_count, BlockLocation{BlockLocation::kUnset, 0});
      limit = out.block_count;
      expected_depth = manifest->depth;
    } else if (manifest->block_size != out.block_size || manifest->depth != expected_depth) {
      return absl::DataLossError(StrCat(
          "manifest ", record->manifest, " of checkpoint ", current.id,
          " does not fit the chain of checkpoint ", commit.id, ": block size ",
          manifest->block_size, " vs ", out.block_size, ", depth ", manifest->depth, " vs ",
          expected_depth));
    }
    out.chain.push_back(current.id);
    std::vector<uint32_t> pack_index(manifest->packs.size());
    for (size_t i = 0; i < manifest->packs.size(); ++i) pack_index[i] = packs->Intern(manifest->packs[i]);
    for (const Extent& e : manifest->extents) {
      const uint64_t end = std::min(e.first_block + e.block_count, limit);
      for (uint64_t b = e.first_block; b < end; ++b) {
        BlockLocation& loc = out.locations[b];
        if (loc.pack != BlockLocation::kUnset) continue;  // a newer checkpoint decided this block
        if (e.pack_ref == 0) {
          loc = BlockLocation{BlockLocation::kZero, 0};
        } else {
          loc = BlockLocation{pack_index[e.pack_ref - 1],
                              e.raw_offset + (b - e.first_block) * out.block_size};
        }
      }
    }
    limit = std::min(limit, manifest->block_count);
    if (manifest->kind == CheckpointKind::kFull) break;
    const uint64_t base = *manifest->base_id;
    if (base >= current.id || expected_depth == 0) {
      return absl::DataLossError(StrCat("manifest ", record->manifest, " of checkpoint ",
                                              current.id, " names base ", base,
                                              ", which cannot precede it"));
    }
    --expected_depth;
    absl::StatusOr<CommitRecord> next = repo.ReadCommit(base);
    if (!next.ok()) {
      return MissingAsDataLoss(next.status(), StrCat("checkpoint ", base, ", on which checkpoint ",
                                                           commit.id, " depends,"));
    }
    current = *std::move(next);
  }
  for (BlockLocation& loc : out.locations) {
    if (loc.pack == BlockLocation::kUnset) loc = BlockLocation{BlockLocation::kZero, 0};
  }
  return out;
}

namespace {

struct BlockNeed {
  uint64_t block;
  uint64_t raw_offset;
};

// Reads the blocks of one pack: fetches the frames they need in as few range reads as possible,
// verifies each frame, then hands out the blocks.
absl::Status ReadPackBlocks(const Repository& repo, const std::string& key,
                            std::vector<BlockNeed>& needs, uint32_t block_size, RestoreSink* sink,
                            ReadStats* stats) {
  absl::StatusOr<PackIndex> index = ReadPackIndex(repo.store(), key);
  if (!index.ok()) return MissingAsDataLoss(index.status(), StrCat("pack ", key));
  std::sort(needs.begin(), needs.end(),
            [](const BlockNeed& a, const BlockNeed& b) { return a.raw_offset < b.raw_offset; });
  // Frames each block needs, as [first, last].
  std::vector<std::pair<size_t, size_t>> spans(needs.size());
  for (size_t i = 0; i < needs.size(); ++i) {
    absl::StatusOr<std::pair<size_t, size_t>> span =
        index->FramesCovering(needs[i].raw_offset, block_size);
    if (!span.ok()) {
      return absl::DataLossError(StrCat("pack ", key, " has no data at raw offset ",
                                              needs[i].raw_offset, " for block ", needs[i].block,
                                              ": ", span.status().message()));
    }
    spans[i] = *span;
  }
  size_t i = 0;
  while (i < needs.size()) {
    // One range read for a run of blocks whose frames lie close together. Frames in small gaps
    // between them are fetched (one request is cheaper than two) but never decoded.
    const size_t first_frame = spans[i].first;
    size_t last_frame = spans[i].second;
    size_t j = i + 1;
    while (j < needs.size()) {
      const FrameInfo& end = index->frames[last_frame];
      const uint64_t gap =
          index->frames[spans[j].first].stored_offset - (end.stored_offset + end.stored_len);
      if (spans[j].first > last_frame + 1 && gap > kMaxReadGapBytes) break;
      last_frame = std::max(last_frame, spans[j].second);
      ++j;
    }
    const FrameInfo& f0 = index->frames[first_frame];
    const FrameInfo& f1 = index->frames[last_frame];
    const uint64_t length = f1.stored_offset + f1.stored_len - f0.stored_offset;
    absl::StatusOr<std::string> stored = repo.store()->GetRange(key, f0.stored_offset, length);
    if (!stored.ok()) return MissingAsDataLoss(stored.status(), StrCat("pack ", key));
    if (stored->size() != length) {
      return absl::DataLossError(StrCat("pack ", key, " is truncated: wanted ", length,
                                        " bytes at offset ", f0.stored_offset, ", got ",
                                        stored->size()));
    }
    stats->bytes_read += length;
    // Decoded frames of this range, each verified before any of its bytes is used.
    std::map<size_t, std::string> decoded;
    auto frame = [&](size_t f) -> absl::StatusOr<const std::string*> {
      auto it = decoded.find(f);
      if (it != decoded.end()) return &it->second;
      const FrameInfo& info = index->frames[f];
      absl::StatusOr<std::string> raw = DecodeFrame(
          info,
          std::string_view(*stored).substr(info.stored_offset - f0.stored_offset, info.stored_len),
          key);
      if (!raw.ok()) return raw.status();
      ++stats->frames_decoded;
      return &decoded.emplace(f, *std::move(raw)).first->second;
    };
    std::string block;
    for (size_t k = i; k < j; ++k) {
      if (spans[k].first == spans[k].second) {  // the usual case: the block lies in one frame
        absl::StatusOr<const std::string*> raw = frame(spans[k].first);
        if (!raw.ok()) return raw.status();
        const uint64_t at = needs[k].raw_offset - index->frames[spans[k].first].raw_offset;
        if (absl::Status s = sink->Write(needs[k].block * block_size,
                                         std::string_view(**raw).substr(at, block_size));
            !s.ok()) {
          return s;
        }
        continue;
      }
      block.clear();
      for (size_t f = spans[k].first; f <= spans[k].second; ++f) {
        absl::StatusOr<const std::string*> raw = frame(f);
        if (!raw.ok()) return raw.status();
        const FrameInfo& info = index->frames[f];
        // The part of frame f inside [raw_offset, raw_offset + block_size).
        const uint64_t begin = std::max(needs[k].raw_offset, info.raw_offset);
        const uint64_t end = std::min(needs[k].raw_offset + block_size, info.raw_offset + info.raw_len);
        block.append(**raw, begin - info.raw_offset, end - begin);
      }
      if (absl::Status s = sink->Write(needs[k].block * block_size, block); !s.ok()) return s;
    }
    // Frames are dropped once every block of the range was handed out.
    i = j;
  }
  ++stats->packs_read;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ReadStats> ReadObjectData(const Repository& repo, const ResolvedObject& object,
                                         const PackTable& packs, RestoreSink* sink, int threads) {
  std::map<uint32_t, std::vector<BlockNeed>> by_pack;
  uint64_t zero_start = 0, zero_count = 0;
  auto flush_zeros = [&]() -> absl::Status {
    if (zero_count == 0) return absl::OkStatus();
    absl::Status s = sink->WriteZeros(zero_start * object.block_size, zero_count * object.block_size);
    zero_count = 0;
    return s;
  };
  for (uint64_t b = 0; b < object.block_count; ++b) {
    const BlockLocation& loc = object.locations[b];
    if (loc.is_zero()) {
      if (zero_count == 0) zero_start = b;
      ++zero_count;
      continue;
    }
    if (absl::Status s = flush_zeros(); !s.ok()) return s;
    by_pack[loc.pack].push_back(BlockNeed{b, loc.raw_offset});
  }
  if (absl::Status s = flush_zeros(); !s.ok()) return s;

  std::vector<std::pair<std::string, std::vector<BlockNeed>*>> work;
  for (auto& [pack, needs] : by_pack) work.emplace_back(PackKey(ToHex(packs.digest(pack))), &needs);
  std::atomic<size_t> next{0};
  Mutex mu;
  absl::Status first_error;
  ReadStats total;
  auto worker = [&] {
    ReadStats stats;
    for (size_t w = next++; w < work.size(); w = next++) {
      absl::Status s = ReadPackBlocks(repo, work[w].first, *work[w].second, object.block_size,
                                      sink, &stats);
      if (!s.ok()) {
        MutexLock lock(&mu);
        if (first_error.ok()) first_error = s;
        next = work.size();  // stop the others early
        break;
      }
    }
    MutexLock lock(&mu);
    total.packs_read += stats.packs_read;
    total.bytes_read += stats.bytes_read;
    total.frames_decoded += stats.frames_decoded;
  };
  const int n = std::max(1, std::min<int>(threads, static_cast<int>(work.size())));
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (!first_error.ok()) {
    return absl::Status(first_error.code(),
                        StrCat("restoring '", object.name, "' of checkpoint ",
                                     object.chain.empty() ? 0 : object.chain.front(), ": ",
                                     first_error.message()));
  }
  return total;
}

}  // namespace ickpt
