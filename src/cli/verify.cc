// `ickpt verify [--data]`: checks that every checkpoint can be restored.
//
// Without --data: every commit record decodes, every state object's chain of manifests resolves
// (format.md §9, §9.1) and every pack it references exists with a readable index. A keyed state's
// records are read too, each manifest once (a chain shares its older manifests with the
// checkpoints below): every frame holding them is verified and every group checked against the
// rules of §5.3, since only that shows a keyed restore will not fail. With --data, every
// object in the repository is read in full: every pack's frames and name (§4), every manifest's
// trailer and name (§5), every commit record (§6), every id reservation (§7) and the config (§3);
// objects no commit record reaches are listed as orphans (a warning: GC may delete them).
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "src/cli/commands.h"
#include "src/cli/common.h"
#include "src/cli/keyed_entries.h"
#include "src/repo/keyed_reader.h"
#include "src/repo/keys.h"
#include "src/repo/object_check.h"
#include "src/repo/reachability.h"
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
  explicit Verifier(const RepositoryReader& repo) : repo_(repo) {}

  // Commit records, chains, pack indexes.
  void CheckStructure() {
    absl::StatusOr<std::vector<uint64_t>> ids = repo_.ListCommitIds();
    if (!ids.ok()) return Error(ids.status());
    absl::StatusOr<Reachable> reachable = ComputeReachable(repo_, *ids);
    if (!reachable.ok()) return Error(reachable.status());
    for (const ReachProblem& problem : reachable->problems) Damaged(problem.key, problem.status);
    for (const std::set<std::string>* keys :
         {&reachable->commits, &reachable->manifests, &reachable->packs, &reachable->acks}) {
      reachable_.insert(keys->begin(), keys->end());
    }
    checked_.insert(reachable->commits.begin(), reachable->commits.end());
    checked_.insert(reachable->manifests.begin(), reachable->manifests.end());
    // The records read intact (a damaged one is a problem of the walk already).
    for (const CommitRecord& commit : reachable->records) {
      ++commits_;
      for (const std::string& name : KeyedStateNames(commit)) CheckKeyed(commit, name);
    }
    for (const std::string& key : reachable->packs) {
      checked_.insert(key);
      if (absl::Status s = CheckPackIndex(repo_, key); !s.ok()) Damaged(key, s);
    }
  }

  // Every object in full.
  void CheckData() {
    absl::StatusOr<std::vector<ObjectInfo>> objects = ListRepositoryObjects(repo_);
    if (!objects.ok()) return Error(objects.status());
    uint64_t total = 0;
    for (const ObjectInfo& o : *objects) total += o.size;
    Progress progress("verifying", total);
    for (const ObjectInfo& o : *objects) {
      if (IsCheckedObjectKey(o.key)) {
        checked_.insert(o.key);
        if (absl::Status s = CheckStoredObject(repo_, o.key); !s.ok()) Damaged(o.key, s);
      }
      progress.Add(o.size);
    }
    progress.Finish();
    for (const ObjectInfo& o : *objects) {
      const bool content_named =
          o.key.starts_with(kPacksPrefix) || o.key.starts_with(kManifestsPrefix);
      if (content_named && !reachable_.contains(o.key)) orphans_.push_back(o.key);
    }
  }

  // format.md §13.4: GC may remove checkpoints while verify runs. A finding about an object that
  // no longer exists and that no commit record present now reaches was GC's doing, not damage.
  void DropWhatGcRemoved() {
    if (damaged_.empty()) return;
    absl::StatusOr<std::vector<uint64_t>> ids = repo_.ListCommitIds();
    if (!ids.ok()) return;
    absl::StatusOr<Reachable> now = ComputeReachable(repo_, *ids);
    if (!now.ok()) return;
    std::erase_if(damaged_, [&](const std::pair<std::string, std::string>& finding) {
      const std::string& key = finding.first;
      for (const std::set<std::string>* keys : {&now->commits, &now->manifests, &now->packs}) {
        if (keys->contains(key)) return false;
      }
      if (!absl::IsNotFound(CheckStoredObject(repo_, key))) return false;
      ++removed_while_verifying_;
      return true;
    });
  }

  int Report(bool json) {
    DropWhatGcRemoved();
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
      j["keyed_records"] = keyed_records_;
      j["removed_while_verifying"] = removed_while_verifying_;
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
  // Drops the entries ReadKeyed hands over (its stats count the records). It remembers no key
  // (Contains is always false): verify reads each manifest on its own, so no newer manifest's
  // decisions apply, and memory stays flat however large the state.
  class DiscardingSink final : public KeyedRestoreSink {
   public:
    bool Contains(std::string_view /*key*/) const override { return false; }
    absl::Status Put(std::string_view /*key*/, std::string_view /*value*/) override {
      return absl::OkStatus();
    }
  };

  // Keyed state `name` of `commit`: its chains resolve over every participant (groups disjoint and
  // covering [0, G), format.md §9.1), and every manifest not read before has its records read.
  void CheckKeyed(const CommitRecord& commit, const std::string& name) {
    // Resolve errors are reported under this checkpoint's manifest of the state (of its first
    // participant); the message names the object that is actually damaged.
    const StateObjectRecord* record = FindKeyedRecord(commit, name);
    if (record == nullptr) return;
    absl::StatusOr<ResolvedKeyed> keyed = ResolveKeyed(repo_, commit, name);
    if (!keyed.ok()) return Damaged(record->manifest, keyed.status());
    for (KeyedChain& chain : keyed->chains) {
      for (size_t link = 0; link < chain.manifests.size(); ++link) {
        const std::string& manifest_key = chain.manifest_keys[link];
        reachable_.insert(manifest_key);
        checked_.insert(manifest_key);
        std::vector<std::string> pack_keys;
        for (const Sha256Digest& digest : chain.manifests[link].packs) {
          pack_keys.push_back(PackKey(ToHex(digest)));
          reachable_.insert(pack_keys.back());
          checked_.insert(pack_keys.back());
        }
        if (!records_checked_.insert(manifest_key).second) continue;
        // This manifest alone, as a chain of one: ReadKeyed then reads all of its records.
        ResolvedKeyed one;
        one.name = name;
        one.checkpoint_id = commit.id;
        one.key_groups = keyed->key_groups;
        KeyedChain single;
        single.participant = chain.participant;
        single.group_first = chain.group_first;
        single.group_end = chain.group_end;
        single.checkpoint_ids = {chain.checkpoint_ids[link]};
        single.manifest_keys = {manifest_key};
        single.manifests.push_back(std::move(chain.manifests[link]));
        one.chains.push_back(std::move(single));
        DiscardingSink sink;
        absl::StatusOr<KeyedReadStats> stats = ReadKeyed(repo_, one, KeyedReadOptions{}, &sink);
        if (stats.ok()) {
          keyed_records_ += stats->records_read;
          continue;
        }
        if (!absl::IsDataLoss(stats.status()) && !absl::IsNotFound(stats.status())) {
          Error(stats.status());
          continue;
        }
        // Name the damaged pack rather than the manifest if one of its packs fails whole; the
        // manifest is to blame only when its packs are sound (its group index points wrong).
        bool pack_damaged = false;
        for (const std::string& pack_key : pack_keys) {
          if (absl::Status s = CheckStoredObject(repo_, pack_key); !s.ok()) {
            Damaged(pack_key, s);
            pack_damaged = true;
          }
        }
        if (!pack_damaged) Damaged(manifest_key, stats.status());
      }
    }
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
  uint64_t removed_while_verifying_ = 0;

  const RepositoryReader& repo_;
  std::set<std::string> checked_;
  std::set<std::string> reachable_;
  std::vector<std::pair<std::string, std::string>> damaged_;
  std::vector<std::string> errors_;
  std::vector<std::string> orphans_;
  uint64_t commits_ = 0;
  // Keyed manifests whose records were read, and how many records that was.
  std::set<std::string> records_checked_;
  uint64_t keyed_records_ = 0;
};

int RunVerify(const VerifyOptions& options) {
  absl::StatusOr<std::unique_ptr<RepositoryReader>> repo = OpenRepositoryReadOnly(options.repo);
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
      "manifests resolves, every referenced pack exists with a readable index, and every record "
      "of every keyed state manifest is read and checked (each manifest once). With --data, read "
      "every object in full and list orphans (objects no checkpoint reaches).");
  AddRepoOption(sub, &options->repo);
  sub->add_flag("--data", options->data,
                "Read and verify every object in full (every frame checksum and object name)");
  sub->add_flag("--json", options->json,
                "JSON: {ok, checked_objects, damaged: [{key, error}], orphans, commits, "
                "keyed_records (keyed state records read and checked)}");
  return Command{sub, [options] { return RunVerify(*options); }};
}

}  // namespace ickpt::cli
