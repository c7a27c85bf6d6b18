// `ickpt retention set|show`, `ickpt pin`, `ickpt unpin` and `ickpt gc`: retention and garbage
// collection (format.md §13) through include/ickpt/maintenance.h. Every command but
// `retention show` writes to the repository, so they open it for writing (never creating it).
#include "ickpt/maintenance.h"

#include <algorithm>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/strings/numbers.h"
#include "src/cli/commands.h"
#include "src/cli/common.h"
#include "src/repo/commit_record.h"
#include "src/util/parse.h"
#include "src/util/str.h"

namespace ickpt::cli {
namespace {

std::string JoinIds(const std::vector<uint64_t>& ids) {
  if (ids.empty()) return "none";
  std::string out;
  for (uint64_t id : ids) out += StrCat(out.empty() ? "" : ", ", id);
  return out;
}

nlohmann::json IdsJson(const std::vector<uint64_t>& ids) {
  nlohmann::json out = nlohmann::json::array();
  for (uint64_t id : ids) out.push_back(id);
  return out;
}

// ---- retention set / show ----------------------------------------------------------------------

// What `retention show` reports: the policy in force, the pins and the condemned checkpoints.
struct RetentionState {
  std::optional<RetentionPolicy> policy;
  std::vector<Pin> pins;
  std::vector<uint64_t> condemned;
};

absl::StatusOr<RetentionState> ReadRetentionState(const RepositoryReader& repo,
                                                  std::optional<RetentionPolicy> known_policy) {
  RetentionState state;
  if (known_policy.has_value()) {
    state.policy = std::move(known_policy);
  } else {
    absl::StatusOr<std::optional<RetentionPolicy>> policy = ReadRetentionPolicy(repo);
    if (!policy.ok()) return policy.status();
    state.policy = *std::move(policy);
  }
  absl::StatusOr<std::vector<Pin>> pins = ListPins(repo);
  if (!pins.ok()) return pins.status();
  state.pins = *std::move(pins);
  absl::StatusOr<std::vector<uint64_t>> condemned = ListCondemned(repo);
  if (!condemned.ok()) return condemned.status();
  state.condemned = *std::move(condemned);
  return state;
}

nlohmann::json RetentionJson(const RetentionState& state) {
  const nlohmann::json null;
  const std::optional<RetentionPolicy>& p = state.policy;
  nlohmann::json j;
  j["generation"] = p.has_value() ? nlohmann::json(p->generation) : null;
  j["keep_last"] = p.has_value() && p->keep_last.has_value() ? nlohmann::json(*p->keep_last) : null;
  j["keep_within_seconds"] = p.has_value() && p->keep_within.has_value()
                                 ? nlohmann::json(absl::ToInt64Seconds(*p->keep_within))
                                 : null;
  j["checkpoint_timeout_seconds"] =
      p.has_value() ? nlohmann::json(absl::ToInt64Seconds(p->checkpoint_timeout)) : null;
  j["created"] = p.has_value() ? nlohmann::json(ickpt::FormatTime(p->created)) : null;
  j["keeps_everything"] = !p.has_value();
  nlohmann::json pins = nlohmann::json::array();
  for (const Pin& pin : state.pins) {
    pins.push_back(
        {{"name", pin.name}, {"id", pin.id}, {"created", ickpt::FormatTime(pin.created)}});
  }
  j["pins"] = std::move(pins);
  j["condemned"] = IdsJson(state.condemned);
  return j;
}

// "retention policy generation 2: keep-last 5, keep-within 2h, checkpoint timeout 10m".
std::string PolicyLine(const RetentionPolicy& p) {
  return fmt::format(
      "retention policy generation {}: keep-last {}, keep-within {}, checkpoint timeout {}",
      p.generation, p.keep_last.has_value() ? std::to_string(*p.keep_last) : "none",
      p.keep_within.has_value() ? absl::FormatDuration(*p.keep_within) : "none",
      absl::FormatDuration(p.checkpoint_timeout));
}

void PrintRetentionText(const RetentionState& state) {
  if (state.policy.has_value()) {
    std::cout << PolicyLine(*state.policy) << "\n";
    std::cout << fmt::format(
        "  created {}; the latest checkpoint and pinned ones are always kept\n",
        ickpt::FormatTime(state.policy->created));
  } else {
    std::cout << "no retention policy: every committed checkpoint is kept\n";
  }
  if (state.pins.empty()) {
    std::cout << "pins: none\n";
  } else {
    std::cout << "pins:\n";
    for (const Pin& pin : state.pins) {
      std::cout << fmt::format("  {} -> checkpoint {} (pinned {})\n", pin.name, pin.id,
                               ickpt::FormatTime(pin.created));
    }
  }
  std::cout << "condemned (removed by a later gc unless needed again): " << JoinIds(state.condemned)
            << "\n";
}

struct RetentionSetOptions {
  std::string repo;
  std::string keep_last;
  std::string keep_within;
  std::string checkpoint_timeout;
  bool json = false;
  CLI::Option* keep_last_option = nullptr;
  CLI::Option* keep_within_option = nullptr;
  CLI::Option* checkpoint_timeout_option = nullptr;
};

int RunRetentionSet(const RetentionSetOptions& o) {
  const bool has_keep_last = o.keep_last_option->count() > 0;
  const bool has_keep_within = o.keep_within_option->count() > 0;
  const bool has_timeout = o.checkpoint_timeout_option->count() > 0;
  if (!has_keep_last && !has_keep_within) {
    PrintError("retention set needs --keep-last, --keep-within or both");
    return kExitUsage;
  }
  RetentionPolicy policy;
  if (has_keep_last) {
    uint64_t n = 0;
    const bool digits = !o.keep_last.empty() && o.keep_last.size() <= 20 &&
                        std::all_of(o.keep_last.begin(), o.keep_last.end(),
                                    [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || !absl::SimpleAtoi(o.keep_last, &n) || n == 0) {
      PrintError(StrCat("--keep-last ", o.keep_last, ": expected an integer >= 1"));
      return kExitUsage;
    }
    policy.keep_last = n;
  }
  if (has_keep_within) {
    std::optional<absl::Duration> d = ParseDurationFlag("--keep-within", o.keep_within, true);
    if (!d.has_value()) return kExitUsage;
    policy.keep_within = *d;
  }
  if (has_timeout) {
    std::optional<absl::Duration> d =
        ParseDurationFlag("--checkpoint-timeout", o.checkpoint_timeout, true);
    if (!d.has_value()) return kExitUsage;
    policy.checkpoint_timeout = *d;
  }

  absl::StatusOr<std::unique_ptr<Repository>> repo = OpenRepositoryForWriting(o.repo);
  if (!repo.ok()) return Fail(repo.status());
  if (!has_timeout) {
    // The current policy's timeout carries over; it is read only when needed, so that a damaged
    // policy can be replaced by giving --checkpoint-timeout.
    absl::StatusOr<std::optional<RetentionPolicy>> current = ReadRetentionPolicy(**repo);
    if (!current.ok()) {
      return Fail(absl::Status(
          current.status().code(),
          StrCat(current.status().message(),
                 " (give --checkpoint-timeout to store a new policy without reading it)")));
    }
    if (current->has_value()) policy.checkpoint_timeout = (*current)->checkpoint_timeout;
  }
  absl::StatusOr<RetentionPolicy> stored = SetRetentionPolicy(**repo, policy);
  if (!stored.ok()) return Fail(stored.status());
  if (!o.json) {
    std::cout << PolicyLine(*stored) << "\n";
    return kExitOk;
  }
  absl::StatusOr<RetentionState> state = ReadRetentionState(**repo, *stored);
  if (!state.ok()) return Fail(state.status());
  std::cout << RetentionJson(*state).dump(2) << "\n";
  return kExitOk;
}

struct RetentionShowOptions {
  std::string repo;
  bool json = false;
};

int RunRetentionShow(const RetentionShowOptions& o) {
  absl::StatusOr<std::unique_ptr<RepositoryReader>> repo = OpenRepositoryReadOnly(o.repo);
  if (!repo.ok()) return Fail(repo.status());
  absl::StatusOr<RetentionState> state = ReadRetentionState(**repo, std::nullopt);
  if (!state.ok()) return Fail(state.status());
  if (o.json) {
    std::cout << RetentionJson(*state).dump(2) << "\n";
  } else {
    PrintRetentionText(*state);
  }
  return kExitOk;
}

constexpr const char* kRetentionJsonHelp =
    "One JSON object: generation, keep_last, keep_within_seconds, checkpoint_timeout_seconds, "
    "created (each null without a policy; keep_last and keep_within_seconds also when that rule is "
    "not set), keeps_everything (true without a policy), pins: [{name, id, created}], "
    "condemned: [id]";

// ---- pin / unpin
// ---------------------------------------------------------------------------------

struct PinOptions {
  std::string repo;
  std::string id;
  std::string name;
};

int RunPin(const PinOptions& o) {
  if (!CheckCheckpointIdArgument(o.id)) return kExitUsage;
  // A bad name is a bad command line: usage error, before anything is opened.
  if (absl::Status s = ValidatePinName(o.name); !s.ok()) {
    PrintError(s.message());
    return kExitUsage;
  }
  absl::StatusOr<std::unique_ptr<Repository>> repo = OpenRepositoryForWriting(o.repo);
  if (!repo.ok()) return Fail(repo.status());
  absl::StatusOr<uint64_t> id = ResolveCheckpointId(**repo, o.id);
  if (!id.ok()) return Fail(id.status());
  if (absl::Status s = PinCheckpoint(**repo, *id, o.name); !s.ok()) return Fail(s);
  std::cout << fmt::format("pinned checkpoint {} as '{}'\n", *id, o.name);
  return kExitOk;
}

struct UnpinOptions {
  std::string repo;
  std::string name;
};

int RunUnpin(const UnpinOptions& o) {
  if (absl::Status s = ValidatePinName(o.name); !s.ok()) {
    PrintError(s.message());
    return kExitUsage;
  }
  absl::StatusOr<std::unique_ptr<Repository>> repo = OpenRepositoryForWriting(o.repo);
  if (!repo.ok()) return Fail(repo.status());
  if (absl::Status s = UnpinCheckpoint(**repo, o.name); !s.ok()) return Fail(s);
  std::cout << fmt::format("removed pin '{}'\n", o.name);
  return kExitOk;
}

// ---- gc
// ------------------------------------------------------------------------------------------

struct GcCommandOptions {
  std::string repo;
  bool dry_run = false;
  std::string grace = "1h";
  std::string lock_ttl = "5m";
  bool json = false;
};

nlohmann::json GcJson(const GcReport& r) {
  nlohmann::json j;
  j["dry_run"] = r.dry_run;
  j["deleted_objects"] = r.deleted_objects;
  j["deleted_bytes"] = r.deleted_bytes;
  j["kept_checkpoints"] = IdsJson(r.kept_checkpoints);
  j["needed_checkpoints"] = IdsJson(r.needed_checkpoints);
  j["condemned_checkpoints"] = IdsJson(r.condemned_checkpoints);
  j["pardoned_checkpoints"] = IdsJson(r.pardoned_checkpoints);
  j["removed_checkpoints"] = IdsJson(r.removed_checkpoints);
  j["fenced_checkpoints"] = IdsJson(r.fenced_checkpoints);
  j["deleted"] = {{"commits", r.deleted_commits},
                  {"manifests", r.deleted_manifests},
                  {"packs", r.deleted_packs},
                  {"acks", r.deleted_acks},
                  {"reservations", r.deleted_reservations},
                  {"condemnations", r.deleted_condemnations},
                  {"probes", r.deleted_probes}};
  j["removed_debris"] = r.removed_debris;
  j["dangling_pins"] = r.dangling_pins;
  j["policy_generation"] =
      r.policy_generation.has_value() ? nlohmann::json(*r.policy_generation) : nlohmann::json();
  return j;
}

void PrintGcText(const GcReport& r) {
  const char* verb = r.dry_run ? "would delete" : "deleted";
  std::cout << fmt::format(
      "gc{}: {} {} objects ({}): {} commits, {} manifests, {} packs, {} acks, "
      "{} reservations, {} condemnations\n",
      r.dry_run ? " (dry run, nothing deleted)" : "", verb, r.deleted_objects,
      FormatBytes(r.deleted_bytes), r.deleted_commits, r.deleted_manifests, r.deleted_packs,
      r.deleted_acks, r.deleted_reservations, r.deleted_condemnations);
  std::cout << fmt::format("  policy: {}\n",
                           r.policy_generation.has_value()
                               ? StrCat("generation ", *r.policy_generation)
                               : std::string("none (every committed checkpoint is kept)"));
  std::cout << fmt::format("  kept checkpoints: {}\n", JoinIds(r.kept_checkpoints));
  std::cout << fmt::format("  needed by kept ones: {}\n", JoinIds(r.needed_checkpoints));
  std::cout << fmt::format("  {}: {}\n", r.dry_run ? "would condemn" : "condemned",
                           JoinIds(r.condemned_checkpoints));
  std::cout << fmt::format("  {}: {}\n", r.dry_run ? "would pardon" : "pardoned",
                           JoinIds(r.pardoned_checkpoints));
  std::cout << fmt::format("  {}: {}\n", r.dry_run ? "would remove" : "removed",
                           JoinIds(r.removed_checkpoints));
  if (!r.fenced_checkpoints.empty()) {
    std::cout << fmt::format("  fenced by a coordinator epoch (not part of the history): {}\n",
                             JoinIds(r.fenced_checkpoints));
  }
  if (r.removed_debris > 0) {
    std::cout << fmt::format("  store debris removed: {}\n", r.removed_debris);
  }
}

int RunGc(const GcCommandOptions& o) {
  std::optional<absl::Duration> grace = ParseDurationFlag("--grace", o.grace, false);
  if (!grace.has_value()) return kExitUsage;
  std::optional<absl::Duration> lock_ttl = ParseDurationFlag("--lock-ttl", o.lock_ttl, true);
  if (!lock_ttl.has_value()) return kExitUsage;
  absl::StatusOr<std::unique_ptr<Repository>> repo = OpenRepositoryForWriting(o.repo);
  if (!repo.ok()) return Fail(repo.status());
  GcOptions options;
  options.grace = *grace;
  options.lock_ttl = *lock_ttl;
  options.dry_run = o.dry_run;
  absl::StatusOr<GcReport> report = CollectGarbage(**repo, options);
  if (!report.ok()) return Fail(report.status());
  for (const std::string& name : report->dangling_pins) {
    PrintWarning(StrCat("pin '", name,
                        "' names a checkpoint that does not exist: it keeps nothing "
                        "(ickpt unpin removes it)"));
  }
  if (o.json) {
    std::cout << GcJson(*report).dump(2) << "\n";
  } else {
    PrintGcText(*report);
  }
  return kExitOk;
}

}  // namespace

Command RegisterRetention(CLI::App& app) {
  CLI::App* sub = app.add_subcommand(
      "retention",
      "Show or set the retention policy: which committed checkpoints gc keeps (the last N, those "
      "younger than a duration, pinned ones, and always the latest).");
  sub->require_subcommand(1);

  auto set = std::make_shared<RetentionSetOptions>();
  CLI::App* set_app = sub->add_subcommand(
      "set",
      "Store a new policy generation; it replaces the one in force (rules not given are not "
      "carried over, the checkpoint timeout is unless given).");
  AddRepoOption(set_app, &set->repo);
  set->keep_last_option =
      set_app
          ->add_option("--keep-last", set->keep_last,
                       "Keep the N committed checkpoints of highest id (N >= 1)")
          ->type_name("N");
  set->keep_within_option =
      set_app
          ->add_option(
              "--keep-within", set->keep_within,
              "Keep checkpoints created at most this long ago, e.g. 2h or 168h (whole seconds)")
          ->type_name("DURATION");
  set->checkpoint_timeout_option = set_app
                                       ->add_option("--checkpoint-timeout", set->checkpoint_timeout,
                                                    "The longest a checkpoint may take to commit; "
                                                    "gc's grace must be longer (whole seconds; "
                                                    "default: the current policy's, or 10m)")
                                       ->type_name("DURATION");
  set_app->add_flag(
      "--json", set->json,
      std::string("The policy now in force, as 'retention show --json': ") + kRetentionJsonHelp);

  auto show = std::make_shared<RetentionShowOptions>();
  CLI::App* show_app = sub->add_subcommand(
      "show", "Show the policy in force, the pins and the condemned checkpoints.");
  AddRepoOption(show_app, &show->repo);
  show_app->add_flag("--json", show->json, kRetentionJsonHelp);

  return Command{sub, [set, show, set_app, show_app] {
                   if (set_app->parsed()) return RunRetentionSet(*set);
                   if (show_app->parsed()) return RunRetentionShow(*show);
                   return kExitUsage;
                 }};
}

Command RegisterPin(CLI::App& app) {
  auto options = std::make_shared<PinOptions>();
  CLI::App* sub = app.add_subcommand(
      "pin",
      "Pin a committed checkpoint under a name: gc keeps it (and what it needs) until unpinned.");
  sub->add_option("ID", options->id, "Checkpoint id, or 'latest'")->required();
  AddRepoOption(sub, &options->repo);
  sub->add_option("--name", options->name,
                  "The pin's name: lowercase letters, digits, '.', '_' and '-'")
      ->type_name("NAME")
      ->required();
  return Command{sub, [options] { return RunPin(*options); }};
}

Command RegisterUnpin(CLI::App& app) {
  auto options = std::make_shared<UnpinOptions>();
  CLI::App* sub = app.add_subcommand("unpin", "Remove a pin (exit 4 if there is none).");
  sub->add_option("NAME", options->name, "The pin's name")->required();
  AddRepoOption(sub, &options->repo);
  return Command{sub, [options] { return RunUnpin(*options); }};
}

Command RegisterGc(CLI::App& app) {
  auto options = std::make_shared<GcCommandOptions>();
  CLI::App* sub = app.add_subcommand(
      "gc",
      "Garbage collection: condemn the checkpoints retention no longer keeps, remove those "
      "condemned longer than the grace period, and delete objects nothing kept reaches. Runs under "
      "the repository's maintenance lock (exit 1 if another gc holds it); refuses, deleting "
      "nothing, if the repository is damaged (exit 3).");
  AddRepoOption(sub, &options->repo);
  sub->add_flag("--dry-run", options->dry_run,
                "Decide and report, delete and condemn nothing (the lock is still taken)");
  sub->add_option("--grace", options->grace,
                  "How long an unreferenced object, or a condemnation, must have existed before "
                  "it is deleted; must exceed the policy's checkpoint timeout")
      ->type_name("DURATION")
      ->capture_default_str();
  sub->add_option("--lock-ttl", options->lock_ttl,
                  "The maintenance lock's ttl: another gc may take over a lock not renewed for "
                  "this long (whole seconds)")
      ->type_name("DURATION")
      ->capture_default_str();
  sub->add_flag("--json", options->json,
                "One JSON object: dry_run, deleted_objects, deleted_bytes, kept_checkpoints, "
                "condemned_checkpoints, pardoned_checkpoints, removed_checkpoints, "
                "fenced_checkpoints (arrays of ids), deleted: {commits, manifests, packs, acks, reservations, condemnations}, "
                "removed_debris, dangling_pins (names), policy_generation (null: no policy)");
  return Command{sub, [options] { return RunGc(*options); }};
}

}  // namespace ickpt::cli
