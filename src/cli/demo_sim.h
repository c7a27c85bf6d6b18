// The simulation `ickpt demo` checkpoints: a 2-D grid of uint32 cells, one 4 KiB row per block,
// updated by a stencil sweep over a moving band of rows plus Zipf-distributed row updates: a few
// percent of blocks change per step. Integer arithmetic only, so a run is bit-exact whatever the
// compiler does; a step depends only on the grid, the seed and the step number, so a run resumed
// from a checkpoint ends in exactly the state of an uninterrupted one.
//
// Thread safety: pure functions of their arguments (and the memory they are given).
#pragma once

#include <cstdint>

namespace ickpt::cli {

inline constexpr uint64_t kGridRowBytes = 4096;

// Fills `size` bytes (a multiple of kGridRowBytes): half of the rows random bytes (incompressible),
// half smooth (compressible), chosen per row from the seed.
void InitGrid(char* data, uint64_t size, uint64_t seed);

// Advances the grid by step `step` (numbered from 1).
void StepGrid(char* data, uint64_t size, uint64_t seed, uint64_t step);

}  // namespace ickpt::cli
