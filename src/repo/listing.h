// Listing the content-named objects (packs, manifests) of a repository. They are spread over 256
// prefixes (format.md §2: packs/<h[0:2]>/<h>), which an object store lists independently: listing
// them in parallel turns a repository's full listing from a chain of N/1000 sequential requests
// into 256 shorter chains, which matters on S3, where each page is a round trip.
//
// Thread safety: the store must be safe for concurrent use (every store shipped is).
#pragma once

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "ickpt/store.h"

namespace ickpt {

// Listings of the 256 prefixes of a content-named kind at once. Default 16.
inline constexpr int kHashedListingThreads = 16;

// Every object under `prefix` ("packs/" or "manifests/") whose key is `<prefix><2 hex>/...`,
// sorted by key, listed as 256 prefixes on up to `threads` threads. Keys of other shapes under
// `prefix` are not listed (no writer makes them; GC and the cost model skip them anyway). Errors:
// the first listing error, naming its prefix.
absl::StatusOr<std::vector<ObjectInfo>> ListHashedPrefixes(ObjectStore& store,
                                                           std::string_view prefix,
                                                           int threads = kHashedListingThreads);

}  // namespace ickpt
