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
// Security (docs/protocol.md §10): etcd's own TLS and authentication. With https:// endpoints the
// server's certificate is always verified (peer and host name), against ca_file or the system's CA
// store, and a client certificate is presented if one is given. With a user, the store
// authenticates (/v3/auth/authenticate) at its first request, caches the token and sends it in the
// Authorization header of every request, the watch stream included; when etcd refuses the token
// (it expired, another member issued it, or users changed since) the store authenticates again
// once and repeats the request, which etcd refused before applying it. The password goes only into
// the authenticate request: no message, log line or Describe() holds it.
//
// Errors: Unavailable naming the endpoint and libcurl's error when no endpoint could be reached or
// one did not answer in time (with a TLS hint when etcd's certificate was refused or etcd refused
// the connection during the handshake), or for an etcd error a retry may cure (no leader,
// timeout); PermissionDenied naming the user for wrong credentials or a key outside the user's
// roles, and saying credentials are needed when etcd has authentication on and the store has no
// user; NotFound for an unknown lease; InvalidArgument for a request etcd rejects; DataLoss for a
// reply that does not decode.
//
// Thread safety: safe for concurrent use. Each call takes a libcurl handle of its own from a small
// pool (kept so that connections are reused) and returns it afterwards; the token is shared, and
// one thread at a time authenticates.
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
#include "src/coord/etcd_codec.h"
#include "src/util/mutex.h"

namespace ickpt::coord {

struct EtcdStoreOptions {
  // How long one request to one endpoint may take, connection included (WaitForChange uses its own
  // timeout instead). Default: 5 s.
  absl::Duration request_timeout = absl::Seconds(5);
  // How long connecting to one endpoint may take before the next one is tried. Default: 2 s.
  absl::Duration connect_timeout = absl::Seconds(2);

  // TLS, for https:// endpoints (at least one must be, if any of these is set). PEM file of the CA
  // that signed etcd's certificates; empty: the system's CA store. Default: empty.
  std::string ca_file;
  // A client certificate and its key (PEM), for an etcd run with --client-cert-auth. Both or
  // neither. Default: none.
  std::string cert_file;
  std::string key_file;
  // An etcd user and its password, for an etcd with authentication on. Empty user: none (then the
  // password must be empty too). The password is never logged nor put in a message. Default: none.
  std::string user;
  std::string password;
};

// Splits "http://a:2379,http://b:2379" into endpoints, dropping whitespace around each and a
// trailing '/'. InvalidArgument naming the first that is not an http:// or https:// URL with a
// host, or if there is none.
absl::StatusOr<std::vector<std::string>> ParseEtcdEndpoints(std::string_view comma_separated);

class EtcdStore final : public CoordinationStore {
 public:
  // Checks the endpoints (as ParseEtcdEndpoints does) and the options; does not contact etcd, so
  // that a store can be opened before the cluster is up. InvalidArgument for a bad endpoint, an
  // empty list, a timeout that is not positive, a certificate without its key (or the reverse), a
  // TLS file that cannot be read (naming it) or with no https:// endpoint, or a password without
  // a user.
  static absl::StatusOr<std::unique_ptr<EtcdStore>> Open(std::vector<std::string> endpoints,
                                                         EtcdStoreOptions options = {});
  ~EtcdStore() override;

  // "etcd http://127.0.0.1:2379" (every endpoint, comma-separated), and " as user 'NAME'" with a
  // user. Never the password.
  std::string Describe() const override;

  absl::StatusOr<int64_t> Put(std::string_view key, std::string_view value,
                              int64_t lease = 0) override;
  absl::StatusOr<RangeResult> Get(std::string_view key) override;
  absl::StatusOr<RangeResult> GetPrefix(std::string_view prefix) override;
  // One transaction of range requests.
  absl::StatusOr<MultiRangeResult> GetRanges(const std::vector<KeyRange>& ranges) override;
  absl::StatusOr<int64_t> Delete(std::string_view key) override;
  absl::StatusOr<TxnResult> Txn(const std::vector<Compare>& compares,
                                const std::vector<TxnOp>& success,
                                const std::vector<TxnOp>& failure = {}) override;

  absl::StatusOr<int64_t> GrantLease(absl::Duration ttl) override;
  absl::Status KeepAlive(int64_t lease) override;
  absl::Status RevokeLease(int64_t lease) override;

  // Opens a watch stream from after_revision + 1 and reads it until the first batch of events, a
  // compaction (then reads the current revision) or the timeout.
  absl::StatusOr<int64_t> WaitForChangeIn(const KeyRange& range, int64_t after_revision,
                                          absl::Duration timeout,
                                          const WaitCancel* cancel) override;

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

  // POSTs `body` to `path` with `token` (none if empty) in the Authorization header, trying each
  // endpoint from the preferred one on, and returns the first reply (any HTTP status). With
  // `on_line`, the reply is streamed to it; stopping it is not an error, nor is reaching `timeout`
  // after the server answered. Unavailable when every endpoint failed (the message names each and
  // its libcurl error, with a TLS hint). `cancel` set ends the transfer early (within about a
  // second), which is an answer too.
  absl::StatusOr<Response> Post(std::string_view path, const std::string& body, Retry retry,
                                absl::Duration timeout, const std::string& token,
                                const LineHandler& on_line = nullptr,
                                const WaitCancel* cancel = nullptr);
  // The reply's status for a reply that is not HTTP 200: the gateway's error, or Unavailable.
  absl::Status HttpError(const Response& response, std::string_view what) const;
  // The status for a gateway error (etcd_codec.h GatewayErrorStatus), its message prefixed with
  // `context`, except for errors of authentication (etcd_codec.h ClassifyAuthError):
  // Unauthenticated for no credentials or a refused token (WithToken turns it into
  // PermissionDenied), PermissionDenied naming the user for wrong credentials or a key outside the
  // user's roles.
  absl::Status ErrorStatus(const etcd::GatewayError& error, std::string_view context) const;
  // A unary call: POSTs `body` to `path` with the token (WithToken), and decodes the reply with
  // `decode` (HttpError for one that is not HTTP 200).
  template <typename Decoder>
  auto Unary(std::string_view path, const std::string& body, Retry retry, std::string_view what,
             Decoder decode) -> decltype(decode(std::string_view()));

  // Runs `attempt(token)` with the cached token (authenticating first if there is none yet); if
  // etcd refused the token (Unauthenticated) and the store has a user, authenticates again and
  // runs it once more. An Unauthenticated result is returned as PermissionDenied. `attempt`
  // returns absl::Status or absl::StatusOr<T>.
  template <typename Attempt>
  auto WithToken(Attempt attempt) -> decltype(attempt(std::string()));
  // The token to send: empty without a user or while etcd has authentication off; else the
  // cached one, or a new one if there is none or it is `stale` (the token etcd just refused).
  absl::StatusOr<std::string> Token(const std::string* stale);
  // POSTs the user and password to /v3/auth/authenticate. PermissionDenied naming the user and
  // endpoint for wrong credentials.
  absl::StatusOr<std::string> Authenticate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(auth_mu_);

  void* AcquireHandle();
  void ReleaseHandle(void* handle);

  const std::vector<std::string> endpoints_;
  const EtcdStoreOptions options_;
  Mutex mu_;
  size_t preferred_ ABSL_GUARDED_BY(mu_) = 0;             // the endpoint that answered last
  std::vector<void*> idle_handles_ ABSL_GUARDED_BY(mu_);  // CURL*, reset before reuse
  // Held while authenticating (a request to etcd), so that one thread at a time does; taken before
  // mu_, never while holding it.
  Mutex auth_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::string token_ ABSL_GUARDED_BY(auth_mu_);      // empty: none yet, or authentication off
  bool auth_off_ ABSL_GUARDED_BY(auth_mu_) = false;  // etcd said authentication is not enabled
};

}  // namespace ickpt::coord
