// `ickpt`: inspect, verify and restore checkpoint repositories, set their retention, collect their
// garbage and consolidate their chains; `ickpt demo` shows crash recovery.
#include <iostream>
#include <vector>

#include <CLI/CLI.hpp>

#include "src/cli/commands.h"
#include "src/cli/common.h"

#ifndef ICKPT_VERSION
#define ICKPT_VERSION "unknown"
#endif

int main(int argc, char** argv) {
  using namespace ickpt::cli;
  CLI::App app{
      "ickpt: inspect, verify and restore incremental checkpoint repositories; set their "
      "retention, collect their garbage, consolidate their chains and report on their cost."};
  app.name("ickpt");
  app.set_version_flag("--version",
                       std::string("ickpt ") + ICKPT_VERSION + " (repository format 1.4)");
  app.require_subcommand(1);
  app.footer(
      "Exit codes:\n"
      "  0  success\n"
      "  1  any other failure (I/O error, ...)\n"
      "  2  usage error (bad command line)\n"
      "  3  repository damaged: a corrupt, truncated or missing object, or a commit record that\n"
      "     does not verify\n"
      "  4  not found: no such checkpoint or state object, or not an ickpt repository; for\n"
      "     'get', also a key that is absent\n"
      "Errors are written to stderr as 'ickpt: error: <message>'. Read commands (log, show,\n"
      "verify, diff, get, dump, retention show, policy) never create or modify anything;\n"
      "retention set, pin, unpin, gc and compact write to an existing repository and never\n"
      "create one.");
  app.failure_message([](const CLI::App* failed, const CLI::Error& e) {
    std::string out = std::string("ickpt: error: ") + e.what() + "\n";
    const std::string name =
        failed->get_parent() == nullptr ? "ickpt" : "ickpt " + failed->get_name();
    out += "Run '" + name + " --help' for more information.\n";
    return out;
  });

  std::vector<Command> commands = {
      RegisterLog(app),    RegisterShow(app),    RegisterGet(app),    RegisterDump(app),
      RegisterVerify(app), RegisterRestore(app), RegisterDiff(app),   RegisterRetention(app),
      RegisterPin(app),    RegisterUnpin(app),   RegisterGc(app),     RegisterCompact(app),
      RegisterPolicy(app), RegisterDemo(app),    RegisterDoctor(app), RegisterDemoChild(app),
      RegisterCoordinator(app), RegisterStatus(app), RegisterTrigger(app), RegisterDemoWorker(app)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  for (const Command& command : commands) {
    if (command.app->parsed()) return command.run();
  }
  return kExitUsage;
}
