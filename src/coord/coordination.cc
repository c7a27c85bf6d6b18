// The coordination entry points of include/ickpt/coordination.h that are neither participant nor
// coordinator: connecting to a store, and asking the leader for a checkpoint.
#include <unistd.h>

#include <cinttypes>
#include <cstdio>

#include "absl/random/random.h"
#include "src/util/str.h"
#include "src/coord/coordination_store.h"
#include "src/coord/etcd_store.h"
#include "src/coord/memory_coordination_store.h"
#include "src/coord/protocol.h"
#include "ickpt/coordination.h"

namespace ickpt {

absl::StatusOr<std::shared_ptr<coord::CoordinationStore>> ConnectEtcd(std::string_view endpoints) {
  EtcdConnectOptions options;
  options.endpoints = std::string(endpoints);
  return ConnectEtcd(options);
}

absl::StatusOr<std::shared_ptr<coord::CoordinationStore>> ConnectEtcd(
    const EtcdConnectOptions& options) {
  absl::StatusOr<std::vector<std::string>> parsed = coord::ParseEtcdEndpoints(options.endpoints);
  if (!parsed.ok()) return parsed.status();
  coord::EtcdStoreOptions store_options;
  store_options.ca_file = options.ca_file;
  store_options.cert_file = options.cert_file;
  store_options.key_file = options.key_file;
  store_options.user = options.user;
  store_options.password = options.password;
  absl::StatusOr<std::unique_ptr<coord::EtcdStore>> store =
      coord::EtcdStore::Open(*std::move(parsed), std::move(store_options));
  if (!store.ok()) return store.status();
  return std::shared_ptr<coord::CoordinationStore>(*std::move(store));
}

std::shared_ptr<coord::CoordinationStore> NewInProcessCoordination() {
  return std::make_shared<coord::MemoryCoordinationStore>();
}

absl::StatusOr<std::pair<uint64_t, CheckpointOutcome>> RequestCheckpoint(
    std::shared_ptr<coord::CoordinationStore> store, std::string_view job, bool full,
    std::optional<uint64_t> step, absl::Duration timeout) {
  if (absl::Status s = coord::ValidateCoordinationName("job", job); !s.ok()) return s;
  absl::BitGen gen;
  char token[40];
  std::snprintf(token, sizeof token, "%d-%016" PRIx64, static_cast<int>(getpid()),
                absl::Uniform<uint64_t>(gen));
  const std::string key = coord::RequestKey(job, token);
  coord::Request request;
  request.full = full;
  request.step = step;
  absl::StatusOr<int64_t> rev = store->Put(key, coord::EncodeRequest(request));
  if (!rev.ok()) return rev.status();
  const absl::Time deadline = absl::Now() + timeout;
  int64_t revision = *rev;
  std::optional<uint64_t> id;
  for (;;) {
    if (!id.has_value()) {
      absl::StatusOr<coord::RangeResult> r = store->Get(key);
      if (!r.ok()) return r.status();
      revision = r->revision;
      if (r->kvs.empty()) {
        return absl::AbortedError(StrCat("the request '", key, "' was deleted before it was taken"));
      }
      absl::StatusOr<coord::Request> taken = coord::DecodeRequest(key, r->kvs[0].value);
      if (!taken.ok()) return taken.status();
      id = taken->id;
    }
    if (id.has_value()) {
      absl::StatusOr<coord::RangeResult> r = store->Get(coord::OutcomeKey(job, *id));
      if (!r.ok()) return r.status();
      revision = r->revision;
      if (!r->kvs.empty()) {
        absl::StatusOr<coord::OutcomeValue> outcome =
            coord::DecodeOutcome(r->kvs[0].key, r->kvs[0].value);
        if (!outcome.ok()) return outcome.status();
        // The request is answered: remove it (best effort; the leader ignores answered ones).
        store->Delete(key).IgnoreError();
        return std::make_pair(*id, outcome->outcome == coord::Outcome::kCommitted
                                       ? CheckpointOutcome::kCommitted
                                       : CheckpointOutcome::kAborted);
      }
    }
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      if (!id.has_value()) {
        // Withdraw it only if still untaken, so that a trigger for it is not left unexplained.
        store->Txn({coord::Compare::ModRevisionIs(key, *rev)}, {coord::TxnOp::Delete(key)})
            .IgnoreError();  // best effort: a late trigger serves it anyway
      }
      return absl::DeadlineExceededError(
          id.has_value()
              ? StrCat("checkpoint ", *id, " had no outcome within ", absl::FormatDuration(timeout))
              : StrCat("no coordinator took the request within ", absl::FormatDuration(timeout)));
    }
    absl::StatusOr<int64_t> changed = store->WaitForChange(
        coord::JobPrefix(job), revision, std::min(deadline - now, absl::Seconds(1)));
    if (!changed.ok()) absl::SleepFor(absl::Milliseconds(100));
  }
}

}  // namespace ickpt
