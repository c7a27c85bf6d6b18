// The coordination store: the small part of etcd's v3 key-value API that the group protocol needs
// (docs/protocol.md §2). Keys with revisions, leases that expire unless kept alive, transactions
// guarded by comparisons, reads of several ranges at one revision, and a wait for changes in a
// range. Two implementations: EtcdStore
// (etcd's v3 JSON gateway over HTTP, etcd_store.h) and MemoryCoordinationStore (in-process: tests,
// and several participants in one process). The protocol (participant.cc, coordinator.cc,
// election.cc) is written once against this interface.
//
// Semantics follow etcd's: every successful write (put, delete, transaction) advances the store's
// revision by one; a key's create_revision is the revision of the write that created it (a deleted
// and re-created key gets a new one), mod_revision the revision of its last write, version the
// number of writes since it was created. A key attached to a lease is deleted when the lease
// expires or is revoked, and that deletion is a write too.
//
// Errors: Unavailable when the store could not be reached or did not answer (a write may or may
// not have been applied: the caller re-reads before it relies on either); NotFound for a lease
// that expired or never existed; InvalidArgument for a malformed request; DataLoss for a reply
// that does not decode.
//
// Thread safety: implementations are safe for concurrent use.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ickpt::coord {

// One key as stored.
struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;  // 0: not attached to a lease
};

// The keys a read found, and the store's revision when it read them.
struct RangeResult {
  std::vector<KeyValue> kvs;
  int64_t revision = 0;
};

// A set of keys: `key` alone when `end` is empty, else every key k with key <= k < end, where
// `end` "\0" means to the end of the key space (etcd's key and range_end). A read of a range with
// `keys_only` returns its keys and revisions without values (etcd's keys_only).
struct KeyRange {
  std::string key;
  std::string end;
  bool keys_only = false;

  static KeyRange Single(std::string key) { return {std::move(key), {}}; }
  // Every key that starts with `prefix` (the empty prefix: every key).
  static KeyRange Prefix(std::string_view prefix);
  static KeyRange Between(std::string begin, std::string end) {
    return {std::move(begin), std::move(end)};
  }
  KeyRange KeysOnly() const {
    KeyRange r = *this;
    r.keys_only = true;
    return r;
  }
  bool Contains(std::string_view k) const {
    if (end.empty()) return k == key;
    return k >= key && (end == std::string_view("\0", 1) || k < end);
  }
};

// The end of the range of every key starting with `prefix` (clientv3.GetPrefixRangeEnd): the
// prefix with its last byte below 0xff incremented and the bytes after it dropped; "\0" (to the
// end of the key space) when every byte is 0xff or the prefix is empty.
std::string PrefixRangeEnd(std::string_view prefix);

inline KeyRange KeyRange::Prefix(std::string_view prefix) {
  // etcd's "\0" to "\0" for the empty prefix: every key (there is no empty key).
  return {prefix.empty() ? std::string(1, '\0') : std::string(prefix), PrefixRangeEnd(prefix)};
}

// What GetRanges read: the keys of each range asked for, in the order asked, each in key order,
// all at one revision.
struct MultiRangeResult {
  std::vector<std::vector<KeyValue>> ranges;
  int64_t revision = 0;
};

// Ends waits early from another thread: a WaitForChangeIn given it returns after_revision, as on a
// timeout, soon after Cancel() (in-process at once; on etcd within about a second: libcurl calls
// its progress callback about once a second on an idle stream). Once canceled, for good.
class WaitCancel {
 public:
  void Cancel() { canceled_.store(true, std::memory_order_release); }
  bool canceled() const { return canceled_.load(std::memory_order_acquire); }

 private:
  std::atomic<bool> canceled_{false};
};

// A comparison a transaction checks (etcd's Compare). A key that does not exist has
// create_revision, mod_revision and version 0, and no value: a kValue comparison on it is false
// whatever its result and value (etcd's rule; kNotEqual included).
struct Compare {
  enum class Target { kCreateRevision, kModRevision, kVersion, kValue };
  enum class Result { kEqual, kNotEqual, kLess, kGreater };
  std::string key;
  Target target = Target::kVersion;
  Result result = Result::kEqual;
  int64_t number = 0;  // for the revision and version targets
  std::string value;   // for kValue

  static Compare CreateRevisionIs(std::string key, int64_t revision) {
    return {std::move(key), Target::kCreateRevision, Result::kEqual, revision, {}};
  }
  static Compare Absent(std::string key) {
    return {std::move(key), Target::kVersion, Result::kEqual, 0, {}};
  }
  static Compare ModRevisionIs(std::string key, int64_t revision) {
    return {std::move(key), Target::kModRevision, Result::kEqual, revision, {}};
  }
};

// A write inside a transaction.
struct TxnOp {
  enum class Type { kPut, kDelete, kDeletePrefix };
  Type type = Type::kPut;
  std::string key;    // the key, or the prefix for kDeletePrefix
  std::string value;  // kPut
  int64_t lease = 0;  // kPut: attach to this lease (0: none)

  static TxnOp Put(std::string key, std::string value, int64_t lease = 0) {
    return {Type::kPut, std::move(key), std::move(value), lease};
  }
  static TxnOp Delete(std::string key) { return {Type::kDelete, std::move(key), {}, 0}; }
  static TxnOp DeletePrefix(std::string prefix) {
    return {Type::kDeletePrefix, std::move(prefix), {}, 0};
  }
};

struct TxnResult {
  bool succeeded = false;  // every comparison held, and the success branch ran
  int64_t revision = 0;    // the store's revision after the transaction
};

class CoordinationStore {
 public:
  virtual ~CoordinationStore() = default;
  CoordinationStore() = default;
  CoordinationStore(const CoordinationStore&) = delete;
  CoordinationStore& operator=(const CoordinationStore&) = delete;

  // For messages, e.g. "etcd http://127.0.0.1:2379".
  virtual std::string Describe() const = 0;

  // Writes `key` (attached to `lease` unless 0) and returns the revision of the write. NotFound
  // if the lease does not exist.
  virtual absl::StatusOr<int64_t> Put(std::string_view key, std::string_view value,
                                      int64_t lease = 0) = 0;
  // The key, if it exists (kvs has 0 or 1 element).
  virtual absl::StatusOr<RangeResult> Get(std::string_view key) = 0;
  // Every key that starts with `prefix`, in key order.
  virtual absl::StatusOr<RangeResult> GetPrefix(std::string_view prefix) = 0;
  // Reads every range at one revision (etcd: one transaction of range requests, one round trip).
  // InvalidArgument for an empty list or a range with an empty key.
  virtual absl::StatusOr<MultiRangeResult> GetRanges(const std::vector<KeyRange>& ranges) = 0;
  // Deletes the key if present; returns the store's revision afterwards.
  virtual absl::StatusOr<int64_t> Delete(std::string_view key) = 0;
  // Runs `success` if every comparison holds, `failure` otherwise, atomically. A transaction may
  // not write one key twice (InvalidArgument).
  virtual absl::StatusOr<TxnResult> Txn(const std::vector<Compare>& compares,
                                        const std::vector<TxnOp>& success,
                                        const std::vector<TxnOp>& failure = {}) = 0;

  // A new lease that expires `ttl` (whole seconds, >= 1 s) after it was granted or last kept
  // alive. Returns its id (never 0).
  virtual absl::StatusOr<int64_t> GrantLease(absl::Duration ttl) = 0;
  // Restarts the lease's time to live. NotFound if it expired or was revoked.
  virtual absl::Status KeepAlive(int64_t lease) = 0;
  // Ends the lease now, deleting its keys. OK if it no longer exists.
  virtual absl::Status RevokeLease(int64_t lease) = 0;

  // Waits until a key in `range` is written or deleted at a revision above `after_revision`, or
  // `timeout` passes. Returns the highest revision of the changes seen, or `after_revision` when
  // none came in time. If the revisions after `after_revision` are no longer available (etcd
  // compacted them), returns at once with the store's current revision: the caller re-reads. A
  // change between the caller's read and this call is not missed: it is above after_revision.
  // `cancel` (may be null) ends the wait early (WaitCancel).
  virtual absl::StatusOr<int64_t> WaitForChangeIn(const KeyRange& range, int64_t after_revision,
                                                  absl::Duration timeout,
                                                  const WaitCancel* cancel) = 0;
  // WaitForChangeIn(KeyRange::Prefix(prefix), ..., no cancel).
  absl::StatusOr<int64_t> WaitForChange(std::string_view prefix, int64_t after_revision,
                                        absl::Duration timeout) {
    return WaitForChangeIn(KeyRange::Prefix(prefix), after_revision, timeout, nullptr);
  }
};

}  // namespace ickpt::coord
