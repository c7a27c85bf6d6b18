// The persist pipeline (docs/persist.md): packs are encoded (frames compressed and checksummed, the
// pack named by its SHA-256) on `encode_threads` threads and put into the store by up to
// `uploads_in_flight` uploads at once, so that compression, checksumming and the store's writes
// overlap instead of taking turns. The writer cuts the data into packs and submits them; Finish()
// waits for all of them and returns their names in submission order, so a manifest's pack table
// does not depend on which thread finished first.
//
// Memory stays bounded: Submit() blocks while `encode_threads` packs wait to be encoded, and an
// encoded pack waits for a free upload before its encoder takes the next one; so at most about
// (2 × encode_threads + uploads_in_flight) packs are held at once.
//
// Failure: the first failure (an upload the store refused) cancels the rest: packs not yet encoded
// or put are dropped, later Submit() calls return the error at once, and Finish() returns it. Packs
// already put stay behind unreferenced, as after any failed checkpoint; the commit record, written
// only after Finish() succeeded, never names them, and GC removes them (format.md §13).
//
// Thread safety: one writer submits to a pipeline at a time (Submit and Finish from one thread);
// the pipeline's own threads are internal.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "ickpt/store.h"
#include "src/repo/pack.h"
#include "src/util/hash.h"
#include "src/util/mutex.h"

namespace ickpt {

struct PackPipelineOptions {
  // Threads that compress, checksum and name packs. At least 1.
  int encode_threads = 2;
  // Packs being put into the store at once. At least 1.
  int uploads_in_flight = 2;
  // zstd level of compressed frames (format.md §4).
  int compression_level = 3;
};

// A pack to write: its frames in order (each 1..kMaxFrameRawBytes raw bytes), which stay valid
// until Finish() returns, or which point into `owned`, kept with the job (on the heap, so that the
// views survive moves of the job: a moved short std::string would take its bytes along).
struct PackJob {
  uint64_t checkpoint_id = 0;  // for the nonce frame and error messages
  std::string what;            // the state object, for error messages
  std::vector<std::string_view> frames;
  std::unique_ptr<const std::string> owned;
};

struct PackWritten {
  Sha256Digest digest{};
  uint64_t bytes = 0;  // the pack's size as stored
};

class PackPipeline {
 public:
  PackPipeline(ObjectStore* store, PackPipelineOptions options);
  ~PackPipeline();
  PackPipeline(const PackPipeline&) = delete;
  PackPipeline& operator=(const PackPipeline&) = delete;

  // Queues a pack; blocks while the encoders are `encode_threads` packs behind. Returns the first
  // failure of this batch if there was one (the job is dropped then).
  absl::Status Submit(PackJob job);
  // Waits for every pack submitted since the last Finish(); their names and sizes in submission
  // order, or the first failure. The pipeline is ready for the next batch afterwards.
  absl::StatusOr<std::vector<PackWritten>> Finish();

 private:
  struct Slot {
    PackJob job;
    FinishedPack pack;
  };
  void EncodeLoop();
  void UploadLoop();
  // Records a failure of this batch and cancels what is queued. Requires mu_.
  void FailLocked(size_t ticket, absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  ObjectStore* const store_;
  const PackPipelineOptions options_;

  Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The current batch: every submitted job has a ticket (its index); results by ticket.
  std::vector<PackWritten> results_ ABSL_GUARDED_BY(mu_);
  size_t submitted_ ABSL_GUARDED_BY(mu_) = 0;
  size_t done_ ABSL_GUARDED_BY(mu_) = 0;  // encoded and put, dropped, or failed
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  size_t failure_ticket_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<std::pair<size_t, std::unique_ptr<Slot>>> to_encode_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<size_t, std::unique_ptr<Slot>>> to_upload_ ABSL_GUARDED_BY(mu_);
  int uploading_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::thread> threads_;
};

}  // namespace ickpt
