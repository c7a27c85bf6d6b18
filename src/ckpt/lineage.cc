#include "src/ckpt/lineage.h"

namespace ickpt {

std::map<std::string, ObjectLineage, std::less<>> Lineage::HeadLineage() const {
  std::map<std::string, ObjectLineage, std::less<>> out;
  for (const auto& [name, object] : committed_) out[name] = object.lineage;
  for (const PendingCheckpoint& p : pending_) {
    for (const PendingCheckpoint::RegionPart& r : p.regions) out[r.name] = r.lineage;
    for (const PendingCheckpoint::KeyedPart& k : p.keyed) out[k.name] = k.lineage;
  }
  return out;
}

void Lineage::ReplaceCommittedLocations(std::string_view name,
                                        std::vector<BlockLocation> locations) {
  if (auto it = committed_.find(name); it != committed_.end()) {
    it->second.locations = std::move(locations);
  }
}

void Lineage::Consolidated(uint64_t id,
                           const std::map<std::string, ObjectLineage, std::less<>>& at_id) {
  auto apply = [&](const std::string& name, ObjectLineage& lineage) {
    if (auto it = at_id.find(name); it != at_id.end()) lineage.Consolidated(id, it->second);
  };
  for (auto& [name, object] : committed_) apply(name, object.lineage);
  for (PendingCheckpoint& p : pending_) {
    for (PendingCheckpoint::RegionPart& r : p.regions) apply(r.name, r.lineage);
    for (PendingCheckpoint::KeyedPart& k : p.keyed) apply(k.name, k.lineage);
  }
}

std::vector<BlockLocation> Lineage::HeadLocations(std::string_view name) const {
  std::vector<BlockLocation> out;
  if (auto it = committed_.find(name); it != committed_.end()) out = it->second.locations;
  for (const PendingCheckpoint& p : pending_) {
    for (const PendingCheckpoint::RegionPart& r : p.regions) {
      if (r.name != name) continue;
      out.resize(r.block_count);
      for (const auto& [block, loc] : r.fresh) out[block] = loc;
    }
  }
  return out;
}

bool Lineage::IsPending(uint64_t id) const {
  for (const PendingCheckpoint& p : pending_) {
    if (p.id == id) return true;
  }
  return false;
}

void Lineage::AddPending(PendingCheckpoint checkpoint) {
  pending_.push_back(std::move(checkpoint));
}

void Lineage::CommitThrough(uint64_t id) {
  while (!pending_.empty() && pending_.front().id <= id) {
    PendingCheckpoint& p = pending_.front();
    committed_id_ = p.id;
    for (PendingCheckpoint::RegionPart& r : p.regions) {
      CommittedObject& object = committed_[r.name];
      object.lineage = r.lineage;
      object.locations.resize(r.block_count);
      for (const auto& [block, loc] : r.fresh) object.locations[block] = loc;
    }
    for (const PendingCheckpoint::KeyedPart& k : p.keyed) {
      committed_[k.name] = CommittedObject{k.lineage, {}};
    }
    pending_.pop_front();
  }
}

std::vector<PendingCheckpoint> Lineage::AbortFrom(uint64_t id) {
  std::vector<PendingCheckpoint> aborted;
  while (!pending_.empty() && pending_.back().id >= id) {
    aborted.push_back(std::move(pending_.back()));
    pending_.pop_back();
  }
  return aborted;
}

void Lineage::Reset(std::optional<uint64_t> id,
                    std::map<std::string, CommittedObject, std::less<>> objects) {
  committed_id_ = id;
  committed_ = std::move(objects);
  pending_.clear();
}

}  // namespace ickpt
