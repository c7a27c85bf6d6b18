// A CoordinationStore on etcd (docs/protocol.md §2), through the v3 JSON gateway that every etcd
// since 3.4 serves on its client URLs (POST /v3/kv/range and friends; etcd_codec.h has the bytes).
// HTTP over libcurl, so that the library needs neither gRPC nor protobuf.
//
// Endpoints: the client URLs of the cluster's members, tried in order. A request that cannot reach
// an endpoint goes to the next one, and the endpoint that answered is tried first from then on. A
// write (Put, Delete, Txn) moves on only when the connection itself failed: once its bytes may
// have reached a server, sending it again elsewhere could apply it twice (a transaction would then
// see its own first write and report failure), so the caller gets Unavailable and re-reads.
//
// Errors: Unavailable naming the endpoint and libcurl's error when no endpoint could be reached or
// one did not answer in time, or for an etcd error a retry may cure (no leader, timeout); NotFound
// for an unknown lease; InvalidArgument for a request etcd rejects; DataLoss for a reply that does
// not decode.
//
// Thread safety: safe for concurrent use. Each call takes a libcurl handle of its own from a small
// pool (kept so that connections are reused) and returns it afterwards.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "src/coord/coordination_store.h"
#include "src/util/mutex.h"

namespace ickpt::coord {

struct EtcdStoreOptions {
  // How long one request to one endpoint may take, connection included (WaitForChange uses its own
  // timeout instead). Default: 5 s.
  absl::Duration request_timeout = absl::Seconds(5);
  // How long connecting to one endpoint may take before the next one is tried. Default: 2 s.
  absl::Duration connect_timeout = absl::Seconds(2);
};

// Splits "http://a:2379,http://b:2379" into endpoints, dropping whitespace around each and a
// trailing '/'. InvalidArgument naming the first that is not an http:// or https:// URL with a
// host, or if there is none.
absl::StatusOr<std::vector<std::string>> ParseEtcdEndpoints(std::string_view comma_separated);

class EtcdStore final : public CoordinationStore {
 public:
  // Checks the endpoints (as ParseEtcdEndpoints does) and the options; does not contact etcd, so
  // that a store can be opened before the cluster is up. InvalidArgument for a bad endpoint, an
  // empty list, or a timeout that is not positive.
  static absl::StatusOr<std::unique_ptr<EtcdStore>> Open(std::vector<std::string> endpoints,
                                                         EtcdStoreOptions options = {});
  ~EtcdStore() override;

  // "etcd http://127.0.0.1:2379" (every endpoint, comma-separated).
  std::string Describe() const override;

  absl::StatusOr<int64_t> Put(std::string_view key, std::string_view value,
                              int64_t lease = 0) override;
  absl::StatusOr<RangeResult> Get(std::string_view key) override;
  absl::StatusOr<RangeResult> GetPrefix(std::string_view prefix) override;
  absl::StatusOr<int64_t> Delete(std::string_view key) override;
  absl::StatusOr<TxnResult> Txn(const std::vector<Compare>& compares,
                                const std::vector<TxnOp>& success,
                                const std::vector<TxnOp>& failure = {}) override;

  absl::StatusOr<int64_t> GrantLease(absl::Duration ttl) override;
  absl::Status KeepAlive(int64_t lease) override;
  absl::Status RevokeLease(int64_t lease) override;

  // Opens a watch stream from after_revision + 1 and reads it until the first batch of events, a
  // compaction (then reads the current revision) or the timeout.
  absl::StatusOr<int64_t> WaitForChange(std::string_view prefix, int64_t after_revision,
                                        absl::Duration timeout) override;

 private:
  struct Response {
    std::string endpoint;
    long http_status = 0;
    std::string body;
  };
  // Sees each line of a streamed reply as it arrives; returns false to stop reading.
  using LineHandler = std::function<bool(std::string_view line)>;
  enum class Retry { kIfNotConnected, kAlways };

  EtcdStore(std::vector<std::string> endpoints, EtcdStoreOptions options);

  // POSTs `body` to `path`, trying each endpoint from the preferred one on, and returns the first
  // reply (any HTTP status). With `on_line`, the reply is streamed to it; stopping it is not an
  // error, nor is reaching `timeout` after the server answered. Unavailable when every endpoint
  // failed (the message names each and its libcurl error).
  absl::StatusOr<Response> Post(std::string_view path, const std::string& body, Retry retry,
                                absl::Duration timeout, const LineHandler& on_line = nullptr);
  // The reply's status for a reply that is not HTTP 200: the gateway's error, or Unavailable.
  static absl::Status HttpError(const Response& response, std::string_view what);

  void* AcquireHandle();
  void ReleaseHandle(void* handle);

  const std::vector<std::string> endpoints_;
  const EtcdStoreOptions options_;
  Mutex mu_;
  size_t preferred_ ABSL_GUARDED_BY(mu_) = 0;  // the endpoint that answered last
  std::vector<void*> idle_handles_ ABSL_GUARDED_BY(mu_);  // CURL*, reset before reuse
};

}  // namespace ickpt::coord
