#include "src/ckpt/restore.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>

#include "src/util/str.h"
#include "absl/synchronization/mutex.h"
#include "src/repo/keys.h"
#include "src/repo/pack.h"

namespace ickpt {
namespace {

// A manifest chain longer than this is damage (a loop), not a real chain.
constexpr size_t kMaxChainLength = 1'000'000;

absl::Status MissingAsDataLoss(const absl::Status& status, std::string_view what) {
  if (absl::IsNotFound(status)) {
    return absl::DataLossError(StrCat(what, " is missing: ", status.message()));
  }
  return status;
}

}  // namespace

absl::StatusOr<Manifest> ReadManifest(const Repository& repo, uint64_t checkpoint_id,
                                      const StateObjectRecord& record) {
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
    out.manifest_bytes_read += record->manifest_bytes;
    if (step == 0) {
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
    // A run of blocks whose frames are contiguous (or overlap): one range read.
    const size_t first_frame = spans[i].first;
    size_t last_frame = spans[i].second;
    size_t j = i + 1;
    while (j < needs.size() && spans[j].first <= last_frame + 1) {
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
    std::string raw;  // frames [first_frame, last_frame] decoded back to back
    raw.reserve((last_frame - first_frame + 1) * kMaxFrameRawBytes);
    for (size_t f = first_frame; f <= last_frame; ++f) {
      const FrameInfo& frame = index->frames[f];
      absl::StatusOr<std::string> decoded = DecodeFrame(
          frame,
          std::string_view(*stored).substr(frame.stored_offset - f0.stored_offset, frame.stored_len),
          key);
      if (!decoded.ok()) return decoded.status();
      raw += *decoded;
      ++stats->frames_decoded;
    }
    for (size_t k = i; k < j; ++k) {
      const uint64_t at = needs[k].raw_offset - f0.raw_offset;
      if (absl::Status s = sink->Write(needs[k].block * block_size,
                                       std::string_view(raw).substr(at, block_size));
          !s.ok()) {
        return s;
      }
    }
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
  absl::Mutex mu;
  absl::Status first_error;
  ReadStats total;
  auto worker = [&] {
    ReadStats stats;
    for (size_t w = next++; w < work.size(); w = next++) {
      absl::Status s = ReadPackBlocks(repo, work[w].first, *work[w].second, object.block_size,
                                      sink, &stats);
      if (!s.ok()) {
        absl::MutexLock lock(&mu);
        if (first_error.ok()) first_error = s;
        next = work.size();  // stop the others early
        break;
      }
    }
    absl::MutexLock lock(&mu);
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
