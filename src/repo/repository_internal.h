// Access to a repository's object store for the repository layer's own readers and writers
// (LevelDB's WriteBatchInternal pattern): the store is not part of the public API, and nothing
// outside src/repo/ may reach it (the layer targets make sure of that: this header is visible only
// to repo and the layers above it, and the CLI never includes it).
#pragma once

#include "ickpt/repository.h"
#include "ickpt/store.h"

namespace ickpt {

class RepositoryInternal {
 public:
  static ObjectStore* store(const RepositoryReader& repo) { return repo.store(); }
};

}  // namespace ickpt
