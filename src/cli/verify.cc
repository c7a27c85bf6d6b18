// `ickpt verify [--data]`: checks that every checkpoint can be restored.
//
// Without --data: every commit record decodes, every state object's chain of manifests resolves
// (format.md §9) and every pack it references exists with a readable index. With --data, every
// object in the repository is read in full: every pack's frames and name (§4), every manifest's
// trailer and name (§5), every commit record (§6), every id reservation (§7) and the config (§3);
// objects no commit record reaches are listed as orphans (a warning: GC may delete them).
#include <CLI/CLI.hpp>

#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "src/ckpt/restore.h"
#include "src/cli/commands.h"
#include "src/cli/common.h"
#include "src/repo/commit_record.h"
#include "src/repo/keys.h"
#include "src/repo/manifest.h"
#include "src/repo/pack.h"
#include "src/util/hash.h"
#include "src/util/parse.h"
#include "src/util/str.h"

namespace ickpt::cli {
namespace {

struct VerifyOptions {
  std::string repo;
  bool data = false;
  bool json = false;
};

class Verifier {
 public:
  explicit Verifier(const Repository& repo) : repo_(repo) {}

  // Commit records, chains, pack indexes.
  void CheckStructure() {
    absl::StatusOr<std::vector<uint64_t>> ids = repo_.ListCommitIds();
    if (!ids.ok()) return Error(ids.status());
    for (uint64_t id : *ids) {
      const std::string commit_key = CommitKey(id);
      checked_.insert(commit_key);
      absl::StatusOr<CommitRecord> commit = repo_.ReadCommit(id);
      if (!commit.ok()) {
        Damaged(commit_key, commit.status());
        continue;
      }
      ++commits_;
      for (const ParticipantRecord& p : commit->participants) {
        for (const StateObjectRecord& so : p.state_objects) {
          reachable_.insert(so.manifest);
          checked_.insert(so.manifest);
          absl::StatusOr<ResolvedObject> resolved =
              ResolveObject(repo_, *commit, p.name, so.name, &packs_);
          if (!resolved.ok()) Damaged(so.manifest, resolved.status());
        }
      }
    }
    for (size_t i = 0; i < packs_.size(); ++i) {
      const std::string key = PackKey(ToHex(packs_.digest(i)));
      reachable_.insert(key);
      checked_.insert(key);
      absl::StatusOr<PackIndex> index = ReadPackIndex(repo_.store(), key);
      if (!index.ok()) Damaged(key, index.status());
    }
  }

  // Every object in full.
  void CheckData() {
    absl::StatusOr<std::vector<ObjectInfo>> objects = repo_.store()->List("");
    if (!objects.ok()) return Error(objects.status());
    uint64_t total = 0;
    for (const ObjectInfo& o : *objects) total += o.size;
    Progress progress("verifying", total);
    for (const ObjectInfo& o : *objects) {
      CheckObject(o.key);
      progress.Add(o.size);
    }
    progress.Finish();
    for (const ObjectInfo& o : *objects) {
      const bool content_named = o.key.starts_with(kPacksPrefix) ||
                                 o.key.starts_with(kManifestsPrefix);
      if (content_named && !reachable_.contains(o.key)) orphans_.push_back(o.key);
    }
  }

  int Report(bool json) {
    const bool ok = damaged_.empty() && errors_.empty();
    if (json) {
      nlohmann::json j;
      j["ok"] = ok;
      j["checked_objects"] = checked_.size();
      nlohmann::json damaged = nlohmann::json::array();
      for (const auto& [key, error] : damaged_) damaged.push_back({{"key", key}, {"error", error}});
      j["damaged"] = std::move(damaged);
      j["orphans"] = orphans_;
      j["commits"] = commits_;
      if (!errors_.empty()) j["errors"] = errors_;
      std::cout << j.dump(2) << "\n";
    }
    for (const auto& [key, error] : damaged_) PrintError(StrCat("damaged ", key, ": ", error));
    for (const std::string& e : errors_) PrintError(e);
    for (const std::string& key : orphans_) {
      PrintWarning(StrCat("orphan ", key, ": no commit record reaches it"));
    }
    if (!json) {
      std::cout << fmt::format("{}: {} commits, {} objects checked, {} damaged, {} orphans\n",
                               ok ? "ok" : "FAILED", commits_, checked_.size(), damaged_.size(),
                               orphans_.size());
    }
    if (!damaged_.empty()) return kExitDamaged;
    if (!errors_.empty()) return kExitFailure;
    return kExitOk;
  }

 private:
  void CheckObject(const std::string& key) {
    if (key.starts_with(kPacksPrefix)) {
      checked_.insert(key);
      std::optional<std::string> hash = ParseHashKey(key, kPacksPrefix);
      if (!hash.has_value()) return Damaged(key, absl::DataLossError("malformed pack name"));
      absl::StatusOr<std::string> bytes = repo_.store()->Get(key);
      if (!bytes.ok()) return Damaged(key, bytes.status());
      absl::StatusOr<PackIndex> index = VerifyPack(*bytes, *hash, key);
      if (!index.ok()) Damaged(key, index.status());
    } else if (key.starts_with(kManifestsPrefix)) {
      checked_.insert(key);
      std::optional<std::string> hash = ParseHashKey(key, kManifestsPrefix);
      if (!hash.has_value()) return Damaged(key, absl::DataLossError("malformed manifest name"));
      absl::StatusOr<std::string> bytes = repo_.store()->Get(key);
      if (!bytes.ok()) return Damaged(key, bytes.status());
      const std::string actual = ToHex(Sha256(*bytes));
      if (actual != *hash) {
        return Damaged(key, absl::DataLossError(StrCat("manifest ", key, " is damaged: sha256 ",
                                                       actual, " differs from its name")));
      }
      absl::StatusOr<Manifest> manifest = DecodeManifest(*bytes, key);
      if (!manifest.ok()) Damaged(key, manifest.status());
    } else if (key.starts_with(kCommitsPrefix)) {
      checked_.insert(key);
      absl::StatusOr<std::string> bytes = repo_.store()->Get(key);
      if (!bytes.ok()) return Damaged(key, bytes.status());
      absl::StatusOr<CommitRecord> commit = DecodeCommitRecord(*bytes, key);
      if (!commit.ok()) return Damaged(key, commit.status());
      std::optional<uint64_t> id = ParseIdKey(key, kCommitsPrefix);
      if (!id.has_value() || *id != commit->id) {
        Damaged(key, absl::DataLossError(
                         StrCat("commit record ", key, " holds checkpoint id ", commit->id)));
      }
    } else if (key.starts_with(kIdsPrefix)) {
      checked_.insert(key);
      absl::StatusOr<uint64_t> size = repo_.store()->Size(key);
      if (!size.ok()) return Damaged(key, size.status());
      if (*size != 0) {
        Damaged(key, absl::DataLossError(StrCat("id reservation ", key, " is not empty (", *size,
                                                " bytes)")));
      }
    } else if (key == kConfigKey) {
      checked_.insert(key);
      absl::StatusOr<std::string> bytes = repo_.store()->Get(key);
      if (!bytes.ok()) return Damaged(key, bytes.status());
      absl::StatusOr<RepositoryConfig> config = DecodeConfig(*bytes, key);
      if (!config.ok()) Damaged(key, config.status());
    }
    // Reserved prefixes (merges/, locks/, index/, tmp/) and unknown keys: ignored by a 1.0 reader.
  }

  // DataLoss and NotFound (a missing object) are damage; other errors (I/O) are not.
  void Damaged(const std::string& key, const absl::Status& status) {
    if (!absl::IsDataLoss(status) && !absl::IsNotFound(status)) return Error(status);
    const std::string message(status.message());
    for (const auto& [k, e] : damaged_) {
      if (k == key && e == message) return;
    }
    damaged_.emplace_back(key, message);
  }
  void Error(const absl::Status& status) { errors_.push_back(std::string(status.message())); }

  const Repository& repo_;
  PackTable packs_;
  std::set<std::string> checked_;
  std::set<std::string> reachable_;
  std::vector<std::pair<std::string, std::string>> damaged_;
  std::vector<std::string> errors_;
  std::vector<std::string> orphans_;
  uint64_t commits_ = 0;
};

int RunVerify(const VerifyOptions& options) {
  absl::StatusOr<std::unique_ptr<Repository>> repo = OpenRepositoryReadOnly(options.repo);
  if (!repo.ok()) return Fail(repo.status());
  Verifier verifier(**repo);
  verifier.CheckStructure();
  if (options.data) verifier.CheckData();
  return verifier.Report(options.json);
}

}  // namespace

Command RegisterVerify(CLI::App& app) {
  auto options = std::make_shared<VerifyOptions>();
  CLI::App* sub = app.add_subcommand(
      "verify",
      "Check that every checkpoint can be restored: commit records decode, every chain of "
      "manifests resolves, every referenced pack exists with a readable index. With --data, read "
      "every object in full and list orphans (objects no checkpoint reaches).");
  sub->add_option("--repo", options->repo, "Repository directory")->required();
  sub->add_flag("--data", options->data,
                "Read and verify every object in full (every frame checksum and object name)");
  sub->add_flag("--json", options->json,
                "JSON: {ok, checked_objects, damaged: [{key, error}], orphans, commits}");
  return Command{sub, [options] { return RunVerify(*options); }};
}

}  // namespace ickpt::cli
