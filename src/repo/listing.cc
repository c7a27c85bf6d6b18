#include "src/repo/listing.h"

#include <string>
#include <utility>

#include "src/util/parallel.h"
#include "src/util/str.h"

namespace ickpt {

absl::StatusOr<std::vector<ObjectInfo>> ListHashedPrefixes(ObjectStore& store,
                                                           std::string_view prefix, int threads) {
  constexpr char kHex[] = "0123456789abcdef";
  constexpr size_t kShards = 256;
  std::vector<absl::StatusOr<std::vector<ObjectInfo>>> shards(kShards);
  ParallelFor(kShards, threads, [&](size_t i) {
    const std::string shard = StrCat(prefix, std::string{kHex[i >> 4], kHex[i & 15]}, "/");
    shards[i] = store.List(shard);
    if (!shards[i].ok()) {
      shards[i] = absl::Status(shards[i].status().code(),
                               StrCat("listing ", shard, ": ", shards[i].status().message()));
    }
  });
  std::vector<ObjectInfo> objects;
  // The shards in hex order are in key order: '0'-'9' sort before 'a'-'f'.
  for (absl::StatusOr<std::vector<ObjectInfo>>& shard : shards) {
    if (!shard.ok()) return shard.status();
    for (ObjectInfo& info : *shard) objects.push_back(std::move(info));
  }
  return objects;
}

}  // namespace ickpt
