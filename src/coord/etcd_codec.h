// The bytes EtcdStore exchanges with etcd's v3 JSON gateway (grpc-gateway over etcd's gRPC API,
// served on the client URL, paths /v3/...): request bodies built from CoordinationStore's types,
// and replies decoded into them. Pure functions, apart from the transport, so that every decoder
// can be fuzzed (fuzz/etcd_codec_fuzz.cc) and tested without a server.
//
// The gateway's JSON (protobuf's JSON mapping, as etcd 3.4 serves it): keys and values are base64;
// 64-bit integers are written as JSON strings ("123"), and a field holding its zero value (0,
// false, "", an empty list) is left out. The decoders accept an integer as a string or a number and
// treat an absent field as zero. A reply may instead be the gateway's error object,
// {"error": "...", "message": "...", "code": <gRPC code>}: every decoder recognises it and returns
// the status GatewayErrorStatus gives.
//
// Errors: every decoder returns DataLoss "etcd reply ...: <cause>" for bytes that are not the reply
// it expects, never crashes and never throws, whatever its input.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/coord/coordination_store.h"

namespace ickpt::coord::etcd {

// The gateway's paths (etcd 3.4; /v3/kv/lease/revoke is an older alias of /v3/lease/revoke).
inline constexpr std::string_view kPutPath = "/v3/kv/put";
inline constexpr std::string_view kRangePath = "/v3/kv/range";
inline constexpr std::string_view kDeleteRangePath = "/v3/kv/deleterange";
inline constexpr std::string_view kTxnPath = "/v3/kv/txn";
inline constexpr std::string_view kLeaseGrantPath = "/v3/lease/grant";
inline constexpr std::string_view kLeaseKeepAlivePath = "/v3/lease/keepalive";
inline constexpr std::string_view kLeaseRevokePath = "/v3/lease/revoke";
inline constexpr std::string_view kWatchPath = "/v3/watch";
inline constexpr std::string_view kAuthenticatePath = "/v3/auth/authenticate";

// The end of etcd's range for every key starting with a prefix (coordination_store.h).
using ::ickpt::coord::PrefixRangeEnd;

// ---- Requests (JSON bodies to POST). ----

std::string EncodePutRequest(std::string_view key, std::string_view value, int64_t lease);
// One key.
std::string EncodeRangeRequest(std::string_view key);
// Every key under `prefix` (the empty prefix: every key), in key order.
std::string EncodePrefixRangeRequest(std::string_view prefix);
std::string EncodeDeleteRequest(std::string_view key);
// A range that returns no keys, only the header: the store's current revision. It counts the keys
// in `range`, so that a user allowed only those keys may ask (etcd checks read permission on the
// range even for a count).
std::string EncodeRevisionRequest(const KeyRange& range);
std::string EncodeTxnRequest(const std::vector<Compare>& compares,
                             const std::vector<TxnOp>& success, const std::vector<TxnOp>& failure);
// A transaction without comparisons whose success branch reads each range: one request that reads
// them all at one revision.
std::string EncodeRangesTxnRequest(const std::vector<KeyRange>& ranges);
std::string EncodeLeaseGrantRequest(int64_t ttl_seconds);
// The body of one keep-alive on the keep-alive stream (the gateway closes it after the reply).
std::string EncodeLeaseKeepAliveRequest(int64_t lease);
std::string EncodeLeaseRevokeRequest(int64_t lease);
// Creates a watch of every key in `range` from `start_revision` on.
std::string EncodeWatchCreateRequest(const KeyRange& range, int64_t start_revision);
// {"name": user, "password": password}. The body holds the password: never put it in a message.
std::string EncodeAuthenticateRequest(std::string_view user, std::string_view password);

// ---- Replies. ----

// The gateway's error object.
struct GatewayError {
  int code = 0;         // gRPC status code (2 Unknown when absent)
  std::string message;  // "message", or "error" when there is no message
};

// Decodes `body` as the gateway's error object; DataLoss if it is not one (a reply without an
// "error" field is not).
absl::StatusOr<GatewayError> DecodeGatewayError(std::string_view body);

// What an error of etcd's authentication means, told by etcd 3.4's messages (the gRPC code alone
// does not tell: "user name is empty" and "authentication failed" are INVALID_ARGUMENT). As the
// gateway answers (HTTP status, code, message):
//   kNoCredentials    400, 3, "etcdserver: user name is empty": authentication is on and the
//                     request had no token.
//   kTokenRefused     401, 16, "etcdserver: invalid auth token" (unknown, or expired: a simple
//                     token lives --auth-token-ttl, 300 s, after its last use, and only on the
//                     member that issued it); or 400, 3, "etcdserver: revision of auth store is
//                     old" (users or roles changed since it was issued). Authenticating again
//                     cures both.
//   kWrongPassword    400, 3, "etcdserver: authentication failed, invalid user ID or password"
//                     (/v3/auth/authenticate; an unknown user too).
//   kPermissionDenied 403, 7, "etcdserver: permission denied": the user's roles do not cover a key.
//   kAuthDisabled     412, 9, "etcdserver: authentication is not enabled" (/v3/auth/authenticate).
// The watch stream reports the same errors as a canceled watch whose cancel_reason is
// "rpc error: code = <Name> desc = <message>".
enum class AuthError {
  kNone,
  kNoCredentials,
  kTokenRefused,
  kWrongPassword,
  kPermissionDenied,
  kAuthDisabled
};
AuthError ClassifyAuthError(int code, std::string_view message);

// The status for a gateway error, its message prefixed with `context`: NotFound for gRPC
// NOT_FOUND (an unknown lease), InvalidArgument for INVALID_ARGUMENT and OUT_OF_RANGE (a
// compacted revision), FailedPrecondition for FAILED_PRECONDITION, PERMISSION_DENIED and
// UNAUTHENTICATED, Aborted for ABORTED, and Unavailable for the rest (timeouts, no leader,
// internal errors: a retry may help). EtcdStore gives authentication errors (ClassifyAuthError)
// statuses of their own, naming the user.
absl::Status GatewayErrorStatus(const GatewayError& error, std::string_view context);

// A watch's cancel_reason "rpc error: code = <Name> desc = <message>" as a gateway error: the code
// named (2 Unknown when it is not one of gRPC's names) and the message after "desc = " (the whole
// reason when it has no such form).
GatewayError WatchCancelError(std::string_view cancel_reason);

// /v3/kv/range: the keys and header.revision.
absl::StatusOr<RangeResult> DecodeRangeReply(std::string_view body);
// /v3/kv/put: header.revision, the revision of the write.
absl::StatusOr<int64_t> DecodePutReply(std::string_view body);
// /v3/kv/deleterange: header.revision, the store's revision after the delete.
absl::StatusOr<int64_t> DecodeDeleteReply(std::string_view body);
// /v3/kv/txn: succeeded (absent: false) and header.revision.
absl::StatusOr<TxnResult> DecodeTxnReply(std::string_view body);

// /v3/kv/txn of EncodeRangesTxnRequest with `ranges` ranges: the keys of each, and
// header.revision. DataLoss unless it holds exactly that many range responses.
absl::StatusOr<MultiRangeResult> DecodeRangesTxnReply(std::string_view body, size_t ranges);

struct LeaseGrant {
  int64_t id = 0;
  int64_t ttl_seconds = 0;  // as granted: etcd raises a TTL below its minimum
};
// /v3/lease/grant: ID and TTL; Unavailable if the reply's own "error" field is set, DataLoss if
// the ID is missing or not positive.
absl::StatusOr<LeaseGrant> DecodeLeaseGrantReply(std::string_view body);

// /v3/lease/keepalive: the stream's first message, {"result": {"ID": ..., "TTL": ...}}. Returns
// the TTL the lease was renewed for; NotFound when TTL is 0 or absent (how etcd says that the
// lease expired or never existed). `lease` is the id asked about, for messages and to check the
// reply's ID.
absl::StatusOr<int64_t> DecodeKeepAliveReply(std::string_view body, int64_t lease);
// /v3/lease/revoke: header.revision.
absl::StatusOr<int64_t> DecodeLeaseRevokeReply(std::string_view body);

// /v3/auth/authenticate: the token, {"header": ..., "token": "..."}; DataLoss without one.
absl::StatusOr<std::string> DecodeAuthenticateReply(std::string_view body);

// One message of the /v3/watch stream (one line of it), {"result": {...}}.
struct WatchMessage {
  bool created = false;           // the watch was set up
  bool canceled = false;          // the server ended the watch (compaction, error)
  std::string cancel_reason;
  int64_t compact_revision = 0;   // > 0: the revisions asked for were compacted
  int64_t header_revision = 0;    // the store's revision when the message was sent (may be 0)
  int64_t event_count = 0;
  int64_t max_event_revision = 0;  // the highest kv.mod_revision among the events
};
absl::StatusOr<WatchMessage> DecodeWatchMessage(std::string_view line);

}  // namespace ickpt::coord::etcd
