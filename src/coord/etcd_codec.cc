// etcd v3 JSON gateway requests and replies (etcd_codec.h). The field names are those of etcd's
// protobuf messages (etcdserverpb/rpc.proto, mvccpb/kv.proto) under protobuf's JSON mapping, as
// checked against etcd 3.4.23's gateway.
//
// Thread safety: pure functions.
#include "src/coord/etcd_codec.h"

#include <charconv>
#include <cstdint>
#include <iterator>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "nlohmann/json.hpp"
#include "src/util/str.h"

namespace ickpt::coord::etcd {
namespace {

using json = nlohmann::json;

// A reply that is not what it should be; caught by Decode and returned as DataLoss.
struct ReplyError {
  std::string what;
};

// Raised when the reply is the gateway's error object; caught by Decode and returned as the
// status GatewayErrorStatus gives.
struct GatewayErrorReply {
  GatewayError error;
};

std::string Base64(std::string_view bytes) { return absl::Base64Escape(ToAbsl(bytes)); }

std::string Int(int64_t n) { return std::to_string(n); }

// A body's first 200 bytes, escaped, for messages.
std::string Excerpt(std::string_view body) {
  std::string out = absl::CHexEscape(ToAbsl(body.substr(0, 200)));
  if (body.size() > 200) out += "...";
  return out;
}

// An int64 field: a JSON string of decimal digits (how the gateway writes 64-bit integers) or a
// JSON integer; 0 when absent or null.
int64_t I64(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return 0;
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    int64_t n = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size()) {
      throw ReplyError{StrCat("field \"", name, "\" is not a 64-bit integer: \"",
                              absl::CHexEscape(ToAbsl(std::string_view(s).substr(0, 40))), "\"")};
    }
    return n;
  }
  if (it->is_number_unsigned()) {
    const uint64_t u = it->get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      throw ReplyError{StrCat("field \"", name, "\" is out of range")};
    }
    return static_cast<int64_t>(u);
  }
  if (it->is_number_integer()) return it->get<int64_t>();
  throw ReplyError{StrCat("field \"", name, "\" is not an integer")};
}

bool Bool(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return false;
  if (!it->is_boolean()) throw ReplyError{StrCat("field \"", name, "\" is not a boolean")};
  return it->get<bool>();
}

std::string Str(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return {};
  if (!it->is_string()) throw ReplyError{StrCat("field \"", name, "\" is not a string")};
  return it->get<std::string>();
}

// A bytes field (base64); empty when absent.
std::string Bytes(const json& obj, const char* name) {
  const std::string encoded = Str(obj, name);
  std::string bytes;
  if (!absl::Base64Unescape(encoded, &bytes)) {
    throw ReplyError{StrCat("field \"", name, "\" is not base64")};
  }
  return bytes;
}

// A message field: the object, or null (absent) for which every reader returns zero.
const json& Object(const json& obj, const char* name) {
  static const json kAbsent = json::object();
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return kAbsent;
  if (!it->is_object()) throw ReplyError{StrCat("field \"", name, "\" is not an object")};
  return *it;
}

// A repeated field: the array, or an empty one when absent.
const json& Array(const json& obj, const char* name) {
  static const json kAbsent = json::array();
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return kAbsent;
  if (!it->is_array()) throw ReplyError{StrCat("field \"", name, "\" is not an array")};
  return *it;
}

int64_t HeaderRevision(const json& reply) { return I64(Object(reply, "header"), "revision"); }

// The gateway's error object: flat {"error": "...", "message": "...", "code": N} (unary calls and
// etcd 3.4's streams), or nested {"error": {"grpc_code": N, "message": "..."}} (older gateways'
// streams).
GatewayError ReadGatewayError(const json& reply) {
  GatewayError error;
  const json& e = reply.at("error");
  if (e.is_object()) {
    error.code = static_cast<int>(I64(e, "grpc_code"));
    error.message = Str(e, "message");
  } else {
    error.code = static_cast<int>(I64(reply, "code"));
    error.message = Str(reply, "message");
    if (error.message.empty()) error.message = e.is_string() ? e.get<std::string>() : e.dump();
  }
  if (error.code == 0) error.code = 2;  // UNKNOWN: an error without a code is still an error
  return error;
}

// Parses `body` as one JSON object; a gateway error object is raised as GatewayErrorReply unless
// `error_is_a_field` (the lease grant reply has a string field "error" of its own: only an error
// with a code, or a nested one, is the gateway's then).
json ParseReply(std::string_view body, bool error_is_a_field = false) {
  json reply = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (reply.is_discarded()) throw ReplyError{"not JSON"};
  if (!reply.is_object()) throw ReplyError{"not a JSON object"};
  if (auto it = reply.find("error"); it != reply.end()) {
    if (!error_is_a_field || reply.contains("code") || it->is_object()) {
      throw GatewayErrorReply{ReadGatewayError(reply)};
    }
  }
  return reply;
}

KeyValue ReadKeyValue(const json& kv) {
  if (!kv.is_object()) throw ReplyError{"a key-value is not an object"};
  KeyValue out;
  out.key = Bytes(kv, "key");
  out.value = Bytes(kv, "value");
  out.create_revision = I64(kv, "create_revision");
  out.mod_revision = I64(kv, "mod_revision");
  out.version = I64(kv, "version");
  out.lease = I64(kv, "lease");
  if (out.key.empty()) throw ReplyError{"a key-value has no key"};
  return out;
}

// Runs `read` on `body` and maps whatever it raises to a status naming the reply.
template <typename T, typename Read>
absl::StatusOr<T> Decode(std::string_view what, std::string_view body, Read read) {
  try {
    return read();
  } catch (const GatewayErrorReply& e) {
    return GatewayErrorStatus(e.error, StrCat("etcd ", what));
  } catch (const ReplyError& e) {
    return absl::DataLossError(StrCat("etcd reply to ", what, ": ", e.what, " (reply \"",
                                      Excerpt(body), "\")"));
  } catch (const json::exception& e) {
    // The readers check types first; this is a second line so that no JSON shape can throw past
    // the decoder.
    return absl::DataLossError(StrCat("etcd reply to ", what, ": ", e.what(), " (reply \"",
                                      Excerpt(body), "\")"));
  } catch (const std::exception& e) {  // std::bad_alloc from a huge reply, say
    return absl::DataLossError(StrCat("etcd reply to ", what, ": ", e.what()));
  }
}

const char* TargetName(Compare::Target target) {
  switch (target) {
    case Compare::Target::kCreateRevision:
      return "CREATE";
    case Compare::Target::kModRevision:
      return "MOD";
    case Compare::Target::kVersion:
      return "VERSION";
    case Compare::Target::kValue:
      return "VALUE";
  }
  return "VERSION";
}

const char* ResultName(Compare::Result result) {
  switch (result) {
    case Compare::Result::kEqual:
      return "EQUAL";
    case Compare::Result::kNotEqual:
      return "NOT_EQUAL";
    case Compare::Result::kLess:
      return "LESS";
    case Compare::Result::kGreater:
      return "GREATER";
  }
  return "EQUAL";
}

// {"key": ..., "range_end": ...} for `range` (no range_end for one key).
json RangeJson(const KeyRange& range) {
  json j = {{"key", Base64(range.key)}};
  if (!range.end.empty()) j["range_end"] = Base64(range.end);
  if (range.keys_only) j["keys_only"] = true;
  return j;
}

// Every key under `prefix` (KeyRange::Prefix: the empty prefix is etcd's "\0" to "\0").
json PrefixRange(std::string_view prefix) { return RangeJson(KeyRange::Prefix(prefix)); }

json RequestOp(const TxnOp& op) {
  switch (op.type) {
    case TxnOp::Type::kPut: {
      json put = {{"key", Base64(op.key)}, {"value", Base64(op.value)}};
      if (op.lease != 0) put["lease"] = Int(op.lease);
      return {{"request_put", put}};
    }
    case TxnOp::Type::kDelete:
      return {{"request_delete_range", {{"key", Base64(op.key)}}}};
    case TxnOp::Type::kDeletePrefix:
      return {{"request_delete_range", PrefixRange(op.key)}};
  }
  return json::object();
}

// Every body here holds only ASCII (base64 and digits), so dump() cannot meet invalid UTF-8.
std::string Dump(const json& j) { return j.dump(); }

}  // namespace

std::string EncodePutRequest(std::string_view key, std::string_view value, int64_t lease) {
  json j = {{"key", Base64(key)}, {"value", Base64(value)}};
  if (lease != 0) j["lease"] = Int(lease);
  return Dump(j);
}

std::string EncodeRangeRequest(std::string_view key) { return Dump({{"key", Base64(key)}}); }

std::string EncodePrefixRangeRequest(std::string_view prefix) {
  return Dump(PrefixRange(prefix));
}

std::string EncodeDeleteRequest(std::string_view key) { return Dump({{"key", Base64(key)}}); }

std::string EncodeRevisionRequest(const KeyRange& range) {
  json j = RangeJson(range);
  j["count_only"] = true;
  return Dump(j);
}

std::string EncodeTxnRequest(const std::vector<Compare>& compares,
                             const std::vector<TxnOp>& success,
                             const std::vector<TxnOp>& failure) {
  json compare_list = json::array();
  for (const Compare& c : compares) {
    json j = {{"key", Base64(c.key)},
              {"target", TargetName(c.target)},
              {"result", ResultName(c.result)}};
    switch (c.target) {
      case Compare::Target::kCreateRevision:
        j["create_revision"] = Int(c.number);
        break;
      case Compare::Target::kModRevision:
        j["mod_revision"] = Int(c.number);
        break;
      case Compare::Target::kVersion:
        j["version"] = Int(c.number);
        break;
      case Compare::Target::kValue:
        j["value"] = Base64(c.value);
        break;
    }
    compare_list.push_back(std::move(j));
  }
  json success_list = json::array();
  for (const TxnOp& op : success) success_list.push_back(RequestOp(op));
  json failure_list = json::array();
  for (const TxnOp& op : failure) failure_list.push_back(RequestOp(op));
  return Dump({{"compare", compare_list}, {"success", success_list}, {"failure", failure_list}});
}

std::string EncodeRangesTxnRequest(const std::vector<KeyRange>& ranges) {
  json success_list = json::array();
  for (const KeyRange& range : ranges) {
    success_list.push_back({{"request_range", RangeJson(range)}});
  }
  return Dump({{"compare", json::array()}, {"success", success_list}});
}

std::string EncodeLeaseGrantRequest(int64_t ttl_seconds) {
  return Dump({{"TTL", Int(ttl_seconds)}});
}

std::string EncodeLeaseKeepAliveRequest(int64_t lease) { return Dump({{"ID", Int(lease)}}); }

std::string EncodeLeaseRevokeRequest(int64_t lease) { return Dump({{"ID", Int(lease)}}); }

std::string EncodeWatchCreateRequest(const KeyRange& range, int64_t start_revision) {
  json create = RangeJson(range);
  create["start_revision"] = Int(start_revision);
  return Dump({{"create_request", create}});
}

std::string EncodeAuthenticateRequest(std::string_view user, std::string_view password) {
  // The user and password are the caller's bytes, not base64: dump() must not throw on invalid
  // UTF-8 (the error handler "replace" substitutes U+FFFD; etcd would refuse such a user anyway).
  return json({{"name", std::string(user)}, {"password", std::string(password)}})
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

absl::StatusOr<GatewayError> DecodeGatewayError(std::string_view body) {
  return Decode<GatewayError>("(error)", body, [&]() -> GatewayError {
    try {
      ParseReply(body);
    } catch (const GatewayErrorReply& e) {
      return e.error;
    }
    throw ReplyError{"not an error object"};
  });
}

AuthError ClassifyAuthError(int code, std::string_view message) {
  if (Contains(message, "user name is empty")) return AuthError::kNoCredentials;
  if (Contains(message, "invalid auth token") ||
      Contains(message, "revision of auth store is old")) {
    return AuthError::kTokenRefused;
  }
  if (Contains(message, "authentication failed")) return AuthError::kWrongPassword;
  if (Contains(message, "authentication is not enabled")) return AuthError::kAuthDisabled;
  if (code == 7 || Contains(message, "permission denied")) return AuthError::kPermissionDenied;
  if (code == 16) return AuthError::kTokenRefused;
  return AuthError::kNone;
}

absl::Status GatewayErrorStatus(const GatewayError& error, std::string_view context) {
  const std::string message =
      StrCat(context, ": ", error.message.substr(0, 500), " (gRPC code ", error.code, ")");
  switch (error.code) {
    case 5:  // NOT_FOUND
      return absl::NotFoundError(message);
    case 3:   // INVALID_ARGUMENT
    case 11:  // OUT_OF_RANGE: "required revision has been compacted" and the like
      return absl::InvalidArgumentError(message);
    case 7:   // PERMISSION_DENIED
    case 9:   // FAILED_PRECONDITION
    case 16:  // UNAUTHENTICATED
      return absl::FailedPreconditionError(message);
    case 10:  // ABORTED
      return absl::AbortedError(message);
    default:  // UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, UNKNOWN, ...: a retry may help
      return absl::UnavailableError(message);
  }
}

absl::StatusOr<RangeResult> DecodeRangeReply(std::string_view body) {
  return Decode<RangeResult>("range", body, [&] {
    const json reply = ParseReply(body);
    RangeResult result;
    result.revision = HeaderRevision(reply);
    for (const json& kv : Array(reply, "kvs")) result.kvs.push_back(ReadKeyValue(kv));
    if (result.revision <= 0) throw ReplyError{"no header.revision"};
    return result;
  });
}

absl::StatusOr<int64_t> DecodePutReply(std::string_view body) {
  return Decode<int64_t>("put", body, [&] {
    const int64_t revision = HeaderRevision(ParseReply(body));
    if (revision <= 0) throw ReplyError{"no header.revision"};
    return revision;
  });
}

absl::StatusOr<int64_t> DecodeDeleteReply(std::string_view body) {
  return Decode<int64_t>("deleterange", body, [&] {
    const json reply = ParseReply(body);
    const int64_t revision = HeaderRevision(reply);
    if (revision <= 0) throw ReplyError{"no header.revision"};
    if (I64(reply, "deleted") < 0) throw ReplyError{"negative \"deleted\""};
    return revision;
  });
}

absl::StatusOr<TxnResult> DecodeTxnReply(std::string_view body) {
  return Decode<TxnResult>("txn", body, [&] {
    const json reply = ParseReply(body);
    TxnResult result;
    result.succeeded = Bool(reply, "succeeded");
    result.revision = HeaderRevision(reply);
    if (result.revision <= 0) throw ReplyError{"no header.revision"};
    return result;
  });
}

absl::StatusOr<MultiRangeResult> DecodeRangesTxnReply(std::string_view body, size_t ranges) {
  return Decode<MultiRangeResult>("txn of ranges", body, [&] {
    const json reply = ParseReply(body);
    MultiRangeResult result;
    result.revision = HeaderRevision(reply);
    if (result.revision <= 0) throw ReplyError{"no header.revision"};
    // A transaction without comparisons always runs its success branch.
    if (!Bool(reply, "succeeded")) throw ReplyError{"\"succeeded\" is not true"};
    const json& responses = Array(reply, "responses");
    if (responses.size() != ranges) {
      throw ReplyError{StrCat(responses.size(), " responses to ", ranges, " ranges")};
    }
    for (const json& response : responses) {
      if (!response.is_object()) throw ReplyError{"a response is not an object"};
      // A range that found nothing may be an empty object: protobuf's JSON leaves out empty
      // messages' fields. Any other kind of response is not an answer to a range.
      if (!response.empty() && !response.contains("response_range")) {
        throw ReplyError{"a response is not a range's"};
      }
      std::vector<KeyValue>& kvs = result.ranges.emplace_back();
      for (const json& kv : Array(Object(response, "response_range"), "kvs")) {
        kvs.push_back(ReadKeyValue(kv));
      }
    }
    return result;
  });
}

absl::StatusOr<LeaseGrant> DecodeLeaseGrantReply(std::string_view body) {
  struct Reply {
    LeaseGrant grant;
    std::string error;
  };
  absl::StatusOr<Reply> reply = Decode<Reply>("lease grant", body, [&] {
    const json j = ParseReply(body, /*error_is_a_field=*/true);
    Reply r;
    r.error = Str(j, "error");
    r.grant.id = I64(j, "ID");
    r.grant.ttl_seconds = I64(j, "TTL");
    if (r.error.empty() && r.grant.id <= 0) throw ReplyError{"no positive lease ID"};
    if (r.error.empty() && r.grant.ttl_seconds <= 0) throw ReplyError{"no positive TTL"};
    return r;
  });
  if (!reply.ok()) return reply.status();
  if (!reply->error.empty()) {
    return absl::UnavailableError(StrCat("etcd lease grant: ", reply->error.substr(0, 500)));
  }
  return reply->grant;
}

absl::StatusOr<int64_t> DecodeKeepAliveReply(std::string_view body, int64_t lease) {
  // The keep-alive stream's messages are one a line; the first answers the request.
  const std::string_view first = body.substr(0, body.find('\n'));
  absl::StatusOr<int64_t> ttl = Decode<int64_t>("lease keepalive", body, [&] {
    const json message = ParseReply(first);
    const json& result = Object(message, "result");
    if (result.empty()) throw ReplyError{"no \"result\""};
    const int64_t id = I64(result, "ID");
    if (id != lease) throw ReplyError{StrCat("answers lease ", id, ", not ", lease)};
    const int64_t ttl = I64(result, "TTL");
    if (ttl < 0) throw ReplyError{"negative TTL"};
    return ttl;
  });
  if (ttl.ok() && *ttl == 0) {
    return absl::NotFoundError(
        StrCat("etcd lease keepalive: lease ", lease, " not found (expired or revoked)"));
  }
  return ttl;
}

absl::StatusOr<int64_t> DecodeLeaseRevokeReply(std::string_view body) {
  return Decode<int64_t>("lease revoke", body, [&] {
    const int64_t revision = HeaderRevision(ParseReply(body));
    if (revision <= 0) throw ReplyError{"no header.revision"};
    return revision;
  });
}

GatewayError WatchCancelError(std::string_view cancel_reason) {
  // grpc-go's status.Error text: "rpc error: code = PermissionDenied desc = etcdserver: ...".
  static constexpr std::string_view kNames[] = {
      "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
      "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
      "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
      "DataLoss", "Unauthenticated"};
  GatewayError error;
  error.code = 2;
  error.message = std::string(cancel_reason.substr(0, 500));
  constexpr std::string_view kCode = "code = ";
  constexpr std::string_view kDesc = " desc = ";
  const size_t code_at = cancel_reason.find(kCode);
  const size_t desc_at = cancel_reason.find(kDesc);
  if (code_at == std::string_view::npos || desc_at == std::string_view::npos || desc_at < code_at) {
    return error;
  }
  const std::string_view name =
      cancel_reason.substr(code_at + kCode.size(), desc_at - code_at - kCode.size());
  for (size_t i = 1; i < std::size(kNames); ++i) {
    if (name == kNames[i]) error.code = static_cast<int>(i);
  }
  error.message = std::string(cancel_reason.substr(desc_at + kDesc.size(), 500));
  return error;
}

absl::StatusOr<std::string> DecodeAuthenticateReply(std::string_view body) {
  return Decode<std::string>("authenticate", body, [&] {
    const std::string token = Str(ParseReply(body), "token");
    if (token.empty()) throw ReplyError{"no token"};
    return token;
  });
}

absl::StatusOr<WatchMessage> DecodeWatchMessage(std::string_view line) {
  return Decode<WatchMessage>("watch", line, [&] {
    const json message = ParseReply(line);
    const json& result = Object(message, "result");
    if (result.empty()) throw ReplyError{"no \"result\""};
    WatchMessage out;
    out.created = Bool(result, "created");
    out.canceled = Bool(result, "canceled");
    out.cancel_reason = Str(result, "cancel_reason");
    out.compact_revision = I64(result, "compact_revision");
    out.header_revision = HeaderRevision(result);
    for (const json& event : Array(result, "events")) {
      if (!event.is_object()) throw ReplyError{"an event is not an object"};
      const std::string type = Str(event, "type");
      if (!type.empty() && type != "PUT" && type != "DELETE") {
        throw ReplyError{StrCat("unknown event type \"", absl::CHexEscape(type.substr(0, 40)),
                                "\"")};
      }
      const int64_t revision = I64(Object(event, "kv"), "mod_revision");
      if (revision <= 0) throw ReplyError{"an event has no kv.mod_revision"};
      ++out.event_count;
      out.max_event_revision = std::max(out.max_event_revision, revision);
    }
    if (out.compact_revision < 0 || out.header_revision < 0) {
      throw ReplyError{"negative revision"};
    }
    return out;
  });
}

}  // namespace ickpt::coord::etcd
