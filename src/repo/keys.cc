#include "src/repo/keys.h"

#include <cstdio>

#include "absl/strings/ascii.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

// format.md §2: ids are written as exactly 20 decimal digits so that listing order is id order.
constexpr size_t kIdDigits = 20;
constexpr size_t kHashHexChars = 64;

std::string HashKey(std::string_view prefix, std::string_view hex) {
  return StrCat(prefix, hex.substr(0, 2), "/", hex);
}

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

}  // namespace

std::string IdKey(std::string_view prefix, uint64_t id) {
  char digits[kIdDigits + 1];
  std::snprintf(digits, sizeof(digits), "%020llu", static_cast<unsigned long long>(id));
  return StrCat(prefix, std::string_view(digits, kIdDigits));
}

std::string PackKey(std::string_view sha256_hex) { return HashKey(kPacksPrefix, sha256_hex); }
std::string ManifestKey(std::string_view sha256_hex) {
  return HashKey(kManifestsPrefix, sha256_hex);
}
std::string CommitKey(uint64_t id) { return IdKey(kCommitsPrefix, id); }
std::string IdReservationKey(uint64_t id) { return IdKey(kIdsPrefix, id); }
std::string AckPrefix(uint64_t id) { return StrCat(IdKey(kAcksPrefix, id), "/"); }
std::string AckKey(uint64_t id, std::string_view participant) {
  return StrCat(AckPrefix(id), participant);
}

std::string PolicyKey(uint64_t generation) { return IdKey(kPolicyPrefix, generation); }
std::string PinKey(std::string_view name) { return StrCat(kPinsPrefix, name); }
std::string CondemnedKey(uint64_t id) { return IdKey(kCondemnedPrefix, id); }
std::string MaintenanceLockKey(uint64_t generation) {
  return IdKey(kMaintenanceLockPrefix, generation);
}

std::string ConsolidationPrefix(uint64_t id) {
  return StrCat(IdKey(kConsolidationsPrefix, id), "/");
}
std::string ConsolidationKey(uint64_t id, uint64_t generation) {
  return IdKey(ConsolidationPrefix(id), generation);
}

std::string EpochKey(uint64_t epoch) { return IdKey(kEpochsPrefix, epoch); }

std::string EncodeLatestCommitIndex(uint64_t id) { return CommitKey(id); }
std::optional<uint64_t> ParseLatestCommitIndex(std::string_view bytes) {
  return ParseIdKey(bytes, kCommitsPrefix);
}

std::optional<std::pair<uint64_t, uint64_t>> ParseConsolidationKey(std::string_view key) {
  // merges/<20 digits>/<20 digits>
  const size_t slash = kConsolidationsPrefix.size() + kIdDigits;
  if (key.size() != slash + 1 + kIdDigits || key[slash] != '/') return std::nullopt;
  std::optional<uint64_t> id = ParseIdKey(key.substr(0, slash), kConsolidationsPrefix);
  std::optional<uint64_t> generation = ParseIdKey(key.substr(slash + 1), "");
  if (!id.has_value() || !generation.has_value()) return std::nullopt;
  return std::make_pair(*id, *generation);
}

std::optional<uint64_t> ParseIdKey(std::string_view key, std::string_view prefix) {
  if (!key.starts_with(prefix)) return std::nullopt;
  const std::string_view digits = key.substr(prefix.size());
  if (digits.size() != kIdDigits) return std::nullopt;
  uint64_t id = 0;
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    // 20 digits can exceed 2^64 - 1; such a key names no id this format can write.
    if (id > (UINT64_MAX - d) / 10) return std::nullopt;
    id = id * 10 + d;
  }
  // Ids are positive (format.md §7), so "…00000000000000000000" is not an id key.
  if (id == 0) return std::nullopt;
  return id;
}

std::optional<std::string> ParseHashKey(std::string_view key, std::string_view prefix) {
  if (!key.starts_with(prefix)) return std::nullopt;
  std::string_view rest = key.substr(prefix.size());
  if (rest.size() != 3 + kHashHexChars || rest[2] != '/') return std::nullopt;
  const std::string_view hex = rest.substr(3);
  for (char c : hex) {
    if (!IsLowerHex(c)) return std::nullopt;
  }
  if (rest.substr(0, 2) != hex.substr(0, 2)) return std::nullopt;
  return std::string(hex);
}

}  // namespace ickpt
