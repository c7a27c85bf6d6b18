// A real etcd for tests: Debian's /usr/bin/etcd as a single-member cluster on loopback, with its
// data directory and log (etcd.log) in a TempDir and free ports found by binding port 0. Tests of
// EtcdStore start one per test suite and GTEST_SKIP when Available() is false.
//
// The member runs with a 10 ms heartbeat and a 100 ms election timeout: it elects itself within a
// second of starting, and etcd's minimum lease TTL (1.5 election timeouts, rounded up to whole
// seconds) is 1 s, so that lease-expiry tests can use a 1 s lease as they would on the memory store.
//
// The child is spawned with the default signal mask and dispositions (a test may block or ignore
// signals) and dies with the test process (PR_SET_PDEATHSIG), so a crashed test leaves no etcd
// behind.
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
  const std::string& endpoint() const { return endpoint_; }
  // The running etcd's process id, or -1 when stopped.
  pid_t pid() const { return pid_; }
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
  EtcdServer() = default;
  absl::Status Launch();
  absl::Status WaitHealthy();

  TempDir dir_;
  int client_port_ = 0;
  int peer_port_ = 0;
  std::string endpoint_;
  pid_t pid_ = -1;
};

}  // namespace ickpt::testing
