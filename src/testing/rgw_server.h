// A real S3 endpoint for tests: a single-node Ceph cluster (one mon, one memstore OSD) with a RADOS
// Gateway on 127.0.0.1 and a free port, started by scripts/ceph_cluster.sh in a TempDir of its own
// (every Ceph file, log and socket is inside it). An S3 user with a random key exists; buckets do
// not until CreateBucket makes them (the product never creates buckets). Requests must be signed
// with SigV4 for region() and use path-style addressing.
//
// Starting takes 3-7 s on this machine, so a test suite starts one server and shares it; tests
// that use one are registered with the CTest RESOURCE_LOCK "ceph" so that they do not all start
// clusters at once. A full memstore makes writes hang rather than fail: size memstore_bytes at
// about 4x the data a test stores.
//
// The daemons are not children of the test process: the script starts them and a watchdog that
// SIGKILLs them once the test process is gone, so a crashed or killed test leaves nothing behind.
// The destructor stops them at once (SIGKILL) and removes the directory.
//
// Thread safety: the accessors may be called from any thread; the other methods are not
// thread-safe (use them from the test's main thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/testing/test_util.h"

namespace ickpt::testing {

struct RgwServerOptions {
  // The OSD's memory store, allocated as data arrives. Default: 2 GiB.
  uint64_t memstore_bytes = 2ull << 30;
};

class RgwServer {
 public:
  // Whether Ceph's daemons and tools (ceph-mon, ceph-osd, radosgw, radosgw-admin, monmaptool,
  // ceph) and curl are installed in /usr/bin.
  static bool Available();
  // Starts a cluster and waits (up to 60 s) until an authenticated ListBuckets answers 200.
  // FailedPrecondition if Ceph is not installed; Unavailable, with the script's output (which ends
  // with the relevant daemon log's tail), if the cluster did not come up.
  static absl::StatusOr<std::unique_ptr<RgwServer>> Start(const RgwServerOptions& options = {});

  // A cluster that someone else started with `ceph_cluster.sh start DIR` (CTest's rgw fixture),
  // from DIR/cluster.env. The returned server does not own it: its destructor leaves the cluster
  // running. Unavailable if DIR holds no complete cluster.env.
  static absl::StatusOr<std::unique_ptr<RgwServer>> Attach(const std::string& cluster_dir);

  // Stops every daemon (SIGKILL; nothing is flushed, nothing needs to be) and removes the
  // directory, unless attached.
  ~RgwServer();
  RgwServer(const RgwServer&) = delete;
  RgwServer& operator=(const RgwServer&) = delete;

  // "http://127.0.0.1:<port>"; the same across RestartGateway().
  const std::string& endpoint() const { return endpoint_; }
  const std::string& access_key() const { return access_key_; }
  const std::string& secret_key() const { return secret_key_; }
  // The SigV4 signing region: "us-east-1".
  const std::string& region() const { return region_; }
  // The cluster's directory (config, data, logs); every daemon's command line names it.
  const std::string& dir() const { return cluster_dir_; }

  // Creates bucket `name` (3-63 characters: lower-case letters, digits, '-', '.'). Unavailable,
  // with S3's error document (InvalidBucketName, BucketAlreadyExists...), if it was refused.
  absl::Status CreateBucket(const std::string& name);

  // SIGKILLs radosgw only (a gateway crash); requests fail with "connection refused" until
  // RestartGateway(). The mon and the OSD keep the data. No-op when already killed.
  void KillGateway();
  // Starts radosgw again on the same port and waits until it answers S3. Unavailable (with the
  // script's output) if it did not come back. For about 5 s after KillGateway(), a bucket create
  // waits for the dead gateway's watch to expire (object reads and writes do not).
  absl::Status RestartGateway();

  // The last `max_bytes` of radosgw's log, for failure messages.
  std::string LogTail(size_t max_bytes = 4000) const;

 private:
  RgwServer();
  // Runs scripts/ceph_cluster.sh with `args`; Unavailable with its output unless it exits 0.
  absl::StatusOr<std::string> RunScript(const std::vector<std::string>& args) const;

  // Fills in the accessors from cluster.env's KEY=VALUE lines; Unavailable if one is missing.
  absl::Status ParseClusterEnv(std::string_view lines);

  TempDir dir_;  // holds cluster_dir_ (unless attached) and the script's output files
  bool owned_ = true;
  std::string cluster_dir_;
  std::string endpoint_;
  std::string access_key_;
  std::string secret_key_;
  std::string region_;
};

// The gateway that the tests of this process share, each with buckets of its own: the cluster of
// CTest's rgw fixture when ICKPT_TEST_RGW_DIR names its directory (src/CMakeLists.txt: one cluster
// for a whole CTest run), otherwise one started on first use (4 GiB memstore) and stopped when the
// process exits. nullptr if there is none (why is on stderr): a test then skips where Ceph is not
// installed (!RgwServer::Available()) and fails where it is.
RgwServer* SharedRgw();

}  // namespace ickpt::testing
