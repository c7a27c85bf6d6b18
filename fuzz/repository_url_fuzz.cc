// Fuzz target: repository URLs (format.md §12.2): ValidateRepositoryUrl.
//
// A URL is accepted exactly when it is a non-empty path, or file://PATH with a non-empty path; a
// refused one is InvalidArgument and, for an unsupported scheme, names it.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "ickpt/repository.h"

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
  }
  ICKPT_FUZZ_CHECK(s.ok() == accepted, "url of ", size, " bytes: ", s.ToString());
  if (is_url && scheme != "file") {
    ICKPT_FUZZ_CHECK(std::string(s.message()).find(std::string("'") + std::string(scheme) + "'") !=
                         std::string::npos,
                     "the refusal does not name the scheme");
  }
  return 0;
}
