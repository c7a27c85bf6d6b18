#include "src/repo/pack_reader.h"

#include "src/repo/chain.h"
#include "src/repo/repository_internal.h"
#include "src/util/str.h"

namespace ickpt {

absl::StatusOr<std::string> ReadStoredFrames(const RepositoryReader& repo, const std::string& key,
                                             const PackIndex& index, size_t first, size_t last,
                                             uint64_t* bytes_read) {
  const FrameInfo& f0 = index.frames[first];
  const FrameInfo& f1 = index.frames[last];
  const uint64_t length = f1.stored_offset + f1.stored_len - f0.stored_offset;
  absl::StatusOr<std::string> stored =
      RepositoryInternal::store(repo)->GetRange(key, f0.stored_offset, length);
  if (!stored.ok()) return MissingAsDataLoss(stored.status(), StrCat("pack ", key));
  if (stored->size() != length) {
    return absl::DataLossError(StrCat("pack ", key, " is truncated: wanted ", length,
                                      " bytes at offset ", f0.stored_offset, ", got ",
                                      stored->size()));
  }
  *bytes_read += length;
  return stored;
}

}  // namespace ickpt
