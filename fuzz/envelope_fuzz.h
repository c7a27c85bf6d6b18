// What the fuzz targets of JSON-in-envelope objects (format.md §3.1) share: the error codes a
// decoder may return, the time comparison a round trip allows, the envelope's payload as JSON, and
// the same input resealed (length and checksum made right) so that mutations reach the JSON.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "fuzz/fuzz_check.h"
#include "nlohmann/json.hpp"
#include "src/util/coding.h"
#include "src/util/hash.h"

namespace ickpt::fuzz {

inline constexpr size_t kEnvelopeHeaderBytes = 16;
inline constexpr size_t kEnvelopeTrailerBytes = 8;

// Every decoder failure must be damage (DataLoss) or a newer major version (FailedPrecondition).
inline void CheckEnvelopeErrorCode(const absl::Status& s) {
  ICKPT_FUZZ_CHECK(absl::IsDataLoss(s) || absl::IsFailedPrecondition(s), s.ToString());
}

// Times are written with nanoseconds (RFC 3339, 9 fractional digits), but the decoders accept more
// digits and keep absl::Time's quarter nanoseconds, which no encoder writes back: "…40.1234560789Z"
// decodes to …078.75 ns and re-encodes as …078 ns (seed policy-created-10-fraction-digits of
// maintenance_objects_fuzz, the input that found it). So a decoded time must equal its round trip
// to the nanosecond, floored as FormatTime floors (toward the past, before 1970 too), and then
// exactly (the re-encoded bytes must be stable, which the targets check).
inline bool SameTime(absl::Time decoded, absl::Time again) {
  if (decoded == again) return true;
  const absl::Duration ns = absl::Nanoseconds(1);
  return absl::Floor(decoded - absl::UnixEpoch(), ns) == again - absl::UnixEpoch();
}

// The envelope's payload parsed as JSON (a discarded value if it is not JSON or too short).
inline nlohmann::json EnvelopePayload(std::string_view bytes) {
  if (bytes.size() < kEnvelopeHeaderBytes + kEnvelopeTrailerBytes) {
    return nlohmann::json(nlohmann::json::value_t::discarded);
  }
  return nlohmann::json::parse(
      bytes.substr(kEnvelopeHeaderBytes,
                   bytes.size() - kEnvelopeHeaderBytes - kEnvelopeTrailerBytes),
      nullptr, /*allow_exceptions=*/false);
}

// `bytes` with the payload length field and the xxh3 trailer recomputed; nullopt if too short.
inline std::optional<std::string> Resealed(std::string_view bytes) {
  if (bytes.size() < kEnvelopeHeaderBytes + kEnvelopeTrailerBytes) return std::nullopt;
  std::string sealed(bytes.substr(0, bytes.size() - kEnvelopeTrailerBytes));
  std::string length;
  PutFixed32(&length, static_cast<uint32_t>(sealed.size() - kEnvelopeHeaderBytes));
  sealed.replace(12, 4, length);
  PutFixed64(&sealed, Xxh3(sealed));
  return sealed;
}

}  // namespace ickpt::fuzz
