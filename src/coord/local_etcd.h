// A throw-away etcd on this machine: Debian's /usr/bin/etcd as a single-member cluster on loopback,
// with free ports found by binding port 0, its data directory and log in a directory the caller
// gives. For `ickpt demo` (a job with no etcd of its own) and for tests (src/testing/etcd_server.h
// wraps it with a temporary directory).
//
// The member runs with a 10 ms heartbeat and a 100 ms election timeout: it elects itself within a
// second of starting, and etcd's minimum lease TTL (1.5 election timeouts, rounded up to whole
// seconds) is 1 s, so that lease-expiry tests can use a 1 s lease as they would on the memory
// store.
//
// Optionally secured as docs/protocol.md §10 describes: TLS on the client URL (https://, with a
// client certificate required if asked), and etcd's authentication with a root user and users
// restricted to a key prefix. LocalEtcd's own requests (the health check, the set-up of users,
// compaction) go over libcurl with the same TLS settings; none of them needs a token (etcd 3.4
// serves /health and /v3/kv/compaction without one, and the users are set up before
// authentication is turned on).
//
// The child is spawned with the default signal mask and dispositions (the parent may block or
// ignore signals) and dies with the thread that started it (PR_SET_PDEATHSIG), so a crashed test or
// demo leaves no etcd behind.
//
// Thread safety: not thread-safe; use from the thread that started it (the death signal is tied to
// that thread: etcd is killed when it exits).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ickpt::coord {

// A user LocalEtcd creates before it turns authentication on.
struct LocalEtcdUser {
  std::string name;
  std::string password;
  // The user may read and write every key under this prefix (through a role "<name>-prefix" that
  // grants READWRITE on the prefix's range), and nothing else. Empty: the user gets role root.
  std::string prefix;
};

struct LocalEtcdOptions {
  // An existing directory: etcd's data directory (dir/data) and its log (dir/etcd.log). Required.
  std::string dir;
  // The etcd executable. Default: Debian's.
  std::string binary = "/usr/bin/etcd";

  // ---- TLS on the client URL (all off by default: http://). ----
  // etcd's certificate and key (PEM; --cert-file, --key-file). Both or neither; with them the
  // endpoint is https://. The certificate must be valid for 127.0.0.1. Default: none.
  std::string cert_file;
  std::string key_file;
  // The CA that signed cert_file: LocalEtcd's own requests verify etcd with it. With
  // client_cert_auth, also the CA of the client certificates etcd accepts. Required with TLS.
  // Default: none.
  std::string ca_file;
  // Whether etcd requires a client certificate signed by ca_file (--client-cert-auth and
  // --trusted-ca-file: etcd 3.4 requires client certificates whenever it has a trusted CA file).
  // LocalEtcd's own requests then present client_cert_file and client_key_file (required then).
  // Note that etcd 3.4, with authentication on, refuses gateway requests whose client certificate
  // has a Common Name. Default: false.
  bool client_cert_auth = false;
  std::string client_cert_file;
  std::string client_key_file;

  // ---- Authentication (off by default). ----
  // Not empty: Start() creates user root with this password and role root, then `users`, then
  // turns authentication on (so dir must not hold an etcd from before; Restart() keeps them).
  // Default: empty (no authentication).
  std::string root_password;
  std::vector<LocalEtcdUser> users;
  // How long an idle simple auth token stays valid (--auth-token-ttl, seconds). 0: etcd's default
  // (300 s). Default: 0.
  int auth_token_ttl_seconds = 0;
};

class LocalEtcd {
 public:
  // Whether `binary` exists and is executable.
  static bool Available(const std::string& binary = "/usr/bin/etcd");
  // Picks free loopback ports, starts etcd, waits (up to 10 s) until it answers /health, and sets
  // up authentication if asked. InvalidArgument for inconsistent options (a certificate without
  // its key, TLS without ca_file, users without root_password, no dir); FailedPrecondition if the
  // binary is not installed; Unavailable (with the end of etcd's log) if etcd exited, did not
  // become healthy, or refused the set-up.
  static absl::StatusOr<std::unique_ptr<LocalEtcd>> Start(LocalEtcdOptions options);

  // Stops etcd (Stop()). The directory and its data stay.
  ~LocalEtcd();
  LocalEtcd(const LocalEtcd&) = delete;
  LocalEtcd& operator=(const LocalEtcd&) = delete;

  // "http://127.0.0.1:<client port>" ("https://" with TLS); the same across Restart().
  const std::string& endpoint() const { return endpoint_; }
  // The running etcd's process id, or -1 when stopped.
  pid_t pid() const { return pid_; }
  // etcd's stdout and stderr, appended to across restarts.
  std::string log_path() const;
  // The last `max_bytes` of the log, for failure messages.
  std::string LogTail(size_t max_bytes = 4000) const;

  // SIGTERM, then SIGKILL after 5 s; waits for the process. No-op when stopped.
  void Stop();
  // SIGKILL now (a crash); waits for the process. No-op when stopped.
  void Kill();
  // Stops etcd if running and starts it again on the same data directory, ports and options
  // (users and authentication persist in the data). Unavailable as for Start.
  absl::Status Restart();

  // Compacts the key-value history up to `revision` (etcd's /v3/kv/compaction), so that a watch
  // from before it is refused. Unavailable if etcd did not accept it.
  absl::Status Compact(int64_t revision);

 private:
  explicit LocalEtcd(LocalEtcdOptions options) : options_(std::move(options)) {}
  absl::Status Launch();
  absl::Status WaitHealthy();
  absl::Status SetUpAuthentication();

  const LocalEtcdOptions options_;
  int client_port_ = 0;
  int peer_port_ = 0;
  std::string endpoint_;
  pid_t pid_ = -1;
};

}  // namespace ickpt::coord
