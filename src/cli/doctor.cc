// `ickpt doctor [--json]`: which trackers work in this process on this machine, why or why not,
// and which one a region with TrackerKind::kAuto gets. Needs no repository; always exits 0 (what
// it finds is information, not a failure).
//
// The answers come from DescribeTrackers(): each tracker is probed by doing the real thing on
// scratch pages, so they hold for this kernel, its configuration (sysctls, seccomp, containers)
// and this user, not for what headers or version strings suggest.
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "ickpt/region.h"
#include "src/cli/commands.h"
#include "src/cli/common.h"

namespace ickpt::cli {
namespace {

struct DoctorOptions {
  bool json = false;
};

int RunDoctor(const DoctorOptions& options) {
  const std::vector<TrackerReport>& reports = DescribeTrackers();
  const std::string selected(TrackerName(SelectedTracker()));
  if (options.json) {
    nlohmann::json trackers = nlohmann::json::array();
    for (const TrackerReport& report : reports) {
      trackers.push_back({{"name", std::string(TrackerName(report.kind))},
                          {"works", report.works},
                          {"reason", report.reason}});
    }
    const nlohmann::json out = {{"selected", selected}, {"trackers", std::move(trackers)}};
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << fmt::format("{:<11} {:<5} {}\n", "tracker", "works", "reason");
  for (const TrackerReport& report : reports) {
    std::cout << fmt::format("{:<11} {:<5} {}\n", TrackerName(report.kind),
                             report.works ? "yes" : "no", report.reason);
  }
  std::cout << "\nselected (tracker 'auto'): " << selected << "\n\n"
            << "Note: page-level trackers see writes by the CPU only. DMA/RDMA, io_uring fixed\n"
               "buffers and O_DIRECT reads into pinned pages bypass them: report such writes with\n"
               "Region::MarkDirty(offset, length).\n";
  return kExitOk;
}

}  // namespace

Command RegisterDoctor(CLI::App& app) {
  auto options = std::make_shared<DoctorOptions>();
  CLI::App* sub = app.add_subcommand(
      "doctor", "Which change trackers work here, why or why not, and which one 'auto' selects.");
  sub->add_flag("--json", options->json,
                "JSON object: selected, trackers (name, works, reason), in order of preference");
  return Command{sub, [options] { return RunDoctor(*options); }};
}

}  // namespace ickpt::cli
