// A real etcd for tests: a coord::LocalEtcd (src/coord/local_etcd.h: Debian's /usr/bin/etcd as a
// single-member cluster on loopback with free ports, a 10 ms heartbeat and a 100 ms election
// timeout, so that a 1 s lease works; dies with the test) whose data directory and log (etcd.log)
// are in a TempDir of its own. Tests of EtcdStore start one per test suite and GTEST_SKIP when
// Available() is false.
//
// Thread safety: not thread-safe; use from the test's main thread (the one that started it: the
// death signal is tied to that thread).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/testing/test_util.h"

namespace ickpt::coord {
class LocalEtcd;  // src/coord/local_etcd.h
}

namespace ickpt::testing {

class EtcdServer {
 public:
  // Whether /usr/bin/etcd exists and is executable.
  static bool Available();
  // Starts etcd and waits (up to 10 s) until it answers /health. FailedPrecondition if etcd is not
  // installed, Unavailable (with the end of etcd's log) if it exited or did not become healthy.
  static absl::StatusOr<std::unique_ptr<EtcdServer>> Start();

  // Stops etcd (Stop()) and removes its data.
  ~EtcdServer();
  EtcdServer(const EtcdServer&) = delete;
  EtcdServer& operator=(const EtcdServer&) = delete;

  // "http://127.0.0.1:<client port>"; the same across Restart().
  const std::string& endpoint() const;
  // The running etcd's process id, or -1 when stopped.
  pid_t pid() const;
  // etcd's stdout and stderr, appended to across restarts.
  std::string log_path() const { return dir_.Join("etcd.log"); }
  // The last `max_bytes` of the log, for failure messages.
  std::string LogTail(size_t max_bytes = 4000) const;

  // SIGTERM, then SIGKILL after 5 s; waits for the process. No-op when stopped.
  void Stop();
  // SIGKILL now (a crash); waits for the process. No-op when stopped.
  void Kill();
  // Stops etcd if running and starts it again on the same data directory and ports.
  absl::Status Restart();

  // Compacts the key-value history up to `revision` (etcd's /v3/kv/compaction), so that a watch
  // from before it is refused. Unavailable if etcd did not accept it.
  absl::Status Compact(int64_t revision);

 private:
  EtcdServer();

  TempDir dir_;  // outlives etcd_
  std::unique_ptr<coord::LocalEtcd> etcd_;
};

}  // namespace ickpt::testing
