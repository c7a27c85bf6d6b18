// Fuzz target: the records of one key group of a keyed state manifest (format.md §5.3),
// DecodeKeyedGroup.
//
// Input: u16 key_groups − 1 | u16 group (taken mod key_groups) | u16 records | u16 tombstones |
// the group's record bytes (make_corpus writes real ones). The records are decoded against a span
// of exactly their length with the counts as given, then with the counts that a model reader below
// finds in them (so that the fuzzer explores the records rather than the count checks), and once
// with a span one byte longer than the bytes, which must be refused before any record is handed
// out.
//
// The model is a second, independent reading of §5.3. DecodeKeyedGroup must agree with it: it
// succeeds exactly when the model finds every rule kept, it hands out exactly the records before
// the first broken rule (at most the span's count), and every failure is DataLoss. What decodes
// must re-encode with AppendKeyedRecord to the input bytes; the format allows varints longer than
// needed (§1), so an input that uses one re-encodes shorter, to bytes that decode to the same
// records.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "fuzz/fuzz_check.h"
#include "ickpt/keyed_state.h"
#include "src/repo/keyed_records.h"
#include "src/util/coding.h"

namespace ickpt {
namespace {

constexpr size_t kHeaderBytes = 8;

struct Record {
  std::string_view key;
  std::string_view value;
  bool tombstone = false;
  bool operator==(const Record&) const = default;
};

// What the model finds in a group's bytes.
struct ModelResult {
  std::vector<Record> records;  // the records before the first broken rule
  bool all_valid = false;       // every byte belongs to a valid record
  bool minimal_varints = true;  // of the valid records: no varint longer than needed
  uint64_t tombstones = 0;
};

// LEB128 as format.md §1 says: at most 10 bytes, a value < 2^64. `minimal` is cleared if the
// encoding is longer than needed (a last byte of 0 after others).
std::optional<uint64_t> ModelVarint(std::string_view* in, bool* minimal) {
  uint64_t value = 0;
  for (size_t i = 0; i < in->size() && i < 10; ++i) {
    const auto byte = static_cast<uint8_t>((*in)[i]);
    if (i == 9 && byte > 1) return std::nullopt;  // bit 64 or beyond
    value |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
    if ((byte & 0x80) == 0) {
      if (i > 0 && byte == 0) *minimal = false;
      in->remove_prefix(i + 1);
      return value;
    }
  }
  return std::nullopt;
}

// Bytes compared unsigned, a prefix before its extensions.
bool ModelKeyLess(std::string_view a, std::string_view b) {
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const auto x = static_cast<uint8_t>(a[i]);
    const auto y = static_cast<uint8_t>(b[i]);
    if (x != y) return x < y;
  }
  return a.size() < b.size();
}

ModelResult Model(std::string_view in, uint32_t group, uint32_t key_groups) {
  ModelResult out;
  while (!in.empty()) {
    bool minimal = true;
    const auto type = static_cast<uint8_t>(in[0]);
    if (type > 1) return out;
    in.remove_prefix(1);
    const bool tombstone = type == 1;
    const std::optional<uint64_t> key_len = ModelVarint(&in, &minimal);
    if (!key_len.has_value()) return out;
    std::optional<uint64_t> value_len = 0;
    if (!tombstone) value_len = ModelVarint(&in, &minimal);
    if (!value_len.has_value()) return out;
    if (*key_len > kMaxKeySize || *value_len > kMaxValueSize) return out;
    if (*key_len > in.size() || *value_len > in.size() - *key_len) return out;
    Record r{in.substr(0, *key_len), in.substr(*key_len, *value_len), tombstone};
    in.remove_prefix(*key_len + *value_len);
    if (!out.records.empty() && !ModelKeyLess(out.records.back().key, r.key)) return out;
    if (KeyGroupOf(r.key, key_groups) != group) return out;
    out.records.push_back(r);
    out.minimal_varints &= minimal;
    if (tombstone) ++out.tombstones;
  }
  out.all_valid = true;
  return out;
}

// Decodes with `span`, checks the outcome against the model; returns the records handed out.
std::vector<Record> DecodeAndCheck(std::string_view bytes, const KeyGroupSpan& span,
                                   uint32_t key_groups, const ModelResult& model) {
  std::vector<Record> got;
  const absl::Status s = DecodeKeyedGroup(
      bytes, span, key_groups, [&](std::string_view key, std::string_view value, bool tombstone) {
        ICKPT_FUZZ_CHECK(got.size() < span.records, "more records handed out than the span has");
        ICKPT_FUZZ_CHECK(KeyGroupOf(key, key_groups) == span.group, "a key of another group");
        ICKPT_FUZZ_CHECK(got.empty() || ModelKeyLess(got.back().key, key),
                         "keys handed out are not strictly increasing");
        ICKPT_FUZZ_CHECK(!tombstone || value.empty(), "a tombstone with a value");
        got.push_back(Record{key, value, tombstone});
      });
  ICKPT_FUZZ_CHECK(s.ok() || absl::IsDataLoss(s), "not DataLoss: ", s.ToString());
  const bool fits = bytes.size() == span.raw_length;
  const bool expect_ok = fits && model.all_valid && model.records.size() == span.records &&
                         model.tombstones == span.tombstones;
  ICKPT_FUZZ_CHECK(s.ok() == expect_ok, "decoder says ", s.ToString(), ", the model ",
                   expect_ok ? "OK" : "damaged", " (", model.records.size(), " valid records, ",
                   model.all_valid ? "no" : "some", " bytes left)");
  if (!fits) {
    ICKPT_FUZZ_CHECK(got.empty(), "records handed out from bytes of the wrong length");
    return got;
  }
  const size_t expect_handed = std::min<uint64_t>(model.records.size(), span.records);
  ICKPT_FUZZ_CHECK(got.size() == expect_handed, got.size(), " records handed out, the model has ",
                   expect_handed);
  for (size_t i = 0; i < got.size(); ++i) {
    ICKPT_FUZZ_CHECK(got[i] == model.records[i], "record ", i, " differs from the model's");
  }
  return got;
}

// A decoded group re-encodes to its bytes (shorter if they held over-long varints).
void CheckReencoding(std::string_view bytes, const KeyGroupSpan& span, uint32_t key_groups,
                     const std::vector<Record>& records, bool minimal_varints) {
  std::string encoded;
  uint64_t size = 0;
  for (const Record& r : records) {
    AppendKeyedRecord(&encoded, r.key, r.value, r.tombstone);
    size += KeyedRecordSize(r.key, r.value, r.tombstone);
  }
  ICKPT_FUZZ_CHECK(size == encoded.size(), "KeyedRecordSize disagrees with AppendKeyedRecord");
  if (minimal_varints) {
    ICKPT_FUZZ_CHECK(encoded == bytes, "records do not re-encode to their bytes");
    return;
  }
  ICKPT_FUZZ_CHECK(encoded.size() < bytes.size(), "re-encoding of over-long varints not shorter");
  KeyGroupSpan again = span;
  again.raw_length = encoded.size();
  std::vector<Record> decoded;
  const absl::Status s = DecodeKeyedGroup(
      encoded, again, key_groups, [&](std::string_view key, std::string_view value, bool t) {
        decoded.push_back(Record{key, value, t});
      });
  ICKPT_FUZZ_CHECK(s.ok(), "re-encoded records do not decode: ", s.ToString());
  ICKPT_FUZZ_CHECK(decoded == records, "re-encoded records decode differently");
}

}  // namespace
}  // namespace ickpt

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ickpt;
  if (size < kHeaderBytes) return 0;
  const std::string_view input = fuzz::AsView(data, size);
  const uint32_t key_groups = uint32_t{DecodeFixed16(input.data())} + 1;
  KeyGroupSpan span;
  span.group = DecodeFixed16(input.data() + 2) % key_groups;
  span.pack_ref = 1;
  span.records = DecodeFixed16(input.data() + 4);
  span.tombstones = DecodeFixed16(input.data() + 6);
  const std::string_view bytes = input.substr(kHeaderBytes);
  span.raw_length = bytes.size();
  const ModelResult model = Model(bytes, span.group, key_groups);

  // The counts as given.
  std::vector<Record> got = DecodeAndCheck(bytes, span, key_groups, model);
  // The counts the model finds.
  KeyGroupSpan counted = span;
  counted.records = model.records.size();
  counted.tombstones = model.tombstones;
  got = DecodeAndCheck(bytes, counted, key_groups, model);
  if (model.all_valid) CheckReencoding(bytes, counted, key_groups, got, model.minimal_varints);
  // A span that does not fit the bytes.
  KeyGroupSpan longer = counted;
  longer.raw_length = bytes.size() + 1;
  DecodeAndCheck(bytes, longer, key_groups, model);
  return 0;
}
