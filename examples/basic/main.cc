// The smallest complete use of ickpt: open (or create) a repository in a local directory, register
// a region, checkpoint it twice, then restore the latest checkpoint into a fresh checkpointer and
// check that every byte came back.
//
//   basic <repository directory>
#include <cstdio>
#include <cstring>
#include <string>

#include "ickpt/checkpointer.h"
#include "ickpt/repository.h"

namespace {

int Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "%s: %s\n", what, status.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <repository directory>\n", argv[0]);
    return 2;
  }
  // Creates the directory and the repository if they do not exist yet.
  auto repo = ickpt::Repository::OpenLocal(argv[1], /*create=*/true);
  if (!repo.ok()) return Fail("open repository", repo.status());

  auto ckpt = ickpt::Checkpointer::Open(repo->get());
  if (!ckpt.ok()) return Fail("open checkpointer", ckpt.status());
  ickpt::RegionOptions options;
  options.size = 1 << 20;  // 1 MiB, zero-filled
  auto region = (*ckpt)->AddRegion("state", options);
  if (!region.ok()) return Fail("add region", region.status());
  char* data = (*region)->data();

  // Fill the region, checkpoint, wait until it is durable.
  for (uint64_t i = 0; i < (*region)->size(); ++i) data[i] = static_cast<char>(i * 31 % 251);
  auto first = (*ckpt)->Checkpoint({.metadata = {{"step", "1"}}});
  if (!first.ok()) return Fail("checkpoint", first.status());
  auto first_record = first->Wait();
  if (!first_record.ok()) return Fail("persist", first_record.status());

  // Change a little; the second checkpoint stores only the changed blocks.
  std::memset(data + 4096, 'x', 100);
  auto second = (*ckpt)->Checkpoint({.metadata = {{"step", "2"}}});
  if (!second.ok()) return Fail("checkpoint", second.status());
  auto second_record = second->Wait();
  if (!second_record.ok()) return Fail("persist", second_record.status());
  const std::string expected(data, (*region)->size());
  std::printf("checkpoint %llu (%s), then %llu (%s, %llu changed block(s))\n",
              static_cast<unsigned long long>(first_record->id),
              std::string(ickpt::CheckpointKindName(first_record->kind)).c_str(),
              static_cast<unsigned long long>(second_record->id),
              std::string(ickpt::CheckpointKindName(second_record->kind)).c_str(),
              static_cast<unsigned long long>(
                  second_record->participants.at(0).state_objects.at(0).changed_blocks));

  // A restarted process: a fresh checkpointer restores the latest checkpoint, creating the region.
  auto fresh = ickpt::Checkpointer::Open(repo->get());
  if (!fresh.ok()) return Fail("open checkpointer", fresh.status());
  ickpt::RestoreOptions restore_options;
  restore_options.on_unregistered = ickpt::OnUnregistered::kCreate;
  auto restored = (*fresh)->Restore(restore_options);
  if (!restored.ok()) return Fail("restore", restored.status());
  ickpt::Region* state = (*fresh)->FindRegion("state");
  if (state == nullptr || state->size() != expected.size() ||
      std::memcmp(state->data(), expected.data(), expected.size()) != 0) {
    std::fprintf(stderr, "restored state differs from the checkpoint\n");
    return 1;
  }
  std::printf("restored checkpoint %llu (step %s): %llu bytes, identical\n",
              static_cast<unsigned long long>(restored->id), restored->metadata["step"].c_str(),
              static_cast<unsigned long long>(state->size()));
  return 0;
}
