// The etcd options every distributed subcommand shares (coordinator, status, trigger): endpoints,
// TLS files and credentials (docs/protocol.md §10). A password never comes from the command line:
// it is read from --etcd-user-file or the environment, and never printed.
//
// Thread safety: called from the main thread.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "ickpt/coordination.h"

namespace CLI {
class App;
}

namespace ickpt::cli {

struct EtcdFlags {
  std::string endpoints;  // --etcd
  std::string ca_file;    // --etcd-ca
  std::string cert_file;  // --etcd-cert
  std::string key_file;   // --etcd-key
  std::string user_file;  // --etcd-user-file: one line "USER:PASSWORD"
};

// Adds the required --etcd and the optional --etcd-ca, --etcd-cert, --etcd-key and
// --etcd-user-file to `sub`.
void AddEtcdFlags(CLI::App* sub, EtcdFlags* flags);

// What to connect with: the flags, and a user and password from --etcd-user-file, or else from
// ICKPT_ETCD_USER and ICKPT_ETCD_PASSWORD. InvalidArgument (a usage error) for an unreadable or
// malformed user file, or a user without a password.
absl::StatusOr<EtcdConnectOptions> EtcdConnectOptionsFromFlags(const EtcdFlags& flags);

// Connects as EtcdConnectOptionsFromFlags says. On failure prints the error and sets `*exit_code`
// (2 for a usage error: a malformed endpoint, a bad file; otherwise ExitCodeFor).
std::shared_ptr<coord::CoordinationStore> ConnectEtcdOrExplain(const EtcdFlags& flags,
                                                               int* exit_code);

}  // namespace ickpt::cli
