// Keyed state restore, format.md §9.1.
#include "src/repo/keyed_reader.h"

#include <algorithm>
#include <map>
#include <set>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "ickpt/key_group.h"
#include "src/repo/chain.h"
#include "src/repo/keyed_records.h"
#include "src/repo/keys.h"
#include "src/repo/pack.h"
#include "src/repo/pack_reader.h"
#include "src/repo/repository_internal.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

// One participant's chain of keyed state `object`, from `commit` down to the full manifest.
absl::StatusOr<KeyedChain> ResolveChain(const RepositoryReader& repo, const CommitRecord& commit,
                                        std::string_view participant, std::string_view object,
                                        Consolidations* consolidations) {
  KeyedChain chain;
  chain.participant = std::string(participant);
  uint32_t key_groups = 0;
  absl::Status walked = WalkChain(
      repo, commit, participant, object, StateObjectType::kKeyed,
      [&](ChainLink& link) -> absl::Status {
        const Manifest& m = link.manifest;
        if (link.step == 0) {
          chain.group_first = m.group_first;
          chain.group_end = m.group_end;
          key_groups = m.key_groups;
        } else if (m.key_groups != key_groups || m.group_first != chain.group_first ||
                   m.group_end != chain.group_end) {
          return absl::DataLossError(
              StrCat("manifest ", link.record->manifest, " of checkpoint ", link.checkpoint_id,
                     " does not fit the chain of keyed state '", object, "' of participant '",
                     participant, "' from checkpoint ", commit.id, ": key groups ", m.key_groups,
                     " [", m.group_first, ", ", m.group_end, ") vs ", key_groups, " [",
                     chain.group_first, ", ", chain.group_end, ")"));
        }
        chain.checkpoint_ids.push_back(link.checkpoint_id);
        chain.manifest_keys.push_back(link.record->manifest);
        chain.manifests.push_back(std::move(link.manifest));
        return absl::OkStatus();
      },
      consolidations);
  if (!walked.ok()) return walked;
  return chain;
}

// Raw-stream bytes [raw_offset, raw_offset + length) of pack `key` into *out (its memory reused),
// every frame verified.
absl::Status ReadPackRange(const RepositoryReader& repo, const std::string& key,
                           const PackIndex& index, uint64_t raw_offset, uint64_t length,
                           uint64_t* bytes_read, std::string* out) {
  absl::StatusOr<std::pair<size_t, size_t>> span = index.FramesCovering(raw_offset, length);
  if (!span.ok()) {
    return absl::DataLossError(StrCat("pack ", key, " has no data at raw bytes [", raw_offset,
                                      ", +", length, "): ", span.status().message()));
  }
  absl::StatusOr<std::string> stored =
      ReadStoredFrames(repo, key, index, span->first, span->second, bytes_read);
  if (!stored.ok()) return stored.status();
  const FrameInfo& f0 = index.frames[span->first];
  thread_local FrameDecoder decoder;  // this thread's, reused across frames and calls
  out->clear();
  out->reserve(length);
  for (size_t f = span->first; f <= span->second; ++f) {
    const FrameInfo& info = index.frames[f];
    absl::StatusOr<std::string_view> raw = decoder.Decode(
        info,
        std::string_view(*stored).substr(info.stored_offset - f0.stored_offset, info.stored_len),
        key);
    if (!raw.ok()) return raw.status();
    const uint64_t begin = std::max(raw_offset, info.raw_offset);
    const uint64_t end = std::min(raw_offset + length, info.raw_offset + info.raw_len);
    out->append(raw->substr(begin - info.raw_offset, end - begin));
  }
  return absl::OkStatus();
}

struct Record {
  std::string_view key;
  std::string_view value;
  bool tombstone;
};

}  // namespace

std::vector<std::string> KeyedStateNames(const CommitRecord& commit) {
  std::set<std::string> names;
  for (const ParticipantRecord& p : commit.participants) {
    for (const StateObjectRecord& o : p.state_objects) {
      if (o.type == StateObjectType::kKeyed) names.insert(o.name);
    }
  }
  return std::vector<std::string>(names.begin(), names.end());
}

static absl::StatusOr<ResolvedKeyed> ResolveKeyedOfUnchecked(const RepositoryReader& repo,
                                                             const CommitRecord& commit,
                                                             std::string_view participant,
                                                             std::string_view object,
                                                             Consolidations* consolidations) {
  for (const ParticipantRecord& p : commit.participants) {
    if (p.name != participant) continue;
    const StateObjectRecord* record = FindStateObject(p, object);
    if (record == nullptr || record->type != StateObjectType::kKeyed) break;
    absl::StatusOr<KeyedChain> chain = ResolveChain(repo, commit, p.name, object, consolidations);
    if (!chain.ok()) return chain.status();
    ResolvedKeyed out;
    out.name = std::string(object);
    out.checkpoint_id = commit.id;
    out.key_groups = chain->manifests.front().key_groups;
    out.entry_count = chain->manifests.front().entry_count;
    out.entry_bytes = chain->manifests.front().entry_bytes;
    out.chains.push_back(*std::move(chain));
    out.only_participant = std::string(participant);
    return out;
  }
  return absl::NotFoundError(StrCat("checkpoint ", commit.id, " has no keyed state '", object,
                                    "' of participant '", participant, "'"));
}

absl::StatusOr<ResolvedKeyed> ResolveKeyedOf(const RepositoryReader& repo,
                                             const CommitRecord& commit,
                                             std::string_view participant,
                                             std::string_view object) {
  absl::StatusOr<ResolvedKeyed> result =
      ResolveKeyedOfUnchecked(repo, commit, participant, object, nullptr);
  if (!result.ok() && IsMissingObject(result.status())) {
    result = ResolveKeyedOfUnchecked(repo, commit, participant, object, nullptr);  // §14.2
  }
  if (result.ok()) return result;
  return RemovedOrDamaged(repo, commit.id, result.status());
}

static absl::StatusOr<ResolvedKeyed> ResolveKeyedUnchecked(const RepositoryReader& repo,
                                                           const CommitRecord& commit,
                                                           std::string_view object) {
  ResolvedKeyed out;
  out.name = std::string(object);
  out.checkpoint_id = commit.id;
  // One listing of consolidations for every participant's chain (format.md §14.2).
  absl::StatusOr<Consolidations> consolidations = Consolidations::List(repo);
  if (!consolidations.ok()) return consolidations.status();
  for (const ParticipantRecord& p : commit.participants) {
    const StateObjectRecord* record = FindStateObject(p, object);
    if (record == nullptr) continue;
    if (record->type != StateObjectType::kKeyed) {
      return absl::FailedPreconditionError(
          StrCat("state object '", object, "' of participant '", p.name, "' in checkpoint ",
                 commit.id, " is a ", StateObjectTypeName(record->type), ", not a keyed state"));
    }
    absl::StatusOr<KeyedChain> chain = ResolveChain(repo, commit, p.name, object, &*consolidations);
    if (!chain.ok()) return chain.status();
    const Manifest& newest = chain->manifests.front();
    if (out.chains.empty()) {
      out.key_groups = newest.key_groups;
    } else if (newest.key_groups != out.key_groups) {
      return absl::DataLossError(StrCat("keyed state '", object, "' of checkpoint ", commit.id,
                                        ": participant '", p.name, "' has ", newest.key_groups,
                                        " key groups, another has ", out.key_groups));
    }
    out.entry_count += newest.entry_count;
    out.entry_bytes += newest.entry_bytes;
    out.chains.push_back(*std::move(chain));
  }
  if (out.chains.empty()) {
    return absl::NotFoundError(
        StrCat("checkpoint ", commit.id, " has no keyed state '", object, "'"));
  }
  std::sort(out.chains.begin(), out.chains.end(),
            [](const KeyedChain& a, const KeyedChain& b) { return a.group_first < b.group_first; });
  uint32_t next = 0;
  for (const KeyedChain& c : out.chains) {
    if (c.group_first != next) {
      return absl::DataLossError(
          StrCat("keyed state '", object, "' of checkpoint ", commit.id, ": key groups ",
                 c.group_first < next ? "overlap" : "are missing", " at group ",
                 std::min(next, c.group_first), " (participant '", c.participant, "' holds [",
                 c.group_first, ", ", c.group_end, "))"));
    }
    next = c.group_end;
  }
  if (next != out.key_groups) {
    return absl::DataLossError(StrCat("keyed state '", object, "' of checkpoint ", commit.id,
                                      ": key groups [", next, ", ", out.key_groups,
                                      ") are held by no participant"));
  }
  return out;
}

static absl::StatusOr<KeyedReadStats> ReadKeyedUnchecked(const RepositoryReader& repo,
                                                         const ResolvedKeyed& keyed,
                                                         const KeyedReadOptions& options,
                                                         KeyedRestoreSink* sink) {
  KeyedReadStats stats;
  uint32_t want_first = options.group_first;
  uint32_t want_end = std::min(options.group_end, keyed.key_groups);
  if (options.only_key.has_value()) {
    want_first = KeyGroupOf(*options.only_key, keyed.key_groups);
    want_end = want_first + 1;
  }
  // Keys decided absent by a tombstone of a newer manifest. Keys decided present are in the sink.
  absl::flat_hash_set<std::string> erased;
  std::map<std::string, PackIndex> local_indexes;
  std::map<std::string, PackIndex>& indexes =
      options.index_cache != nullptr ? *options.index_cache : local_indexes;
  std::vector<Record> records;
  // The decoded records of one range read: reused, so a restore does not allocate (and fault in)
  // a fresh buffer of megabytes for every run of key groups.
  std::string decoded;
  for (const KeyedChain& chain : keyed.chains) {
    const uint32_t first = std::max(want_first, chain.group_first);
    const uint32_t end = std::min(want_end, chain.group_end);
    if (first >= end) continue;
    for (size_t link = 0; link < chain.manifests.size(); ++link) {
      const Manifest& m = chain.manifests[link];
      ++stats.manifests;
      auto where = [&](const std::string& pack_key) {
        return StrCat("keyed state '", keyed.name, "' of checkpoint ", keyed.checkpoint_id,
                      " (manifest ", chain.manifest_keys[link], " of checkpoint ",
                      chain.checkpoint_ids[link], ", pack ", pack_key, ")");
      };
      // The wanted groups' spans, per pack, in raw-stream order.
      std::map<uint32_t, std::vector<const KeyGroupSpan*>> by_pack;
      auto it =
          std::lower_bound(m.groups.begin(), m.groups.end(), first,
                           [](const KeyGroupSpan& g, uint32_t group) { return g.group < group; });
      for (; it != m.groups.end() && it->group < end; ++it) by_pack[it->pack_ref].push_back(&*it);
      for (auto& [pack_ref, spans] : by_pack) {
        std::sort(spans.begin(), spans.end(), [](const KeyGroupSpan* a, const KeyGroupSpan* b) {
          return a->raw_offset < b->raw_offset;
        });
        const std::string pack_key = PackKey(ToHex(m.packs[pack_ref - 1]));
        auto index_it = indexes.find(pack_key);
        if (index_it == indexes.end()) {
          absl::StatusOr<PackIndex> index =
              ReadPackIndex(RepositoryInternal::store(repo), pack_key);
          if (!index.ok()) {
            return WithMessage(MissingAsDataLoss(index.status(), StrCat("pack ", pack_key)),
                               StrCat(where(pack_key), ": ", index.status().message()));
          }
          index_it = indexes.emplace(pack_key, *std::move(index)).first;
        }
        size_t i = 0;
        while (i < spans.size()) {
          // One read for a run of spans lying close together.
          const uint64_t run_begin = spans[i]->raw_offset;
          uint64_t run_end = spans[i]->raw_offset + spans[i]->raw_length;
          size_t j = i + 1;
          while (j < spans.size() && spans[j]->raw_offset >= run_end &&
                 spans[j]->raw_offset - run_end <= kMaxReadGapBytes) {
            run_end = std::max(run_end, spans[j]->raw_offset + spans[j]->raw_length);
            ++j;
          }
          if (absl::Status read = ReadPackRange(repo, pack_key, index_it->second, run_begin,
                                                run_end - run_begin, &stats.bytes_read, &decoded);
              !read.ok()) {
            return WithMessage(read, StrCat(where(pack_key), ": ", read.message()));
          }
          const std::string* bytes = &decoded;
          for (size_t k = i; k < j; ++k) {
            const KeyGroupSpan& span = *spans[k];
            records.clear();
            // The whole group is checked before any of its records is used.
            absl::Status s = DecodeKeyedGroup(
                std::string_view(*bytes).substr(span.raw_offset - run_begin, span.raw_length), span,
                keyed.key_groups,
                [&](std::string_view key, std::string_view value, bool tombstone) {
                  records.push_back(Record{key, value, tombstone});
                });
            if (!s.ok()) return absl::DataLossError(StrCat(where(pack_key), ": ", s.message()));
            stats.records_read += records.size();
            for (const Record& r : records) {
              if (options.only_key.has_value() && r.key != *options.only_key) continue;
              const absl::string_view key(r.key.data(), r.key.size());
              if (!erased.empty() && erased.contains(key)) continue;  // decided absent, newer
              if (r.tombstone) {
                if (sink->Contains(r.key)) continue;  // decided present, newer
                erased.emplace(key);
              } else {
                // One lookup decides and puts: present already means decided by a newer record.
                absl::StatusOr<bool> put = sink->PutIfAbsent(r.key, r.value);
                if (!put.ok()) return put.status();
                if (!*put) continue;
                ++stats.entries;
              }
              if (options.only_key.has_value()) return stats;  // decided
            }
          }
          i = j;
        }
      }
    }
  }
  return stats;
}

// ReadKeyedUnchecked on `options.threads` threads, each over a contiguous range of the wanted key
// groups (so each key group is read by one thread: its keys are decided there, newest first), if
// the sink accepts that; else on this thread.
static absl::StatusOr<KeyedReadStats> ReadKeyedParallel(const RepositoryReader& repo,
                                                        const ResolvedKeyed& keyed,
                                                        const KeyedReadOptions& options,
                                                        KeyedRestoreSink* sink) {
  const uint32_t first = options.group_first;
  const uint32_t end = std::min(options.group_end, keyed.key_groups);
  if (options.threads <= 1 || options.only_key.has_value() || !sink->ConcurrentByKeyGroup() ||
      end <= first + 1) {
    return ReadKeyedUnchecked(repo, keyed, options, sink);
  }
  const uint32_t n = std::min<uint32_t>(static_cast<uint32_t>(options.threads), end - first);
  std::vector<absl::StatusOr<KeyedReadStats>> results(n, KeyedReadStats{});
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < n; ++t) {
    KeyedReadOptions slice = options;
    slice.group_first = first + static_cast<uint32_t>(uint64_t{end - first} * t / n);
    slice.group_end = first + static_cast<uint32_t>(uint64_t{end - first} * (t + 1) / n);
    slice.index_cache = nullptr;  // a cache of its own: the caller's is not thread-safe
    threads.emplace_back([&repo, &keyed, sink, slice, &result = results[t]] {
      result = ReadKeyedUnchecked(repo, keyed, slice, sink);
    });
  }
  for (std::thread& t : threads) t.join();
  KeyedReadStats total;
  for (absl::StatusOr<KeyedReadStats>& r : results) {
    if (!r.ok()) return r.status();  // the lowest key groups' failure: independent of timing
    total.records_read += r->records_read;
    total.entries += r->entries;
    total.bytes_read += r->bytes_read;
    total.manifests = std::max(total.manifests, r->manifests);
  }
  return total;
}

absl::StatusOr<ResolvedKeyed> ResolveKeyed(const RepositoryReader& repo, const CommitRecord& commit,
                                           std::string_view object) {
  absl::StatusOr<ResolvedKeyed> result = ResolveKeyedUnchecked(repo, commit, object);
  if (!result.ok() && IsMissingObject(result.status())) {
    result = ResolveKeyedUnchecked(repo, commit, object);  // once more, §14.2
  }
  if (result.ok()) return result;
  return RemovedOrDamaged(repo, commit.id, result.status());
}

absl::StatusOr<KeyedReadStats> ReadKeyed(const RepositoryReader& repo, const ResolvedKeyed& keyed,
                                         const KeyedReadOptions& options, KeyedRestoreSink* sink) {
  absl::StatusOr<KeyedReadStats> result = ReadKeyedParallel(repo, keyed, options, sink);
  if (!result.ok() && IsMissingObject(result.status())) {
    // §14.2: resolve the checkpoint again once and read it again. What the sink already holds is
    // the checkpoint's (every resolution describes the same state), so it counts as decided.
    absl::StatusOr<CommitRecord> commit = repo.ReadCommit(keyed.checkpoint_id);
    if (commit.ok()) {
      absl::StatusOr<ResolvedKeyed> again =
          keyed.only_participant.has_value()
              ? ResolveKeyedOfUnchecked(repo, *commit, *keyed.only_participant, keyed.name, nullptr)
              : ResolveKeyedUnchecked(repo, *commit, keyed.name);
      if (again.ok()) {
        result = ReadKeyedParallel(repo, *again, options, sink);
      } else {
        result = again.status();
      }
    }
  }
  if (result.ok()) return result;
  return RemovedOrDamaged(repo, keyed.checkpoint_id, result.status());
}

}  // namespace ickpt
