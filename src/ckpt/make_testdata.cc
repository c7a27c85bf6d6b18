// Writes the saved repository of the current format version, testdata/repo-v1.0 (see
// testdata_grid.h for its content). Run once per format version and commit the result:
//   make_testdata testdata/repo-v1.0
// The output directory must not exist yet: a saved repository is never rewritten.
#include <cstdio>
#include <cstring>
#include <string>

#include "ickpt/checkpointer.h"
#include "ickpt/repository.h"
#include "src/ckpt/testdata_grid.h"

namespace {

int Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "make_testdata: %s: %s\n", what, status.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ickpt;
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_testdata <new repository directory>\n");
    return 2;
  }
  RepositoryOptions options;
  options.config.block_size = testdata::kGridBlock;
  auto repo = Repository::OpenLocal(argv[1], /*create=*/true, options);
  if (!repo.ok()) return Fail("create repository", repo.status());
  auto latest = (*repo)->LatestCommitId();
  if (!latest.ok() || latest->has_value()) {
    std::fprintf(stderr, "make_testdata: %s already holds checkpoints\n", argv[1]);
    return 1;
  }
  auto ckpt = Checkpointer::Open(repo->get());
  if (!ckpt.ok()) return Fail("open checkpointer", ckpt.status());
  RegionOptions ro;
  ro.size = testdata::kGridBlocksV1 * testdata::kGridBlock;
  ro.block_size = testdata::kGridBlock;
  ro.tracker = TrackerKind::kHash;
  auto region = (*ckpt)->AddRegion("grid", ro);
  if (!region.ok()) return Fail("add region", region.status());
  Region* grid = *region;
  for (int n = 1; n <= 3; ++n) {
    const std::string content = testdata::GridAtCheckpoint(n);
    if (content.size() > grid->size()) {
      if (absl::Status s = grid->Grow(content.size()); !s.ok()) return Fail("grow", s);
    }
    std::memcpy(grid->data(), content.data(), content.size());
    CheckpointOptions co;
    co.metadata["checkpoint"] = std::to_string(n);
    auto handle = (*ckpt)->Checkpoint(co);
    if (!handle.ok()) return Fail("checkpoint", handle.status());
    auto record = handle->Wait();
    if (!record.ok()) return Fail("persist", record.status());
    std::printf("checkpoint %llu: %s, %llu bytes, %llu changed blocks\n",
                static_cast<unsigned long long>(record->id),
                std::string(CheckpointKindName(record->kind)).c_str(),
                static_cast<unsigned long long>(record->logical_bytes),
                static_cast<unsigned long long>(
                    record->participants.at(0).state_objects.at(0).changed_blocks));
  }
  return 0;
}
