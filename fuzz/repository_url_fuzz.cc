// Fuzz target: repository URLs (format.md §12.2): ValidateRepositoryUrl and ParseS3Url.
//
// A URL is accepted exactly when it is a non-empty path, file://PATH with a non-empty path, or an
// s3:// URL that ParseS3Url accepts; a refused one is InvalidArgument and, for an unsupported
// scheme, names it. An accepted s3:// URL has a valid bucket, prefix and endpoint, and the URL
// rebuilt from what was parsed parses to the same options.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "ickpt/repository.h"
#include "ickpt/store.h"

namespace {

std::string PercentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += {'%', kHex[c >> 4], kHex[c & 15]};
    }
  }
  return out;
}

// The properties of an s3:// URL that parsed.
void CheckS3(std::string_view url) {
  using namespace ickpt;
  absl::StatusOr<S3StoreOptions> o = ParseS3Url(url);
  if (!o.ok()) {
    ICKPT_FUZZ_CHECK(absl::IsInvalidArgument(o.status()), o.status().ToString());
    ICKPT_FUZZ_CHECK(std::string(o.status().message()).find("S3 repository URL") == 0,
                     "the refusal does not say what it refused: ", o.status().ToString());
    return;
  }
  ICKPT_FUZZ_CHECK(o->bucket.size() >= 3 && o->bucket.size() <= 63, "bucket ", o->bucket);
  ICKPT_FUZZ_CHECK(o->prefix.empty() || ValidateObjectKey(o->prefix).ok(), "prefix ", o->prefix);
  ICKPT_FUZZ_CHECK(o->endpoint.find("://") != std::string::npos, "endpoint ", o->endpoint);
  std::string rebuilt = "s3://" + o->bucket + (o->prefix.empty() ? "" : "/" + o->prefix) +
                        "?endpoint=" + PercentEncode(o->endpoint);
  if (!o->region.empty()) rebuilt += "&region=" + PercentEncode(o->region);
  rebuilt += o->virtual_hosted ? "&addressing=virtual" : "&addressing=path";
  absl::StatusOr<S3StoreOptions> again = ParseS3Url(rebuilt);
  ICKPT_FUZZ_CHECK(again.ok(), "rebuilt URL refused: ", again.status().ToString());
  ICKPT_FUZZ_CHECK(again->bucket == o->bucket && again->prefix == o->prefix &&
                       again->endpoint == o->endpoint && again->region == o->region &&
                       again->virtual_hosted == o->virtual_hosted,
                   "rebuilt URL ", rebuilt, " parses differently");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ickpt;
  const std::string_view url = fuzz::AsView(data, size);
  const absl::Status s = ValidateRepositoryUrl(url);
  ICKPT_FUZZ_CHECK(s.ok() || absl::IsInvalidArgument(s), "unexpected code: ", s.ToString());
  // The model: "scheme://" with a scheme of [A-Za-z0-9+.-]+ is a URL; anything else a path.
  const size_t sep = url.find("://");
  const std::string_view scheme = sep == std::string_view::npos ? "" : url.substr(0, sep);
  const bool is_url = !scheme.empty() && std::all_of(scheme.begin(), scheme.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
  });
  bool accepted = false;
  if (!is_url) {
    accepted = !url.empty();
  } else if (scheme == "file") {
    std::string_view path = url.substr(sep + 3);
    if (path.starts_with("localhost/")) path.remove_prefix(9);
    accepted = !path.empty();
  } else if (scheme == "s3") {
    accepted = ParseS3Url(url).ok();
    CheckS3(url);
  }
  ICKPT_FUZZ_CHECK(s.ok() == accepted, "url of ", size, " bytes: ", s.ToString());
  if (is_url && scheme != "file" && scheme != "s3") {
    ICKPT_FUZZ_CHECK(std::string(s.message()).find(std::string("'") + std::string(scheme) + "'") !=
                         std::string::npos,
                     "the refusal does not name the scheme");
  }
  return 0;
}
