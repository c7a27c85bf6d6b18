// A fault-injecting HTTP/1.1 relay for tests of HTTP clients (the S3 object store client): it sits
// between the client and a real server and fails chosen requests the way a network or an
// overloaded server does — a 503 SlowDown, a slow response, a connection reset before or after the
// request reached the server, a truncated body, a request that is never answered.
//
// The proxy listens on 127.0.0.1 on a free port. The client connects to it as if it were the
// server; for each client connection the proxy opens one connection to the upstream and relays
// requests and responses byte for byte: no header is added, removed or rewritten (a SigV4
// signature covers the Host header, which therefore names the proxy, and the upstream checks it
// against the Host it receives). It parses HTTP/1.1 framing only to count requests and to know
// where a response ends: request bodies by Content-Length (or chunked), responses by
// Content-Length, chunked transfer coding, the end of the connection, or none (HEAD, 1xx, 204,
// 304); keep-alive connections carry any number of requests in sequence. The upstream's answer to
// "Expect: 100-continue" is relayed as soon as it comes. Message heads are limited to 64 KiB (a
// longer request is answered 431, a longer response 502). When either side closes its connection
// early the proxy closes the other, so that the client sees what it would have seen without the
// proxy (an upstream that cannot be reached is answered 502).
//
// Faults are chosen per request by rules (HttpFaultRule). Mind the client library's own retries:
// libcurl (7.88) resends a request by itself when a reused keep-alive connection ends before any
// byte of the response, and reports only the second answer. A kResetBeforeForward or
// kResetAfterForward on a reused connection is therefore invisible to the caller (and after
// kResetAfterForward the write lands twice); the resend is a new request to the rules. A test
// that wants the caller to see the reset uses a fresh connection for that request
// (fault_http_proxy_test.cc: CurlResendsARequestWhoseReusedConnectionIsReset).
//
// Thread safety: every public method may be called from any thread, also while connections are
// being served. Each client connection is served by a thread of its own; the destructor stops them.
#pragma once

#include <sys/socket.h>

#include <list>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "src/util/mutex.h"

namespace ickpt::testing {

enum class HttpFault {
  // Not forwarded: the proxy reads the request (body included) and answers 503 with an S3 error
  // body (<Error><Code>SlowDown</Code>..., none to a HEAD) and a Content-Length; the connection
  // stays open unless the client asked to close it.
  kServiceUnavailable,
  // Forwarded; once the whole request has been, the proxy waits HttpFaultRule::delay before it
  // relays the response (a 100 Continue is relayed at once).
  kDelay,
  // Not forwarded: after reading the request the proxy resets the client connection (an RST, by
  // SO_LINGER 0). Nothing landed.
  kResetBeforeForward,
  // Forwarded; the proxy reads the upstream's whole response and then resets the client
  // connection: the write landed, the reply is lost.
  kResetAfterForward,
  // Forwarded; the proxy relays the response head and the first half of the body as received (for
  // a chunked body: half of its encoded bytes), then closes the connection (a FIN). A response
  // without a body (HEAD, 204, 304) therefore arrives whole, and only the connection ends.
  kTruncateResponse,
  // Not forwarded: the proxy reads the request and never answers, until the client closes the
  // connection or the proxy is destroyed.
  kHang,
};

// Which requests a fault applies to. A request matches when both filters match. Every field has
// a default member initializer, so that a designated initializer may leave any out without GCC's
// -Wmissing-field-initializers.
struct HttpFaultRule {
  // "PUT", "GET", ... (exact, case-sensitive); empty: any. Default "".
  std::string method = "";
  // A substring of the request target (path and query); empty: any. Default "".
  std::string path_contains = "";
  // Let this many matching requests through untouched first. Default 0.
  int skip = 0;
  // Then fault this many matching requests; -1: every one. Default 1.
  int times = 1;
  // Default kServiceUnavailable.
  HttpFault fault = HttpFault::kServiceUnavailable;
  // How long kDelay holds a response. Default 0.
  absl::Duration delay = absl::ZeroDuration();
};

// A TCP socket listening on 127.0.0.1 at a port the kernel chose (close-on-exec), and that port:
// what the proxy listens on, and what tests that play a server start from. The caller closes it.
absl::StatusOr<int> ListenOnLoopback(int* port);

class FaultHttpProxy {
 public:
  // Listens on 127.0.0.1 on a free port and relays to upstream_host:upstream_port (resolved once,
  // here). InvalidArgument if the host does not resolve or the port is out of range, Unavailable
  // if the listening socket cannot be set up. The upstream need not be running yet: connections
  // are made per client connection.
  static absl::StatusOr<std::unique_ptr<FaultHttpProxy>> Start(std::string upstream_host,
                                                               int upstream_port);

  // Stops accepting, closes every connection (a client waiting for an answer sees its connection
  // closed), and joins every thread.
  ~FaultHttpProxy();
  FaultHttpProxy(const FaultHttpProxy&) = delete;
  FaultHttpProxy& operator=(const FaultHttpProxy&) = delete;

  // "http://127.0.0.1:PORT": what the client uses instead of the upstream's address.
  std::string endpoint() const;
  int port() const { return port_; }

  // Rules are checked in the order added. A request is decided by the first rule that matches it
  // and still has faults left: while that rule's `skip` is not used up the request passes
  // untouched (and counts towards the skip); otherwise the rule's fault is applied. A rule that
  // has no faults left is passed over.
  void AddRule(HttpFaultRule rule);
  // Removes every rule; requests already being faulted keep their fault.
  void ClearRules();

  // Requests whose head was read from a client (faulted or not).
  int requests_seen() const;
  // Faults applied. A fault is counted when it is chosen, before the client can see its effect, so
  // a test may check the count as soon as its request returned.
  int faults_injected() const;

 private:
  // One client connection and the thread serving it. The fds are closed by that thread, and both
  // they and `done` are read and written with the proxy's mu_ held, so that the destructor never
  // shuts down an fd number that has been closed and reused.
  struct Connection {
    int client_fd = -1;
    int upstream_fd = -1;
    bool done = false;  // The thread has closed its fds and is about to return.
    std::thread thread;
  };
  // A rule and how many requests it has let through and faulted so far.
  struct RuleState {
    HttpFaultRule rule;
    int skipped = 0;
    int faulted = 0;
  };
  // How a request is to be treated, decided when its head is read.
  struct Decision {
    int request_number = 0;          // 1 for the first request the proxy read.
    std::optional<HttpFault> fault;  // nullopt: relay untouched.
    absl::Duration delay = absl::ZeroDuration();
  };
  // How a client connection ends.
  enum class Ending { kClose, kReset };

  FaultHttpProxy(std::vector<sockaddr_storage> upstream_addrs, int listen_fd, int port);

  void AcceptLoop();
  // Joins the threads of connections that have finished.
  void ReapFinished();
  void Serve(Connection* connection);
  // Relays (and faults) the requests of one client connection until it is to end.
  Ending ServeRequests(int client_fd, int upstream_fd);
  // A connected socket to the upstream, registered in `connection` so the destructor can shut it
  // down; -1 if no address accepted the connection or the proxy is stopping.
  int ConnectUpstream(Connection* connection);
  // Counts the request and applies the rules to it.
  Decision Decide(const std::string& method, const std::string& target);
  // Waits for `delay`, or less if the proxy is stopping; returns whether it is still running.
  bool SleepUnlessStopping(absl::Duration delay);
  bool stopping() const;

  const std::vector<sockaddr_storage> upstream_addrs_;
  const int listen_fd_;
  const int port_;
  std::thread accept_thread_;

  mutable Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<RuleState> rules_ ABSL_GUARDED_BY(mu_);
  int requests_seen_ ABSL_GUARDED_BY(mu_) = 0;
  int faults_injected_ ABSL_GUARDED_BY(mu_) = 0;
  std::list<std::unique_ptr<Connection>> connections_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ickpt::testing
