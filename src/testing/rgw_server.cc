// The Ceph RADOS Gateway test fixture (rgw_server.h): scripts/ceph_cluster.sh driven through
// RunProgram, its cluster.env lines parsed into the accessors.
#include "src/testing/rgw_server.h"

#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/testing/test_util.h"
#include "src/util/str.h"

#ifndef ICKPT_SOURCE_DIR
#error "ICKPT_SOURCE_DIR must name the source tree (src/CMakeLists.txt defines it)"
#endif

namespace ickpt::testing {
namespace {

constexpr char kScript[] = ICKPT_SOURCE_DIR "/scripts/ceph_cluster.sh";
// The script's stderr ends with the log tails that explain a failure; its start is progress.
constexpr size_t kMaxOutputInMessage = 6000;

std::string Tail(const std::string& s, size_t max_bytes) {
  return s.size() <= max_bytes ? s : "..." + s.substr(s.size() - max_bytes);
}

}  // namespace

RgwServer::RgwServer() : cluster_dir_(dir_.Join("cluster")) {}

bool RgwServer::Available() {
  for (const char* program :
       {"/usr/bin/ceph-mon", "/usr/bin/ceph-osd", "/usr/bin/radosgw", "/usr/bin/radosgw-admin",
        "/usr/bin/monmaptool", "/usr/bin/ceph", "/usr/bin/curl"}) {
    if (::access(program, X_OK) != 0) return false;
  }
  return true;
}

absl::StatusOr<std::string> RgwServer::RunScript(const std::vector<std::string>& args) const {
  // Through bash rather than exec: the script needs no execute bit in a copied source tree.
  std::vector<std::string> argv = {"/bin/bash", kScript};
  argv.insert(argv.end(), args.begin(), args.end());
  const RunResult result = RunProgram(argv, dir_.path());
  if (result.code == 0) return result.out;
  std::string command = "ceph_cluster.sh";
  for (const std::string& arg : args) command += " " + arg;
  return absl::UnavailableError(StrCat(command, " exited with code ", result.code, ": ",
                                       Tail(result.err + result.out, kMaxOutputInMessage)));
}

absl::StatusOr<std::unique_ptr<RgwServer>> RgwServer::Start(const RgwServerOptions& options) {
  if (!Available()) {
    return absl::FailedPreconditionError(
        "Ceph is not installed (ceph-mon, ceph-osd, radosgw, radosgw-admin, monmaptool, ceph, "
        "curl in /usr/bin; scripts/setup.sh installs them)");
  }
  if (::access(kScript, R_OK) != 0) {
    return absl::FailedPreconditionError(StrCat("cannot read ", kScript));
  }
  std::unique_ptr<RgwServer> server(new RgwServer());
  // --owner-pid: the script's watchdog kills the cluster once this process is gone, however it
  // ends (a crash, a CTest timeout's SIGKILL).
  absl::StatusOr<std::string> out = server->RunScript(
      {"start", server->cluster_dir_, "--memstore-bytes", std::to_string(options.memstore_bytes),
       "--owner-pid", std::to_string(::getpid())});
  if (!out.ok()) return out.status();
  if (absl::Status s = server->ParseClusterEnv(*out); !s.ok()) return s;  // the destructor stops it
  return server;
}

absl::StatusOr<std::unique_ptr<RgwServer>> RgwServer::Attach(const std::string& cluster_dir) {
  std::unique_ptr<RgwServer> server(new RgwServer());
  server->owned_ = false;
  server->cluster_dir_ = cluster_dir;
  const std::string env = ReadFileOrEmpty(cluster_dir + "/cluster.env");
  if (absl::Status s = server->ParseClusterEnv(env); !s.ok()) {
    return absl::UnavailableError(StrCat(cluster_dir, "/cluster.env: ", s.message()));
  }
  return server;
}

absl::Status RgwServer::ParseClusterEnv(std::string_view lines) {
  std::string_view rest = lines;
  while (!rest.empty()) {
    const size_t end = rest.find('\n');
    const std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view key = line.substr(0, eq);
    const std::string value(line.substr(eq + 1));
    if (key == "ICKPT_RGW_ENDPOINT") endpoint_ = value;
    if (key == "ICKPT_RGW_ACCESS_KEY") access_key_ = value;
    if (key == "ICKPT_RGW_SECRET_KEY") secret_key_ = value;
    if (key == "ICKPT_RGW_REGION") region_ = value;
  }
  if (endpoint_.empty() || access_key_.empty() || secret_key_.empty() || region_.empty()) {
    return absl::UnavailableError(
        StrCat("no complete cluster.env (endpoint, keys, region): ", Tail(std::string(lines), 2000)));
  }
  return absl::OkStatus();
}

RgwServer::~RgwServer() {
  if (owned_ && ::access((cluster_dir_ + "/ceph.conf").c_str(), F_OK) == 0) {
    // Failure to stop is reported on stderr by the script; the watchdog still kills the daemons
    // when this process ends. Nothing else a destructor can do.
    RunScript({"stop", cluster_dir_}).status().IgnoreError();
  }
}

absl::Status RgwServer::CreateBucket(const std::string& name) {
  return RunScript({"make-bucket", cluster_dir_, name}).status();
}

void RgwServer::KillGateway() {
  // Fails only if radosgw survived SIGKILL for 10 s; the next request would then still succeed,
  // which the test that killed it notices.
  RunScript({"kill-rgw", cluster_dir_}).status().IgnoreError();
}

absl::Status RgwServer::RestartGateway() { return RunScript({"start-rgw", cluster_dir_}).status(); }

std::string RgwServer::LogTail(size_t max_bytes) const {
  return Tail(ReadFileOrEmpty(cluster_dir_ + "/log/client.rgw.log"), max_bytes);
}

RgwServer* SharedRgw() {
  // Never destroyed before exit: tests of several suites share it. An owned cluster's watchdog
  // kills it once the process is gone.
  static RgwServer* const shared = []() -> RgwServer* {
    const char* dir = std::getenv("ICKPT_TEST_RGW_DIR");
    const bool fixture = dir != nullptr && *dir != '\0';
    if (fixture && ::access((std::string(dir) + "/cluster.env").c_str(), R_OK) == 0) {
      absl::StatusOr<std::unique_ptr<RgwServer>> attached = RgwServer::Attach(dir);
      if (attached.ok()) return attached->release();
      std::fprintf(stderr, "SharedRgw: %s\n", attached.status().ToString().c_str());
      return nullptr;
    }
    if (!RgwServer::Available()) return nullptr;
    RgwServerOptions options;
    options.memstore_bytes = uint64_t{4} << 30;
    absl::StatusOr<std::unique_ptr<RgwServer>> started = RgwServer::Start(options);
    if (started.ok()) return started->release();
    std::fprintf(stderr, "SharedRgw: %s\n", started.status().ToString().c_str());
    return nullptr;
  }();
  return shared;
}

}  // namespace ickpt::testing
