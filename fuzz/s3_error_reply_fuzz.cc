// Fuzz target: S3 error replies (src/store/s3_xml.h), DecodeErrorReply.
//
// Each input is decoded as a whole document, and also as the text of the <Code> and of the
// <Message> of an otherwise valid reply, so that mutations reach the text decoding without first
// having to build a document (Debian's pugixml is not instrumented: libFuzzer sees no coverage in
// it).
//
// Every failure must be InvalidArgument naming the reply kind. What decodes must have a code;
// written back as S3 would (fuzz/s3_xml_fuzz.h), it must decode to the same four fields. An error
// reply is never a listing nor a delete reply, and a listing decoder given it must quote its code.
//
// Seeds (fuzz/corpus/s3_error_reply_fuzz/): replies written after AWS's error reference and RGW
// 16's rgw_rest_s3.cc.
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/s3_xml_fuzz.h"
#include "src/store/s3_xml.h"
#include "src/util/str.h"

namespace ickpt::s3 {
namespace {

constexpr std::string_view kKind = "S3 error reply";

std::string Write(const ErrorReply& e) {
  return StrCat(R"(<?xml version="1.0" encoding="UTF-8"?>)", "\n<Error><Code>",
                fuzz::XmlText(e.code), "</Code><Message>", fuzz::XmlText(e.message),
                "</Message><Resource>", fuzz::XmlText(e.resource), "</Resource><RequestId>",
                fuzz::XmlText(e.request_id), "</RequestId><HostId>h</HostId></Error>");
}

void DecodeAndCheck(std::string_view xml) {
  absl::StatusOr<ErrorReply> reply = DecodeErrorReply(xml);
  if (!reply.ok()) {
    fuzz::CheckS3Failure(reply.status(), kKind);
    return;
  }
  ICKPT_FUZZ_CHECK(!reply->code.empty(), "empty code");
  absl::StatusOr<ListObjectsReply> listing = DecodeListObjectsReply(xml);
  ICKPT_FUZZ_CHECK(!listing.ok(), "an error reply is also a listing");
  ICKPT_FUZZ_CHECK(!DecodeDeleteReply(xml).ok(), "an error reply is also a delete reply");
  const std::string message(listing.status().message().data(), listing.status().message().size());
  ICKPT_FUZZ_CHECK(Contains(message, "an S3 error reply: "), "listing error: ", message);

  const std::string rewritten = Write(*reply);
  absl::StatusOr<ErrorReply> again = DecodeErrorReply(rewritten);
  ICKPT_FUZZ_CHECK(again.ok(), again.status().ToString(), " for ", rewritten);
  ICKPT_FUZZ_CHECK(again->code == reply->code && again->message == reply->message &&
                       again->resource == reply->resource && again->request_id == reply->request_id,
                   "error reply does not round-trip: ", rewritten);
}

}  // namespace
}  // namespace ickpt::s3

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ickpt;
  const std::string_view bytes = fuzz::AsView(data, size);
  s3::DecodeAndCheck(bytes);
  s3::DecodeAndCheck(StrCat("<Error><Code>", bytes, "</Code><Message>m</Message></Error>"));
  s3::DecodeAndCheck(StrCat("<Error><Code>SlowDown</Code><Message>", bytes, "</Message></Error>"));
  return 0;
}
