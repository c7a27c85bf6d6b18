#include "src/ckpt/staging.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "src/util/memory.h"
#include "src/util/parse.h"
#include "src/util/str.h"

namespace ickpt {

// ---------------------------------------------------------------------------------------------
// StagingBuffer

StagingBuffer::~StagingBuffer() {
  if (data_ != nullptr) munmap(data_, capacity_);
}

StagingBuffer::StagingBuffer(StagingBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), capacity_(std::exchange(other.capacity_, 0)) {}

StagingBuffer& StagingBuffer::operator=(StagingBuffer&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) munmap(data_, capacity_);
    data_ = std::exchange(other.data_, nullptr);
    capacity_ = std::exchange(other.capacity_, 0);
  }
  return *this;
}

absl::StatusOr<StagingBuffer> StagingBuffer::Allocate(uint64_t capacity, bool touch) {
  capacity = std::max<uint64_t>(kPageBytes, (capacity + kPageBytes - 1) / kPageBytes * kPageBytes);
  void* p = mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return absl::ResourceExhaustedError(
        StrCat("mapping ", FormatBytes(capacity), " of staging memory: ", std::strerror(errno)));
  }
  if (touch && madvise(p, capacity, MADV_POPULATE_WRITE) != 0) {
    // Older kernels: touch every page by hand.
    for (uint64_t off = 0; off < capacity; off += kPageBytes)
      static_cast<volatile char*>(p)[off] = 0;
  }
  StagingBuffer buffer;
  buffer.data_ = static_cast<char*>(p);
  buffer.capacity_ = capacity;
  return buffer;
}

// ---------------------------------------------------------------------------------------------
// StagingPool

uint64_t StagingPool::ObjectStaging::Expected() const {
  uint64_t most = 0;
  for (uint64_t n : recent) most = std::max(most, n);
  // Headroom: the next capture usually changes about as much as the last ones, a bit more or
  // less; a buffer slightly too small means faulting in only the rest during the pause.
  return most + most / 4;
}

absl::StatusOr<StagingBuffer> StagingPool::Acquire(std::string_view object, uint64_t bytes,
                                                   bool typical) {
  StagingBuffer reuse;
  {
    MutexLock lock(&mu_);
    ObjectStaging& o = objects_[std::string(object)];
    if (typical) {
      o.recent.push_back(bytes);
      if (o.recent.size() > 4) o.recent.erase(o.recent.begin());
    }
    if (o.kept.data() != nullptr && o.kept.capacity() >= bytes) {
      kept_ -= o.kept.capacity();
      in_use_ += o.kept.capacity();
      return std::move(o.kept);
    }
    // Too small (or none): drop it, and others if the budget needs the room.
    if (o.kept.data() != nullptr) {
      kept_ -= o.kept.capacity();
      reuse = std::move(o.kept);
    }
    for (auto it = objects_.begin(); in_use_ + kept_ + bytes > budget_ && it != objects_.end();
         ++it) {
      if (it->second.kept.data() == nullptr) continue;
      kept_ -= it->second.kept.capacity();
      it->second.kept = StagingBuffer();
    }
    if (in_use_ + bytes > budget_) {
      return absl::ResourceExhaustedError(
          StrCat("the capture of '", object, "' needs ", FormatBytes(bytes), " of staging memory; ",
                 FormatBytes(in_use_), " of the ", FormatBytes(budget_),
                 " budget are in use by persisting checkpoints (raise "
                 "CheckpointerOptions::staging_budget_bytes)"));
    }
    in_use_ += bytes;
    ++allocations_in_pause_;
  }
  reuse = StagingBuffer();  // unmapped outside the lock
  absl::StatusOr<StagingBuffer> fresh = StagingBuffer::Allocate(bytes, /*touch=*/false);
  if (!fresh.ok()) {
    MutexLock lock(&mu_);
    in_use_ -= bytes;
    return fresh.status();
  }
  if (fresh->capacity() != bytes) {
    MutexLock lock(&mu_);
    in_use_ += fresh->capacity() - bytes;
  }
  return fresh;
}

void StagingPool::Release(std::string_view object, StagingBuffer buffer) {
  if (buffer.data() == nullptr) return;
  StagingBuffer drop;
  MutexLock lock(&mu_);
  in_use_ -= buffer.capacity();
  ObjectStaging& o = objects_[std::string(object)];
  const uint64_t expected = o.Expected();
  // Keep it if it is the right size for the next capture: not much bigger (a first full
  // checkpoint's buffer would hold the whole region for nothing) and bigger than the one kept.
  if (buffer.capacity() <= 2 * expected + (1 << 20) && buffer.capacity() > o.kept.capacity() &&
      in_use_ + kept_ - o.kept.capacity() + buffer.capacity() <= budget_) {
    kept_ -= o.kept.capacity();
    drop = std::move(o.kept);
    o.kept = std::move(buffer);
    kept_ += o.kept.capacity();
  } else {
    drop = std::move(buffer);
  }
  // `drop` is unmapped after the lock is released (declared before `lock`).
}

void StagingPool::Prepare() {
  std::vector<std::pair<std::string, uint64_t>> wanted;
  {
    MutexLock lock(&mu_);
    for (const auto& [name, o] : objects_) {
      const uint64_t expected = o.Expected();
      if (expected > 0 && o.kept.capacity() < expected) wanted.emplace_back(name, expected);
    }
  }
  for (const auto& [name, bytes] : wanted) {
    {
      MutexLock lock(&mu_);
      if (in_use_ + kept_ + bytes > budget_) continue;
    }
    // Allocated and touched without the lock: this is the slow part the pause must not pay.
    absl::StatusOr<StagingBuffer> buffer = StagingBuffer::Allocate(bytes, /*touch=*/true);
    if (!buffer.ok()) return;  // not an error: the capture allocates what it needs
    StagingBuffer drop;
    MutexLock lock(&mu_);
    ObjectStaging& o = objects_[name];
    if (o.kept.capacity() >= buffer->capacity() ||
        in_use_ + kept_ - o.kept.capacity() + buffer->capacity() > budget_) {
      drop = *std::move(buffer);
      continue;
    }
    kept_ -= o.kept.capacity();
    drop = std::move(o.kept);
    o.kept = *std::move(buffer);
    kept_ += o.kept.capacity();
  }
}

bool StagingPool::Fits(uint64_t bytes) const {
  MutexLock lock(&mu_);
  return in_use_ + bytes <= budget_;
}

uint64_t StagingPool::in_use() const {
  MutexLock lock(&mu_);
  return in_use_;
}

uint64_t StagingPool::held() const {
  MutexLock lock(&mu_);
  return in_use_ + kept_;
}

uint64_t StagingPool::allocations_in_pause() const {
  MutexLock lock(&mu_);
  return allocations_in_pause_;
}

uint64_t DefaultStagingBudget() {
  const uint64_t memory = PhysicalMemoryBytes();
  return memory == 0 ? uint64_t{4} << 30 : memory / 2;
}

// ---------------------------------------------------------------------------------------------
// ParallelCopier

namespace {
// Below this a copy runs on the caller alone: waking a thread costs more than it saves.
constexpr uint64_t kMinParallelBytes = 2 << 20;
constexpr uint64_t kChunkBytes = 256 << 10;
}  // namespace

ParallelCopier::ParallelCopier(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { Work(); });
}

ParallelCopier::~ParallelCopier() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : workers_) t.join();
}

void ParallelCopier::RunChunks() {
  for (size_t i = next_chunk_.fetch_add(1); i < chunks_.size(); i = next_chunk_.fetch_add(1)) {
    std::memcpy(chunks_[i].to, chunks_[i].from, chunks_[i].bytes);
  }
}

void ParallelCopier::Work() {
  uint64_t seen = 0;
  for (;;) {
    {
      MutexLock lock(&mu_);
      mu_.Await([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || (active_ && generation_ != seen);
      });
      if (stopping_) return;
      seen = generation_;
      ++busy_;
    }
    RunChunks();
    MutexLock lock(&mu_);
    --busy_;
  }
}

void ParallelCopier::Copy(const std::vector<Piece>& pieces) {
  uint64_t total = 0;
  for (const Piece& p : pieces) total += p.bytes;
  if (workers_.empty() || total < kMinParallelBytes) {
    for (const Piece& p : pieces) std::memcpy(p.to, p.from, p.bytes);
    return;
  }
  {
    // No worker is running (busy_ == 0 and !active_ since the last Copy): chunks_ is ours.
    MutexLock lock(&mu_);
    chunks_.clear();
    for (const Piece& p : pieces) {
      for (uint64_t off = 0; off < p.bytes; off += kChunkBytes) {
        chunks_.push_back(Piece{p.to + off, p.from + off, std::min(kChunkBytes, p.bytes - off)});
      }
    }
    next_chunk_.store(0);
    active_ = true;
    ++generation_;
  }
  RunChunks();
  // Every chunk has been taken. No worker may join from here on; wait for those still copying.
  MutexLock lock(&mu_);
  active_ = false;
  mu_.Await([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return busy_ == 0; });
}

}  // namespace ickpt
