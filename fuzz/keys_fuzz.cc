// Fuzz target: object keys (format.md §2): ValidateObjectKey, ParseIdKey, ParseHashKey, and the
// latest-commit index (§6.2), whose bytes are a commit key.
//
// A key that parses as an id or hash key must be exactly the key the writer builds for that id or
// hash, and valid; keys the writer builds are valid.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "ickpt/store.h"
#include "src/repo/keys.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ickpt;
  const std::string_view key = fuzz::AsView(data, size);
  const bool valid = ValidateObjectKey(key).ok();
  if (valid) {
    ICKPT_FUZZ_CHECK(!key.empty() && key.size() <= 256, "valid key of ", key.size(), " bytes");
    ICKPT_FUZZ_CHECK(key.front() != '/' && key.back() != '/', "valid key with an empty component");
  }
  for (std::string_view prefix : {kCommitsPrefix, kIdsPrefix}) {
    if (std::optional<uint64_t> id = ParseIdKey(key, prefix)) {
      ICKPT_FUZZ_CHECK(*id > 0, "id 0");
      const std::string built = prefix == kCommitsPrefix ? CommitKey(*id) : IdReservationKey(*id);
      ICKPT_FUZZ_CHECK(built == key, "id key ", key, " rebuilds as ", built);
      ICKPT_FUZZ_CHECK(valid, "id key ", key, " is not a valid key");
    }
  }
  for (std::string_view prefix : {kPacksPrefix, kManifestsPrefix}) {
    if (std::optional<std::string> hash = ParseHashKey(key, prefix)) {
      const std::string built = prefix == kPacksPrefix ? PackKey(*hash) : ManifestKey(*hash);
      ICKPT_FUZZ_CHECK(built == key, "hash key ", key, " rebuilds as ", built);
      ICKPT_FUZZ_CHECK(valid, "hash key ", key, " is not a valid key");
    }
  }
  // The latest-commit index (format.md §6.2) names an id only in exactly the writer's bytes.
  if (std::optional<uint64_t> id = ParseLatestCommitIndex(key)) {
    ICKPT_FUZZ_CHECK(*id > 0, "latest-commit index names id 0");
    ICKPT_FUZZ_CHECK(EncodeLatestCommitIndex(*id) == key, "latest-commit index ", key,
                     " rebuilds differently");
  }
  // Keys built from fuzzed numbers are valid and parse back.
  if (size >= 8) {
    uint64_t id = 0;
    for (int i = 0; i < 8; ++i) id |= static_cast<uint64_t>(data[i]) << (8 * i);
    if (id != 0) {
      const std::string commit = CommitKey(id);
      ICKPT_FUZZ_CHECK(ValidateObjectKey(commit).ok(), commit);
      ICKPT_FUZZ_CHECK(ParseIdKey(commit, kCommitsPrefix) == id, commit);
    }
  }
  return 0;
}
