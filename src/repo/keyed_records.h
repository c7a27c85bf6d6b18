// The records of a keyed state manifest's key groups (format.md §5.3): how one entry or tombstone
// is laid out in a pack's raw stream, and the checks a reader makes on a group's records.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "src/repo/manifest.h"

namespace ickpt {

inline constexpr uint8_t kKeyedRecordValue = 0;
inline constexpr uint8_t kKeyedRecordTombstone = 1;

// Appends one record: a value, or a tombstone (`value` is then ignored).
void AppendKeyedRecord(std::string* out, std::string_view key, std::string_view value,
                       bool tombstone);
// The encoded size of that record.
uint64_t KeyedRecordSize(std::string_view key, std::string_view value, bool tombstone);

// Decodes the records of key group `span.group` from `bytes` (exactly the span's raw_length bytes)
// and calls fn(key, value, tombstone) for each, in key order. Checks every §5.3 rule: record
// syntax and limits, keys strictly increasing, each key in the span's group among `key_groups`,
// the record and tombstone counts, no byte left over. On the first violation returns DataLoss
// describing it (the caller names the manifest and checkpoint); records before it were already
// handed to fn, so a caller that must not act on damaged data collects first.
absl::Status DecodeKeyedGroup(
    std::string_view bytes, const KeyGroupSpan& span, uint32_t key_groups,
    absl::FunctionRef<void(std::string_view key, std::string_view value, bool tombstone)> fn);

}  // namespace ickpt
