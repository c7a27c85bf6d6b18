// Staging memory: the buffers that hold a capture's changed blocks from the pause until they are
// durable. Copying into memory that was never touched costs a page fault per 4 KiB (30 ms instead
// of 5.5 ms for 10 MB here, PLATFORM.md), so buffers are allocated and touched ahead of the pause
// (Prepare, on the persist thread) and reused from one checkpoint to the next, and the total is
// bounded by a budget.
//
// Thread safety: all methods may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "src/util/mutex.h"

namespace ickpt {

// A page-aligned anonymous mapping; unmapped on destruction.
class StagingBuffer {
 public:
  StagingBuffer() = default;
  ~StagingBuffer();
  StagingBuffer(StagingBuffer&& other) noexcept;
  StagingBuffer& operator=(StagingBuffer&& other) noexcept;

  // Maps `capacity` bytes (rounded up to pages); touched (populated) if `touch`.
  static absl::StatusOr<StagingBuffer> Allocate(uint64_t capacity, bool touch);
  char* data() const { return data_; }
  uint64_t capacity() const { return capacity_; }

 private:
  char* data_ = nullptr;
  uint64_t capacity_ = 0;
};

class StagingPool {
 public:
  // `budget_bytes`: the most staging memory held at once, in use and kept for reuse together.
  explicit StagingPool(uint64_t budget_bytes) : budget_(budget_bytes) {}

  // A buffer of at least `bytes` for the state object `object`: its kept buffer if big enough
  // (already touched: the fast case), else a new one (faulted in by the copy). ResourceExhausted
  // if the budget cannot hold it even after dropping every kept buffer. `typical` false: a capture
  // of the whole object (its first), which says nothing about what later captures will need.
  absl::StatusOr<StagingBuffer> Acquire(std::string_view object, uint64_t bytes,
                                        bool typical = true);
  // Gives a buffer back after its checkpoint persisted (or failed). Kept for the object's next
  // capture while it is not much larger than the object's recent needs.
  void Release(std::string_view object, StagingBuffer buffer);
  // Ahead of the next capture (not in the pause): makes sure every object has a kept, touched
  // buffer for what it is expected to need (its recent maximum, with headroom), within budget.
  void Prepare();
  // Whether `bytes` more would fit next to what is in use now.
  bool Fits(uint64_t bytes) const;

  uint64_t budget() const { return budget_; }
  uint64_t in_use() const;
  uint64_t held() const;  // in use + kept
  // How many captures had to allocate staging during the pause (no kept buffer was big enough).
  uint64_t allocations_in_pause() const;

 private:
  struct ObjectStaging {
    StagingBuffer kept;
    std::vector<uint64_t> recent;  // the sizes of its last captures, newest last
    uint64_t Expected() const;
  };

  const uint64_t budget_;
  mutable Mutex mu_;
  std::map<std::string, ObjectStaging, std::less<>> objects_ ABSL_GUARDED_BY(mu_);
  uint64_t in_use_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t kept_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t allocations_in_pause_ ABSL_GUARDED_BY(mu_) = 0;
};

// The default budget: half the machine's physical memory.
uint64_t DefaultStagingBudget();

// Copies during the pause with every core: the application is stopped, so the cores are free.
// Persistent threads, woken per copy; small copies run on the caller alone.
class ParallelCopier {
 public:
  // `threads` copying threads in all, the caller included (>= 1).
  explicit ParallelCopier(int threads);
  ~ParallelCopier();
  ParallelCopier(const ParallelCopier&) = delete;
  ParallelCopier& operator=(const ParallelCopier&) = delete;

  struct Piece {
    char* to;
    const char* from;
    uint64_t bytes;
  };
  // Copies every piece; returns when all are done.
  void Copy(const std::vector<Piece>& pieces);

 private:
  void Work();
  void RunChunks();

  std::vector<std::thread> workers_;
  Mutex mu_;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool active_ ABSL_GUARDED_BY(mu_) = false;  // a Copy() is handing out chunks
  // The current copy, cut into chunks taken by index. Written under mu_ while no worker runs.
  std::vector<Piece> chunks_;
  std::atomic<size_t> next_chunk_{0};
};

}  // namespace ickpt
