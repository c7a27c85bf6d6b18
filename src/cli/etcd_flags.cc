#include "src/cli/etcd_flags.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <CLI/CLI.hpp>

#include "src/cli/common.h"
#include "src/util/str.h"

namespace ickpt::cli {

void AddEtcdFlags(CLI::App* sub, EtcdFlags* flags) {
  sub->add_option("--etcd", flags->endpoints,
                  "etcd endpoints, comma-separated (http://HOST:PORT or https://HOST:PORT)")
      ->required();
  sub->add_option("--etcd-ca", flags->ca_file,
                  "PEM file of the CA that signed etcd's server certificates (https)");
  sub->add_option("--etcd-cert", flags->cert_file,
                  "PEM client certificate, for an etcd that requires one (with --etcd-key)");
  sub->add_option("--etcd-key", flags->key_file, "PEM key of --etcd-cert");
  sub->add_option("--etcd-user-file", flags->user_file,
                  "File whose first line is USER:PASSWORD, for an etcd with authentication on "
                  "(default: ICKPT_ETCD_USER and ICKPT_ETCD_PASSWORD from the environment)");
}

absl::StatusOr<EtcdConnectOptions> EtcdConnectOptionsFromFlags(const EtcdFlags& flags) {
  EtcdConnectOptions options;
  options.endpoints = flags.endpoints;
  options.ca_file = flags.ca_file;
  options.cert_file = flags.cert_file;
  options.key_file = flags.key_file;
  if (!flags.user_file.empty()) {
    std::ifstream in(flags.user_file);
    std::string line;
    if (!in || !std::getline(in, line)) {
      return absl::InvalidArgumentError(
          StrCat("--etcd-user-file ", flags.user_file, ": cannot read it"));
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t colon = line.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == line.size()) {
      // Never echo the line: it holds the password.
      return absl::InvalidArgumentError(StrCat("--etcd-user-file ", flags.user_file,
                                               ": the first line must be USER:PASSWORD"));
    }
    struct stat st;
    if (::stat(flags.user_file.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      PrintWarning(StrCat("--etcd-user-file ", flags.user_file,
                          " is readable by other users; chmod 600 it"));
    }
    options.user = line.substr(0, colon);
    options.password = line.substr(colon + 1);
    return options;
  }
  const char* user = std::getenv("ICKPT_ETCD_USER");
  const char* password = std::getenv("ICKPT_ETCD_PASSWORD");
  if (user != nullptr && *user != '\0') {
    if (password == nullptr || *password == '\0') {
      return absl::InvalidArgumentError("ICKPT_ETCD_USER is set but ICKPT_ETCD_PASSWORD is not");
    }
    options.user = user;
    options.password = password;
  }
  return options;
}

std::shared_ptr<coord::CoordinationStore> ConnectEtcdOrExplain(const EtcdFlags& flags,
                                                               int* exit_code) {
  absl::StatusOr<EtcdConnectOptions> options = EtcdConnectOptionsFromFlags(flags);
  absl::StatusOr<std::shared_ptr<coord::CoordinationStore>> store =
      options.ok() ? ConnectEtcd(*options) : options.status();
  if (store.ok()) return *std::move(store);
  // A malformed endpoint or a bad file is a usage error (2), before anything is opened.
  if (absl::IsInvalidArgument(store.status())) {
    PrintError(store.status().message());
    *exit_code = kExitUsage;
  } else {
    *exit_code = Fail(store.status());
  }
  return nullptr;
}

}  // namespace ickpt::cli
