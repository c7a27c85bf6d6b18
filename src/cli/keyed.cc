// `ickpt get ID --state NAME KEY` and `ickpt dump ID --state NAME`: read a keyed state of a
// checkpoint (format.md §9.1) without restoring it into a process.
//
// get reads only the key's group and stops at the newest record that decides the key. dump streams
// every live entry as one JSON object per line; keys and values that are not valid UTF-8 are
// written base64, because JSON strings hold text only.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "src/cli/commands.h"
#include "src/cli/common.h"
#include "src/cli/keyed_entries.h"
#include "src/repo/keyed_reader.h"
#include "src/util/str.h"

namespace ickpt::cli {
namespace {

// True if `s` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above
// U+10FFFF): exactly what nlohmann::json accepts in a string, so text that passes is written as it
// is and nothing else is.
bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t length = 0;
    unsigned char low = 0x80, high = 0xbf;  // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      length = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      length = 3;
      if (c == 0xe0) low = 0xa0;   // overlong
      if (c == 0xed) high = 0x9f;  // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      length = 4;
      if (c == 0xf0) low = 0x90;   // overlong
      if (c == 0xf4) high = 0x8f;  // above U+10FFFF
    } else {
      return false;  // a continuation byte first, 0xc0/0xc1 (overlong) or 0xf5..0xff
    }
    if (s.size() - i < length) return false;
    const auto second = static_cast<unsigned char>(s[i + 1]);
    if (second < low || second > high) return false;
    for (size_t k = 2; k < length; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if (b < 0x80 || b > 0xbf) return false;
    }
    i += length;
  }
  return true;
}

// A key as messages show it: quoted if it is printable text, else its bytes in hex.
std::string DescribeKey(std::string_view key) {
  bool printable = IsValidUtf8(key);
  for (char c : key) printable = printable && static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
  if (printable) return StrCat("'", key, "'");
  return StrCat("0x", absl::BytesToHexString(ToAbsl(key)), " (hex)");
}

absl::Status WriteStdout(std::string_view bytes) {
  if (bytes.empty()) return absl::OkStatus();
  if (std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size()) {
    const int e = errno;
    return absl::UnknownError(StrCat("writing to stdout failed: ", std::strerror(e)));
  }
  return absl::OkStatus();
}

absl::Status FlushStdout() {
  if (std::fflush(stdout) != 0 || std::ferror(stdout) != 0) {
    const int e = errno;
    return absl::UnknownError(StrCat("writing to stdout failed: ", std::strerror(e)));
  }
  return absl::OkStatus();
}

// Opens the repository, reads checkpoint `id` and resolves keyed state `state` in it.
struct OpenedKeyed {
  std::unique_ptr<RepositoryReader> repo;
  ResolvedKeyed keyed;
};

absl::StatusOr<OpenedKeyed> OpenKeyed(const std::string& dir, const std::string& id,
                                      const std::string& state) {
  absl::StatusOr<std::unique_ptr<RepositoryReader>> repo = OpenRepositoryReadOnly(dir);
  if (!repo.ok()) return repo.status();
  absl::StatusOr<CommitRecord> commit = ReadCheckpointArgument(**repo, id);
  if (!commit.ok()) return commit.status();
  absl::StatusOr<ResolvedKeyed> keyed = ResolveKeyed(**repo, *commit, state);
  if (!keyed.ok()) {
    if (absl::IsFailedPrecondition(keyed.status())) {
      return absl::FailedPreconditionError(StrCat(keyed.status().message(),
                                                  "; read a region with 'ickpt restore ", id,
                                                  " --region ", state, " --out FILE'"));
    }
    return keyed.status();
  }
  return OpenedKeyed{*std::move(repo), *std::move(keyed)};
}

// ---- get ----

struct GetOptions {
  std::string repo;
  std::string id;
  std::string state;
  std::string key;
  std::string key_hex;
  bool newline = false;
  CLI::Option* key_option = nullptr;
  CLI::Option* key_hex_option = nullptr;
};

// Keeps the one value ReadKeyed hands over for `only_key`. Nothing is decided before it, so
// Contains is always false: ReadKeyed stops at the first record of the key.
class ValueSink final : public KeyedRestoreSink {
 public:
  bool Contains(std::string_view /*key*/) const override { return false; }
  absl::Status Put(std::string_view /*key*/, std::string_view value) override {
    value_.emplace(value);
    return absl::OkStatus();
  }
  const std::optional<std::string>& value() const { return value_; }

 private:
  std::optional<std::string> value_;
};

int RunGet(const GetOptions& options) {
  if (!CheckCheckpointIdArgument(options.id)) return kExitUsage;
  const bool by_text = options.key_option->count() > 0;
  const bool by_hex = options.key_hex_option->count() > 0;
  if (by_text == by_hex) {
    PrintError("give the key either as KEY or as --key-hex HEX");
    return kExitUsage;
  }
  std::string key = options.key;
  if (by_hex) {
    const absl::string_view hex = ToAbsl(options.key_hex);
    const bool is_hex = hex.size() % 2 == 0 && std::all_of(hex.begin(), hex.end(), [](char c) {
                          return absl::ascii_isxdigit(static_cast<unsigned char>(c));
                        });
    if (!is_hex) {
      PrintError(StrCat("invalid --key-hex '", options.key_hex,
                        "': expected an even number of hex digits"));
      return kExitUsage;
    }
    key = absl::HexStringToBytes(hex);
  }
  absl::StatusOr<OpenedKeyed> opened = OpenKeyed(options.repo, options.id, options.state);
  if (!opened.ok()) return Fail(opened.status());
  ValueSink sink;
  KeyedReadOptions read;
  read.only_key = key;
  absl::StatusOr<KeyedReadStats> stats = ReadKeyed(*opened->repo, opened->keyed, read, &sink);
  if (!stats.ok()) return Fail(stats.status());
  if (!sink.value().has_value()) {
    return Fail(absl::NotFoundError(StrCat("key ", DescribeKey(key), " is not in keyed state '",
                                           options.state, "' of checkpoint ",
                                           opened->keyed.checkpoint_id)));
  }
  absl::Status written = WriteStdout(*sink.value());
  if (written.ok() && options.newline) written = WriteStdout("\n");
  if (written.ok()) written = FlushStdout();
  if (!written.ok()) return Fail(written);
  return kExitOk;
}

// ---- dump ----

struct DumpOptions {
  std::string repo;
  std::string id;
  std::string state;
};

// One line of dump: {"key": ..., "key_base64": bool, "value": ..., "value_base64": bool}.
std::string DumpLine(std::string_view key, std::string_view value) {
  nlohmann::json j = nlohmann::json::object();
  auto field = [&j](const char* name, const char* flag, std::string_view bytes) {
    const bool text = IsValidUtf8(bytes);
    j[name] = text ? std::string(bytes) : absl::Base64Escape(ToAbsl(bytes));
    j[flag] = !text;
  };
  field("key", "key_base64", key);
  field("value", "value_base64", value);
  // IsValidUtf8 lets through exactly what the serializer accepts; `replace` only makes sure that
  // no exception could ever escape if the two disagreed.
  std::string line =
      j.dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace);
  line.push_back('\n');
  return line;
}

int RunDump(const DumpOptions& options) {
  if (!CheckCheckpointIdArgument(options.id)) return kExitUsage;
  absl::StatusOr<OpenedKeyed> opened = OpenKeyed(options.repo, options.id, options.state);
  if (!opened.ok()) return Fail(opened.status());
  // Entries are written as they are read, never collected: memory holds one batch of keys
  // (keyed_entries.h) and the pack ranges being decoded.
  absl::Status status = ForEachKeyedEntryBatched(*opened->repo, opened->keyed,
                                                 [](std::string_view key, std::string_view value) {
                                                   return WriteStdout(DumpLine(key, value));
                                                 });
  if (absl::Status flushed = FlushStdout(); status.ok()) status = flushed;
  if (!status.ok()) return Fail(status);
  return kExitOk;
}

}  // namespace

Command RegisterGet(CLI::App& app) {
  auto options = std::make_shared<GetOptions>();
  CLI::App* sub = app.add_subcommand(
      "get",
      "Print the value of one key of a keyed state at a checkpoint. The value is written to "
      "stdout as raw bytes, exactly as stored (binary-safe, no newline added unless --newline). "
      "Only the key's key group is read, and reading stops at the newest record of the key. Exit "
      "4 if the key is absent (never put, or erased), or if the checkpoint or the keyed state "
      "does not exist; 3 if what had to be read is damaged; nothing is written to stdout then.");
  sub->add_option("ID", options->id, "Checkpoint id, or 'latest'")->required();
  options->key_option =
      sub->add_option("KEY", options->key,
                      "The key, as UTF-8 text (or give --key-hex instead); put -- before a key "
                      "that starts with '-'");
  AddRepoOption(sub, &options->repo);
  sub->add_option("--state", options->state, "Keyed state name")->required();
  options->key_hex_option = sub->add_option(
      "--key-hex", options->key_hex,
      "The key as hex digits, two per byte (for binary keys; '' is the empty key), instead of KEY");
  options->key_option->excludes(options->key_hex_option);
  sub->add_flag("--newline", options->newline, "Write a newline after the value");
  return Command{sub, [options] { return RunGet(*options); }};
}

Command RegisterDump(CLI::App& app) {
  auto options = std::make_shared<DumpOptions>();
  CLI::App* sub = app.add_subcommand(
      "dump",
      "Write every entry of a keyed state at a checkpoint to stdout as JSON lines, one object per "
      "entry: {\"key\": K, \"key_base64\": B, \"value\": V, \"value_base64\": B}. A key or value "
      "that is valid UTF-8 is written as a JSON string of that text and its *_base64 field is "
      "false; otherwise it is written in standard base64 (RFC 4648, padded) and its *_base64 field "
      "is true. Every live entry appears exactly once; erased keys do not appear. The order is "
      "unspecified (not sorted by key). Entries are streamed as they are read and "
      "verified, so on exit 3 (damaged) the output stops early and is incomplete; exit 4 if the "
      "checkpoint or the keyed state does not exist.");
  sub->add_option("ID", options->id, "Checkpoint id, or 'latest'")->required();
  AddRepoOption(sub, &options->repo);
  sub->add_option("--state", options->state, "Keyed state name")->required();
  return Command{sub, [options] { return RunDump(*options); }};
}

}  // namespace ickpt::cli
