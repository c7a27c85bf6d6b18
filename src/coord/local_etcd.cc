// The local etcd launcher (local_etcd.h): fork and exec of the etcd binary, and its own requests
// (health, user set-up, compaction) over libcurl, which speaks TLS when the endpoint does.
//
// Passwords go only into request bodies; no message here quotes a request body.
//
// Thread safety: not thread-safe (local_etcd.h).
#include "src/coord/local_etcd.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "src/coord/etcd_codec.h"
#include "src/util/str.h"

namespace ickpt::coord {
namespace {

using json = nlohmann::json;

constexpr absl::Duration kStartTimeout = absl::Seconds(10);
constexpr absl::Duration kStopGrace = absl::Seconds(5);

// A loopback TCP socket bound to a port the kernel chose. The caller closes it once every port it
// needs is chosen, so that two calls cannot return the same port.
absl::StatusOr<int> BindFreePort(int* port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(StrCat("socket: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int e = errno;
    ::close(fd);
    return absl::UnavailableError(StrCat("bind 127.0.0.1:0: ", std::strerror(e)));
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// Waits for `pid` up to `timeout`; returns whether it exited (and was reaped).
bool WaitForExit(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

struct HttpReply {
  long status = 0;
  std::string body;
};

size_t Append(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

// One request to etcd's client URL: GET `path`, or POST `post_body` (JSON) when given. Unavailable
// with libcurl's error when there was no reply.
absl::StatusOr<HttpReply> Request(const LocalEtcdOptions& options, const std::string& endpoint,
                                  const std::string& path, const std::string* post_body,
                                  absl::Duration timeout) {
  static std::once_flag once;
  // curl_global_init is reference-counted and thread-safe since libcurl 7.84 (Debian 12: 7.88).
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  // Declared before the handle, so that they outlive it.
  const std::string url = endpoint + path;
  HttpReply reply;
  char error_buffer[CURL_ERROR_SIZE] = {};
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> headers(nullptr, &curl_slist_free_all);
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), &curl_easy_cleanup);
  if (curl == nullptr) return absl::UnavailableError("curl_easy_init failed");
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(absl::ToInt64Milliseconds(timeout)));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &Append);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_buffer);
  if (!options.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, options.ca_file.c_str());
  if (options.client_cert_auth) {
    curl_easy_setopt(c, CURLOPT_SSLCERT, options.client_cert_file.c_str());
    curl_easy_setopt(c, CURLOPT_SSLKEY, options.client_key_file.c_str());
  }
  if (post_body != nullptr) {
    headers.reset(curl_slist_append(nullptr, "Content-Type: application/json"));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, post_body->data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(post_body->size()));
  }
  const CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    return absl::UnavailableError(
        StrCat(url, ": ", curl_easy_strerror(rc),
               error_buffer[0] != '\0' ? StrCat(": ", error_buffer) : ""));
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply.status);
  return reply;
}

// A POST whose reply must be HTTP 200 with a header (every v3 reply has one). `what` names the
// request in the error, which quotes the reply but never the request (it may hold a password).
absl::Status PostOk(const LocalEtcdOptions& options, const std::string& endpoint,
                    const std::string& path, const json& body, std::string_view what) {
  // A password need not be UTF-8: replace what is not rather than throw.
  const std::string bytes = body.dump(-1, ' ', false, json::error_handler_t::replace);
  absl::StatusOr<HttpReply> reply = Request(options, endpoint, path, &bytes, absl::Seconds(5));
  if (!reply.ok()) {
    return absl::UnavailableError(StrCat("etcd ", what, ": ", reply.status().message()));
  }
  if (reply->status != 200 || !Contains(reply->body, "\"header\"")) {
    return absl::UnavailableError(StrCat("etcd ", what, " (POST ", path, "): HTTP ", reply->status,
                                         " \"", absl::CHexEscape(reply->body.substr(0, 300)),
                                         "\""));
  }
  return absl::OkStatus();
}

std::string Base64(std::string_view bytes) { return absl::Base64Escape(ToAbsl(bytes)); }

absl::Status Readable(std::string_view what, const std::string& path) {
  if (::access(path.c_str(), R_OK) != 0) {
    return absl::InvalidArgumentError(
        StrCat("local etcd: ", what, " '", path, "' cannot be read: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status Validate(const LocalEtcdOptions& o) {
  struct stat st {};
  if (o.dir.empty() || ::stat(o.dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        StrCat("local etcd: dir '", o.dir, "' is not an existing directory"));
  }
  const bool tls = !o.cert_file.empty() || !o.key_file.empty();
  if (tls) {
    if (o.cert_file.empty() || o.key_file.empty()) {
      return absl::InvalidArgumentError("local etcd: cert_file and key_file go together");
    }
    if (o.ca_file.empty()) {
      return absl::InvalidArgumentError("local etcd: TLS needs ca_file (the CA of cert_file)");
    }
    if (absl::Status s = Readable("cert_file", o.cert_file); !s.ok()) return s;
    if (absl::Status s = Readable("key_file", o.key_file); !s.ok()) return s;
    if (absl::Status s = Readable("ca_file", o.ca_file); !s.ok()) return s;
  }
  if (o.client_cert_auth) {
    if (!tls) return absl::InvalidArgumentError("local etcd: client_cert_auth needs TLS");
    if (o.client_cert_file.empty() || o.client_key_file.empty()) {
      return absl::InvalidArgumentError(
          "local etcd: client_cert_auth needs client_cert_file and client_key_file");
    }
  }
  if (!o.users.empty() && o.root_password.empty()) {
    return absl::InvalidArgumentError("local etcd: users need root_password (authentication)");
  }
  for (const LocalEtcdUser& user : o.users) {
    if (user.name.empty() || user.name == "root") {
      return absl::InvalidArgumentError(
          StrCat("local etcd: user name '", user.name, "' (empty, or root: set root_password)"));
    }
  }
  if (o.auth_token_ttl_seconds < 0) {
    return absl::InvalidArgumentError("local etcd: auth_token_ttl_seconds is negative");
  }
  return absl::OkStatus();
}

}  // namespace

bool LocalEtcd::Available(const std::string& binary) { return ::access(binary.c_str(), X_OK) == 0; }

absl::StatusOr<std::unique_ptr<LocalEtcd>> LocalEtcd::Start(LocalEtcdOptions options) {
  if (absl::Status s = Validate(options); !s.ok()) return s;
  if (!Available(options.binary)) {
    return absl::FailedPreconditionError(
        StrCat(options.binary, " is not installed (Debian package etcd-server)"));
  }
  std::unique_ptr<LocalEtcd> etcd(new LocalEtcd(std::move(options)));
  absl::StatusOr<int> client_fd = BindFreePort(&etcd->client_port_);
  if (!client_fd.ok()) return client_fd.status();
  absl::StatusOr<int> peer_fd = BindFreePort(&etcd->peer_port_);
  ::close(*client_fd);
  if (!peer_fd.ok()) return peer_fd.status();
  ::close(*peer_fd);
  etcd->endpoint_ = StrCat(etcd->options_.cert_file.empty() ? "http" : "https",
                           "://127.0.0.1:", etcd->client_port_);
  if (absl::Status s = etcd->Launch(); !s.ok()) return s;
  if (!etcd->options_.root_password.empty()) {
    if (absl::Status s = etcd->SetUpAuthentication(); !s.ok()) return s;
  }
  return etcd;
}

LocalEtcd::~LocalEtcd() { Stop(); }

std::string LocalEtcd::log_path() const { return options_.dir + "/etcd.log"; }

absl::Status LocalEtcd::Launch() {
  const std::string peer = StrCat("http://127.0.0.1:", peer_port_);
  std::vector<std::string> args = {
      options_.binary,
      "--name=default",
      StrCat("--data-dir=", options_.dir, "/data"),
      StrCat("--listen-client-urls=", endpoint_),
      StrCat("--advertise-client-urls=", endpoint_),
      StrCat("--listen-peer-urls=", peer),
      StrCat("--initial-advertise-peer-urls=", peer),
      StrCat("--initial-cluster=default=", peer),
      // See the header: fast election, and a minimum lease TTL of 1 s.
      "--heartbeat-interval=10",
      "--election-timeout=100",
  };
  if (!options_.cert_file.empty()) {
    args.push_back(StrCat("--cert-file=", options_.cert_file));
    args.push_back(StrCat("--key-file=", options_.key_file));
    // etcd requires client certificates whenever it has a trusted CA file, with or without
    // --client-cert-auth: the flag goes only with client_cert_auth.
    if (options_.client_cert_auth) {
      args.push_back(StrCat("--trusted-ca-file=", options_.ca_file));
      args.push_back("--client-cert-auth");
    }
  }
  if (!options_.root_password.empty()) {
    // The cheapest bcrypt etcd accepts: authenticating is then a millisecond, not 50.
    args.push_back("--bcrypt-cost=4");
  }
  if (options_.auth_token_ttl_seconds > 0) {
    args.push_back(StrCat("--auth-token-ttl=", options_.auth_token_ttl_seconds));
  }
  std::vector<char*> argv;
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);

  const std::string log = log_path();
  const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) return absl::UnavailableError(StrCat("open ", log, ": ", std::strerror(errno)));
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // The child: only async-signal-safe calls until exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);  // the parent died before the prctl
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  const int fork_errno = errno;
  ::close(log_fd);
  if (null_fd >= 0) ::close(null_fd);
  if (pid < 0) return absl::UnavailableError(StrCat("fork: ", std::strerror(fork_errno)));
  pid_ = pid;
  return WaitHealthy();
}

absl::Status LocalEtcd::WaitHealthy() {
  const absl::Time deadline = absl::Now() + kStartTimeout;
  std::string last_error;
  while (true) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::UnavailableError(
          StrCat("etcd exited at start (status ", status, "); log ", log_path(), ":\n", LogTail()));
    }
    // {"health":"true"}: the member has a leader.
    absl::StatusOr<HttpReply> reply =
        Request(options_, endpoint_, "/health", nullptr, absl::Seconds(1));
    if (reply.ok() && reply->status == 200 && Contains(reply->body, "\"health\":\"true\"")) {
      return absl::OkStatus();
    }
    last_error = reply.ok() ? StrCat("HTTP ", reply->status, " \"",
                                     absl::CHexEscape(reply->body.substr(0, 200)), "\"")
                            : std::string(reply.status().message());
    if (absl::Now() >= deadline) {
      Kill();
      return absl::UnavailableError(
          StrCat("etcd did not become healthy within ", absl::FormatDuration(kStartTimeout),
                 " (last: ", last_error, "); log ", log_path(), ":\n", LogTail()));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

absl::Status LocalEtcd::SetUpAuthentication() {
  // etcd turns authentication on only when user root exists with role root (etcd's own role).
  auto post = [&](const std::string& path, const json& body, std::string_view what) {
    return PostOk(options_, endpoint_, path, body, what);
  };
  if (absl::Status s =
          post("/v3/auth/user/add", {{"name", "root"}, {"password", options_.root_password}},
               "add user root");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = post("/v3/auth/user/grant", {{"user", "root"}, {"role", "root"}},
                            "grant role root to root");
      !s.ok()) {
    return s;
  }
  for (const LocalEtcdUser& user : options_.users) {
    if (absl::Status s =
            post("/v3/auth/user/add", {{"name", user.name}, {"password", user.password}},
                 StrCat("add user ", user.name));
        !s.ok()) {
      return s;
    }
    std::string role = "root";
    if (!user.prefix.empty()) {
      role = user.name + "-prefix";
      if (absl::Status s = post("/v3/auth/role/add", {{"name", role}}, StrCat("add role ", role));
          !s.ok()) {
        return s;
      }
      const json perm = {{"permType", "READWRITE"},
                         {"key", Base64(user.prefix)},
                         {"range_end", Base64(etcd::PrefixRangeEnd(user.prefix))}};
      if (absl::Status s = post("/v3/auth/role/grant", {{"name", role}, {"perm", perm}},
                                StrCat("grant role ", role, " READWRITE on prefix ", user.prefix));
          !s.ok()) {
        return s;
      }
    }
    if (absl::Status s = post("/v3/auth/user/grant", {{"user", user.name}, {"role", role}},
                              StrCat("grant role ", role, " to ", user.name));
        !s.ok()) {
      return s;
    }
  }
  return post("/v3/auth/enable", json::object(), "enable authentication");
}

std::string LocalEtcd::LogTail(size_t max_bytes) const {
  std::ifstream in(log_path(), std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string all = buffer.str();
  return all.size() <= max_bytes ? all : all.substr(all.size() - max_bytes);
}

void LocalEtcd::Stop() {
  if (pid_ < 0) return;
  ::kill(pid_, SIGTERM);
  if (!WaitForExit(pid_, kStopGrace)) {
    ::kill(pid_, SIGKILL);
    WaitForExit(pid_, absl::InfiniteDuration());
  }
  pid_ = -1;
}

void LocalEtcd::Kill() {
  if (pid_ < 0) return;
  ::kill(pid_, SIGKILL);
  WaitForExit(pid_, absl::InfiniteDuration());
  pid_ = -1;
}

absl::Status LocalEtcd::Compact(int64_t revision) {
  // Needs no token even with authentication on (etcd 3.4 checks no permission for compaction).
  return PostOk(options_, endpoint_, "/v3/kv/compaction",
                {{"revision", std::to_string(revision)}, {"physical", true}},
                StrCat("compaction to ", revision));
}

absl::Status LocalEtcd::Restart() {
  Stop();
  return Launch();
}

}  // namespace ickpt::coord
