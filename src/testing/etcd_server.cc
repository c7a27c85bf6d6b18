// The etcd test fixture (etcd_server.h): a LocalEtcd in a TempDir.
#include "src/testing/etcd_server.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/coord/local_etcd.h"

namespace ickpt::testing {

EtcdServer::EtcdServer() = default;

bool EtcdServer::Available() { return coord::LocalEtcd::Available(); }

absl::StatusOr<std::unique_ptr<EtcdServer>> EtcdServer::Start() {
  std::unique_ptr<EtcdServer> server(new EtcdServer());
  coord::LocalEtcdOptions options;
  options.dir = server->dir_.path();
  absl::StatusOr<std::unique_ptr<coord::LocalEtcd>> etcd = coord::LocalEtcd::Start(options);
  if (!etcd.ok()) return etcd.status();
  server->etcd_ = *std::move(etcd);
  return server;
}

EtcdServer::~EtcdServer() { etcd_.reset(); }

const std::string& EtcdServer::endpoint() const { return etcd_->endpoint(); }
pid_t EtcdServer::pid() const { return etcd_->pid(); }
std::string EtcdServer::LogTail(size_t max_bytes) const { return etcd_->LogTail(max_bytes); }
void EtcdServer::Stop() { etcd_->Stop(); }
void EtcdServer::Kill() { etcd_->Kill(); }
absl::Status EtcdServer::Restart() { return etcd_->Restart(); }
absl::Status EtcdServer::Compact(int64_t revision) { return etcd_->Compact(revision); }

}  // namespace ickpt::testing
