// The writer of packs and manifests, format.md §4, §5, §5.3, §8.
#include "src/repo/writer.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "src/repo/chain.h"
#include "src/repo/keyed_reader.h"
#include "src/repo/keyed_records.h"
#include "src/repo/keys.h"
#include "src/repo/pack.h"
#include "src/repo/repository_internal.h"
#include "src/util/coding.h"
#include "src/util/hash.h"
#include "src/util/parallel.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

bool IsAllZero(const char* p, size_t n) {
  // Blocks are page multiples: compare 8 bytes at a time.
  const char* end = p + n;
  for (; p + 8 <= end; p += 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    if (w != 0) return false;
  }
  for (; p < end; ++p) {
    if (*p != 0) return false;
  }
  return true;
}

// Builds the extents of a manifest from blocks given in increasing order.
class ExtentBuilder {
 public:
  ExtentBuilder(uint32_t block_size, const PackTable& packs)
      : block_size_(block_size), packs_(packs) {}

  void Add(uint64_t block, const BlockLocation& loc) {
    const uint32_t ref = loc.is_zero() ? 0 : LocalRef(loc.pack);
    if (!extents_.empty()) {
      Extent& last = extents_.back();
      const bool adjacent = last.first_block + last.block_count == block;
      if (adjacent && last.pack_ref == ref &&
          (ref == 0 || last.raw_offset + last.block_count * block_size_ == loc.raw_offset)) {
        ++last.block_count;
        return;
      }
    }
    extents_.push_back(Extent{block, 1, ref, ref == 0 ? 0 : loc.raw_offset});
  }

  void Finish(Manifest* m) {
    m->packs = std::move(pack_table_);
    m->extents = std::move(extents_);
  }

 private:
  uint32_t LocalRef(uint32_t global) {
    auto [it, inserted] = local_.try_emplace(global, static_cast<uint32_t>(pack_table_.size() + 1));
    if (inserted) pack_table_.push_back(packs_.digest(global));
    return it->second;
  }

  uint32_t block_size_;
  const PackTable& packs_;
  absl::flat_hash_map<uint32_t, uint32_t> local_;
  std::vector<Sha256Digest> pack_table_;
  std::vector<Extent> extents_;
};

}  // namespace

CheckpointWriter::CheckpointWriter(Repository* repo, WriterOptions options)
    : repo_(repo), options_(std::move(options)) {
  if (options_.compress_threads < 1) options_.compress_threads = 1;
  if (options_.uploads_in_flight < 1) options_.uploads_in_flight = 1;
  pipeline_ = std::make_unique<PackPipeline>(
      RepositoryInternal::store(*repo_),
      PackPipelineOptions{.encode_threads = options_.compress_threads,
                          .uploads_in_flight = options_.uploads_in_flight,
                          .compression_level = repo_->config().compression_level});
}

Manifest CheckpointWriter::NewManifest(const CheckpointIds& ids, CheckpointKind kind,
                                       uint64_t depth, std::string_view name,
                                       StateObjectType type) const {
  Manifest m;
  m.checkpoint_id = ids.id;
  m.kind = kind;
  m.depth = depth;
  // Only an incremental manifest has a base (format.md §5).
  if (kind == CheckpointKind::kIncremental) m.base_id = ids.parent;
  m.participant = options_.participant;
  m.object_name = std::string(name);
  m.object_type = type;
  return m;
}

absl::StatusOr<StateObjectRecord> CheckpointWriter::WriteManifest(uint64_t id, const Manifest& m,
                                                                  std::string_view what) {
  const std::string bytes = EncodeManifest(m);
  const std::string sha = ToHex(Sha256(bytes));
  const std::string key = ManifestKey(sha);
  if (absl::Status s = RepositoryInternal::store(*repo_)->Put(key, bytes); !s.ok()) {
    return absl::Status(s.code(), StrCat("checkpoint ", id, ": writing manifest ", key, " of ",
                                         what, " failed: ", s.message()));
  }
  StateObjectRecord r;
  r.name = m.object_name;
  r.type = m.object_type;
  r.manifest = key;
  r.manifest_sha256 = sha;
  r.manifest_bytes = bytes.size();
  r.kind = m.kind;
  r.depth = m.depth;
  return r;
}

absl::StatusOr<std::vector<std::pair<uint64_t, BlockLocation>>> CheckpointWriter::WriteRegionBlocks(
    uint64_t id, std::string_view name, uint32_t bs, const char* data,
    absl::FunctionRef<void(absl::FunctionRef<void(uint64_t, uint64_t)>)> for_each_run,
    PackTable* packs, uint64_t* pack_bytes) {
  const RepositoryConfig& config = repo_->config();
  const std::string what = StrCat("region '", name, "'");
  std::vector<std::pair<uint64_t, BlockLocation>> fresh;
  // Blocks of each submitted pack, by submission: (block, offset in the pack's raw stream).
  std::vector<std::vector<std::pair<uint64_t, uint64_t>>> pack_blocks;

  // The current pack: its frames are views into `data` (adjacent blocks lie back to back there),
  // which outlives the pipeline's Finish() below.
  PackJob job;
  std::vector<std::pair<uint64_t, uint64_t>> batch_blocks;
  uint64_t batch_raw = 0;
  auto submit = [&]() -> absl::Status {
    if (job.frames.empty()) return absl::OkStatus();
    job.checkpoint_id = id;
    job.what = what;
    pack_blocks.push_back(std::move(batch_blocks));
    batch_blocks.clear();
    batch_raw = 0;
    absl::Status s = pipeline_->Submit(std::move(job));
    job = PackJob();
    return s;
  };

  // Cut the dirty blocks into frames at block boundaries (≤ 64 KiB raw; a bigger block is split),
  // zero blocks into zero extents, and the frames into packs of about the target size.
  // A frame holds only adjacent blocks: a restore reads whole frames, so a frame mixing unrelated
  // blocks would make it read blocks that newer checkpoints replaced, and restore work would grow
  // with chain depth (format.md §9).
  absl::Status status;
  uint64_t next_adjacent = UINT64_MAX;  // the block that may continue the current frame
  for_each_run([&](uint64_t first, uint64_t count) {
    for (uint64_t b = first; b < first + count && status.ok(); ++b, data += bs) {
      if (IsAllZero(data, bs)) {
        fresh.emplace_back(b, BlockLocation{BlockLocation::kZero, 0});
        continue;
      }
      batch_blocks.emplace_back(b, batch_raw);
      const bool adjacent = b == next_adjacent;
      next_adjacent = b + 1;
      std::vector<std::string_view>& frames = job.frames;
      for (uint32_t off = 0; off < bs;) {
        const uint32_t piece = std::min<uint32_t>(bs - off, kMaxFrameRawBytes);
        if (frames.empty() || (off == 0 && !adjacent) ||
            frames.back().size() + piece > kMaxFrameRawBytes) {
          frames.emplace_back(data + off, piece);
        } else {
          // Adjacent bytes of `data`: the frame grows in place.
          frames.back() = std::string_view(frames.back().data(), frames.back().size() + piece);
        }
        off += piece;
      }
      batch_raw += bs;
      if (batch_raw >= config.pack_target_bytes) status = submit();
    }
  });
  if (status.ok()) status = submit();
  // Every submitted pack is finished (or cancelled) before `data` may go away.
  absl::StatusOr<std::vector<PackWritten>> packs_written = pipeline_->Finish();
  if (!status.ok()) return status;
  if (!packs_written.ok()) return packs_written.status();
  for (size_t i = 0; i < packs_written->size(); ++i) {
    *pack_bytes += (*packs_written)[i].bytes;
    const uint32_t pack_index = packs->Intern((*packs_written)[i].digest);
    for (const auto& [block, raw_offset] : pack_blocks[i]) {
      fresh.emplace_back(block, BlockLocation{pack_index, raw_offset});
    }
  }
  std::sort(fresh.begin(), fresh.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return fresh;
}

absl::StatusOr<StateObjectRecord> CheckpointWriter::WriteFullRegionManifest(
    uint64_t id, std::string_view name, uint32_t block_size,
    const std::vector<BlockLocation>& locations, const PackTable& packs) {
  Manifest m = NewManifest(CheckpointIds{id, std::nullopt}, CheckpointKind::kFull, 0, name,
                           StateObjectType::kRegion);
  m.block_size = block_size;
  m.block_count = locations.size();
  ExtentBuilder extents(block_size, packs);
  for (uint64_t b = 0; b < locations.size(); ++b) extents.Add(b, locations[b]);
  extents.Finish(&m);
  return WriteManifest(id, m, StrCat("region '", name, "'"));
}

absl::StatusOr<RegionWritten> CheckpointWriter::WriteRegion(const CheckpointIds& ids,
                                                            const RegionCapture& c,
                                                            const std::vector<BlockLocation>* base,
                                                            PackTable* packs) {
  const int64_t start = NowNs();
  const uint32_t bs = c.block_size;
  const std::string what = StrCat("region '", c.name, "'");
  uint64_t pack_bytes = 0;
  RegionWritten written;
  absl::StatusOr<std::vector<std::pair<uint64_t, BlockLocation>>> blocks =
      WriteRegionBlocks(ids.id, c.name, bs, c.data, c.for_each_run, packs, &pack_bytes);
  if (!blocks.ok()) return blocks.status();
  written.fresh = *std::move(blocks);
  std::vector<std::pair<uint64_t, BlockLocation>>* fresh = &written.fresh;

  Manifest m = NewManifest(ids, c.kind, c.depth, c.name, StateObjectType::kRegion);
  m.block_size = bs;
  m.block_count = c.block_count;
  ExtentBuilder extents(bs, *packs);
  if (c.kind == CheckpointKind::kIncremental) {
    for (const auto& [block, loc] : *fresh) extents.Add(block, loc);
  } else {
    // A complete manifest: captured blocks where captured, the committed location elsewhere (data
    // already in the repository is reused, not rewritten).
    size_t k = 0;
    for (uint64_t b = 0; b < c.block_count; ++b) {
      if (k < fresh->size() && (*fresh)[k].first == b) {
        extents.Add(b, (*fresh)[k++].second);
      } else if (base != nullptr && b < base->size()) {
        extents.Add(b, (*base)[b]);
      } else {
        return absl::InternalError(StrCat("checkpoint ", ids.id, ": block ", b, " of region '",
                                          c.name, "' was neither captured nor committed before"));
      }
    }
  }
  extents.Finish(&m);
  absl::StatusOr<StateObjectRecord> record = WriteManifest(ids.id, m, what);
  if (!record.ok()) return record.status();
  StateObjectRecord& r = *record;
  r.tracker = std::string(c.tracker);
  r.logical_bytes = c.block_count * bs;
  r.changed_blocks = c.changed_blocks;
  r.raw_bytes = r.changed_blocks * bs;
  r.stored_bytes = pack_bytes + r.manifest_bytes;
  r.pause_ns = c.pause_ns;
  r.persist_ns = NowNs() - start;
  written.record = *std::move(record);
  return written;
}

absl::StatusOr<StateObjectRecord> CheckpointWriter::WriteKeyed(const CheckpointIds& ids,
                                                               const KeyedCapture& k,
                                                               const CommitRecord* base_record) {
  const int64_t start = NowNs();
  const RepositoryConfig& config = repo_->config();
  const KeyedChanges& changes = *k.changes;
  const std::string what = StrCat("keyed state '", k.name, "'");
  Manifest m = NewManifest(ids, k.kind, k.depth, k.name, StateObjectType::kKeyed);
  m.key_groups = changes.key_groups();
  m.group_first = k.group_first;
  m.group_end = k.group_end;
  m.entry_count = k.entries;
  m.entry_bytes = k.entry_bytes;
  uint64_t pack_bytes = 0;

  // The records of whole key groups, in group order, go into a raw stream that is cut into frames
  // and closed as a pack at about the target size, at a group boundary (format.md §5.3: a group's
  // records lie in one pack). Packs go through the pipeline; their names fill the manifest's pack
  // table, in submission order, once all are durable.
  std::string raw;
  std::vector<KeyGroupSpan> pending;
  uint32_t packs_submitted = 0;
  auto flush = [&]() -> absl::Status {
    if (raw.empty()) return absl::OkStatus();
    PackJob job;
    job.checkpoint_id = ids.id;
    job.what = what;
    job.owned = std::make_unique<const std::string>(std::move(raw));
    raw = std::string();
    const std::string_view stream = *job.owned;
    for (size_t at = 0; at < stream.size(); at += kMaxFrameRawBytes) {
      job.frames.push_back(stream.substr(at, kMaxFrameRawBytes));
    }
    ++packs_submitted;
    for (KeyGroupSpan& span : pending) {
      span.pack_ref = packs_submitted;
      m.groups.push_back(span);
    }
    pending.clear();
    return pipeline_->Submit(std::move(job));
  };
  // Every submitted pack finished before the function returns (its frames may point anywhere).
  auto finish = [&]() -> absl::Status {
    absl::StatusOr<std::vector<PackWritten>> written = pipeline_->Finish();
    if (!written.ok()) return written.status();
    for (const PackWritten& p : *written) {
      pack_bytes += p.bytes;
      m.packs.push_back(p.digest);
    }
    return absl::OkStatus();
  };
  // On an early return, packs still in the pipeline are waited for (and dropped).
  bool finished = false;
  absl::Cleanup drain = [&] {
    if (!finished) (void)pipeline_->Finish();
  };
  // The records of one key group: appended to the raw stream as one span.
  auto add_group = [&](uint32_t group, auto&& for_each_record) -> absl::Status {
    if (group < k.group_first || group >= k.group_end) {
      return absl::InternalError(StrCat("checkpoint ", ids.id, ": keyed state '", k.name,
                                        "' holds a key of group ", group, " outside its groups [",
                                        k.group_first, ", ", k.group_end, ")"));
    }
    KeyGroupSpan span;
    span.group = group;
    span.raw_offset = raw.size();
    for_each_record([&](std::string_view key, std::string_view value, bool erased) {
      AppendKeyedRecord(&raw, key, value, erased);
      ++span.records;
      if (erased) ++span.tombstones;
    });
    span.raw_length = raw.size() - span.raw_offset;
    if (span.records == 0) return absl::OkStatus();
    pending.push_back(span);
    if (raw.size() >= config.pack_target_bytes) return flush();
    return absl::OkStatus();
  };
  const bool merge_with_base = k.kind == CheckpointKind::kFull && !changes.full();
  if (!merge_with_base) {
    for (size_t i = 0; i < changes.size();) {
      const uint32_t group = changes.entry(i).key_group;
      size_t end = i;
      while (end < changes.size() && changes.entry(end).key_group == group) ++end;
      absl::Status s = add_group(group, [&](auto&& append) {
        for (size_t j = i; j < end; ++j) {
          const ChangedEntry e = changes.entry(j);
          append(e.key, e.value, e.erased);
        }
      });
      if (!s.ok()) return s;
      i = end;
    }
  } else {
    // A full manifest from the base (this participant's chain, read back group by group) with the
    // change set laid over it. The base is durable: checkpoints persist in order, and
    // one whose parent failed is never persisted.
    auto failed = [&](const absl::Status& s) {
      return absl::Status(s.code(), StrCat("checkpoint ", ids.id, ": merging keyed state '", k.name,
                                           "' with its base, checkpoint ", ids.parent.value_or(0),
                                           ": ", s.message()));
    };
    if (!ids.parent.has_value() || base_record == nullptr || base_record->id != *ids.parent) {
      return absl::InternalError(StrCat("checkpoint ", ids.id, ": keyed state '", k.name,
                                        "' is a full checkpoint merged with its base, but the "
                                        "base's record was not given"));
    }
    absl::StatusOr<ResolvedKeyed> base =
        ResolveKeyedOf(*repo_, *base_record, options_.participant, k.name);
    if (!base.ok()) return failed(base.status());
    std::map<std::string, PackIndex> indexes;
    uint64_t merged_entries = 0, merged_bytes = 0;
    for (uint32_t group = k.group_first; group < k.group_end; ++group) {
      struct MapSink final : KeyedRestoreSink {
        bool Contains(std::string_view key) const override { return map.contains(key); }
        absl::Status Put(std::string_view key, std::string_view value) override {
          map.emplace(key, value);
          return absl::OkStatus();
        }
        std::map<std::string, std::string, std::less<>> map;
      } sink;
      KeyedReadOptions read;
      read.group_first = group;
      read.group_end = group + 1;
      read.index_cache = &indexes;
      absl::StatusOr<KeyedReadStats> stats = ReadKeyed(*repo_, *base, read, &sink);
      if (!stats.ok()) return failed(stats.status());
      const auto [first, end] = changes.GroupRange(group);
      for (size_t j = first; j < end; ++j) {
        const ChangedEntry e = changes.entry(j);
        if (e.erased) {
          auto it = sink.map.find(e.key);
          if (it != sink.map.end()) sink.map.erase(it);
        } else {
          sink.map.insert_or_assign(std::string(e.key), std::string(e.value));
        }
      }
      absl::Status s = add_group(group, [&](auto&& append) {
        for (const auto& [key, value] : sink.map) {
          append(key, value, false);
          ++merged_entries;
          merged_bytes += key.size() + value.size();
        }
      });
      if (!s.ok()) return s;
    }
    // The merge must arrive at exactly the state the capture saw.
    if (merged_entries != k.entries || merged_bytes != k.entry_bytes) {
      return absl::InternalError(StrCat("checkpoint ", ids.id, ": keyed state '", k.name,
                                        "' merged with its base holds ", merged_entries,
                                        " entries of ", merged_bytes, " bytes, the state held ",
                                        k.entries, " of ", k.entry_bytes));
    }
  }
  if (absl::Status s = flush(); !s.ok()) return s;
  finished = true;
  if (absl::Status s = finish(); !s.ok()) return s;

  absl::StatusOr<StateObjectRecord> written = WriteManifest(ids.id, m, what);
  if (!written.ok()) return written.status();
  StateObjectRecord& r = *written;
  r.tracker = "keyed";
  r.logical_bytes = k.entry_bytes;
  r.changed_blocks = 0;
  // What the capture copied: the changes (also for a full checkpoint merged with its base).
  r.raw_bytes = changes.raw_bytes();
  r.stored_bytes = pack_bytes + r.manifest_bytes;
  r.pause_ns = k.pause_ns;
  r.persist_ns = NowNs() - start;
  r.key_groups = changes.key_groups();
  r.entries = k.entries;
  // A full manifest holds no tombstones; its changed entries are those captured.
  r.changed_entries = changes.size();
  r.tombstones = k.kind == CheckpointKind::kFull ? 0 : changes.tombstone_count();
  return r;
}

}  // namespace ickpt
