// `ickpt status --etcd URL --job NAME [--json]`: what a distributed job is doing, read from its
// keys in etcd (docs/protocol.md §3) in one consistent read: the leader and its epoch, the members
// with their incarnations and liveness, the recovery in force, the pending checkpoint, and the
// recent outcomes with their durations, sizes and failures. Reads only; needs no repository.
#include <algorithm>
#include <cinttypes>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "src/cli/commands.h"
#include "src/cli/common.h"
#include "src/cli/etcd_flags.h"
#include "src/coord/coordination_store.h"
#include "src/coord/protocol.h"
#include "src/util/parse.h"
#include "src/util/str.h"

namespace ickpt::cli {
namespace {

// How many outcomes `recent` shows (the leader keeps the keys of the last 64 ids).
constexpr size_t kRecentOutcomes = 10;

struct StatusCliOptions {
  EtcdFlags etcd;
  std::string job;
  bool json = false;
};

struct MemberStatus {
  std::string name;
  uint64_t incarnation = 0;  // 0: never seen joined
  bool alive = false;        // its members/ key exists, so its lease is alive
  std::string host;
  int64_t pid = 0;
  bool assigned = false;                 // in the recovery record's participants
  std::optional<std::string> recovered;  // "restored" or "failed: ..." under the recovery in force
};

std::vector<MemberStatus> Members(const coord::JobSnapshot& snap) {
  std::map<std::string, MemberStatus> out;
  for (const auto& [name, m] : snap.members) {
    MemberStatus& s = out[name];
    s.name = name;
    s.incarnation = m.incarnation;
    s.alive = true;
    s.host = m.value.host;
    s.pid = m.value.pid;
  }
  // A dead participant's last incarnation: the newest trigger or recovered key that names it.
  auto remember = [&](const std::string& name, uint64_t incarnation) {
    MemberStatus& s = out[name];
    s.name = name;
    if (!s.alive) s.incarnation = std::max(s.incarnation, incarnation);
  };
  for (const auto& [id, trigger] : snap.triggers) {
    for (const auto& [name, incarnation] : trigger.participants) remember(name, incarnation);
  }
  for (const auto& [name, r] : snap.recovered) remember(name, r.incarnation);
  if (snap.recovery.has_value()) {
    for (const std::string& name : snap.recovery->participants) {
      MemberStatus& s = out[name];
      s.name = name;
      s.assigned = true;
    }
  }
  for (const auto& [name, r] : snap.recovered) {
    if (!snap.recovery.has_value() || r.sequence != snap.recovery->sequence) continue;
    out[name].recovered = r.status == coord::RecoveredStatus::kRestored
                              ? std::string("restored")
                              : StrCat("failed: ", r.reason);
  }
  std::vector<MemberStatus> list;
  for (auto& [name, s] : out) list.push_back(std::move(s));
  return list;
}

std::optional<uint64_t> LastCommitted(const coord::JobSnapshot& snap) {
  for (auto it = snap.outcomes.rbegin(); it != snap.outcomes.rend(); ++it) {
    if (it->second.outcome == coord::Outcome::kCommitted) return it->first;
  }
  return std::nullopt;
}

// The newest trigger without an outcome.
const coord::Trigger* Pending(const coord::JobSnapshot& snap) {
  for (auto it = snap.triggers.rbegin(); it != snap.triggers.rend(); ++it) {
    if (snap.outcomes.count(it->first) == 0) return &it->second;
  }
  return nullptr;
}

nlohmann::json NullOr(const std::optional<uint64_t>& v) {
  return v.has_value() ? nlohmann::json(*v) : nlohmann::json();
}

// Milliseconds from the trigger to the outcome (both the leaders' clocks), or nullopt.
std::optional<int64_t> DurationMs(const coord::JobSnapshot& snap, const coord::OutcomeValue& o) {
  const int64_t triggered_ms = coord::TriggerFactsOf(snap, o).triggered_ms;
  if (o.decided_ms <= 0 || triggered_ms <= 0 || o.decided_ms < triggered_ms) return std::nullopt;
  return o.decided_ms - triggered_ms;
}

int RunStatus(const StatusCliOptions& o) {
  if (absl::Status s = coord::ValidateCoordinationName("job", o.job); !s.ok()) {
    PrintError(s.message());
    return kExitUsage;
  }
  int exit_code = kExitOk;
  std::shared_ptr<coord::CoordinationStore> store = ConnectEtcdOrExplain(o.etcd, &exit_code);
  if (store == nullptr) return exit_code;
  absl::StatusOr<coord::RangeResult> range = store->GetPrefix(coord::JobPrefix(o.job));
  if (!range.ok()) return Fail(range.status());
  if (range->kvs.empty()) {
    return Fail(absl::NotFoundError(StrCat("job '", o.job, "' has no keys in ", store->Describe(),
                                           ": no coordinator or participant of it has run there")));
  }
  const coord::JobSnapshot snap = coord::DecodeJobSnapshot(o.job, *range);
  const coord::JobSnapshot::Candidate* leader = snap.leader();
  std::vector<std::string> standby;  // the candidates after the leader, in election order
  for (size_t i = 1; i < snap.candidates.size(); ++i)
    standby.push_back(snap.candidates[i].value.name);
  const std::vector<MemberStatus> members = Members(snap);
  const coord::Trigger* pending = Pending(snap);
  const std::optional<uint64_t> last_committed = LastCommitted(snap);
  std::vector<const coord::OutcomeValue*> recent;
  for (auto it = snap.outcomes.rbegin();
       it != snap.outcomes.rend() && recent.size() < kRecentOutcomes; ++it) {
    recent.push_back(&it->second);
  }
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  // The pending checkpoint's acknowledgements, split.
  std::vector<std::string> acknowledged, waiting;
  if (pending != nullptr) {
    auto acks = snap.acks.find(pending->id);
    for (const auto& [name, incarnation] : pending->participants) {
      bool acked = false;
      if (acks != snap.acks.end()) {
        auto a = acks->second.find(name);
        acked = a != acks->second.end() && a->second.incarnation == incarnation &&
                a->second.epoch == pending->epoch;
      }
      (acked ? acknowledged : waiting).push_back(name);
    }
  }

  if (o.json) {
    nlohmann::json j;
    j["job"] = o.job;
    j["revision"] = snap.revision;
    j["leader"] = leader == nullptr ? nlohmann::json() : nlohmann::json(leader->value.name);
    j["epoch"] = leader == nullptr ? nlohmann::json() : nlohmann::json(leader->create_revision);
    if (leader != nullptr) {
      j["leader_host"] = leader->value.host;
      j["leader_pid"] = leader->value.pid;
    }
    j["standby"] = standby;
    nlohmann::json ms = nlohmann::json::array();
    for (const MemberStatus& m : members) {
      nlohmann::json e{{"name", m.name},
                       {"incarnation", m.incarnation},
                       {"alive", m.alive},
                       {"assigned", m.assigned}};
      if (m.alive) {
        e["host"] = m.host;
        e["pid"] = m.pid;
      }
      e["recovered"] = m.recovered.has_value() ? nlohmann::json(*m.recovered) : nlohmann::json();
      ms.push_back(std::move(e));
    }
    j["members"] = std::move(ms);
    if (snap.recovery.has_value()) {
      j["recovery"] = {{"sequence", snap.recovery->sequence},
                       {"epoch", snap.recovery->epoch},
                       {"checkpoint", NullOr(snap.recovery->checkpoint)},
                       {"participants", snap.recovery->participants}};
    } else {
      j["recovery"] = nullptr;
    }
    if (pending != nullptr) {
      j["pending"] = {{"id", pending->id},
                      {"full", pending->full},
                      {"age_ms", std::max<int64_t>(0, now_ms - pending->created_ms)},
                      {"acknowledged", acknowledged},
                      {"waiting", waiting}};
    } else {
      j["pending"] = nullptr;
    }
    j["last_committed"] = NullOr(last_committed);
    nlohmann::json rs = nlohmann::json::array();
    for (const coord::OutcomeValue* r : recent) {
      const std::optional<int64_t> ms = DurationMs(snap, *r);
      rs.push_back({{"id", r->id},
                    {"outcome", coord::OutcomeName(r->outcome)},
                    {"reason", r->reason},
                    {"duration_ms", ms.has_value() ? nlohmann::json(*ms) : nlohmann::json()},
                    {"logical_bytes", NullOr(r->logical_bytes)},
                    {"stored_bytes", NullOr(r->stored_bytes)}});
    }
    j["recent"] = std::move(rs);
    j["damaged"] = snap.damaged;
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }

  std::cout << fmt::format("job {} ({}, revision {})\n", o.job, store->Describe(), snap.revision);
  if (leader == nullptr) {
    std::cout << "leader:    none (no coordinator is running)\n";
  } else {
    std::cout << fmt::format("leader:    {} (host {}, pid {}), epoch {}; standby: {}\n",
                             leader->value.name, leader->value.host, leader->value.pid,
                             leader->create_revision,
                             standby.empty() ? std::string("none") : absl::StrJoin(standby, ", "));
  }
  if (snap.recovery.has_value()) {
    std::cout << fmt::format("recovery:  sequence {} (epoch {}): {}, {} participant(s)\n",
                             snap.recovery->sequence, snap.recovery->epoch,
                             snap.recovery->checkpoint.has_value()
                                 ? StrCat("from checkpoint ", *snap.recovery->checkpoint)
                                 : std::string("started empty"),
                             snap.recovery->participants.size());
  } else {
    std::cout << "recovery:  none yet (waiting for participants)\n";
  }
  std::cout << fmt::format("\n{:<24} {:>12} {:<6} {:<9} {}\n", "member", "incarnation", "alive",
                           "assigned", "recovered");
  for (const MemberStatus& m : members) {
    std::cout << fmt::format("{:<24} {:>12} {:<6} {:<9} {}\n", m.name,
                             m.incarnation == 0 ? std::string("-") : StrCat(m.incarnation),
                             m.alive ? "yes" : "NO", m.assigned ? "yes" : "no",
                             m.recovered.value_or("-"));
  }
  std::cout << "\n";
  if (pending != nullptr) {
    std::cout << fmt::format(
        "pending:   checkpoint {}{}, triggered {} ago; acknowledged {}/{}{}\n", pending->id,
        pending->full ? " (full)" : "",
        FormatNanos(std::max<int64_t>(0, now_ms - pending->created_ms) * 1000000),
        acknowledged.size(), pending->participants.size(),
        waiting.empty() ? std::string() : StrCat(", waiting for ", absl::StrJoin(waiting, ", ")));
  } else {
    std::cout << "pending:   none\n";
  }
  std::cout << fmt::format("last committed: {}\n",
                           last_committed.has_value() ? StrCat(*last_committed) : "none");
  if (!recent.empty()) {
    std::cout << fmt::format("\n{:>8} {:<10} {:>10} {:>11} {:>11}  {}\n", "id", "outcome",
                             "duration", "logical", "stored", "reason");
    for (const coord::OutcomeValue* r : recent) {
      const std::optional<int64_t> ms = DurationMs(snap, *r);
      std::cout << fmt::format(
          "{:>8} {:<10} {:>10} {:>11} {:>11}  {}\n", r->id, coord::OutcomeName(r->outcome),
          ms.has_value() ? FormatNanos(*ms * 1000000) : std::string("-"),
          r->logical_bytes.has_value() ? FormatBytes(*r->logical_bytes) : std::string("-"),
          r->stored_bytes.has_value() ? FormatBytes(*r->stored_bytes) : std::string("-"),
          r->reason);
    }
  }
  for (const std::string& d : snap.damaged) PrintWarning(StrCat("damaged key: ", d));
  return kExitOk;
}

}  // namespace

Command RegisterStatus(CLI::App& app) {
  auto options = std::make_shared<StatusCliOptions>();
  CLI::App* sub = app.add_subcommand(
      "status",
      "Show a distributed job from its keys in etcd: leader and epoch, members with incarnation "
      "and liveness, the recovery in force, the pending and last committed checkpoints, and "
      "recent outcomes (duration, sizes, failures).");
  AddEtcdFlags(sub, &options->etcd);
  sub->add_option("--job", options->job, "The job's name")->required();
  sub->add_flag("--json", options->json,
                "One JSON object: leader, epoch, members [{name, incarnation, alive}], pending, "
                "last_committed, recovery, recent");
  return Command{sub, [options] { return RunStatus(*options); }};
}

}  // namespace ickpt::cli
