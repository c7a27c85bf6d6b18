// The persist pipeline, docs/persist.md.
#include "src/repo/pack_pipeline.h"

#include <zstd.h>

#include <algorithm>
#include <utility>

#include "src/repo/keys.h"
#include "src/util/coding.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

// format.md §4 (1.3): the last frame of every pack makes its bytes, hence its name, unique to the
// checkpoint that wrote it, so that no writer ever puts a pack that already exists (GC's safety,
// §13.4, assumes it). No extent references it.
std::string NonceFrameBytes(uint64_t checkpoint_id) {
  std::string raw = "ICKNONCE";
  PutFixed64(&raw, checkpoint_id);
  raw += RandomHex128();
  return raw;
}

}  // namespace

PackPipeline::PackPipeline(ObjectStore* store, PackPipelineOptions options)
    : store_(store), options_([&] {
        options.encode_threads = std::max(1, options.encode_threads);
        options.uploads_in_flight = std::max(1, options.uploads_in_flight);
        return options;
      }()) {
  for (int i = 0; i < options_.encode_threads; ++i) threads_.emplace_back([this] { EncodeLoop(); });
  for (int i = 0; i < options_.uploads_in_flight; ++i) {
    threads_.emplace_back([this] { UploadLoop(); });
  }
}

PackPipeline::~PackPipeline() {
  (void)Finish();  // a batch left unfinished is waited for, not abandoned mid-write
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

void PackPipeline::FailLocked(size_t ticket, absl::Status status) {
  // Keep the failure of the earliest pack, so that the error does not depend on thread timing
  // when several fail.
  if (failure_.ok() || ticket < failure_ticket_) {
    failure_ = std::move(status);
    failure_ticket_ = ticket;
  }
  // Cancel what has not started: it would be written for nothing.
  done_ += to_encode_.size() + to_upload_.size();
  to_encode_.clear();
  to_upload_.clear();
}

absl::Status PackPipeline::Submit(PackJob job) {
  auto slot = std::make_unique<Slot>();
  slot->job = std::move(job);
  MutexLock lock(&mu_);
  mu_.Await([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !failure_.ok() || to_encode_.size() < static_cast<size_t>(options_.encode_threads);
  });
  if (!failure_.ok()) return failure_;
  const size_t ticket = submitted_++;
  results_.emplace_back();
  to_encode_.emplace_back(ticket, std::move(slot));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PackWritten>> PackPipeline::Finish() {
  MutexLock lock(&mu_);
  mu_.Await([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_ == submitted_; });
  absl::StatusOr<std::vector<PackWritten>> result = std::move(results_);
  if (!failure_.ok()) result = std::move(failure_);
  results_.clear();
  submitted_ = 0;
  done_ = 0;
  failure_ = absl::OkStatus();
  failure_ticket_ = 0;
  return result;
}

void PackPipeline::EncodeLoop() {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  std::string scratch;
  for (;;) {
    size_t ticket = 0;
    std::unique_ptr<Slot> slot;
    {
      MutexLock lock(&mu_);
      mu_.Await(
          [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !to_encode_.empty(); });
      if (to_encode_.empty()) break;  // stopping
      ticket = to_encode_.front().first;
      slot = std::move(to_encode_.front().second);
      to_encode_.pop_front();
    }
    PackBuilder builder;
    size_t raw_bytes = 0;
    for (std::string_view frame : slot->job.frames) raw_bytes += frame.size();
    // Frames that compress come out smaller: the raw size (and the nonce frame) always fits.
    builder.Reserve(raw_bytes + 64);
    for (std::string_view frame : slot->job.frames) {
      builder.AddFrame(frame, options_.compression_level, cctx, &scratch);
    }
    builder.AddFrame(NonceFrameBytes(slot->job.checkpoint_id), options_.compression_level, cctx,
                     &scratch);
    slot->pack = builder.Finish();
    slot->job.frames.clear();
    slot->job.owned.reset();  // the raw bytes are in the pack now
    MutexLock lock(&mu_);
    // An encoded pack waits for a free upload here, which holds this encoder back: the bound on
    // memory.
    mu_.Await([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !failure_.ok() || to_upload_.size() + static_cast<size_t>(uploading_) <
                                   static_cast<size_t>(options_.uploads_in_flight);
    });
    if (!failure_.ok()) {
      ++done_;  // cancelled
      continue;
    }
    to_upload_.emplace_back(ticket, std::move(slot));
  }
  ZSTD_freeCCtx(cctx);
}

void PackPipeline::UploadLoop() {
  for (;;) {
    size_t ticket = 0;
    std::unique_ptr<Slot> slot;
    {
      MutexLock lock(&mu_);
      mu_.Await(
          [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !to_upload_.empty(); });
      if (to_upload_.empty()) return;  // stopping
      ticket = to_upload_.front().first;
      slot = std::move(to_upload_.front().second);
      to_upload_.pop_front();
      ++uploading_;
    }
    const std::string key = PackKey(slot->pack.sha256_hex);
    absl::Status s = store_->Put(key, slot->pack.bytes);
    MutexLock lock(&mu_);
    --uploading_;
    ++done_;
    if (!s.ok()) {
      FailLocked(ticket, absl::Status(s.code(), StrCat("checkpoint ", slot->job.checkpoint_id,
                                                       ": writing pack ", key, " of ",
                                                       slot->job.what, " failed: ", s.message())));
      continue;
    }
    results_[ticket] = PackWritten{*Sha256FromHex(slot->pack.sha256_hex), slot->pack.bytes.size()};
  }
}

}  // namespace ickpt
