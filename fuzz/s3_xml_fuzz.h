// What the fuzz targets of the S3 XML codec (src/store/s3_xml.h) share: the one error a decoder
// may return, and a writer of replies from decoded values, independent of the codec, so that a
// decoded reply can be written back and decoded again. Header-only; included by fuzz/s3_*_fuzz.cc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "absl/status/status.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "fuzz/fuzz_check.h"
#include "src/util/str.h"

namespace ickpt::fuzz {

// Every decoder failure is InvalidArgument, its message opening with the reply kind.
inline void CheckS3Failure(const absl::Status& s, std::string_view kind) {
  ICKPT_FUZZ_CHECK(absl::IsInvalidArgument(s), s.ToString());
  const std::string_view message(s.message().data(), s.message().size());
  ICKPT_FUZZ_CHECK(message.substr(0, kind.size()) == kind && message.size() > kind.size() + 2,
                   "message without the reply kind: ", s.ToString());
}

// Any bytes as element text the decoders read back unchanged: markup characters as entities,
// every byte below 0x20 as a character reference (the decoders accept references to C0 controls,
// NUL included, as AWS writes them), other bytes raw (pugixml does not check UTF-8).
inline std::string XmlText(std::string_view bytes) {
  std::string out;
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    if (c == '&') {
      out += "&amp;";
    } else if (c == '<') {
      out += "&lt;";
    } else if (c == '>') {
      out += "&gt;";
    } else if (b < 0x20) {
      out += StrCat("&#", static_cast<int>(b), ";");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// `t` as S3 writes LastModified, with nanoseconds, or "" when its UTC year has not 4 digits (a
// time decoded with an offset can fall outside 0000-9999 in UTC).
inline std::string Iso8601(absl::Time t) {
  const absl::CivilSecond c = absl::ToCivilSecond(t, absl::UTCTimeZone());
  if (c.year() < 0 || c.year() > 9999) return "";
  const int64_t ns = absl::ToInt64Nanoseconds(t - absl::FromCivil(c, absl::UTCTimeZone()));
  return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:09d}Z", c.year(), c.month(),
                     c.day(), c.hour(), c.minute(), c.second(), ns);
}

}  // namespace ickpt::fuzz
