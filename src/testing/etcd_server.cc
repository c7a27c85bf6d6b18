// The etcd test fixture (etcd_server.h). Health is checked with a hand-written HTTP/1.0 GET of
// /health on a plain socket, so that the test helpers need no HTTP library.
#include "src/testing/etcd_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "src/util/str.h"

namespace ickpt::testing {
namespace {

constexpr char kEtcdBinary[] = "/usr/bin/etcd";
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

// Sends `request` (a whole HTTP/1.0 request) to 127.0.0.1:port and returns the whole reply, or ""
// when the connection failed.
std::string Exchange(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  timeval tv{.tv_sec = 1, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  std::string reply;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buf[1024];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) reply.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return reply;
}

// Whether GET /health answers {"health":"true"} (the member has a leader).
bool Healthy(int port) {
  return Contains(Exchange(port, "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"),
                  "\"health\":\"true\"");
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

}  // namespace

bool EtcdServer::Available() { return ::access(kEtcdBinary, X_OK) == 0; }

absl::StatusOr<std::unique_ptr<EtcdServer>> EtcdServer::Start() {
  if (!Available()) {
    return absl::FailedPreconditionError(
        StrCat(kEtcdBinary, " is not installed (Debian package etcd-server)"));
  }
  std::unique_ptr<EtcdServer> server(new EtcdServer());
  absl::StatusOr<int> client_fd = BindFreePort(&server->client_port_);
  if (!client_fd.ok()) return client_fd.status();
  absl::StatusOr<int> peer_fd = BindFreePort(&server->peer_port_);
  ::close(*client_fd);
  if (!peer_fd.ok()) return peer_fd.status();
  ::close(*peer_fd);
  server->endpoint_ = StrCat("http://127.0.0.1:", server->client_port_);
  if (absl::Status s = server->Launch(); !s.ok()) return s;
  return server;
}

EtcdServer::~EtcdServer() { Stop(); }

absl::Status EtcdServer::Launch() {
  const std::string peer = StrCat("http://127.0.0.1:", peer_port_);
  const std::vector<std::string> args = {
      kEtcdBinary,
      "--name=default",
      StrCat("--data-dir=", dir_.Join("data")),
      StrCat("--listen-client-urls=", endpoint_),
      StrCat("--advertise-client-urls=", endpoint_),
      StrCat("--listen-peer-urls=", peer),
      StrCat("--initial-advertise-peer-urls=", peer),
      StrCat("--initial-cluster=default=", peer),
      // See the header: fast election, and a minimum lease TTL of 1 s.
      "--heartbeat-interval=10",
      "--election-timeout=100",
  };
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
    if (::getppid() != parent) ::_exit(126);  // the test died before the prctl
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::execv(kEtcdBinary, argv.data());
    ::_exit(127);
  }
  const int fork_errno = errno;
  ::close(log_fd);
  if (null_fd >= 0) ::close(null_fd);
  if (pid < 0) return absl::UnavailableError(StrCat("fork: ", std::strerror(fork_errno)));
  pid_ = pid;
  return WaitHealthy();
}

absl::Status EtcdServer::WaitHealthy() {
  const absl::Time deadline = absl::Now() + kStartTimeout;
  while (true) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::UnavailableError(StrCat("etcd exited at start (status ", status, "); log ",
                                           log_path(), ":\n", LogTail()));
    }
    if (Healthy(client_port_)) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      Kill();
      return absl::UnavailableError(StrCat("etcd did not become healthy within ",
                                           absl::FormatDuration(kStartTimeout), "; log ",
                                           log_path(), ":\n", LogTail()));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

std::string EtcdServer::LogTail(size_t max_bytes) const {
  std::ifstream in(log_path(), std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string all = buffer.str();
  return all.size() <= max_bytes ? all : all.substr(all.size() - max_bytes);
}

void EtcdServer::Stop() {
  if (pid_ < 0) return;
  ::kill(pid_, SIGTERM);
  if (!WaitForExit(pid_, kStopGrace)) {
    ::kill(pid_, SIGKILL);
    WaitForExit(pid_, absl::InfiniteDuration());
  }
  pid_ = -1;
}

void EtcdServer::Kill() {
  if (pid_ < 0) return;
  ::kill(pid_, SIGKILL);
  WaitForExit(pid_, absl::InfiniteDuration());
  pid_ = -1;
}

absl::Status EtcdServer::Compact(int64_t revision) {
  const std::string body = StrCat("{\"revision\":\"", revision, "\",\"physical\":true}");
  const std::string reply =
      Exchange(client_port_, StrCat("POST /v3/kv/compaction HTTP/1.0\r\nHost: 127.0.0.1\r\n",
                                    "Content-Type: application/json\r\nContent-Length: ",
                                    body.size(), "\r\n\r\n", body));
  if (!Contains(reply.substr(0, reply.find('\r')), " 200 ") || !Contains(reply, "\"header\"")) {
    return absl::UnavailableError(StrCat("etcd compaction to ", revision, ": \"", reply, "\""));
  }
  return absl::OkStatus();
}

absl::Status EtcdServer::Restart() {
  Stop();
  return Launch();
}

}  // namespace ickpt::testing
