// Keyed state records, format.md §5.3.
#include "src/repo/keyed_records.h"

#include <algorithm>
#include <cstring>

#include "ickpt/key_group.h"
#include "src/util/coding.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

size_t VarintLength(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Unsigned byte order, a prefix before its extensions (the order of a change set, §5.3).
bool KeyLess(std::string_view a, std::string_view b) {
  const size_t n = std::min(a.size(), b.size());
  const int c = n == 0 ? 0 : std::memcmp(a.data(), b.data(), n);
  return c < 0 || (c == 0 && a.size() < b.size());
}

}  // namespace

void AppendKeyedRecord(std::string* out, std::string_view key, std::string_view value,
                       bool tombstone) {
  out->push_back(static_cast<char>(tombstone ? kKeyedRecordTombstone : kKeyedRecordValue));
  PutVarint64(out, key.size());
  if (!tombstone) PutVarint64(out, value.size());
  out->append(key);
  if (!tombstone) out->append(value);
}

uint64_t KeyedRecordSize(std::string_view key, std::string_view value, bool tombstone) {
  uint64_t n = 1 + VarintLength(key.size()) + key.size();
  if (!tombstone) n += VarintLength(value.size()) + value.size();
  return n;
}

absl::Status DecodeKeyedGroup(
    std::string_view bytes, const KeyGroupSpan& span, uint32_t key_groups,
    absl::FunctionRef<void(std::string_view key, std::string_view value, bool tombstone)> fn) {
  auto damaged = [&](uint64_t record, std::string_view what) {
    return absl::DataLossError(StrCat("key group ", span.group, ", record ", record, ": ", what));
  };
  if (bytes.size() != span.raw_length) {
    return absl::DataLossError(StrCat("key group ", span.group, " has ", bytes.size(),
                                      " bytes, its span says ", span.raw_length));
  }
  Decoder d(bytes);
  std::string_view previous;
  uint64_t records = 0;
  uint64_t tombstones = 0;
  while (!d.empty()) {
    if (records == span.records) {
      return damaged(records,
                     StrCat(d.remaining(), " bytes follow the last of ", span.records, " records"));
    }
    uint8_t type = 0;
    uint64_t key_len = 0;
    uint64_t value_len = 0;
    if (!d.GetFixed8(&type)) return damaged(records, "truncated");
    if (type != kKeyedRecordValue && type != kKeyedRecordTombstone) {
      return damaged(records, StrCat("unknown record type ", static_cast<int>(type)));
    }
    const bool tombstone = type == kKeyedRecordTombstone;
    if (!d.GetVarint64(&key_len) || (!tombstone && !d.GetVarint64(&value_len))) {
      return damaged(records, "truncated lengths");
    }
    if (key_len > kMaxKeySize || value_len > kMaxValueSize) {
      return damaged(records, StrCat("key of ", key_len, " or value of ", value_len,
                                     " bytes exceeds the limits"));
    }
    std::string_view key, value;
    if (!d.GetBytes(key_len, &key) || !d.GetBytes(value_len, &value)) {
      return damaged(records, StrCat("truncated: key of ", key_len, " and value of ", value_len,
                                     " bytes do not fit"));
    }
    if (records > 0 && !KeyLess(previous, key)) {
      return damaged(records, "keys are not strictly increasing");
    }
    if (KeyGroupOf(key, key_groups) != span.group) {
      return damaged(records, StrCat("the key belongs to key group ", KeyGroupOf(key, key_groups)));
    }
    fn(key, value, tombstone);
    previous = key;
    ++records;
    if (tombstone) ++tombstones;
  }
  if (records != span.records || tombstones != span.tombstones) {
    return absl::DataLossError(StrCat("key group ", span.group, " holds ", records, " records and ",
                                      tombstones, " tombstones, its span says ", span.records,
                                      " and ", span.tombstones));
  }
  return absl::OkStatus();
}

}  // namespace ickpt
