#include "src/repo/region_reader.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>

#include "src/repo/chain.h"
#include "src/repo/format.h"
#include "src/repo/keys.h"
#include "src/repo/pack.h"
#include "src/repo/pack_reader.h"
#include "src/repo/repository_internal.h"
#include "src/util/memory.h"
#include "src/util/mutex.h"
#include "src/util/str.h"

namespace ickpt {

static absl::StatusOr<ResolvedObject> ResolveObjectUnchecked(
    const RepositoryReader& repo, const CommitRecord& commit, std::string_view participant,
    std::string_view object, PackTable* packs, Consolidations* consolidations) {
  ResolvedObject out;
  out.participant = std::string(participant);
  out.name = std::string(object);
  uint64_t limit = 0;  // blocks at or above a newer base's block_count are zero (format.md §5)
  absl::Status walked = WalkChain(
      repo, commit, participant, object, StateObjectType::kRegion,
      [&](ChainLink& link) -> absl::Status {
        const Manifest& m = link.manifest;
        out.manifest_bytes_read += link.record->manifest_bytes;
        if (link.step == 0) {
          // Memory is sized by block_count below (one location per block), then by the
          // region. The decoder bounds the object to 1 PiB (format.md §5); the location
          // table must also fit this machine, or the restore is refused before anything
          // is allocated (§10).
          if (m.block_count > kMaxStateObjectBytes / m.block_size) {
            return absl::DataLossError(
                StrCat("manifest ", link.record->manifest, " of checkpoint ", link.checkpoint_id,
                       " describes ", m.block_count, " blocks of ", m.block_size,
                       " bytes, more than the 1 PiB a state object may hold"));
          }
          const uint64_t table_bytes = m.block_count * sizeof(BlockLocation);
          if (const uint64_t memory = PhysicalMemoryBytes();
              memory != 0 && table_bytes > memory / 2) {
            return absl::ResourceExhaustedError(
                StrCat("restoring '", object, "' of checkpoint ", commit.id, " needs a table of ",
                       table_bytes, " bytes for its ", m.block_count, " blocks (manifest ",
                       link.record->manifest, "), more than half of this machine's ", memory,
                       " bytes of memory"));
          }
          out.type = m.object_type;
          out.block_size = m.block_size;
          out.block_count = m.block_count;
          out.depth = m.depth;
          out.locations.assign(out.block_count, BlockLocation{BlockLocation::kUnset, 0});
          limit = out.block_count;
        } else if (m.block_size != out.block_size) {
          return absl::DataLossError(StrCat("manifest ", link.record->manifest, " of checkpoint ",
                                            link.checkpoint_id,
                                            " does not fit the chain of checkpoint ", commit.id,
                                            ": block size ", m.block_size, " vs ", out.block_size));
        }
        out.chain.push_back(link.checkpoint_id);
        if (link.consolidation != 0) out.consolidated = true;
        std::vector<uint32_t> pack_index(m.packs.size());
        for (size_t i = 0; i < m.packs.size(); ++i) pack_index[i] = packs->Intern(m.packs[i]);
        for (const Extent& e : m.extents) {
          const uint64_t end = std::min(e.first_block + e.block_count, limit);
          for (uint64_t b = e.first_block; b < end; ++b) {
            BlockLocation& loc = out.locations[b];
            if (loc.pack != BlockLocation::kUnset) continue;  // a newer checkpoint decided it
            if (e.pack_ref == 0) {
              loc = BlockLocation{BlockLocation::kZero, 0};
            } else {
              loc = BlockLocation{pack_index[e.pack_ref - 1],
                                  e.raw_offset + (b - e.first_block) * out.block_size};
            }
          }
        }
        limit = std::min(limit, m.block_count);
        return absl::OkStatus();
      },
      consolidations);
  if (!walked.ok()) return walked;
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

// A reading thread's buffers, reused across packs: nothing is allocated per frame.
struct ReadBuffers {
  FrameDecoder decoder;
  std::string block;  // a block assembled from several frames
};

// Reads the blocks of one pack: fetches the frames they need in as few range reads as possible,
// verifies each frame, then hands out the blocks.
absl::Status ReadPackBlocks(const RepositoryReader& repo, const std::string& key,
                            std::vector<BlockNeed>& needs, uint32_t block_size, RestoreSink* sink,
                            ReadBuffers* buffers, ReadStats* stats) {
  absl::StatusOr<PackIndex> index = ReadPackIndex(RepositoryInternal::store(repo), key);
  if (!index.ok()) return MissingAsDataLoss(index.status(), StrCat("pack ", key));
  std::sort(needs.begin(), needs.end(),
            [](const BlockNeed& a, const BlockNeed& b) { return a.raw_offset < b.raw_offset; });
  // Runs of consecutive blocks, announced to the sink before any of them is written.
  for (size_t run = 0; run < needs.size();) {
    size_t end = run + 1;
    while (end < needs.size() && needs[end].block == needs[end - 1].block + 1) ++end;
    sink->WillWrite(needs[run].block * block_size, (end - run) * uint64_t{block_size});
    run = end;
  }
  // Frames each block needs, as [first, last].
  std::vector<std::pair<size_t, size_t>> spans(needs.size());
  for (size_t i = 0; i < needs.size(); ++i) {
    absl::StatusOr<std::pair<size_t, size_t>> span =
        index->FramesCovering(needs[i].raw_offset, block_size);
    if (!span.ok()) {
      return absl::DataLossError(StrCat("pack ", key, " has no data at raw offset ",
                                        needs[i].raw_offset, " for block ", needs[i].block, ": ",
                                        span.status().message()));
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
    absl::StatusOr<std::string> stored =
        ReadStoredFrames(repo, key, *index, first_frame, last_frame, &stats->bytes_read);
    if (!stored.ok()) return stored.status();
    const FrameInfo& f0 = index->frames[first_frame];
    // Blocks come in raw-offset order, so the frames they need come in order too: only the last
    // decoded frame is kept (decoded into this thread's scratch, verified there, then copied into
    // the sink).
    size_t decoded_index = SIZE_MAX;
    std::string_view decoded_raw;
    auto frame = [&](size_t f) -> absl::StatusOr<std::string_view> {
      if (f == decoded_index) return decoded_raw;
      const FrameInfo& info = index->frames[f];
      absl::StatusOr<std::string_view> raw = buffers->decoder.Decode(
          info,
          std::string_view(*stored).substr(info.stored_offset - f0.stored_offset, info.stored_len),
          key);
      if (!raw.ok()) return raw.status();
      ++stats->frames_decoded;
      decoded_index = f;
      decoded_raw = *raw;
      return decoded_raw;
    };
    for (size_t k = i; k < j; ++k) {
      if (spans[k].first == spans[k].second) {  // the usual case: the block lies in one frame
        absl::StatusOr<std::string_view> raw = frame(spans[k].first);
        if (!raw.ok()) return raw.status();
        const uint64_t at = needs[k].raw_offset - index->frames[spans[k].first].raw_offset;
        if (absl::Status s = sink->Write(needs[k].block * block_size, raw->substr(at, block_size));
            !s.ok()) {
          return s;
        }
        continue;
      }
      std::string& block = buffers->block;
      block.clear();
      for (size_t f = spans[k].first; f <= spans[k].second; ++f) {
        absl::StatusOr<std::string_view> raw = frame(f);
        if (!raw.ok()) return raw.status();
        const FrameInfo& info = index->frames[f];
        // The part of frame f inside [raw_offset, raw_offset + block_size).
        const uint64_t begin = std::max(needs[k].raw_offset, info.raw_offset);
        const uint64_t end =
            std::min(needs[k].raw_offset + block_size, info.raw_offset + info.raw_len);
        block.append(raw->substr(begin - info.raw_offset, end - begin));
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

static absl::StatusOr<ReadStats> ReadObjectDataUnchecked(const RepositoryReader& repo,
                                                         const ResolvedObject& object,
                                                         const PackTable& packs, RestoreSink* sink,
                                                         int threads) {
  std::map<uint32_t, std::vector<BlockNeed>> by_pack;
  uint64_t zero_start = 0, zero_count = 0;
  auto flush_zeros = [&]() -> absl::Status {
    if (zero_count == 0) return absl::OkStatus();
    absl::Status s =
        sink->WriteZeros(zero_start * object.block_size, zero_count * object.block_size);
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
    ReadBuffers buffers;
    for (size_t w = next++; w < work.size(); w = next++) {
      absl::Status s = ReadPackBlocks(repo, work[w].first, *work[w].second, object.block_size, sink,
                                      &buffers, &stats);
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
    return WithMessage(first_error, StrCat("restoring '", object.name, "' of checkpoint ",
                                           object.chain.empty() ? 0 : object.chain.front(), ": ",
                                           first_error.message()));
  }
  return total;
}

absl::StatusOr<ResolvedObject> ResolveObject(const RepositoryReader& repo,
                                             const CommitRecord& commit,
                                             std::string_view participant, std::string_view object,
                                             PackTable* packs, Consolidations* consolidations) {
  absl::StatusOr<ResolvedObject> result =
      ResolveObjectUnchecked(repo, commit, participant, object, packs, consolidations);
  if (!result.ok() && IsMissingObject(result.status())) {
    // §14.2: a consolidation may have replaced the chain, and GC collected it, since the listing:
    // resolve once more with a new one.
    result = ResolveObjectUnchecked(repo, commit, participant, object, packs, nullptr);
  }
  if (result.ok()) return result;
  return RemovedOrDamaged(repo, commit.id, result.status());
}

absl::StatusOr<ReadStats> ReadObjectData(const RepositoryReader& repo, const ResolvedObject& object,
                                         const PackTable& packs, RestoreSink* sink, int threads) {
  const uint64_t id = object.chain.empty() ? 0 : object.chain.front();
  absl::StatusOr<ReadStats> result = ReadObjectDataUnchecked(repo, object, packs, sink, threads);
  if (!result.ok() && IsMissingObject(result.status()) && !object.participant.empty()) {
    // §14.2: resolve the checkpoint again once and read it again from the new resolution.
    absl::StatusOr<CommitRecord> commit = repo.ReadCommit(id);
    if (commit.ok()) {
      PackTable fresh_packs;
      absl::StatusOr<ResolvedObject> again = ResolveObjectUnchecked(
          repo, *commit, object.participant, object.name, &fresh_packs, nullptr);
      if (again.ok()) {
        result = ReadObjectDataUnchecked(repo, *again, fresh_packs, sink, threads);
      } else {
        result = again.status();
      }
    }
  }
  if (result.ok()) return result;
  return RemovedOrDamaged(repo, id, result.status());
}

}  // namespace ickpt
