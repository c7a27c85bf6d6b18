#include "src/testing/fault_http_proxy.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "src/util/log.h"
#include "src/util/str.h"

namespace ickpt::testing {
namespace {

// RFC 9112 sets no limit; servers commonly allow 8 to 64 KiB. S3 requests carry a few hundred
// bytes.
constexpr size_t kMaxHeadBytes = 64 * 1024;
// A chunk-size line (with extensions) or one trailer field.
constexpr size_t kMaxLineBytes = 8 * 1024;
constexpr size_t kReadBytes = 64 * 1024;

std::string ErrnoMessage(std::string_view what) { return StrCat(what, ": ", std::strerror(errno)); }

void SetNoDelay(int fd) {
  // Heads and bodies are sent by separate calls; with Nagle's algorithm and the peer's delayed
  // ACK each request would stall for tens of milliseconds and make delay measurements noisy.
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Makes the next close(2) of `fd` send an RST instead of a FIN: the client sees ECONNRESET.
void SetResetOnClose(int fd) {
  const linger reset{.l_onoff = 1, .l_linger = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
}

// MSG_NOSIGNAL: a peer that has gone away gives EPIPE instead of a SIGPIPE that ends the test.
absl::Status SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(ErrnoMessage("send"));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// Waits until `first` or `second` is readable, closed or failed; returns which (0 or 1), -1 if
// poll itself failed. `first` wins when both are.
int WaitReadable(int first, int second) {
  pollfd fds[2] = {{.fd = first, .events = POLLIN, .revents = 0},
                   {.fd = second, .events = POLLIN, .revents = 0}};
  while (true) {
    const int n = ::poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (fds[0].revents != 0) return 0;
    if (fds[1].revents != 0) return 1;
  }
}

// A connected socket and what has been read from it but not consumed: parsing reads past the end
// of a head (into its body) and of a message (into a pipelined next one).
class BufferedSocket {
 public:
  BufferedSocket(int fd, std::string_view name) : fd_(fd), name_(name) {}

  const std::string& name() const { return name_; }
  bool HasBuffered() const { return pos_ < buf_.size(); }

  // The next message head, through its empty line. nullopt if the peer closed the connection
  // before sending a byte of it; ResourceExhausted if it exceeds kMaxHeadBytes; Unavailable if
  // the connection failed or ended inside it.
  absl::StatusOr<std::optional<std::string>> ReadHead() {
    size_t scan_from = pos_;
    while (true) {
      const size_t end = buf_.find("\r\n\r\n", scan_from);
      const size_t size = end == std::string::npos ? buf_.size() - pos_ : end + 4 - pos_;
      if (size > kMaxHeadBytes) {
        return absl::ResourceExhaustedError(
            StrCat(name_, " sent a message head longer than ", kMaxHeadBytes, " bytes"));
      }
      if (end != std::string::npos) {
        std::string head = buf_.substr(pos_, end + 4 - pos_);
        Consume(head.size());
        return head;
      }
      // The terminator may straddle what is buffered and what comes next.
      scan_from = std::max(pos_, buf_.size() < 3 ? size_t{0} : buf_.size() - 3);
      absl::StatusOr<size_t> n = Fill();
      if (!n.ok()) return n.status();
      if (*n == 0) {
        if (!HasBuffered()) return std::nullopt;
        return absl::UnavailableError(StrCat(name_, " closed the connection inside a head"));
      }
    }
  }

  // Up to `max` bytes: the buffered ones, else what one recv(2) returns. Empty at the end of the
  // stream. The view is valid until the next call.
  absl::StatusOr<std::string_view> ReadSome(size_t max) {
    if (!HasBuffered()) {
      buf_.clear();
      pos_ = 0;
      absl::StatusOr<size_t> n = Fill();
      if (!n.ok()) return n.status();
      if (*n == 0) return std::string_view();
    }
    const std::string_view piece =
        std::string_view(buf_).substr(pos_, std::min(max, buf_.size() - pos_));
    pos_ += piece.size();  // not Consume(): the view points into buf_
    return piece;
  }

  // One line through its "\n" (chunk-size lines and trailer fields). Unavailable if the connection
  // ended first, InvalidArgument if it is longer than kMaxLineBytes.
  absl::StatusOr<std::string> ReadLine() {
    size_t scan_from = pos_;
    while (true) {
      const size_t end = buf_.find('\n', scan_from);
      if (end != std::string::npos) {
        std::string line = buf_.substr(pos_, end + 1 - pos_);
        Consume(line.size());
        return line;
      }
      if (buf_.size() - pos_ > kMaxLineBytes) {
        return absl::InvalidArgumentError(
            StrCat(name_, " sent a chunk line longer than ", kMaxLineBytes, " bytes"));
      }
      scan_from = buf_.size();
      absl::StatusOr<size_t> n = Fill();
      if (!n.ok()) return n.status();
      if (*n == 0) {
        return absl::UnavailableError(
            StrCat(name_, " closed the connection inside a chunked body"));
      }
    }
  }

 private:
  // One recv(2) appended to the buffer; 0 at the end of the stream.
  absl::StatusOr<size_t> Fill() {
    const size_t old_size = buf_.size();
    buf_.resize(old_size + kReadBytes);
    ssize_t n;
    do {
      n = ::recv(fd_, buf_.data() + old_size, kReadBytes, 0);
    } while (n < 0 && errno == EINTR);
    buf_.resize(old_size + (n > 0 ? static_cast<size_t>(n) : 0));
    if (n < 0) return absl::UnavailableError(StrCat(name_, ": ", ErrnoMessage("recv")));
    return static_cast<size_t>(n);
  }

  void Consume(size_t n) {
    pos_ += n;
    if (pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    }
  }

  const int fd_;
  const std::string name_;
  std::string buf_;
  size_t pos_ = 0;  // buf_[0, pos_) has been consumed
};

// A parsed message head. `raw` is what is relayed: the parsed fields only steer the proxy.
struct Head {
  std::string raw;
  // The start line's three parts: method, target, version (a request) or version, status, reason
  // (a response; the reason may be empty or contain spaces).
  std::string start[3];
  std::vector<std::pair<std::string, std::string>> fields;  // lower-case name, trimmed value

  // The comma-separated elements of every `name` field, trimmed and lower-cased.
  std::vector<std::string> ListElements(std::string_view name) const {
    std::vector<std::string> elements;
    for (const auto& [field, value] : fields) {
      if (field != name) continue;
      std::string_view rest = value;
      while (!rest.empty()) {
        const size_t comma = rest.find(',');
        const std::string_view element = StripWhitespace(rest.substr(0, comma));
        if (!element.empty()) elements.push_back(AsciiLower(element));
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
    }
    return elements;
  }

  bool HasElement(std::string_view name, std::string_view element) const {
    for (const std::string& e : ListElements(name)) {
      if (e == element) return true;
    }
    return false;
  }

  // Whether the connection may carry another message after this one (RFC 9112 §9.3).
  bool KeepsAlive(std::string_view version) const {
    if (HasElement("connection", "close")) return false;
    if (version == "HTTP/1.0") return HasElement("connection", "keep-alive");
    return true;
  }
};

absl::StatusOr<Head> ParseHead(std::string raw, std::string_view sender) {
  Head head;
  std::string_view rest = raw;
  // RFC 9112 §2.2: a recipient should ignore empty lines before the start line.
  while (rest.substr(0, 2) == "\r\n") rest.remove_prefix(2);
  bool first = true;
  while (true) {
    const size_t eol = rest.find("\r\n");
    if (eol == std::string_view::npos || eol == 0) break;  // the empty line ends the head
    const std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(eol + 2);
    if (first) {
      first = false;
      const size_t sp1 = line.find(' ');
      const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
      if (sp1 == std::string_view::npos) {
        return absl::InvalidArgumentError(StrCat(sender, " sent a bad start line: ", line));
      }
      head.start[0] = line.substr(0, sp1);
      head.start[1] = line.substr(sp1 + 1, sp2 == std::string_view::npos ? sp2 : sp2 - sp1 - 1);
      if (sp2 != std::string_view::npos) head.start[2] = line.substr(sp2 + 1);
      continue;
    }
    const size_t colon = line.find(':');
    // Obsolete line folding and whitespace before the colon are errors (RFC 9112 §5.1, §5.2).
    if (colon == std::string_view::npos || colon == 0 || line[0] == ' ' || line[0] == '\t' ||
        line[colon - 1] == ' ' || line[colon - 1] == '\t') {
      return absl::InvalidArgumentError(StrCat(sender, " sent a bad header field: ", line));
    }
    head.fields.emplace_back(AsciiLower(line.substr(0, colon)),
                             std::string(StripWhitespace(line.substr(colon + 1))));
  }
  head.raw = std::move(raw);
  return head;
}

enum class BodyKind { kNone, kLength, kChunked, kUntilClose };
struct Framing {
  BodyKind kind = BodyKind::kNone;
  uint64_t length = 0;  // kLength
};

// The Content-Length, if any; InvalidArgument if it is not a number or differs between fields.
absl::StatusOr<std::optional<uint64_t>> ContentLength(const Head& head, std::string_view sender) {
  std::optional<uint64_t> length;
  for (const std::string& element : head.ListElements("content-length")) {
    uint64_t value = 0;
    const bool digits = !element.empty() && element.size() <= 18 &&
                        element.find_first_not_of("0123456789") == std::string::npos;
    if (digits) value = std::stoull(element);
    if (!digits || (length && *length != value)) {
      return absl::InvalidArgumentError(StrCat(sender, " sent a bad Content-Length: ", element));
    }
    length = value;
  }
  return length;
}

// RFC 9112 §6.3 for a request: chunked, Content-Length, or no body. InvalidArgument also for a
// request that is not HTTP/1.x.
absl::StatusOr<Framing> RequestFraming(const Head& request) {
  if (request.start[2].rfind("HTTP/1.", 0) != 0) {
    return absl::InvalidArgumentError(
        StrCat("client sent a request that is not HTTP/1.x: ", request.start[0], " ",
               request.start[1], " ", request.start[2]));
  }
  const std::vector<std::string> codings = request.ListElements("transfer-encoding");
  if (!codings.empty()) {
    if (codings.back() != "chunked") {
      return absl::InvalidArgumentError(
          "client sent a Transfer-Encoding that does not end chunked");
    }
    return Framing{.kind = BodyKind::kChunked};
  }
  absl::StatusOr<std::optional<uint64_t>> length = ContentLength(request, "client");
  if (!length.ok()) return length.status();
  if (!length->has_value()) return Framing{};
  return Framing{.kind = BodyKind::kLength, .length = **length};
}

// RFC 9112 §6.3 for a response, which also depends on the request: none after HEAD and for 1xx,
// 204 and 304; then chunked, Content-Length, or everything until the upstream closes.
absl::StatusOr<Framing> ResponseFraming(const Head& response, int status, bool head_request) {
  if (head_request || status / 100 == 1 || status == 204 || status == 304) return Framing{};
  const std::vector<std::string> codings = response.ListElements("transfer-encoding");
  if (!codings.empty()) {
    return Framing{.kind =
                       codings.back() == "chunked" ? BodyKind::kChunked : BodyKind::kUntilClose};
  }
  absl::StatusOr<std::optional<uint64_t>> length = ContentLength(response, "upstream");
  if (!length.ok()) return length.status();
  if (!length->has_value()) return Framing{.kind = BodyKind::kUntilClose};
  return Framing{.kind = BodyKind::kLength, .length = **length};
}

using Sink = std::function<absl::Status(std::string_view)>;

absl::Status Discard(std::string_view) { return absl::OkStatus(); }

absl::Status CopyBytes(BufferedSocket& in, uint64_t length, const Sink& sink) {
  uint64_t left = length;
  while (left > 0) {
    absl::StatusOr<std::string_view> piece = in.ReadSome(std::min<uint64_t>(left, kReadBytes));
    if (!piece.ok()) return piece.status();
    if (piece->empty()) {
      return absl::UnavailableError(
          StrCat(in.name(), " closed the connection ", left, " bytes before the end of a body"));
    }
    if (absl::Status s = sink(*piece); !s.ok()) return s;
    left -= piece->size();
  }
  return absl::OkStatus();
}

// Reads one message body framed as `framing` from `in` and passes its bytes, as received (chunk
// lines and trailers included), to `sink`. OK when the body ended; the first error otherwise.
absl::Status ReadBody(BufferedSocket& in, const Framing& framing, const Sink& sink) {
  switch (framing.kind) {
    case BodyKind::kNone:
      return absl::OkStatus();
    case BodyKind::kLength:
      return CopyBytes(in, framing.length, sink);
    case BodyKind::kUntilClose:
      while (true) {
        absl::StatusOr<std::string_view> piece = in.ReadSome(kReadBytes);
        if (!piece.ok()) return piece.status();
        if (piece->empty()) return absl::OkStatus();
        if (absl::Status s = sink(*piece); !s.ok()) return s;
      }
    case BodyKind::kChunked:
      while (true) {
        absl::StatusOr<std::string> line = in.ReadLine();
        if (!line.ok()) return line.status();
        if (absl::Status s = sink(*line); !s.ok()) return s;
        // chunk-size [; extensions] CRLF, the size in hexadecimal.
        const size_t digits = line->find_first_not_of("0123456789abcdefABCDEF");
        if (digits == 0 || digits > 15) {
          return absl::InvalidArgumentError(
              StrCat(in.name(), " sent a bad chunk-size line: ", StripWhitespace(*line)));
        }
        const uint64_t size = std::stoull(line->substr(0, digits), nullptr, 16);
        if (size == 0) break;
        if (absl::Status s = CopyBytes(in, size, sink); !s.ok()) return s;
        line = in.ReadLine();
        if (!line.ok()) return line.status();
        if (StripWhitespace(*line) != "") {
          return absl::InvalidArgumentError(
              StrCat(in.name(), " sent a chunk longer than its size"));
        }
        if (absl::Status s = sink(*line); !s.ok()) return s;
      }
      // The trailer section, ended by an empty line.
      while (true) {
        absl::StatusOr<std::string> line = in.ReadLine();
        if (!line.ok()) return line.status();
        if (absl::Status s = sink(*line); !s.ok()) return s;
        if (*line == "\r\n" || *line == "\n") return absl::OkStatus();
      }
  }
  return absl::InternalError("unknown body framing");
}

// Element content needs only these (">" for "]]>").
std::string XmlEscape(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '&') {
      out += "&amp;";
    } else if (c == '<') {
      out += "&lt;";
    } else if (c == '>') {
      out += "&gt;";
    } else {
      out += c;
    }
  }
  return out;
}

// What S3 answers when it sheds load. A HEAD answer has the Content-Length but no body.
std::string SlowDownResponse(const Head& request, int request_number, bool close) {
  const std::string request_id = StrCat("ickpt-fault-", request_number);
  const std::string body = StrCat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>"
      "<Message>Please reduce your request rate.</Message><Resource>",
      XmlEscape(request.start[1]), "</Resource><RequestId>", request_id, "</RequestId></Error>");
  std::string response = StrCat(
      "HTTP/1.1 503 Slow Down\r\nServer: ickpt-fault-http-proxy\r\nx-amz-request-id: ", request_id,
      "\r\nContent-Type: application/xml\r\nContent-Length: ", body.size(), "\r\n",
      close ? "Connection: close\r\n" : "", "\r\n");
  if (request.start[0] != "HEAD") response += body;
  return response;
}

// Answers with an error of the proxy's own (Connection: close) and then ends the connection as
// servers do (RFC 9112 §9.6): half-close, then read and drop what the client still sends, for a
// while. Closing with unread input would send an RST, which can destroy the answer in the client's
// receive queue before the client reads it.
void AnswerAndClose(int client_fd, int status, std::string_view reason, const absl::Status& why) {
  const std::string body = StrCat(why.message(), "\n");
  const std::string response =
      StrCat("HTTP/1.1 ", status, " ", reason,
             "\r\nServer: ickpt-fault-http-proxy\r\nContent-Type: text/plain\r\nContent-Length: ",
             body.size(), "\r\nConnection: close\r\n\r\n", body);
  if (!SendAll(client_fd, response).ok()) return;
  ::shutdown(client_fd, SHUT_WR);
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  pollfd readable = {.fd = client_fd, .events = POLLIN, .revents = 0};
  char sink[4096];
  while (true) {
    const int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left_ms <= 0 || ::poll(&readable, 1, static_cast<int>(left_ms)) <= 0) return;
    if (::recv(client_fd, sink, sizeof(sink), 0) <= 0) return;  // EOF: the client has closed
  }
}

struct Response {
  Head head;
  int status = 0;
};

// Reads and parses one response head from the upstream. nullopt if the upstream closed the
// connection before it.
absl::StatusOr<std::optional<Response>> ReadResponse(BufferedSocket& upstream) {
  absl::StatusOr<std::optional<std::string>> raw = upstream.ReadHead();
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return std::nullopt;
  absl::StatusOr<Head> head = ParseHead(std::move(**raw), "upstream");
  if (!head.ok()) return head.status();
  const std::string& code = head->start[1];
  if (head->start[0].rfind("HTTP/1.", 0) != 0 || code.size() != 3 ||
      code.find_first_not_of("0123456789") != std::string::npos) {
    return absl::InvalidArgumentError(
        StrCat("upstream sent a bad status line: ", head->raw.substr(0, head->raw.find("\r\n"))));
  }
  const int status = std::stoi(code);  // before `head` is moved from
  return Response{.head = *std::move(head), .status = status};
}

bool Forwards(std::optional<HttpFault> fault) {
  return !fault || (*fault != HttpFault::kServiceUnavailable &&
                    *fault != HttpFault::kResetBeforeForward && *fault != HttpFault::kHang);
}

}  // namespace

absl::StatusOr<int> ListenOnLoopback(int* port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(ErrnoMessage("socket"));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd, SOMAXCONN) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const absl::Status status = absl::UnavailableError(ErrnoMessage("listening on 127.0.0.1"));
    ::close(fd);
    return status;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

absl::StatusOr<std::unique_ptr<FaultHttpProxy>> FaultHttpProxy::Start(std::string upstream_host,
                                                                      int upstream_port) {
  if (upstream_port <= 0 || upstream_port > 65535) {
    return absl::InvalidArgumentError(
        StrCat("fault http proxy: bad upstream port ", upstream_port));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const int rc =
      ::getaddrinfo(upstream_host.c_str(), std::to_string(upstream_port).c_str(), &hints, &found);
  if (rc != 0) {
    return absl::InvalidArgumentError(
        StrCat("fault http proxy: resolving ", upstream_host, ": ", ::gai_strerror(rc)));
  }
  std::vector<sockaddr_storage> addrs;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    sockaddr_storage addr{};
    std::memcpy(&addr, a->ai_addr, std::min<size_t>(a->ai_addrlen, sizeof(addr)));
    addrs.push_back(addr);
  }
  ::freeaddrinfo(found);

  int port = 0;
  absl::StatusOr<int> fd = ListenOnLoopback(&port);
  if (!fd.ok()) return absl::UnavailableError(StrCat("fault http proxy: ", fd.status().message()));
  std::unique_ptr<FaultHttpProxy> proxy(new FaultHttpProxy(std::move(addrs), *fd, port));
  proxy->accept_thread_ = std::thread([p = proxy.get()] { p->AcceptLoop(); });
  return proxy;
}

FaultHttpProxy::FaultHttpProxy(std::vector<sockaddr_storage> upstream_addrs, int listen_fd,
                               int port)
    : upstream_addrs_(std::move(upstream_addrs)), listen_fd_(listen_fd), port_(port) {}

FaultHttpProxy::~FaultHttpProxy() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;  // also wakes SleepUnlessStopping (Unlock notifies)
    // shutdown(2), not close(2): a thread blocked in accept, connect, recv or send on the socket
    // returns at once, and the fd number stays taken until its owner closes it.
    ::shutdown(listen_fd_, SHUT_RDWR);
    for (const std::unique_ptr<Connection>& c : connections_) {
      if (c->client_fd >= 0) ::shutdown(c->client_fd, SHUT_RDWR);
      if (c->upstream_fd >= 0) ::shutdown(c->upstream_fd, SHUT_RDWR);
    }
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  // No connection is added once the accept thread has returned.
  std::list<std::unique_ptr<Connection>> remaining;
  {
    MutexLock lock(&mu_);
    remaining.swap(connections_);
  }
  for (const std::unique_ptr<Connection>& c : remaining) c->thread.join();
  ::close(listen_fd_);
}

std::string FaultHttpProxy::endpoint() const { return StrCat("http://127.0.0.1:", port_); }

void FaultHttpProxy::AddRule(HttpFaultRule rule) {
  MutexLock lock(&mu_);
  rules_.push_back(RuleState{.rule = std::move(rule)});
}

void FaultHttpProxy::ClearRules() {
  MutexLock lock(&mu_);
  rules_.clear();
}

int FaultHttpProxy::requests_seen() const {
  MutexLock lock(&mu_);
  return requests_seen_;
}

int FaultHttpProxy::faults_injected() const {
  MutexLock lock(&mu_);
  return faults_injected_;
}

bool FaultHttpProxy::stopping() const {
  MutexLock lock(&mu_);
  return stopping_;
}

void FaultHttpProxy::AcceptLoop() {
  while (true) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      // After shutdown(2) in the destructor accept fails with EINVAL: the normal way out.
      if (!stopping()) {
        ICKPT_LOG_ERROR("fault http proxy on port {}: {}; no longer accepting", port_,
                        ErrnoMessage("accept"));
      }
      return;
    }
    SetNoDelay(fd);
    ReapFinished();
    MutexLock lock(&mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    auto owned = std::make_unique<Connection>();
    Connection* connection = owned.get();
    connection->client_fd = fd;
    connections_.push_back(std::move(owned));
    connection->thread = std::thread([this, connection] { Serve(connection); });
  }
}

void FaultHttpProxy::ReapFinished() {
  std::list<std::unique_ptr<Connection>> finished;
  {
    MutexLock lock(&mu_);
    for (auto it = connections_.begin(); it != connections_.end();) {
      const auto next = std::next(it);
      if ((*it)->done) finished.splice(finished.end(), connections_, it);
      it = next;
    }
  }
  for (const std::unique_ptr<Connection>& c : finished) c->thread.join();
}

int FaultHttpProxy::ConnectUpstream(Connection* connection) {
  for (const sockaddr_storage& addr : upstream_addrs_) {
    const int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    {
      // Registered before connect(2), so that the destructor's shutdown(2) aborts a slow connect.
      MutexLock lock(&mu_);
      if (stopping_) {
        ::close(fd);
        return -1;
      }
      connection->upstream_fd = fd;
    }
    const socklen_t len = addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) == 0) {
      SetNoDelay(fd);
      return fd;
    }
    ICKPT_LOG_DEBUG("fault http proxy on port {}: {}", port_, ErrnoMessage("connect to upstream"));
    MutexLock lock(&mu_);
    ::close(fd);
    connection->upstream_fd = -1;
  }
  return -1;
}

void FaultHttpProxy::Serve(Connection* connection) {
  // client_fd was set before this thread started and changes only below.
  const int client_fd = connection->client_fd;
  const int upstream_fd = ConnectUpstream(connection);
  const Ending ending = ServeRequests(client_fd, upstream_fd);
  // Closed with the lock held: the destructor shuts down these fds with it held, so it never
  // reaches a number that has been closed here and reused by another connection.
  MutexLock lock(&mu_);
  if (ending == Ending::kReset) SetResetOnClose(client_fd);
  ::close(client_fd);
  connection->client_fd = -1;
  if (upstream_fd >= 0) ::close(upstream_fd);
  connection->upstream_fd = -1;
  connection->done = true;
}

FaultHttpProxy::Decision FaultHttpProxy::Decide(const std::string& method,
                                                const std::string& target) {
  MutexLock lock(&mu_);
  Decision decision;
  decision.request_number = ++requests_seen_;
  for (RuleState& state : rules_) {
    const HttpFaultRule& rule = state.rule;
    if (!rule.method.empty() && rule.method != method) continue;
    if (!rule.path_contains.empty() && !Contains(target, rule.path_contains)) continue;
    if (rule.times >= 0 && state.faulted >= rule.times) continue;  // used up: the next rule
    if (state.skipped < rule.skip) {
      ++state.skipped;
      return decision;
    }
    ++state.faulted;
    ++faults_injected_;
    decision.fault = rule.fault;
    decision.delay = rule.delay;
    return decision;
  }
  return decision;
}

bool FaultHttpProxy::SleepUnlessStopping(absl::Duration delay) {
  MutexLock lock(&mu_);
  mu_.AwaitWithDeadline([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; },
                        absl::Now() + delay);
  return !stopping_;
}

FaultHttpProxy::Ending FaultHttpProxy::ServeRequests(int client_fd, int upstream_fd) {
  BufferedSocket client(client_fd, "client");
  BufferedSocket upstream(upstream_fd, "upstream");
  const auto fail = [this](const absl::Status& status) {
    ICKPT_LOG_DEBUG("fault http proxy on port {}: {}; closing the connection", port_,
                    status.ToString());
    return Ending::kClose;
  };
  const Sink to_client = [client_fd](std::string_view data) { return SendAll(client_fd, data); };
  while (true) {
    // Between requests the upstream has nothing to say: if it becomes readable it has closed
    // the connection (an idle timeout, say), and the client is told the same way.
    if (!client.HasBuffered() && upstream_fd >= 0 && WaitReadable(client_fd, upstream_fd) != 0) {
      return Ending::kClose;
    }
    absl::StatusOr<std::optional<std::string>> raw_request = client.ReadHead();
    if (!raw_request.ok()) {
      if (absl::IsResourceExhausted(raw_request.status())) {
        AnswerAndClose(client_fd, 431, "Request Header Fields Too Large", raw_request.status());
      }
      return fail(raw_request.status());
    }
    if (!raw_request->has_value()) return Ending::kClose;  // the client closed between requests
    absl::StatusOr<Head> request = ParseHead(std::move(**raw_request), "client");
    absl::StatusOr<Framing> request_framing =
        request.ok() ? RequestFraming(*request) : absl::StatusOr<Framing>(request.status());
    if (!request_framing.ok()) {
      AnswerAndClose(client_fd, 400, "Bad Request", request_framing.status());
      return fail(request_framing.status());
    }
    const bool head_request = request->start[0] == "HEAD";
    const bool client_keeps_alive = request->KeepsAlive(request->start[2]);
    const Decision decision = Decide(request->start[0], request->start[1]);

    if (!Forwards(decision.fault) || upstream_fd < 0) {
      // The body is read first, as a server would: the 503 leaves the connection usable, and the
      // reset comes after the client has sent everything.
      if (absl::Status s = ReadBody(client, *request_framing, Discard); !s.ok()) return fail(s);
      if (!Forwards(decision.fault)) {
        switch (*decision.fault) {
          case HttpFault::kServiceUnavailable:
            if (absl::Status s = SendAll(
                    client_fd,
                    SlowDownResponse(*request, decision.request_number, !client_keeps_alive));
                !s.ok()) {
              return fail(s);
            }
            if (!client_keeps_alive) return Ending::kClose;
            continue;
          case HttpFault::kResetBeforeForward:
            return Ending::kReset;
          case HttpFault::kHang:
            // Until the client gives up or the destructor shuts the socket down.
            while (true) {
              absl::StatusOr<std::string_view> piece = client.ReadSome(kReadBytes);
              if (!piece.ok() || piece->empty()) return Ending::kClose;
            }
          default:
            break;
        }
      }
      AnswerAndClose(
          client_fd, 502, "Bad Gateway",
          absl::UnavailableError("the fault http proxy could not connect to its upstream"));
      return Ending::kClose;
    }

    // Forward the request. Its head goes first and its body after, as the client sends it.
    if (absl::Status s = SendAll(upstream_fd, request->raw); !s.ok()) return fail(s);
    std::optional<Response> response;
    // A client that sent "Expect: 100-continue" waits (libcurl: a second) for the upstream's
    // 100 before sending the body, so an answer that comes first is relayed at once. A final
    // answer in its place leaves unclear whether the client will send the body: the connection
    // is closed after it.
    bool must_close = false;
    if (request->HasElement("expect", "100-continue") && request_framing->kind != BodyKind::kNone &&
        !client.HasBuffered() && WaitReadable(upstream_fd, client_fd) == 0) {
      absl::StatusOr<std::optional<Response>> early = ReadResponse(upstream);
      if (!early.ok()) return fail(early.status());
      if (!early->has_value()) return Ending::kClose;
      if ((*early)->status / 100 == 1) {
        if (absl::Status s = SendAll(client_fd, (*early)->head.raw); !s.ok()) return fail(s);
      } else {
        response = std::move(*early);
        must_close = true;
      }
    }
    if (!response) {
      // If the upstream stops reading (it answered early and closed), its answer may still be
      // there to relay; the rest of the client's body then makes the connection unusable.
      bool upstream_failed = false;
      const Sink to_upstream = [&](std::string_view data) {
        absl::Status s = SendAll(upstream_fd, data);
        upstream_failed = !s.ok();
        return s;
      };
      if (absl::Status s = ReadBody(client, *request_framing, to_upstream); !s.ok()) {
        if (!upstream_failed) return fail(s);
        must_close = true;
      }
    }

    if (decision.fault == HttpFault::kDelay && !SleepUnlessStopping(decision.delay)) {
      return Ending::kClose;
    }
    // Interim (1xx) responses are relayed as they come; the fault is about the final one.
    while (!response || response->status / 100 == 1) {
      if (response) {
        if (absl::Status s = SendAll(client_fd, response->head.raw); !s.ok()) return fail(s);
      }
      absl::StatusOr<std::optional<Response>> next = ReadResponse(upstream);
      if (!next.ok()) {
        // A malformed answer is reported; a failed connection is passed on as such.
        if (!absl::IsUnavailable(next.status())) {
          AnswerAndClose(client_fd, 502, "Bad Gateway", next.status());
        }
        return fail(next.status());
      }
      // The upstream closed without answering: so does the proxy, as the upstream would have.
      if (!next->has_value()) return Ending::kClose;
      response = std::move(*next);
    }
    absl::StatusOr<Framing> response_framing =
        ResponseFraming(response->head, response->status, head_request);
    if (!response_framing.ok()) {
      AnswerAndClose(client_fd, 502, "Bad Gateway", response_framing.status());
      return fail(response_framing.status());
    }

    if (decision.fault == HttpFault::kResetAfterForward) {
      // Whether or not the whole response arrives, the client will not see it.
      ReadBody(upstream, *response_framing, Discard).IgnoreError();
      return Ending::kReset;
    }
    if (decision.fault == HttpFault::kTruncateResponse) {
      std::string body;
      // On an error, half of what did arrive.
      ReadBody(upstream, *response_framing, [&body](std::string_view data) {
        body.append(data);
        return absl::OkStatus();
      }).IgnoreError();
      if (absl::Status s = SendAll(client_fd, response->head.raw); !s.ok()) return fail(s);
      SendAll(client_fd, std::string_view(body).substr(0, body.size() / 2))
          .IgnoreError();  // the connection ends either way
      return Ending::kClose;
    }
    if (absl::Status s = SendAll(client_fd, response->head.raw); !s.ok()) return fail(s);
    if (absl::Status s = ReadBody(upstream, *response_framing, to_client); !s.ok()) return fail(s);
    if (must_close || !client_keeps_alive || response_framing->kind == BodyKind::kUntilClose ||
        !response->head.KeepsAlive(response->head.start[0])) {
      return Ending::kClose;
    }
  }
}

}  // namespace ickpt::testing
