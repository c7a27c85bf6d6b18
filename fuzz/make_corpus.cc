// Writes the seed corpora of the fuzz targets, fuzz/corpus/<target>/, from objects made by the
// library's own encoders, so that every seed is a valid object and the fuzzer starts from deep
// inside each format. Run after a format change and commit the result:
//   build-fuzz/fuzz/make_corpus fuzz/corpus
// Existing files of the same name are overwritten; files added by hand (regressions) are kept.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "src/repo/commit_record.h"
#include "src/repo/keys.h"
#include "src/repo/manifest.h"
#include "src/repo/pack.h"
#include "src/util/coding.h"
#include "src/util/hash.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

std::filesystem::path g_root;

void Write(std::string_view target, std::string_view name, std::string_view bytes) {
  const std::filesystem::path dir = g_root / target;
  std::filesystem::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "make_corpus: cannot write %s/%s\n", dir.c_str(), std::string(name).c_str());
    std::exit(1);
  }
}

Sha256Digest Digest(int seed) { return Sha256(StrCat("pack ", seed)); }

const absl::Time kCreated = absl::FromUnixSeconds(1795000000) + absl::Nanoseconds(123456789);

void Configs() {
  RepositoryConfig c;
  c.repository_id = "0123456789abcdef0123456789abcdef";
  c.created = kCreated;
  Write("config_fuzz", "default", EncodeConfig(c));
  c.block_size = 65536;
  c.compression_level = 19;
  c.pack_target_bytes = 64 << 20;
  c.minor = 1;
  Write("config_fuzz", "large-blocks-minor-1", EncodeConfig(c));
}

Manifest FullManifest() {
  Manifest m;
  m.checkpoint_id = 7;
  m.participant = "worker-0";
  m.object_name = "heap";
  m.block_size = 4096;
  m.block_count = 100;
  m.packs = {Digest(1), Digest(2)};
  m.extents = {{.first_block = 0, .block_count = 10, .pack_ref = 1, .raw_offset = 0},
               {.first_block = 10, .block_count = 40, .pack_ref = 0},
               {.first_block = 50, .block_count = 50, .pack_ref = 2, .raw_offset = 1 << 20}};
  return m;
}

Manifest IncrementalManifest() {
  Manifest m;
  m.checkpoint_id = 9;
  m.base_id = 8;
  m.kind = CheckpointKind::kIncremental;
  m.depth = 2;
  m.participant = "worker-1";
  m.object_name = "arena";
  m.block_size = 65536;
  m.block_count = 1000;
  m.packs = {Digest(3)};
  m.extents = {{.first_block = 3, .block_count = 1, .pack_ref = 1, .raw_offset = 65536},
               {.first_block = 7, .block_count = 2, .pack_ref = 0},
               {.first_block = 999, .block_count = 1, .pack_ref = 1, .raw_offset = 0}};
  return m;
}

std::vector<std::pair<std::string, Manifest>> Manifests() {
  std::vector<std::pair<std::string, Manifest>> out;
  out.emplace_back("full", FullManifest());
  out.emplace_back("incremental", IncrementalManifest());
  Manifest unchanged = IncrementalManifest();
  unchanged.packs.clear();
  unchanged.extents.clear();
  out.emplace_back("incremental-zero-extents", unchanged);
  Manifest zero = FullManifest();
  zero.packs.clear();
  zero.extents = {{.first_block = 0, .block_count = 100, .pack_ref = 0}};
  out.emplace_back("full-all-zero", zero);
  Manifest empty = FullManifest();
  empty.block_count = 0;
  empty.packs.clear();
  empty.extents.clear();
  out.emplace_back("full-empty-region", empty);
  Manifest many = FullManifest();
  many.block_size = 16 << 20;
  many.block_count = 40;
  many.packs.clear();
  many.extents.clear();
  for (int i = 0; i < 20; ++i) {
    many.packs.push_back(Digest(100 + i));
    many.extents.push_back({.first_block = uint64_t(2 * i), .block_count = 2,
                            .pack_ref = uint32_t(i + 1), .raw_offset = uint64_t(i) << 24});
  }
  out.emplace_back("full-many-packs", many);
  return out;
}

void WriteManifests() {
  for (const auto& [name, m] : Manifests()) {
    if (!ValidateManifest(m).ok()) {
      std::fprintf(stderr, "make_corpus: manifest %s is invalid\n", name.c_str());
      std::exit(1);
    }
    Write("manifest_fuzz", name, EncodeManifest(m));
  }
}

StateObjectRecord ObjectRecord(const std::string& name, const Manifest& m) {
  StateObjectRecord o;
  o.name = name;
  const std::string hex = ToHex(Sha256(EncodeManifest(m)));
  o.manifest = ManifestKey(hex);
  o.manifest_sha256 = hex;
  o.manifest_bytes = EncodeManifest(m).size();
  o.kind = m.kind;
  o.depth = m.depth;
  o.tracker = "dirty-bits";
  o.logical_bytes = m.block_count * m.block_size;
  o.changed_blocks = m.extents.size();
  o.raw_bytes = 40960;
  o.stored_bytes = 1234;
  o.pause_ns = 15000;
  o.persist_ns = 2500000;
  return o;
}

void CommitRecords() {
  CommitRecord full;
  full.id = 7;
  full.created = kCreated;
  full.logical_bytes = 409600;
  full.stored_bytes = 5000;
  full.participants.push_back({.name = "worker-0", .state_objects = {ObjectRecord("heap", FullManifest())}});
  Write("commit_record_fuzz", "full-first", EncodeCommitRecord(full));

  CommitRecord inc;
  inc.id = 9;
  inc.parent = 8;
  inc.kind = CheckpointKind::kIncremental;
  inc.depth = 2;
  inc.created = kCreated + absl::Seconds(60);
  inc.epoch = 3;
  inc.logical_bytes = 65536000;
  inc.stored_bytes = 70000;
  inc.participants.push_back(
      {.name = "worker-0", .state_objects = {ObjectRecord("heap", FullManifest())}});
  inc.participants.push_back({.name = "worker-1",
                              .state_objects = {ObjectRecord("arena", IncrementalManifest()),
                                                ObjectRecord("heap", FullManifest())}});
  inc.metadata = {{"step", "1200"}, {"note", "epoch \"3\" \u00e9"}};
  Write("commit_record_fuzz", "incremental-metadata", EncodeCommitRecord(inc));

  CommitRecord none;
  none.id = 12;
  none.parent = 9;
  none.created = kCreated;
  Write("commit_record_fuzz", "full-no-participants", EncodeCommitRecord(none));
  if (!ValidateCommitRecord(full).ok() || !ValidateCommitRecord(inc).ok() ||
      !ValidateCommitRecord(none).ok()) {
    std::fprintf(stderr, "make_corpus: a commit record is invalid\n");
    std::exit(1);
  }
}

// Bytes with some structure, so that zstd compresses them.
std::string Data(size_t n, int seed) {
  std::string s;
  s.reserve(n);
  uint32_t x = static_cast<uint32_t>(seed) * 2654435761u + 1;
  while (s.size() < n) {
    x = x * 1103515245u + 12345u;
    s.append(StrCat("block ", (x >> 16) % 64, " "));
  }
  s.resize(n);
  return s;
}

std::string Random(size_t n, int seed) {
  std::string s(n, '\0');
  uint64_t x = static_cast<uint64_t>(seed) * 0x9e3779b97f4a7c15ull + 1;
  for (char& c : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return s;
}

void Packs() {
  std::vector<std::pair<std::string, std::vector<std::string>>> packs = {
      {"empty", {}},
      {"one-raw-frame", {Random(100, 1)}},
      {"one-zstd-frame", {Data(4096, 2)}},
      {"zstd-and-raw", {Data(4096, 3), Random(512, 4), Data(8192, 5)}},
      {"small-frames", {"a", "bb", std::string(64, '\0'), Data(300, 6)}},
  };
  for (const auto& [name, frames] : packs) {
    PackBuilder builder;
    for (const std::string& raw : frames) builder.AddFrame(EncodeFrame(raw, 3));
    const FinishedPack pack = builder.Finish();
    if (!VerifyPack(pack.bytes, pack.sha256_hex, name).ok()) {
      std::fprintf(stderr, "make_corpus: pack %s does not verify\n", name.c_str());
      std::exit(1);
    }
    Write("pack_fuzz", name, pack.bytes);
    // pack_index_fuzz input: u64 index_offset | u64 pack_size | index bytes.
    const std::string_view bytes = pack.bytes;
    const uint64_t index_offset = DecodeFixed64(bytes.data() + bytes.size() - kPackFooterBytes);
    const uint32_t index_length = DecodeFixed32(bytes.data() + bytes.size() - kPackFooterBytes + 8);
    std::string input;
    PutFixed64(&input, index_offset);
    PutFixed64(&input, bytes.size());
    input.append(bytes.substr(index_offset, index_length));
    Write("pack_index_fuzz", name, input);
  }
}

void Keys() {
  const std::string hex = ToHex(Sha256("manifest"));
  const std::vector<std::pair<std::string, std::string>> keys = {
      {"config", std::string(kConfigKey)},
      {"commit", CommitKey(42)},
      {"commit-max", CommitKey(UINT64_MAX)},
      {"id", IdReservationKey(7)},
      {"pack", PackKey(ToHex(Sha256("pack")))},
      {"manifest", ManifestKey(hex)},
      {"tmp", StrCat(ManifestKey(hex), ".tmp-3f2a")},
      {"dotdot", "packs/../config"},
      {"empty-component", "packs//ab"},
      {"upper-hex", ManifestKey("AB" + hex.substr(2))},
  };
  for (const auto& [name, key] : keys) Write("keys_fuzz", name, key);
}

void Sizes() {
  const std::vector<std::pair<std::string, std::string>> texts = {
      {"bytes", "4096"},       {"kib", "64KiB"},      {"mib-space", "1 MiB"}, {"gb", "10GB"},
      {"t", "2t"},             {"max", "18446744073709551615"},             {"ms", "500ms"},
      {"fraction-s", "1.5s"},  {"zero", "0"},         {"hours", "2h"},        {"us", "250us"},
      {"ws", " 3 KB\n"},
  };
  for (const auto& [name, text] : texts) Write("parse_fuzz", name, text);
}

void Varints() {
  // coding_fuzz input: opcode byte (op % 7 picks the read), then the bytes it reads.
  std::string varints;
  for (uint64_t v : {uint64_t{0}, uint64_t{127}, uint64_t{128}, uint64_t{300}, uint64_t{1} << 35,
                     UINT64_MAX}) {
    varints.push_back(4);
    PutVarint64(&varints, v);
  }
  Write("coding_fuzz", "varints", varints);
  std::string mixed;
  mixed.push_back(1);
  PutFixed16(&mixed, 0xbeef);
  mixed.push_back(2);
  PutFixed32(&mixed, 0xdeadbeef);
  mixed.push_back(3);
  PutFixed64(&mixed, 0x0123456789abcdefull);
  mixed.push_back(5);
  PutLengthPrefixed(&mixed, "worker-0");
  mixed.push_back(6 + 7 * 3);
  mixed.append("abc");
  Write("coding_fuzz", "mixed", mixed);
  Write("coding_fuzz", "overlong-varint", std::string("\x04\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11));
}

}  // namespace
}  // namespace ickpt

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus <corpus directory, e.g. fuzz/corpus>\n");
    return 2;
  }
  ickpt::g_root = argv[1];
  ickpt::Configs();
  ickpt::WriteManifests();
  ickpt::CommitRecords();
  ickpt::Packs();
  ickpt::Keys();
  ickpt::Sizes();
  ickpt::Varints();
  return 0;
}
