// Manifest encoding and decoding, format.md §5.
#include "src/repo/manifest.h"

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "src/util/coding.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

constexpr std::string_view kManifestMagic = "ICKPMANI";
constexpr uint16_t kManifestMajor = kFormatMajor;
constexpr uint16_t kManifestMinor = kFormatMinor;
// Smallest encoded key group span: six 1-byte varints.
constexpr size_t kMinGroupBytes = 6;
constexpr size_t kTrailerBytes = 8;
constexpr size_t kHeaderBytes = 8 + 2 + 2;
// Smallest encoded extent: 1-byte gap, 1-byte length, pack_ref 0 (no raw_offset). Bounds
// extent_count by the bytes left before anything is allocated for it (format.md §10).
constexpr size_t kMinExtentBytes = 3;

// The §5.3 rules of a keyed manifest's body.
std::optional<std::string> FindKeyedViolation(const Manifest& m) {
  if (m.block_size != 0 || m.block_count != 0 || !m.extents.empty()) {
    return "a keyed manifest has blocks";
  }
  if (m.key_groups == 0 || m.key_groups > kMaxKeyGroups) {
    return StrCat("key_groups ", m.key_groups, " is not in 1..", kMaxKeyGroups);
  }
  if (m.group_first >= m.group_end || m.group_end > m.key_groups) {
    return StrCat("group range [", m.group_first, ", ", m.group_end,
                  ") is empty or not inside [0, ", m.key_groups, ")");
  }
  int64_t previous = static_cast<int64_t>(m.group_first) - 1;
  for (size_t i = 0; i < m.groups.size(); ++i) {
    const KeyGroupSpan& g = m.groups[i];
    if (static_cast<int64_t>(g.group) <= previous || g.group >= m.group_end) {
      return StrCat("key group ", g.group, " is out of order or outside [", m.group_first, ", ",
                    m.group_end, ")");
    }
    if (g.pack_ref == 0 || g.pack_ref > m.packs.size()) {
      return StrCat("key group ", g.group, " refers to pack ", g.pack_ref, " of ", m.packs.size());
    }
    if (g.raw_length == 0 || g.raw_offset > UINT64_MAX - g.raw_length) {
      return StrCat("key group ", g.group, " has an empty or overflowing byte range");
    }
    if (g.records == 0 || g.tombstones > g.records) {
      return StrCat("key group ", g.group, " has ", g.records, " records and ", g.tombstones,
                    " tombstones");
    }
    // The smallest record takes 2 bytes (a tombstone of the empty key: type, key length 0).
    if (g.records > g.raw_length / 2) {
      return StrCat("key group ", g.group, ": ", g.records, " records cannot fit in ", g.raw_length,
                    " bytes");
    }
    if (m.kind == CheckpointKind::kFull && g.tombstones != 0) {
      return StrCat("key group ", g.group, " of a full manifest has tombstones");
    }
    previous = g.group;
  }
  return std::nullopt;
}

// The §5 rules on an in-memory manifest. Returns a description of the first violation, or nullopt.
// Shared by ValidateManifest (InvalidArgument: a caller bug) and DecodeManifest (DataLoss: damage).
std::optional<std::string> FindViolation(const Manifest& m) {
  if (m.checkpoint_id == 0) return "checkpoint_id is 0 (ids are positive)";
  switch (m.kind) {
    case CheckpointKind::kFull:
      if (m.base_id.has_value()) return "a full manifest has a base";
      if (m.depth != 0) return StrCat("a full manifest has depth ", m.depth);
      break;
    case CheckpointKind::kIncremental:
      if (!m.base_id.has_value()) return "an incremental manifest has no base";
      // Ids increase in the order checkpoints start (§7), so a base precedes what builds on it.
      if (*m.base_id == 0 || *m.base_id >= m.checkpoint_id) {
        return StrCat("base ", *m.base_id, " is not an id below ", m.checkpoint_id);
      }
      if (m.depth == 0) return "an incremental manifest has depth 0";
      break;
    default:
      return StrCat("unknown kind ", static_cast<int>(m.kind));
  }
  if (m.packs.size() > kMaxManifestPacks) {
    return StrCat(m.packs.size(), " packs exceed the limit of ", kMaxManifestPacks);
  }
  if (m.object_type == StateObjectType::kKeyed) return FindKeyedViolation(m);
  if (m.object_type != StateObjectType::kRegion) {
    return StrCat("unknown state object type ", static_cast<int>(m.object_type));
  }
  if (!m.groups.empty() || m.key_groups != 0) return "a region manifest has key groups";
  if (m.block_size == 0 || m.block_size % 4096 != 0 || m.block_size > kMaxBlockSize) {
    return StrCat("block_size ", m.block_size, " is not a multiple of 4096 in [4096, 16 MiB]");
  }
  if (m.block_count > kMaxStateObjectBytes / m.block_size) {
    return StrCat("block_count ", m.block_count, " of ", m.block_size,
                  "-byte blocks exceeds the 1 PiB limit of a state object");
  }
  uint64_t end = 0;  // end of the previous extent
  for (size_t i = 0; i < m.extents.size(); ++i) {
    const Extent& e = m.extents[i];
    if (e.block_count == 0) return StrCat("extent ", i, " is empty");
    if (e.first_block < end) {
      return StrCat("extent ", i, " at block ", e.first_block,
                    " overlaps or precedes the previous one ending at ", end);
    }
    if (m.kind == CheckpointKind::kFull && e.first_block != end) {
      return StrCat("full manifest does not cover blocks [", end, ", ", e.first_block, ")");
    }
    if (e.first_block > m.block_count || e.block_count > m.block_count - e.first_block) {
      return StrCat("extent ", i, " [", e.first_block, ", +", e.block_count,
                    ") ends past block_count ", m.block_count);
    }
    if (e.pack_ref > m.packs.size()) {
      return StrCat("extent ", i, " refers to pack ", e.pack_ref, " of ", m.packs.size());
    }
    if (e.pack_ref != 0) {
      // The extent's bytes [raw_offset, raw_offset + block_count * block_size) must be
      // addressable: readers compute that end.
      if (e.block_count > UINT64_MAX / m.block_size ||
          e.raw_offset > UINT64_MAX - e.block_count * m.block_size) {
        return StrCat("extent ", i, " raw range overflows");
      }
    }
    end = e.first_block + e.block_count;
  }
  if (m.kind == CheckpointKind::kFull && end != m.block_count) {
    return StrCat("full manifest does not cover blocks [", end, ", ", m.block_count, ")");
  }
  return std::nullopt;
}

// Reads the pack table (§5, §5.3) into m->packs; false with *error set on damage.
bool DecodePackTable(Decoder& d, Manifest* m, std::string* error) {
  uint64_t pack_count = 0;
  if (!d.GetVarint64(&pack_count)) {
    *error = "truncated pack count";
    return false;
  }
  if (pack_count > kMaxManifestPacks || pack_count > d.remaining() / 32) {
    *error = StrCat("pack count ", pack_count, " exceeds the limit or the ", d.remaining(),
                    " bytes left");
    return false;
  }
  m->packs.resize(pack_count);
  for (Sha256Digest& pack : m->packs) {
    std::string_view raw;
    d.GetBytes(pack.size(), &raw);  // cannot fail: bounded above
    std::copy(raw.begin(), raw.end(), reinterpret_cast<char*>(pack.data()));
  }
  return true;
}

// The body of a keyed manifest (§5.3), after object_type.
template <typename Damaged>
absl::StatusOr<Manifest> DecodeKeyedBody(Decoder& d, Manifest m, Damaged damaged) {
  uint64_t key_groups = 0, first = 0, end = 0;
  if (!d.GetVarint64(&key_groups) || !d.GetVarint64(&first) || !d.GetVarint64(&end) ||
      !d.GetVarint64(&m.entry_count) || !d.GetVarint64(&m.entry_bytes)) {
    return damaged("truncated keyed state fields");
  }
  if (key_groups == 0 || key_groups > kMaxKeyGroups || first >= end || end > key_groups) {
    return damaged(StrCat("key groups ", key_groups, " with range [", first, ", ", end,
                          ") are out of bounds"));
  }
  m.key_groups = static_cast<uint32_t>(key_groups);
  m.group_first = static_cast<uint32_t>(first);
  m.group_end = static_cast<uint32_t>(end);
  std::string error;
  if (!DecodePackTable(d, &m, &error)) return damaged(error);
  uint64_t group_count = 0;
  if (!d.GetVarint64(&group_count)) return damaged("truncated key group count");
  if (group_count > end - first || group_count > d.remaining() / kMinGroupBytes) {
    return damaged(StrCat("key group count ", group_count, " exceeds the range [", first, ", ", end,
                          ") or the ", d.remaining(), " bytes left"));
  }
  m.groups.reserve(group_count);
  uint64_t next = first;  // the lowest group the next span may have
  for (uint64_t i = 0; i < group_count; ++i) {
    uint64_t gap = 0, pack_ref = 0;
    KeyGroupSpan g;
    if (!d.GetVarint64(&gap) || !d.GetVarint64(&pack_ref) || !d.GetVarint64(&g.raw_offset) ||
        !d.GetVarint64(&g.raw_length) || !d.GetVarint64(&g.records) ||
        !d.GetVarint64(&g.tombstones)) {
      return damaged(StrCat("truncated key group span ", i));
    }
    if (gap >= end - next) return damaged(StrCat("key group span ", i, " lies past group ", end));
    if (pack_ref == 0 || pack_ref > m.packs.size()) {
      return damaged(
          StrCat("key group span ", i, " refers to pack ", pack_ref, " of ", m.packs.size()));
    }
    g.group = static_cast<uint32_t>(next + gap);
    g.pack_ref = static_cast<uint32_t>(pack_ref);
    next = g.group + 1;
    m.groups.push_back(g);
  }
  if (!d.empty()) return damaged(StrCat(d.remaining(), " trailing bytes"));
  if (std::optional<std::string> violation = FindViolation(m)) {
    return damaged(StrCat("checkpoint ", m.checkpoint_id, ": ", *violation));
  }
  return m;
}

}  // namespace

absl::Status ValidateManifest(const Manifest& manifest) {
  if (std::optional<std::string> violation = FindViolation(manifest)) {
    return absl::InvalidArgumentError(
        StrCat("manifest of checkpoint ", manifest.checkpoint_id, ": ", *violation));
  }
  return absl::OkStatus();
}

std::string EncodeManifest(const Manifest& m) {
  std::string out;
  out.append(kManifestMagic);
  PutFixed16(&out, kManifestMajor);
  PutFixed16(&out, kManifestMinor);
  PutVarint64(&out, m.checkpoint_id);
  PutVarint64(&out, m.base_id.has_value() ? *m.base_id + 1 : 0);
  out.push_back(static_cast<char>(m.kind == CheckpointKind::kFull ? 0 : 1));
  PutVarint64(&out, m.depth);
  PutLengthPrefixed(&out, m.participant);
  PutLengthPrefixed(&out, m.object_name);
  out.push_back(static_cast<char>(m.object_type));
  if (m.object_type == StateObjectType::kKeyed) {
    PutVarint64(&out, m.key_groups);
    PutVarint64(&out, m.group_first);
    PutVarint64(&out, m.group_end);
    PutVarint64(&out, m.entry_count);
    PutVarint64(&out, m.entry_bytes);
    PutVarint64(&out, m.packs.size());
    for (const Sha256Digest& pack : m.packs) {
      out.append(reinterpret_cast<const char*>(pack.data()), pack.size());
    }
    PutVarint64(&out, m.groups.size());
    int64_t previous = static_cast<int64_t>(m.group_first) - 1;
    for (const KeyGroupSpan& g : m.groups) {
      PutVarint64(&out, static_cast<uint64_t>(static_cast<int64_t>(g.group) - previous - 1));
      PutVarint64(&out, g.pack_ref);
      PutVarint64(&out, g.raw_offset);
      PutVarint64(&out, g.raw_length);
      PutVarint64(&out, g.records);
      PutVarint64(&out, g.tombstones);
      previous = g.group;
    }
    PutFixed64(&out, Xxh3(out));
    return out;
  }
  PutVarint64(&out, m.block_size);
  PutVarint64(&out, m.block_count);
  PutVarint64(&out, m.packs.size());
  for (const Sha256Digest& pack : m.packs) {
    out.append(reinterpret_cast<const char*>(pack.data()), pack.size());
  }
  PutVarint64(&out, m.extents.size());
  uint64_t end = 0;
  for (const Extent& e : m.extents) {
    PutVarint64(&out, e.first_block - end);  // gap: relative so isolated blocks stay small
    PutVarint64(&out, e.block_count);
    PutVarint64(&out, e.pack_ref);
    if (e.pack_ref != 0) PutVarint64(&out, e.raw_offset);
    end = e.first_block + e.block_count;
  }
  PutFixed64(&out, Xxh3(out));
  return out;
}

absl::StatusOr<Manifest> DecodeManifest(std::string_view bytes, std::string_view key) {
  auto damaged = [&](std::string_view what) {
    return absl::DataLossError(StrCat("manifest ", key, ": ", what));
  };
  if (bytes.size() < kHeaderBytes + kTrailerBytes) {
    return damaged(StrCat("only ", bytes.size(), " bytes"));
  }
  if (bytes.substr(0, kManifestMagic.size()) != kManifestMagic) return damaged("bad magic");
  const uint16_t major = DecodeFixed16(bytes.data() + 8);
  const uint16_t minor = DecodeFixed16(bytes.data() + 10);
  // The checksum comes first (format.md §1.1): the trailer is in the same place in every version,
  // and a damaged version field must read as damage, not as "upgrade your reader".
  const std::string_view covered = bytes.substr(0, bytes.size() - kTrailerBytes);
  if (Xxh3(covered) != DecodeFixed64(bytes.data() + covered.size())) {
    return damaged("checksum mismatch");
  }
  if (major == 0) return damaged("version 0.x does not exist");
  if (major > kManifestMajor) {
    return absl::FailedPreconditionError(StrCat("manifest ", key, ": version ", major, ".", minor,
                                                " is newer than this reader supports (",
                                                kManifestMajor, ".x)"));
  }

  Decoder d(covered.substr(kHeaderBytes));
  Manifest m;
  uint64_t base_plus_1 = 0;
  uint8_t kind = 0;
  uint8_t object_type = 0;
  uint64_t block_size = 0;
  std::string_view participant;
  std::string_view object_name;
  if (!d.GetVarint64(&m.checkpoint_id) || !d.GetVarint64(&base_plus_1) || !d.GetFixed8(&kind) ||
      !d.GetVarint64(&m.depth) || !d.GetLengthPrefixed(&participant) ||
      !d.GetLengthPrefixed(&object_name) || !d.GetFixed8(&object_type)) {
    return damaged("truncated or malformed header fields");
  }
  if (kind > 1) return damaged(StrCat("unknown kind ", static_cast<int>(kind)));
  m.kind = kind == 0 ? CheckpointKind::kFull : CheckpointKind::kIncremental;
  if (base_plus_1 != 0) m.base_id = base_plus_1 - 1;
  m.participant = std::string(participant);
  m.object_name = std::string(object_name);
  // §5.2: a type this reader does not know is refused by name. It is not damage (the checksum
  // verified): a newer writer uses it, so the answer is an upgrade.
  if (object_type == static_cast<uint8_t>(StateObjectType::kKeyed)) {
    m.object_type = StateObjectType::kKeyed;
    return DecodeKeyedBody(d, std::move(m), damaged);
  }
  if (object_type != static_cast<uint8_t>(StateObjectType::kRegion)) {
    std::string_view name = object_type == 2 ? " (channel state)" : "";
    return absl::FailedPreconditionError(
        StrCat("manifest ", key, " of checkpoint ", m.checkpoint_id, ": state object type ",
               static_cast<int>(object_type), name, " is not supported by this reader"));
  }
  if (!d.GetVarint64(&block_size) || !d.GetVarint64(&m.block_count)) {
    return damaged("truncated or malformed header fields");
  }
  if (block_size == 0 || block_size % 4096 != 0 || block_size > kMaxBlockSize) {
    return damaged(
        StrCat("block_size ", block_size, " is not a multiple of 4096 in [4096, 16 MiB]"));
  }
  m.block_size = static_cast<uint32_t>(block_size);

  std::string pack_error;
  if (!DecodePackTable(d, &m, &pack_error)) return damaged(pack_error);
  const uint64_t pack_count = m.packs.size();

  uint64_t extent_count = 0;
  if (!d.GetVarint64(&extent_count)) return damaged("truncated extent count");
  if (extent_count > m.block_count || extent_count > d.remaining() / kMinExtentBytes) {
    return damaged(StrCat("extent count ", extent_count, " exceeds block_count ", m.block_count,
                          " or the ", d.remaining(), " bytes left"));
  }
  m.extents.reserve(extent_count);
  uint64_t end = 0;
  for (uint64_t i = 0; i < extent_count; ++i) {
    uint64_t gap = 0;
    uint64_t length = 0;
    uint64_t pack_ref = 0;
    Extent e;
    if (!d.GetVarint64(&gap) || !d.GetVarint64(&length) || !d.GetVarint64(&pack_ref) ||
        (pack_ref != 0 && !d.GetVarint64(&e.raw_offset))) {
      return damaged(StrCat("truncated extent ", i));
    }
    // Range checks here only keep the arithmetic and the narrowing below exact; FindViolation
    // states the rules.
    if (gap > m.block_count - end || length > m.block_count - end - gap) {
      return damaged(StrCat("extent ", i, " ends past block_count ", m.block_count));
    }
    if (pack_ref > pack_count) {
      return damaged(StrCat("extent ", i, " refers to pack ", pack_ref, " of ", pack_count));
    }
    e.first_block = end + gap;
    e.block_count = length;
    e.pack_ref = static_cast<uint32_t>(pack_ref);
    end = e.first_block + length;
    m.extents.push_back(e);
  }
  if (!d.empty()) return damaged(StrCat(d.remaining(), " trailing bytes"));
  if (std::optional<std::string> violation = FindViolation(m)) {
    return damaged(StrCat("checkpoint ", m.checkpoint_id, ": ", *violation));
  }
  return m;
}

}  // namespace ickpt
