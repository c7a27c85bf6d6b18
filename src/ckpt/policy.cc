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

// docs/policy.md §3.
class CostModelPolicy final : public CheckpointPolicy {
 public:
  explicit CostModelPolicy(CostModelOptions options) : options_(options) {}
  CheckpointKind Choose(const PolicyInput& in) const override {
    if (!in.has_base) return CheckpointKind::kFull;
    const double size = static_cast<double>(in.block_count);
    // Most of the object changed: a full checkpoint writes about as much and restores alone.
    if (in.block_count > 0 &&
        static_cast<double>(in.changed_blocks) >= options_.full_change_fraction * size) {
      return CheckpointKind::kFull;
    }
    if (in.effective_depth_of_base + 1 > options_.max_effective_depth) return CheckpointKind::kFull;
    if (!in.consolidates) {
      // Nobody shortens the chain: end it when a restore would take too long...
      if (in.recovery_time_objective_seconds > 0 &&
          in.estimated_restore_seconds > in.recovery_time_objective_seconds) {
        return CheckpointKind::kFull;
      }
      // ...or read mostly increments.
      if (in.block_count > 0 && static_cast<double>(in.changed_since_chain_start) >=
                                    (1 - options_.min_live_fraction) * size) {
        return CheckpointKind::kFull;
      }
    }
    return CheckpointKind::kIncremental;
  }

 private:
  CostModelOptions options_;
};

}  // namespace

std::unique_ptr<CheckpointPolicy> NewCostModelPolicy(CostModelOptions options) {
  return std::make_unique<CostModelPolicy>(options);
}

std::unique_ptr<CheckpointPolicy> NewFullEveryNPolicy(uint64_t full_every) {
  return std::make_unique<FullEveryNPolicy>(full_every);
}

}  // namespace ickpt
