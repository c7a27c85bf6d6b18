// The simulation `ickpt demo` checkpoints: a 2-D grid of uint32 cells, one 4 KiB row per block,
// updated by a stencil sweep over a moving band of rows plus Zipf-distributed row updates: a few
// percent of blocks change per step. Integer arithmetic only, so a run is bit-exact whatever the
// compiler does; a step depends only on the grid, the seed and the step number, so a run resumed
// from a checkpoint ends in exactly the state of an uninterrupted one.
//
// Thread safety: pure functions of their arguments (and the memory they are given).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"

namespace ickpt::cli {

inline constexpr uint64_t kGridRowBytes = 4096;

// Fills `size` bytes (a multiple of kGridRowBytes): half of the rows random bytes (incompressible),
// half smooth (compressible), chosen per row from the seed.
void InitGrid(char* data, uint64_t size, uint64_t seed);

// Advances the grid by step `step` (numbered from 1).
void StepGrid(char* data, uint64_t size, uint64_t seed, uint64_t step);

// The keyed state the demo keeps beside the grid: an index of rows. After step `step`,
// kIndexRowsPerStep rows drawn from the seed and the step get key "row/<n>" -> the row's first 16
// bytes and the step (8 bytes, native order), or, one in eight, their key is erased. A pure
// function of the grid after the step, so a resumed run rebuilds the same index.
inline constexpr uint64_t kIndexRowsPerStep = 1024;
void StepIndex(const char* data, uint64_t size, uint64_t seed, uint64_t step,
               absl::FunctionRef<void(std::string_view key, std::string_view value)> put,
               absl::FunctionRef<void(std::string_view key)> erase);

// SHA-256 (hex) of the whole state: the grid's bytes, then every index entry in key order as
// u64 key length, key, u64 value length, value.
std::string StateHash(std::string_view grid, const std::map<std::string, std::string>& index);

}  // namespace ickpt::cli
