// The cost model, docs/policy.md.
#include "src/repo/cost_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <set>

#include "src/repo/keyed_reader.h"
#include "src/repo/keys.h"
#include "src/repo/listing.h"
#include "src/repo/pack.h"
#include "src/repo/region_reader.h"
#include "src/repo/repository_internal.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

double EstimatedRestoreSeconds(const RestoreWork& work, const ReadSpeed& speed) {
  double seconds = static_cast<double>(work.objects) * speed.seconds_per_object;
  if (speed.bytes_per_second > 0)
    seconds += static_cast<double>(work.bytes) / speed.bytes_per_second;
  return seconds;
}

void AddRegionRestoreWork(const std::vector<BlockLocation>& locations, uint32_t block_size,
                          const std::vector<uint64_t>& pack_sizes, uint64_t links,
                          RestoreWork* work) {
  std::map<uint32_t, uint64_t> used;  // raw bytes used per pack
  for (const BlockLocation& loc : locations) {
    if (!loc.is_zero()) used[loc.pack] += block_size;
  }
  for (const auto& [pack, bytes] : used) {
    const uint64_t size = pack < pack_sizes.size() ? pack_sizes[pack] : 0;
    work->bytes += size == 0 ? bytes : std::min(size, bytes);
  }
  work->packs += used.size();
  work->objects += 2 * used.size() + 2 * links;
  work->links += links;
  work->max_effective_depth = std::max(work->max_effective_depth, links == 0 ? 0 : links - 1);
}

absl::StatusOr<RestoreWork> MeasureRestoreWork(const RepositoryReader& repo,
                                               const CommitRecord& commit) {
  ObjectStore& store = *RepositoryInternal::store(repo);
  absl::StatusOr<std::vector<ObjectInfo>> listed = ListHashedPrefixes(store, kPacksPrefix);
  if (!listed.ok()) return listed.status();
  std::map<std::string, uint64_t> sizes;
  for (const ObjectInfo& info : *listed) sizes[info.key] = info.size;
  absl::StatusOr<Consolidations> consolidations = Consolidations::List(repo);
  if (!consolidations.ok()) return consolidations.status();

  RestoreWork work;
  std::set<std::string> keyed_done;
  for (const ParticipantRecord& p : commit.participants) {
    for (const StateObjectRecord& so : p.state_objects) {
      if (so.type == StateObjectType::kRegion) {
        PackTable packs;
        absl::StatusOr<ResolvedObject> object =
            ResolveObject(repo, commit, p.name, so.name, &packs, &*consolidations);
        if (!object.ok()) return object.status();
        std::vector<uint64_t> pack_sizes(packs.size(), 0);
        for (uint32_t i = 0; i < packs.size(); ++i) {
          auto it = sizes.find(PackKey(ToHex(packs.digest(i))));
          if (it != sizes.end()) pack_sizes[i] = it->second;
        }
        AddRegionRestoreWork(object->locations, object->block_size, pack_sizes,
                             object->chain.size(), &work);
        work.bytes += object->manifest_bytes_read;
        continue;
      }
      // A keyed state: every record of every link is read (format.md §9.1).
      if (!keyed_done.insert(so.name).second) continue;
      absl::StatusOr<ResolvedKeyed> keyed = ResolveKeyed(repo, commit, so.name);
      if (!keyed.ok()) return keyed.status();
      for (const KeyedChain& chain : keyed->chains) {
        std::set<std::string> packs;
        for (const Manifest& m : chain.manifests) {
          for (const KeyGroupSpan& g : m.groups) work.bytes += g.raw_length;
          for (const Sha256Digest& d : m.packs) packs.insert(ToHex(d));
        }
        work.packs += packs.size();
        work.links += chain.manifests.size();
        work.objects += 2 * packs.size() + 2 * chain.manifests.size();
        work.max_effective_depth =
            std::max<uint64_t>(work.max_effective_depth, chain.manifests.size() - 1);
      }
    }
  }
  return work;
}

absl::StatusOr<ReadSpeed> MeasureReadSpeed(const RepositoryReader& repo, const CommitRecord& commit,
                                           uint64_t max_bytes, int max_packs) {
  ObjectStore& store = *RepositoryInternal::store(repo);
  // The packs of the checkpoint's newest manifests (the walk's first links).
  std::vector<std::string> keys;
  absl::StatusOr<Consolidations> consolidations = Consolidations::List(repo);
  if (!consolidations.ok()) return consolidations.status();
  for (const ParticipantRecord& p : commit.participants) {
    for (const StateObjectRecord& so : p.state_objects) {
      absl::Status walked = WalkChain(
          repo, commit, p.name, so.name, so.type,
          [&](ChainLink& link) -> absl::Status {
            for (const Sha256Digest& d : link.manifest.packs) {
              if (static_cast<int>(keys.size()) >= max_packs) break;
              const std::string key = PackKey(ToHex(d));
              if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
            }
            return absl::CancelledError();  // the first link is enough
          },
          &*consolidations);
      if (!walked.ok() && !absl::IsCancelled(walked)) return walked;
      if (static_cast<int>(keys.size()) >= max_packs) break;
    }
  }
  if (keys.empty()) {
    return absl::FailedPreconditionError(
        StrCat("checkpoint ", commit.id, " references no pack whose reads could be timed"));
  }
  ReadSpeed speed;
  // Latency: one small ranged read (the footer and index) per pack.
  auto start = std::chrono::steady_clock::now();
  for (const std::string& key : keys) {
    absl::StatusOr<PackIndex> index = ReadPackIndex(&store, key);
    if (!index.ok()) return index.status();
  }
  speed.seconds_per_object = SecondsSince(start) / static_cast<double>(keys.size());
  // Bandwidth: whole packs, up to max_bytes.
  uint64_t bytes = 0;
  start = std::chrono::steady_clock::now();
  for (const std::string& key : keys) {
    if (bytes >= max_bytes) break;
    absl::StatusOr<std::string> data = store.Get(key);
    if (!data.ok()) return data.status();
    bytes += data->size();
  }
  const double seconds = SecondsSince(start);
  speed.bytes_per_second = seconds > 0 ? static_cast<double>(bytes) / seconds : 0;
  return speed;
}

double YoungDalyIntervalSeconds(double cost_seconds, double mtbf_seconds) {
  const double c = std::max(0.0, cost_seconds);
  const double m = mtbf_seconds;
  if (m <= 0) return 0;
  if (c >= 2 * m) return m;
  return std::sqrt(2 * c * m) * (1 + std::sqrt(c / (2 * m)) / 3 + c / (18 * m)) - c;
}

}  // namespace ickpt
