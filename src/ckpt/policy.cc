#include "ickpt/checkpointer.h"

namespace ickpt {
namespace {

class FullEveryNPolicy final : public CheckpointPolicy {
 public:
  explicit FullEveryNPolicy(uint64_t full_every) : full_every_(full_every == 0 ? 1 : full_every) {}
  CheckpointKind Choose(const PolicyInput& input) const override {
    if (!input.has_base) return CheckpointKind::kFull;
    // The checkpoint would be at depth depth_of_base + 1; a chain holds at most full_every
    // checkpoints (one full and full_every - 1 increments).
    if (input.depth_of_base + 1 >= full_every_) return CheckpointKind::kFull;
    return CheckpointKind::kIncremental;
  }

 private:
  uint64_t full_every_;
};

}  // namespace

std::unique_ptr<CheckpointPolicy> NewFullEveryNPolicy(uint64_t full_every) {
  return std::make_unique<FullEveryNPolicy>(full_every);
}

}  // namespace ickpt
