// What every ObjectStore shares (format.md §12): List over ListPage, DeleteMany over Delete,
// GetTail over Size and GetRange, and publishing unique bytes across ambiguous failures.
//
// Thread safety: no state of its own; as safe as the store it calls.
#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ickpt/store.h"
#include "src/util/str.h"

namespace ickpt {

absl::StatusOr<std::vector<ObjectInfo>> ObjectStore::List(std::string_view prefix) {
  std::vector<ObjectInfo> out;
  std::string start_after;
  while (true) {
    absl::StatusOr<ObjectPage> page = ListPage(prefix, start_after, 0);
    if (!page.ok()) return page.status();
    // A page that does not move past `start_after` would make this loop forever.
    const bool advances = !page->objects.empty() && page->objects.front().key > start_after;
    if (page->truncated && !advances) {
      return absl::InternalError(StrCat("list \"", prefix, "\" in ", Describe(),
                                        ": a truncated page after \"", start_after,
                                        "\" does not advance past it (format.md §12)"));
    }
    if (!page->objects.empty()) start_after = page->objects.back().key;
    out.insert(out.end(), std::make_move_iterator(page->objects.begin()),
               std::make_move_iterator(page->objects.end()));
    if (!page->truncated) return out;
  }
}

absl::Status ObjectStore::DeleteMany(const std::vector<std::string>& keys) {
  for (const std::string& key : keys) {
    if (absl::Status s = Delete(key); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<ObjectTail> ObjectStore::GetTail(std::string_view key, uint64_t length) {
  absl::StatusOr<uint64_t> size = Size(key);
  if (!size.ok()) return size.status();
  ObjectTail tail;
  tail.object_size = *size;
  const uint64_t take = std::min(length, *size);
  if (take == 0) return tail;
  absl::StatusOr<std::string> bytes = GetRange(key, *size - take, take);
  if (!bytes.ok()) return bytes.status();
  // Shorter than asked: the object shrank between the two calls, which only a replaced object
  // can do (content-named objects never change).
  if (bytes->size() != take) {
    return absl::UnavailableError(StrCat("get the last ", take, " bytes of ", key, " in ",
                                         Describe(), ": got ", bytes->size(),
                                         " (the object changed while being read)"));
  }
  tail.bytes = *std::move(bytes);
  return tail;
}

bool IsAmbiguousFailure(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status);
}

absl::Status PublishUnique(ObjectStore& store, std::string_view key, std::string_view data,
                           int attempts) {
  if (attempts < 1) {
    return absl::InvalidArgumentError(
        StrCat("publish ", key, " in ", store.Describe(), ": attempts ", attempts, " < 1"));
  }
  absl::Status last;
  for (int attempt = 1; attempt <= attempts; ++attempt) {
    absl::Status published = store.Publish(key, data);
    if (published.ok()) return published;
    if (absl::IsAlreadyExists(published)) {
      // Before any ambiguous failure the object was there before this writer's first attempt:
      // someone else's, whatever its bytes (two writers of equal bytes still get one success).
      if (attempt == 1) return published;
      // After one, whose object is it? The bytes are unique to their writer, so equal bytes are
      // this writer's: an earlier attempt whose reply was lost (format.md §12.1).
      absl::StatusOr<std::string> existing = store.Get(key);
      if (existing.ok()) {
        if (*existing == data) return absl::OkStatus();
        return absl::AlreadyExistsError(
            StrCat("publish ", key, " in ", store.Describe(),
                   ": another writer's object already exists (its bytes differ from this "
                   "writer's)"));
      }
      // Reading it back failed ambiguously, or it was deleted since: publish again.
      if (!IsAmbiguousFailure(existing.status()) && !absl::IsNotFound(existing.status())) {
        return absl::Status(existing.status().code(),
                            StrCat("publish ", key, " in ", store.Describe(),
                                   ": object exists; reading it back to tell whose it is failed: ",
                                   existing.status().message()));
      }
      last = absl::IsNotFound(existing.status())
                 ? absl::AbortedError(StrCat("the object was deleted while being read back: ",
                                             existing.status().message()))
                 : existing.status();
      continue;
    }
    if (!IsAmbiguousFailure(published)) return published;
    last = std::move(published);
  }
  return absl::Status(last.code(),
                      StrCat("publish ", key, " in ", store.Describe(), ": ", attempts,
                             " attempts failed or stayed ambiguous; last: ", last.message()));
}

}  // namespace ickpt
