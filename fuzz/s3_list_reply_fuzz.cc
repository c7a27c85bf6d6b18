// Fuzz target: ListObjectsV2 replies (src/store/s3_xml.h), DecodeListObjectsReply.
//
// Each input is decoded as a whole document, and also as the text of one field of an otherwise
// valid reply (a key, a size, a time, the continuation token), so that mutations reach the text
// decoding (references, CDATA), the size and the time parsers without first having to build a
// whole document: pugixml is Debian's, not instrumented, so libFuzzer sees no coverage inside it.
//
// Every failure must be InvalidArgument naming the reply kind. What decodes must hold non-empty
// keys and, when truncated, a token; written back as S3 would (fuzz/s3_xml_fuzz.h), it must decode
// to the same objects, sizes, times and token. No bytes are both a listing and an error reply.
// A size decodes exactly when a second, independent reading of its digits says it should.
//
// Seeds (fuzz/corpus/s3_list_reply_fuzz/): replies written after AWS's API reference and RGW 16's
// rgw_rest_s3.cc.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/time/time.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/s3_xml_fuzz.h"
#include "src/store/s3_xml.h"
#include "src/util/str.h"

namespace ickpt::s3 {
namespace {

constexpr std::string_view kKind = "ListObjectsV2 reply";

// A valid reply with one object, `field` replaced by `text`.
std::string OneObject(std::string_view field, std::string_view text) {
  const auto value = [&](std::string_view name, std::string_view fallback) {
    return name == field ? text : fallback;
  };
  return StrCat(R"(<?xml version="1.0" encoding="UTF-8"?><ListBucketResult )",
                R"(xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>)",
                value("IsTruncated", "true"), "</IsTruncated><NextContinuationToken>",
                value("NextContinuationToken", "tok"), "</NextContinuationToken><Contents><Key>",
                value("Key", "k"), "</Key><LastModified>",
                value("LastModified", "2026-12-08T01:02:03.456Z"), "</LastModified><Size>",
                value("Size", "1"), "</Size></Contents></ListBucketResult>");
}

// The reply as S3 would write it, or nullopt when a time cannot be written with a 4-digit year.
std::optional<std::string> Rewrite(const ListObjectsReply& reply) {
  std::string out =
      StrCat(R"(<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">)",
             "<IsTruncated>", reply.is_truncated ? "true" : "false", "</IsTruncated>");
  if (!reply.next_continuation_token.empty()) {
    out += StrCat("<NextContinuationToken>", fuzz::XmlText(reply.next_continuation_token),
                  "</NextContinuationToken>");
  }
  for (const ListedObject& o : reply.objects) {
    const std::string time = fuzz::Iso8601(o.last_modified);
    if (time.empty()) return std::nullopt;
    out += StrCat("<Contents><Key>", fuzz::XmlText(o.key), "</Key><LastModified>", time,
                  "</LastModified><Size>", o.size, "</Size></Contents>");
  }
  out += "</ListBucketResult>";
  return out;
}

void DecodeAndCheck(std::string_view xml) {
  absl::StatusOr<ListObjectsReply> reply = DecodeListObjectsReply(xml);
  if (!reply.ok()) {
    fuzz::CheckS3Failure(reply.status(), kKind);
    return;
  }
  ICKPT_FUZZ_CHECK(!DecodeErrorReply(xml).ok(), "a listing is also an error reply");
  ICKPT_FUZZ_CHECK(!reply->is_truncated || !reply->next_continuation_token.empty(),
                   "truncated without a token");
  for (const ListedObject& o : reply->objects) {
    ICKPT_FUZZ_CHECK(!o.key.empty(), "empty key");
    ICKPT_FUZZ_CHECK(
        o.last_modified != absl::InfiniteFuture() && o.last_modified != absl::InfinitePast(),
        "infinite time");
  }
  const std::optional<std::string> rewritten = Rewrite(*reply);
  if (!rewritten.has_value()) return;
  absl::StatusOr<ListObjectsReply> again = DecodeListObjectsReply(*rewritten);
  ICKPT_FUZZ_CHECK(again.ok(), again.status().ToString(), " for ", *rewritten);
  ICKPT_FUZZ_CHECK(again->is_truncated == reply->is_truncated, "truncation differs");
  ICKPT_FUZZ_CHECK(again->next_continuation_token == reply->next_continuation_token,
                   "token differs");
  ICKPT_FUZZ_CHECK(again->objects.size() == reply->objects.size(), "object count differs");
  for (size_t i = 0; i < reply->objects.size(); ++i) {
    const ListedObject& a = reply->objects[i];
    const ListedObject& b = again->objects[i];
    ICKPT_FUZZ_CHECK(a.key == b.key && a.size == b.size && a.last_modified == b.last_modified,
                     "object #", i + 1, " does not round-trip: ", *rewritten);
  }
}

// Text without markup or references is a size exactly when it is decimal digits, with XML
// whitespace around, of a value below 2^64: checked against a second reading of the digits.
void CheckSize(std::string_view text) {
  if (text.find_first_of("<&") != std::string_view::npos) return;
  std::string_view digits = text;
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!digits.empty() && space(digits.front())) digits.remove_prefix(1);
  while (!digits.empty() && space(digits.back())) digits.remove_suffix(1);
  bool expect_ok = !digits.empty();
  unsigned __int128 value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') {
      expect_ok = false;
      break;
    }
    value = value * 10 + static_cast<unsigned>(c - '0');
    if (value > UINT64_MAX) {
      expect_ok = false;
      break;
    }
  }
  absl::StatusOr<ListObjectsReply> reply = DecodeListObjectsReply(OneObject("Size", text));
  ICKPT_FUZZ_CHECK(reply.ok() == expect_ok, "size ", absl::CHexEscape(ToAbsl(text)), ": ",
                   reply.status().ToString());
  if (expect_ok) ICKPT_FUZZ_CHECK(reply->objects.at(0).size == value, "size value");
}

}  // namespace
}  // namespace ickpt::s3

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ickpt;
  const std::string_view bytes = fuzz::AsView(data, size);
  s3::DecodeAndCheck(bytes);
  for (std::string_view field : {"Key", "Size", "LastModified", "NextContinuationToken"}) {
    s3::DecodeAndCheck(s3::OneObject(field, bytes));
  }
  s3::CheckSize(bytes);
  return 0;
}
