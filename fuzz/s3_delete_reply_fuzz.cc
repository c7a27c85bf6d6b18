// Fuzz target: multi-object delete replies and requests (src/store/s3_xml.h), DecodeDeleteReply and
// EncodeDeleteRequest.
//
// Each input is decoded as a whole document, and also as the text of a <Deleted> entry's key of an
// otherwise valid reply (Debian's pugixml is not instrumented: libFuzzer sees no coverage in it).
//
// Every failure must be InvalidArgument naming the reply kind. What decodes must hold non-empty
// keys and codes; written back as S3 would (fuzz/s3_xml_fuzz.h), it must decode to the same
// entries. The round trip through the request: the decoded keys (the input itself, too, as one
// key) encoded as a delete request, that request turned into the reply S3 sends when it deleted
// every key (<Delete> -> <DeleteResult>, <Object> -> <Deleted>: the key text stays as encoded),
// must decode to the same keys in the same order. The encoder may refuse keys only for a reason it
// documents: a printable-ASCII key (tab, LF and CR included) is always accepted.
//
// Seeds (fuzz/corpus/s3_delete_reply_fuzz/): replies written after AWS's DeleteObjects reference
// and RGW 16's rgw_rest_s3.cc.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_replace.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/s3_xml_fuzz.h"
#include "src/store/s3_xml.h"
#include "src/util/str.h"

namespace ickpt::s3 {
namespace {

constexpr std::string_view kKind = "DeleteObjects reply";

std::string Write(const DeleteReply& r) {
  std::string out = R"(<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">)";
  for (const std::string& key : r.deleted) {
    out += StrCat("<Deleted><Key>", fuzz::XmlText(key), "</Key></Deleted>");
  }
  for (const DeleteFailure& f : r.failures) {
    out += StrCat("<Error><Key>", fuzz::XmlText(f.key), "</Key><Code>", fuzz::XmlText(f.code),
                  "</Code><Message>", fuzz::XmlText(f.message), "</Message></Error>");
  }
  return out + "</DeleteResult>";
}

bool EncoderMustAccept(const std::vector<std::string>& keys) {
  if (keys.empty() || keys.size() > kMaxDeleteKeys) return false;
  for (const std::string& key : keys) {
    if (key.empty()) return false;
    for (char c : key) {
      if (!((c >= 0x20 && c < 0x7F) || c == '\t' || c == '\n' || c == '\r')) return false;
    }
  }
  return true;
}

// Encodes `keys` as a request and reads it back as the reply of a delete of all of them.
void CheckRequestRoundTrip(const std::vector<std::string>& keys, bool quiet) {
  absl::StatusOr<std::string> request = EncodeDeleteRequest(keys, quiet);
  if (!request.ok()) {
    ICKPT_FUZZ_CHECK(absl::IsInvalidArgument(request.status()), request.status().ToString());
    ICKPT_FUZZ_CHECK(!EncoderMustAccept(keys), "refused: ", request.status().ToString());
    return;
  }
  ICKPT_FUZZ_CHECK(!keys.empty() && keys.size() <= kMaxDeleteKeys, keys.size(), " keys accepted");
  ICKPT_FUZZ_CHECK(Contains(*request, quiet ? "<Quiet>true</Quiet>" : "<Quiet>false</Quiet>"),
                   "quiet flag");
  const std::string as_reply = absl::StrReplaceAll(*request, {{"<Delete ", "<DeleteResult "},
                                                              {"</Delete>", "</DeleteResult>"},
                                                              {"<Object>", "<Deleted>"},
                                                              {"</Object>", "</Deleted>"}});
  absl::StatusOr<DeleteReply> reply = DecodeDeleteReply(as_reply);
  ICKPT_FUZZ_CHECK(reply.ok(), reply.status().ToString(), " for ", as_reply);
  ICKPT_FUZZ_CHECK(reply->failures.empty(), "failures from a request");
  ICKPT_FUZZ_CHECK(reply->deleted == keys, "keys do not round-trip through ", *request);
}

void DecodeAndCheck(std::string_view xml) {
  absl::StatusOr<DeleteReply> reply = DecodeDeleteReply(xml);
  if (!reply.ok()) {
    fuzz::CheckS3Failure(reply.status(), kKind);
    return;
  }
  ICKPT_FUZZ_CHECK(!DecodeErrorReply(xml).ok(), "a delete reply is also an error reply");
  std::vector<std::string> keys = reply->deleted;
  for (const DeleteFailure& f : reply->failures) {
    ICKPT_FUZZ_CHECK(!f.key.empty() && !f.code.empty(), "failure without key or code");
    keys.push_back(f.key);
  }
  for (const std::string& key : reply->deleted) ICKPT_FUZZ_CHECK(!key.empty(), "empty key");

  const std::string rewritten = Write(*reply);
  absl::StatusOr<DeleteReply> again = DecodeDeleteReply(rewritten);
  ICKPT_FUZZ_CHECK(again.ok(), again.status().ToString(), " for ", rewritten);
  ICKPT_FUZZ_CHECK(again->deleted == reply->deleted, "deleted keys do not round-trip");
  ICKPT_FUZZ_CHECK(again->failures.size() == reply->failures.size(), "failure count differs");
  for (size_t i = 0; i < reply->failures.size(); ++i) {
    const DeleteFailure& a = reply->failures[i];
    const DeleteFailure& b = again->failures[i];
    ICKPT_FUZZ_CHECK(a.key == b.key && a.code == b.code && a.message == b.message, "failure #",
                     i + 1, " does not round-trip");
  }
  // A caller retries the keys that failed, and may delete them all again.
  if (!keys.empty() && keys.size() <= kMaxDeleteKeys) CheckRequestRoundTrip(keys, keys.size() % 2);
}

}  // namespace
}  // namespace ickpt::s3

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ickpt;
  const std::string_view bytes = fuzz::AsView(data, size);
  s3::DecodeAndCheck(bytes);
  s3::DecodeAndCheck(StrCat("<DeleteResult><Deleted><Key>", bytes,
                            "</Key></Deleted><Error><Key>b</Key><Code>AccessDenied</Code>"
                            "</Error></DeleteResult>"));
  s3::CheckRequestRoundTrip({std::string(bytes)}, size % 2 == 0);
  return 0;
}
