// Where each block of a state object lies in the repository: the resolved form of a chain of
// manifests, kept in memory by the checkpointer (so a full checkpoint can reuse unchanged blocks)
// and built by restore.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "src/util/hash.h"

namespace ickpt {

// Interns pack names so that a block location is 12 bytes, not 40.
class PackTable {
 public:
  uint32_t Intern(const Sha256Digest& digest) {
    auto [it, inserted] = index_.try_emplace(Key(digest), static_cast<uint32_t>(digests_.size()));
    if (inserted) digests_.push_back(digest);
    return it->second;
  }
  const Sha256Digest& digest(uint32_t i) const { return digests_[i]; }
  size_t size() const { return digests_.size(); }

 private:
  static std::string Key(const Sha256Digest& d) {
    return std::string(reinterpret_cast<const char*>(d.data()), d.size());
  }
  std::vector<Sha256Digest> digests_;
  absl::flat_hash_map<std::string, uint32_t> index_;
};

struct BlockLocation {
  static constexpr uint32_t kZero = 0xffffffff;   // the block is all zero
  static constexpr uint32_t kUnset = 0xfffffffe;  // not decided yet (restore walk)
  uint32_t pack = kZero;                          // index into a PackTable
  uint64_t raw_offset = 0;

  bool is_zero() const { return pack == kZero; }
};

}  // namespace ickpt
