// The subcommands of `ickpt`, one file each. A Register function adds its subcommand to the app
// and returns what to run once the command line parsed; the runner returns the exit code.
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace ickpt::cli {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

Command RegisterLog(CLI::App& app);
Command RegisterShow(CLI::App& app);
Command RegisterVerify(CLI::App& app);
Command RegisterRestore(CLI::App& app);
Command RegisterDiff(CLI::App& app);
// `ickpt get` and `ickpt dump`: one key, or every entry, of a keyed state (keyed.cc).
Command RegisterGet(CLI::App& app);
Command RegisterDump(CLI::App& app);
Command RegisterDemo(CLI::App& app);
// Retention and garbage collection (maintenance.cc): `ickpt retention set|show`, `ickpt pin`,
// `ickpt unpin` and `ickpt gc`.
Command RegisterRetention(CLI::App& app);
Command RegisterPin(CLI::App& app);
Command RegisterUnpin(CLI::App& app);
Command RegisterGc(CLI::App& app);
// `ickpt compact`: consolidation of a checkpoint (compact.cc).
Command RegisterCompact(CLI::App& app);
// `ickpt policy`: what the history says about the pause, restore time and space (policy.cc).
Command RegisterPolicy(CLI::App& app);
// `ickpt doctor`: which trackers work here; needs no repository.
Command RegisterDoctor(CLI::App& app);
// `ickpt coordinator`: one coordinator instance of a distributed job (coordinator.cc).
Command RegisterCoordinator(CLI::App& app);
// `ickpt status` and `ickpt trigger`: watch and drive a distributed job (status.cc, trigger.cc).
Command RegisterStatus(CLI::App& app);
Command RegisterTrigger(CLI::App& app);
// The hidden `demo-worker` subcommand: a worker process of `ickpt demo --workers N`
// (cluster_demo.cc).
Command RegisterDemoWorker(CLI::App& app);
// The hidden `demo-child` subcommand: the simulation process the demo supervisor re-executes.
Command RegisterDemoChild(CLI::App& app);

}  // namespace ickpt::cli
