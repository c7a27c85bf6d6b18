// Fuzz target: the etcd v3 JSON gateway codec (src/coord/etcd_codec.h), every decoder: range, put,
// delete, txn, lease grant, keep-alive, revoke and watch replies, and the gateway's error object.
//
// Each input is decoded by all of them, as a whole and (like EtcdStore reads the watch stream) line
// by line as watch messages. A failure must be one of the codes the codec documents: DataLoss for
// a reply that does not decode, or a gateway error's mapped code. What decodes must be sane (a
// revision above 0, keys not empty, an event count matching its revision), and a decoded range
// re-encoded the way etcd writes it must decode to the same keys. The input is also used as keys,
// values and prefixes for the request encoders, whose JSON must parse back to those bytes, and
// for PrefixRangeEnd, checked against its definition.
//
// Seeds (fuzz/corpus/etcd_codec_fuzz/): replies captured from etcd 3.4.23 with curl.
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "fuzz/fuzz_check.h"
#include "nlohmann/json.hpp"
#include "src/coord/etcd_codec.h"

namespace ickpt::coord {
namespace {

using json = nlohmann::json;

// The lease id of the captured keep-alive replies, and one they do not hold.
constexpr int64_t kSeedLease = 4111120502238377528;
constexpr int64_t kOtherLease = 999;

bool DocumentedCode(const absl::Status& s) {
  return absl::IsDataLoss(s) || absl::IsNotFound(s) || absl::IsInvalidArgument(s) ||
         absl::IsFailedPrecondition(s) || absl::IsAborted(s) || absl::IsUnavailable(s);
}

template <typename T>
void CheckFailure(const absl::StatusOr<T>& result, std::string_view decoder) {
  if (result.ok()) return;
  ICKPT_FUZZ_CHECK(DocumentedCode(result.status()), decoder, ": ",
                   result.status().ToString());
}

std::string Base64(std::string_view bytes) {
  return absl::Base64Escape(absl::string_view(bytes.data(), bytes.size()));
}

// A decoded range written back as etcd would, then decoded again: the same keys.
void RoundTripRange(const RangeResult& range) {
  json kvs = json::array();
  for (const KeyValue& kv : range.kvs) {
    kvs.push_back({{"key", Base64(kv.key)},
                   {"value", Base64(kv.value)},
                   {"create_revision", std::to_string(kv.create_revision)},
                   {"mod_revision", std::to_string(kv.mod_revision)},
                   {"version", std::to_string(kv.version)},
                   {"lease", std::to_string(kv.lease)}});
  }
  const json reply = {{"header", {{"revision", std::to_string(range.revision)}}}, {"kvs", kvs}};
  absl::StatusOr<RangeResult> again = etcd::DecodeRangeReply(reply.dump());
  ICKPT_FUZZ_CHECK(again.ok(), again.status().ToString());
  ICKPT_FUZZ_CHECK(again->revision == range.revision, "revision changed");
  ICKPT_FUZZ_CHECK(again->kvs.size() == range.kvs.size(), "key count changed");
  for (size_t i = 0; i < range.kvs.size(); ++i) {
    const KeyValue& a = range.kvs[i];
    const KeyValue& b = again->kvs[i];
    ICKPT_FUZZ_CHECK(a.key == b.key && a.value == b.value &&
                         a.create_revision == b.create_revision &&
                         a.mod_revision == b.mod_revision && a.version == b.version &&
                         a.lease == b.lease,
                     "key-value ", i, " changed");
  }
}

void DecodeReplies(std::string_view body) {
  absl::StatusOr<RangeResult> range = etcd::DecodeRangeReply(body);
  CheckFailure(range, "range");
  if (range.ok()) {
    ICKPT_FUZZ_CHECK(range->revision > 0, "range revision ", range->revision);
    for (const KeyValue& kv : range->kvs) ICKPT_FUZZ_CHECK(!kv.key.empty(), "empty key");
    RoundTripRange(*range);
  }
  for (auto decode : {etcd::DecodePutReply, etcd::DecodeDeleteReply, etcd::DecodeLeaseRevokeReply}) {
    absl::StatusOr<int64_t> revision = decode(body);
    CheckFailure(revision, "put/delete/revoke");
    if (revision.ok()) ICKPT_FUZZ_CHECK(*revision > 0, "revision ", *revision);
  }
  for (size_t n : {size_t{1}, size_t{3}}) {
    absl::StatusOr<MultiRangeResult> ranges = etcd::DecodeRangesTxnReply(body, n);
    CheckFailure(ranges, "ranges txn");
    if (ranges.ok()) {
      ICKPT_FUZZ_CHECK(ranges->revision > 0 && ranges->ranges.size() == n, "ranges txn shape");
      for (const auto& kvs : ranges->ranges) {
        for (const KeyValue& kv : kvs) ICKPT_FUZZ_CHECK(!kv.key.empty(), "empty key");
      }
    }
  }
  absl::StatusOr<TxnResult> txn = etcd::DecodeTxnReply(body);
  CheckFailure(txn, "txn");
  if (txn.ok()) ICKPT_FUZZ_CHECK(txn->revision > 0, "txn revision ", txn->revision);

  absl::StatusOr<etcd::LeaseGrant> grant = etcd::DecodeLeaseGrantReply(body);
  CheckFailure(grant, "lease grant");
  if (grant.ok()) {
    ICKPT_FUZZ_CHECK(grant->id > 0 && grant->ttl_seconds > 0, "lease ", grant->id, " ttl ",
                     grant->ttl_seconds);
  }
  for (int64_t lease : {kSeedLease, kOtherLease}) {
    absl::StatusOr<int64_t> ttl = etcd::DecodeKeepAliveReply(body, lease);
    CheckFailure(ttl, "keepalive");
    if (ttl.ok()) ICKPT_FUZZ_CHECK(*ttl > 0, "keepalive ttl ", *ttl);
  }

  absl::StatusOr<etcd::GatewayError> error = etcd::DecodeGatewayError(body);
  CheckFailure(error, "gateway error");
  if (error.ok()) {
    const absl::Status status = etcd::GatewayErrorStatus(*error, "fuzz");
    ICKPT_FUZZ_CHECK(!status.ok() && DocumentedCode(status), status.ToString());
    // Every input classifies (as no authentication error at worst) without crashing.
    (void)etcd::ClassifyAuthError(error->code, error->message);
  }

  absl::StatusOr<std::string> token = etcd::DecodeAuthenticateReply(body);
  CheckFailure(token, "authenticate");
  if (token.ok()) ICKPT_FUZZ_CHECK(!token->empty(), "an empty token decoded");

  // A watch's cancel reason: any text gives a gateway error whose status is a documented one.
  const etcd::GatewayError cancel = etcd::WatchCancelError(body);
  const absl::Status cancel_status = etcd::GatewayErrorStatus(cancel, "fuzz");
  ICKPT_FUZZ_CHECK(!cancel_status.ok() && DocumentedCode(cancel_status), cancel_status.ToString());
}

void DecodeWatchStream(std::string_view stream) {
  size_t start = 0;
  while (start <= stream.size()) {
    size_t end = stream.find('\n', start);
    if (end == std::string_view::npos) end = stream.size();
    absl::StatusOr<etcd::WatchMessage> message =
        etcd::DecodeWatchMessage(stream.substr(start, end - start));
    CheckFailure(message, "watch");
    if (message.ok()) {
      ICKPT_FUZZ_CHECK(message->event_count >= 0, "event count");
      ICKPT_FUZZ_CHECK((message->event_count > 0) == (message->max_event_revision > 0),
                       message->event_count, " events, highest revision ",
                       message->max_event_revision);
      ICKPT_FUZZ_CHECK(message->compact_revision >= 0 && message->header_revision >= 0,
                       "negative revision");
    }
    start = end + 1;
  }
}

// The request encoders on the input's bytes: valid JSON holding those bytes.
void EncodeRequests(std::string_view bytes) {
  const json put = json::parse(etcd::EncodePutRequest(bytes, bytes, 42), nullptr, false);
  ICKPT_FUZZ_CHECK(put.is_object() && put.value("key", "") == Base64(bytes) &&
                       put.value("lease", "") == "42",
                   "put request");
  const json txn = json::parse(
      etcd::EncodeTxnRequest({Compare{std::string(bytes), Compare::Target::kValue,
                                      Compare::Result::kLess, 0, std::string(bytes)}},
                             {TxnOp::Put(std::string(bytes), "v")},
                             {TxnOp::DeletePrefix(std::string(bytes))}),
      nullptr, false);
  ICKPT_FUZZ_CHECK(txn.is_object() && txn["compare"].size() == 1 && txn["success"].size() == 1 &&
                       txn["failure"].size() == 1,
                   "txn request");
  const json watch =
      json::parse(etcd::EncodeWatchCreateRequest(KeyRange::Prefix(bytes), 7), nullptr, false);
  ICKPT_FUZZ_CHECK(watch.is_object() && watch["create_request"]["start_revision"] == "7",
                   "watch request");
  const json ranges = json::parse(
      etcd::EncodeRangesTxnRequest({KeyRange::Single(std::string(bytes)), KeyRange::Prefix(bytes)}),
      nullptr, false);
  ICKPT_FUZZ_CHECK(ranges.is_object() && ranges["success"].size() == 2 &&
                       ranges["success"][0]["request_range"].value("key", "") == Base64(bytes) &&
                       !ranges["success"][0]["request_range"].contains("range_end"),
                   "ranges txn request");

  // PrefixRangeEnd: the least string above every string starting with `bytes`, or "\0" (no end).
  const std::string end = etcd::PrefixRangeEnd(bytes);
  const bool unbounded =
      bytes.find_first_not_of('\xff') == std::string_view::npos;  // empty or all 0xff
  if (unbounded) {
    ICKPT_FUZZ_CHECK(end == std::string(1, '\0'), "unbounded prefix needs \"\\0\"");
  } else {
    ICKPT_FUZZ_CHECK(std::string_view(end) > bytes, "range end not above the prefix");
    ICKPT_FUZZ_CHECK(std::string(bytes) + "\xff\xff\xff" < end, "range end cuts the prefix");
    ICKPT_FUZZ_CHECK(end.size() <= bytes.size() && end.substr(0, end.size() - 1) ==
                                                       bytes.substr(0, end.size() - 1),
                     "range end is not the prefix with one byte incremented");
  }
}

}  // namespace
}  // namespace ickpt::coord

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ickpt;
  const std::string_view bytes = fuzz::AsView(data, size);
  coord::DecodeReplies(bytes);
  coord::DecodeWatchStream(bytes);
  if (size <= 4096) coord::EncodeRequests(bytes);
  return 0;
}
