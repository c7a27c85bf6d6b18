// Object keys of the repository layout (format.md §2).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace ickpt {

inline constexpr std::string_view kConfigKey = "config";
inline constexpr std::string_view kPacksPrefix = "packs/";
inline constexpr std::string_view kManifestsPrefix = "manifests/";
inline constexpr std::string_view kCommitsPrefix = "commits/";
inline constexpr std::string_view kIdsPrefix = "ids/";
inline constexpr std::string_view kAcksPrefix = "acks/";
// Retention and GC (format.md §13).
inline constexpr std::string_view kPolicyPrefix = "policy/";
inline constexpr std::string_view kPinsPrefix = "pins/";
inline constexpr std::string_view kCondemnedPrefix = "condemned/";
inline constexpr std::string_view kMaintenanceLockPrefix = "locks/maintenance-";
inline constexpr std::string_view kProbePrefix = "locks/probe-";
// Consolidation (format.md §14).
inline constexpr std::string_view kConsolidationsPrefix = "merges/";
// Coordinator epochs and fencing (format.md §15).
inline constexpr std::string_view kEpochsPrefix = "epochs/";
// The latest-commit index (format.md §6.2, since 1.6): a cache, never trusted.
inline constexpr std::string_view kLatestCommitIndexKey = "index/latest-commit";

// "<prefix><id:020>": the key of an id under a prefix that orders its keys by id.
std::string IdKey(std::string_view prefix, uint64_t id);
std::string PackKey(std::string_view sha256_hex);                // packs/ab/ab...
std::string ManifestKey(std::string_view sha256_hex);            // manifests/ab/ab...
std::string CommitKey(uint64_t id);                              // commits/000...042
std::string IdReservationKey(uint64_t id);                       // ids/000...042
std::string AckPrefix(uint64_t id);                              // acks/000...042/
std::string AckKey(uint64_t id, std::string_view participant);   // acks/000...042/<participant>
std::string PolicyKey(uint64_t generation);                      // policy/000...007
std::string PinKey(std::string_view name);                       // pins/<name>
std::string CondemnedKey(uint64_t id);                           // condemned/000...042
std::string MaintenanceLockKey(uint64_t generation);             // locks/maintenance-000...003
std::string ConsolidationPrefix(uint64_t id);                    // merges/000...042/
std::string ConsolidationKey(uint64_t id, uint64_t generation);  // merges/000...042/000...002
std::string EpochKey(uint64_t epoch);                            // epochs/000...007
// The id and generation of "merges/<20 digits>/<20 digits>"; nullopt for any other key.
std::optional<std::pair<uint64_t, uint64_t>> ParseConsolidationKey(std::string_view key);
// The id of "<prefix><20 digits>" (commits/, ids/, policy/, condemned/, locks/maintenance-,
// epochs/);
// nullopt for any other key.
std::optional<uint64_t> ParseIdKey(std::string_view key, std::string_view prefix);
// The latest-commit index's bytes (format.md §6.2): the commit key of a recent commit.
std::string EncodeLatestCommitIndex(uint64_t id);
// The id the index names; nullopt for anything but exactly the bytes EncodeLatestCommitIndex
// writes (the index is a hint: a reader that cannot use it lists every commit instead).
std::optional<uint64_t> ParseLatestCommitIndex(std::string_view bytes);
// The hash of "packs/<h2>/<h>" or "manifests/<h2>/<h>"; nullopt if malformed.
std::optional<std::string> ParseHashKey(std::string_view key, std::string_view prefix);

}  // namespace ickpt
