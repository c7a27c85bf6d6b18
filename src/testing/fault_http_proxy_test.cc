#include "src/testing/fault_http_proxy.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <curl/curl.h>
#include <netinet/in.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "gtest/gtest.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"
#include "src/util/mutex.h"
#include "src/util/str.h"

namespace ickpt::testing {
namespace {

// Generous: a loaded two-core machine can stall a thread for seconds.
constexpr absl::Duration kPatience = absl::Seconds(30);

// Polls `condition` until it holds or kPatience has passed; returns whether it held.
bool Eventually(const std::function<bool()>& condition) {
  const absl::Time deadline = absl::Now() + kPatience;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

// The upstream: a small HTTP/1.1 object server on loopback, a thread per connection. PUT stores
// the body under the path, GET returns it (chunked when the query says "chunked", else with a
// Content-Length), HEAD its length, DELETE answers 204. The query "?close", or a request's
// "Connection: close", makes it close the connection after answering; "Expect: 100-continue" is
// answered 100 before the body is read. Every request is recorded.
class TestServer {
 public:
  struct Request {
    std::string method;
    std::string target;
    std::string host;  // the Host header as received
    std::string body;
    int connection = 0;  // 1 for the first connection accepted
    bool close = false;  // "Connection: close", or the query "?close"
  };

  static absl::StatusOr<std::unique_ptr<TestServer>> Start() {
    int port = 0;
    absl::StatusOr<int> fd = ListenOnLoopback(&port);
    if (!fd.ok()) return fd.status();
    auto server = std::unique_ptr<TestServer>(new TestServer(*fd, port));
    server->accept_thread_ = std::thread([s = server.get()] { s->AcceptLoop(); });
    return server;
  }

  ~TestServer() {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
      ::shutdown(listen_fd_, SHUT_RDWR);
      for (const int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    accept_thread_.join();
    for (std::thread& t : threads_) t.join();
    for (const int fd : fds_) ::close(fd);  // only here, so shutdown never meets a reused number
    ::close(listen_fd_);
  }

  int port() const { return port_; }

  std::vector<Request> requests() const {
    MutexLock lock(&mu_);
    return requests_;
  }
  int Count(std::string_view method, std::string_view target) const {
    MutexLock lock(&mu_);
    int n = 0;
    for (const Request& r : requests_) n += r.method == method && r.target == target;
    return n;
  }
  int connections() const {
    MutexLock lock(&mu_);
    return static_cast<int>(fds_.size());
  }

 private:
  TestServer(int listen_fd, int port) : listen_fd_(listen_fd), port_(port) {}

  void AcceptLoop() {
    while (true) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0 && (errno == EINTR || errno == ECONNABORTED)) continue;
      if (fd < 0) return;  // shut down
      MutexLock lock(&mu_);
      if (stopping_) {
        ::close(fd);
        return;
      }
      fds_.push_back(fd);
      const int id = static_cast<int>(fds_.size());
      threads_.emplace_back([this, fd, id] { Serve(fd, id); });
    }
  }

  static bool Send(int fd, std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads one request from `fd`, `in` holding what was read past the previous one; nullopt if the
  // connection ends first. Answers "Expect: 100-continue" before reading the body.
  static std::optional<Request> ReadRequest(int fd, int id, std::string& in) {
    char buf[65536];
    const auto fill = [&]() {
      const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) return false;
      in.append(buf, static_cast<size_t>(n));
      return true;
    };
    size_t end;
    while ((end = in.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return std::nullopt;
    }
    const std::string head = in.substr(0, end + 4);
    in.erase(0, end + 4);
    Request request;
    request.connection = id;
    size_t line_start = head.find("\r\n") + 2;
    const std::string start = head.substr(0, line_start - 2);
    const size_t sp1 = start.find(' ');
    request.method = start.substr(0, sp1);
    request.target = start.substr(sp1 + 1, start.find(' ', sp1 + 1) - sp1 - 1);
    std::map<std::string, std::string> fields;  // lower-case names
    while (line_start < end) {
      const size_t eol = head.find("\r\n", line_start);
      const std::string line = head.substr(line_start, eol - line_start);
      line_start = eol + 2;
      const size_t colon = line.find(':');
      fields[AsciiLower(line.substr(0, colon))] =
          std::string(StripWhitespace(line.substr(colon + 1)));
    }
    request.host = fields["host"];
    request.close =
        Contains(request.target, "?close") || AsciiLower(fields["connection"]) == "close";
    if (AsciiLower(fields["expect"]) == "100-continue" &&
        !Send(fd, "HTTP/1.1 100 Continue\r\n\r\n")) {
      return std::nullopt;
    }
    const size_t length = fields.count("content-length") ? std::stoul(fields["content-length"]) : 0;
    while (in.size() < length) {
      if (!fill()) return std::nullopt;
    }
    request.body = in.substr(0, length);
    in.erase(0, length);
    return request;
  }

  // The response to `request`, which it applies to the objects.
  std::string Answer(const Request& request) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const size_t question = request.target.find('?');
    const std::string path = request.target.substr(0, question);
    const bool chunked = question != std::string::npos && Contains(request.target, "chunked");
    const std::string close_field = request.close ? "Connection: close\r\n" : "";
    const auto object = objects_.find(path);
    if (request.method == "PUT") {
      objects_[path] = request.body;
      return StrCat("HTTP/1.1 200 OK\r\nETag: \"1\"\r\nContent-Length: 0\r\n", close_field, "\r\n");
    }
    if (request.method == "DELETE") {
      objects_.erase(path);
      return StrCat("HTTP/1.1 204 No Content\r\n", close_field, "\r\n");
    }
    if (object == objects_.end()) {
      const std::string body = "<Error><Code>NoSuchKey</Code></Error>";
      return StrCat("HTTP/1.1 404 Not Found\r\nContent-Length: ", body.size(), "\r\n", close_field,
                    "\r\n", request.method == "HEAD" ? "" : body);
    }
    const std::string& body = object->second;
    if (request.method == "HEAD") {
      return StrCat("HTTP/1.1 200 OK\r\nContent-Length: ", body.size(), "\r\n", close_field,
                    "\r\n");
    }
    if (chunked) {
      std::string response =
          StrCat("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n", close_field, "\r\n");
      for (size_t at = 0; at < body.size(); at += 1000) {
        const std::string chunk = body.substr(at, 1000);
        response += fmt::format("{:x}\r\n{}\r\n", chunk.size(), chunk);
      }
      return response + "0\r\n\r\n";
    }
    return StrCat("HTTP/1.1 200 OK\r\nContent-Length: ", body.size(), "\r\n", close_field, "\r\n",
                  body);
  }

  void Serve(int fd, int id) {
    std::string in;
    while (true) {
      const std::optional<Request> request = ReadRequest(fd, id, in);
      if (!request) return;
      std::string response;
      {
        MutexLock lock(&mu_);
        requests_.push_back(*request);
        response = Answer(*request);
      }
      if (!Send(fd, response)) return;
      if (request->close) {
        ::shutdown(fd, SHUT_RDWR);  // closed by the destructor
        return;
      }
    }
  }

  const int listen_fd_;
  const int port_;
  std::thread accept_thread_;
  mutable Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<int> fds_ ABSL_GUARDED_BY(mu_);
  // Joined by the destructor after the accept thread, the only one that adds to it, has returned.
  std::vector<std::thread> threads_;
  std::vector<Request> requests_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> objects_ ABSL_GUARDED_BY(mu_);
};

// What one libcurl transfer gave.
struct Reply {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string body;
  curl_off_t content_length = -1;  // as announced (HEAD)
  long new_connections = 0;        // connections curl opened for this transfer
  absl::Duration elapsed;
  std::string error;  // curl's message when code is not CURLE_OK
};

// A libcurl easy handle, so one connection kept alive across the requests made with it (a fresh
// Client is a fresh connection). Curl's own "Expect: 100-continue" is turned off, as the S3 client
// does, unless a test asks for it.
class Client {
 public:
  explicit Client(std::string endpoint) : endpoint_(std::move(endpoint)), curl_(curl_easy_init()) {}
  ~Client() { curl_easy_cleanup(curl_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  Reply Get(const std::string& path, long timeout_ms = 0, std::vector<std::string> headers = {}) {
    return Perform("GET", path, nullptr, std::move(headers), timeout_ms);
  }
  Reply Head(const std::string& path) { return Perform("HEAD", path, nullptr, {}, 0); }
  Reply Delete(const std::string& path) { return Perform("DELETE", path, nullptr, {}, 0); }
  Reply Put(const std::string& path, const std::string& body,
            std::vector<std::string> headers = {}) {
    return Perform("PUT", path, &body, std::move(headers), 0);
  }

  CURL* handle() { return curl_; }

 private:
  static size_t Append(char* data, size_t size, size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
  }

  Reply Perform(const std::string& method, const std::string& path, const std::string* body,
                std::vector<std::string> headers, long timeout_ms) {
    Reply reply;
    char error[CURL_ERROR_SIZE] = "";
    const std::string url = endpoint_ + path;
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, error);
    // Every test bounds its wait: a proxy bug fails the test instead of hanging it.
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 60000L);
    curl_easy_setopt(curl_, CURLOPT_HTTPGET, 1L);  // resets what the previous transfer set
    curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, nullptr);
    curl_easy_setopt(curl_, CURLOPT_NOBODY, 0L);
    if (method == "HEAD") {
      curl_easy_setopt(curl_, CURLOPT_NOBODY, 1L);
    } else if (method != "GET") {
      curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, method.c_str());
    }
    if (body != nullptr) {
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
      curl_easy_setopt(curl_, CURLOPT_COPYPOSTFIELDS, body->data());
      headers.insert(headers.begin(), "Content-Type:");  // not curl's form type
    }
    headers.insert(headers.begin(), "Expect:");
    curl_slist* list = nullptr;
    for (const std::string& h : headers) list = curl_slist_append(list, h.c_str());
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &Append);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &reply.body);

    // The steady clock, as the proxy's delay: the wall clock may be slewed meanwhile.
    const auto start = std::chrono::steady_clock::now();
    reply.code = curl_easy_perform(curl_);
    reply.elapsed = absl::FromChrono(std::chrono::steady_clock::now() - start);
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &reply.status);
    curl_easy_getinfo(curl_, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &reply.content_length);
    curl_easy_getinfo(curl_, CURLINFO_NUM_CONNECTS, &reply.new_connections);
    if (reply.code != CURLE_OK) reply.error = StrCat(curl_easy_strerror(reply.code), ": ", error);
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, nullptr);
    curl_slist_free_all(list);
    return reply;
  }

  const std::string endpoint_;
  CURL* const curl_;
};

class FaultHttpProxyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { curl_global_init(CURL_GLOBAL_DEFAULT); }

  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(server_, TestServer::Start());
    ASSERT_OK_AND_ASSIGN(proxy_, FaultHttpProxy::Start("127.0.0.1", server_->port()));
  }

  void AddRule(std::string method, std::string path_contains, HttpFault fault, int times = 1,
               int skip = 0) {
    proxy_->AddRule(HttpFaultRule{.method = std::move(method),
                                  .path_contains = std::move(path_contains),
                                  .skip = skip,
                                  .times = times,
                                  .fault = fault});
  }

  // Stores `body` at `path` through the proxy, on a connection of its own.
  void Store(const std::string& path, const std::string& body) {
    Client client(proxy_->endpoint());
    const Reply reply = client.Put(path, body);
    ASSERT_EQ(reply.code, CURLE_OK) << reply.error;
    ASSERT_EQ(reply.status, 200);
  }

  // Declared first, so destroyed last: the proxy goes before its upstream.
  std::unique_ptr<TestServer> server_;
  std::unique_ptr<FaultHttpProxy> proxy_;
};

TEST_F(FaultHttpProxyTest, RelaysKeepAliveRequestsUnchanged) {
  const std::string big = RandomBytes(300 * 1000, 1);  // several reads and writes per body
  Client client(proxy_->endpoint());

  Reply put = client.Put("/k", big);
  EXPECT_EQ(put.code, CURLE_OK) << put.error;
  EXPECT_EQ(put.status, 200);
  EXPECT_EQ(put.new_connections, 1);

  Reply get = client.Get("/k");
  EXPECT_EQ(get.code, CURLE_OK) << get.error;
  EXPECT_EQ(get.status, 200);
  EXPECT_TRUE(get.body == big) << "GET /k returned " << get.body.size() << " bytes";
  EXPECT_EQ(get.new_connections, 0);

  Reply chunked = client.Get("/k?chunked");
  EXPECT_EQ(chunked.code, CURLE_OK) << chunked.error;
  EXPECT_TRUE(chunked.body == big) << "GET /k?chunked returned " << chunked.body.size() << " bytes";
  EXPECT_EQ(chunked.new_connections, 0);

  Reply head = client.Head("/k");
  EXPECT_EQ(head.code, CURLE_OK) << head.error;
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.content_length, static_cast<curl_off_t>(big.size()));
  EXPECT_EQ(head.body, "");
  EXPECT_EQ(head.new_connections, 0);

  Reply del = client.Delete("/k");
  EXPECT_EQ(del.code, CURLE_OK) << del.error;
  EXPECT_EQ(del.status, 204);
  EXPECT_EQ(del.new_connections, 0);

  Reply missing = client.Get("/k");
  EXPECT_EQ(missing.code, CURLE_OK) << missing.error;
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.body, "<Error><Code>NoSuchKey</Code></Error>");
  EXPECT_EQ(missing.new_connections, 0);

  // Each request reached the upstream once, in order, on one connection, with the Host header the
  // client sent (which names the proxy: a SigV4 signature covers it).
  const std::vector<TestServer::Request> seen = server_->requests();
  ASSERT_EQ(seen.size(), 6u);
  const char* const expected[][2] = {{"PUT", "/k"},  {"GET", "/k"},    {"GET", "/k?chunked"},
                                     {"HEAD", "/k"}, {"DELETE", "/k"}, {"GET", "/k"}};
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].method, expected[i][0]) << i;
    EXPECT_EQ(seen[i].target, expected[i][1]) << i;
    EXPECT_EQ(seen[i].host, StrCat("127.0.0.1:", proxy_->port())) << i;
    EXPECT_EQ(seen[i].connection, 1) << i;
  }
  EXPECT_TRUE(seen[0].body == big);
  EXPECT_EQ(server_->connections(), 1);
  EXPECT_EQ(proxy_->requests_seen(), 6);
  EXPECT_EQ(proxy_->faults_injected(), 0);
}

TEST_F(FaultHttpProxyTest, ServiceUnavailableAnswersSlowDownWithoutForwarding) {
  AddRule("PUT", "", HttpFault::kServiceUnavailable);
  Client client(proxy_->endpoint());

  const Reply refused = client.Put("/k", "first");
  EXPECT_EQ(refused.code, CURLE_OK) << refused.error;
  EXPECT_EQ(refused.status, 503);
  EXPECT_TRUE(Contains(refused.body, "<Error><Code>SlowDown</Code>")) << refused.body;
  EXPECT_TRUE(Contains(refused.body, "<Resource>/k</Resource>")) << refused.body;
  EXPECT_EQ(server_->Count("PUT", "/k"), 0);
  EXPECT_EQ(proxy_->faults_injected(), 1);

  // The connection stays usable, as after S3's own 503.
  const Reply retried = client.Put("/k", "second");
  EXPECT_EQ(retried.code, CURLE_OK) << retried.error;
  EXPECT_EQ(retried.status, 200);
  EXPECT_EQ(retried.new_connections, 0);
  EXPECT_EQ(server_->Count("PUT", "/k"), 1);
  EXPECT_EQ(server_->requests().at(0).body, "second");

  // A 503 to HEAD has a Content-Length but no body: the client must not wait for one.
  AddRule("HEAD", "", HttpFault::kServiceUnavailable);
  const Reply head = client.Head("/k");
  EXPECT_EQ(head.code, CURLE_OK) << head.error;
  EXPECT_EQ(head.status, 503);
  EXPECT_EQ(head.new_connections, 0);
  const Reply get = client.Get("/k");
  EXPECT_EQ(get.code, CURLE_OK) << get.error;
  EXPECT_EQ(get.body, "second");
  EXPECT_EQ(get.new_connections, 0);
  EXPECT_EQ(proxy_->faults_injected(), 2);
}

TEST_F(FaultHttpProxyTest, DelayHoldsTheResponse) {
  Store("/k", "value");
  proxy_->AddRule(
      HttpFaultRule{.method = "GET", .fault = HttpFault::kDelay, .delay = absl::Seconds(1)});
  Client client(proxy_->endpoint());

  const Reply delayed = client.Get("/k");
  EXPECT_EQ(delayed.code, CURLE_OK) << delayed.error;
  EXPECT_EQ(delayed.body, "value");
  // Only a lower bound: the proxy waits the whole delay after forwarding, however loaded the
  // machine is; an upper bound would be a guess.
  EXPECT_GE(delayed.elapsed, absl::Seconds(1));
  EXPECT_EQ(server_->Count("GET", "/k"), 1);
  EXPECT_EQ(proxy_->faults_injected(), 1);

  const Reply again = client.Get("/k");
  EXPECT_EQ(again.code, CURLE_OK) << again.error;
  EXPECT_EQ(again.body, "value");
  EXPECT_EQ(again.new_connections, 0);
}

TEST_F(FaultHttpProxyTest, ResetBeforeForwardLosesTheRequest) {
  AddRule("PUT", "/k", HttpFault::kResetBeforeForward);
  {
    Client client(proxy_->endpoint());
    const Reply reset = client.Put("/k", "value");
    EXPECT_NE(reset.code, CURLE_OK);
    EXPECT_NE(reset.code, CURLE_OPERATION_TIMEDOUT) << reset.error;
  }
  EXPECT_EQ(server_->Count("PUT", "/k"), 0);
  EXPECT_EQ(proxy_->faults_injected(), 1);

  Client reader(proxy_->endpoint());
  EXPECT_EQ(reader.Get("/k").status, 404);  // nothing landed
}

TEST_F(FaultHttpProxyTest, ResetAfterForwardLosesTheReply) {
  AddRule("PUT", "/k", HttpFault::kResetAfterForward);
  {
    Client client(proxy_->endpoint());
    const Reply reset = client.Put("/k", "value");
    EXPECT_NE(reset.code, CURLE_OK);
    EXPECT_NE(reset.code, CURLE_OPERATION_TIMEDOUT) << reset.error;
    EXPECT_EQ(reset.status, 0);  // no response at all
  }
  // The upstream answered before the proxy reset the client, so it has recorded the PUT by now.
  EXPECT_EQ(server_->Count("PUT", "/k"), 1);
  EXPECT_EQ(proxy_->faults_injected(), 1);

  Client reader(proxy_->endpoint());
  const Reply get = reader.Get("/k");
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body, "value");  // the write landed
}

TEST_F(FaultHttpProxyTest, TruncateResponseEndsAContentLengthBodyHalfway) {
  const std::string body = RandomBytes(100 * 1000, 2);
  Store("/k", body);
  AddRule("GET", "", HttpFault::kTruncateResponse);
  Client client(proxy_->endpoint());

  const Reply cut = client.Get("/k");
  EXPECT_EQ(cut.code, CURLE_PARTIAL_FILE) << cut.error;
  EXPECT_EQ(cut.status, 200);
  EXPECT_EQ(cut.body.size(), body.size() / 2);
  EXPECT_TRUE(cut.body == body.substr(0, cut.body.size()));
  EXPECT_EQ(server_->Count("GET", "/k"), 1);
  EXPECT_EQ(proxy_->faults_injected(), 1);
}

TEST_F(FaultHttpProxyTest, TruncateResponseEndsAChunkedBodyHalfway) {
  const std::string body = RandomBytes(100 * 1000, 3);
  Store("/k", body);
  AddRule("GET", "chunked", HttpFault::kTruncateResponse);
  Client client(proxy_->endpoint());

  const Reply cut = client.Get("/k?chunked");
  EXPECT_NE(cut.code, CURLE_OK);
  EXPECT_NE(cut.code, CURLE_OPERATION_TIMEDOUT) << cut.error;
  EXPECT_LT(cut.body.size(), body.size());
  EXPECT_TRUE(cut.body == body.substr(0, cut.body.size()));
  EXPECT_EQ(proxy_->faults_injected(), 1);

  // Only the chunked GET matched the rule.
  Client reader(proxy_->endpoint());
  EXPECT_TRUE(reader.Get("/k").body == body);
}

TEST_F(FaultHttpProxyTest, HangIsNeverAnswered) {
  Store("/k", "value");
  AddRule("GET", "", HttpFault::kHang);
  Client client(proxy_->endpoint());

  const Reply hung = client.Get("/k", /*timeout_ms=*/500);
  EXPECT_EQ(hung.code, CURLE_OPERATION_TIMEDOUT) << hung.error;
  EXPECT_TRUE(Eventually([&] { return proxy_->requests_seen() == 2; }));  // the PUT and the GET
  EXPECT_EQ(server_->Count("GET", "/k"), 0);
  EXPECT_EQ(proxy_->faults_injected(), 1);

  // Curl gave up on that connection; the next request gets through.
  const Reply next = client.Get("/k");
  EXPECT_EQ(next.code, CURLE_OK) << next.error;
  EXPECT_EQ(next.body, "value");
}

TEST_F(FaultHttpProxyTest, DestructorEndsHungConnections) {
  AddRule("", "", HttpFault::kHang, /*times=*/-1);
  std::vector<Reply> replies(3);
  std::vector<std::thread> clients;
  for (Reply& reply : replies) {
    clients.emplace_back([&reply, endpoint = proxy_->endpoint()] {
      Client client(endpoint);
      reply = client.Get("/k");  // 60 s timeout
    });
  }
  EXPECT_TRUE(Eventually([&] { return proxy_->requests_seen() == 3; }));

  const absl::Time start = absl::Now();
  proxy_.reset();
  for (std::thread& t : clients) t.join();
  EXPECT_LT(absl::Now() - start, kPatience);
  for (const Reply& reply : replies) {
    // The proxy closed the connections: an empty reply, not a timeout.
    EXPECT_EQ(reply.code, CURLE_GOT_NOTHING) << reply.error;
  }
  EXPECT_EQ(server_->requests().size(), 0u);
}

TEST_F(FaultHttpProxyTest, SkipLetsRequestsThroughThenTimesCountsFaults) {
  AddRule("PUT", "/s", HttpFault::kServiceUnavailable, /*times=*/2, /*skip=*/1);
  Client client(proxy_->endpoint());

  EXPECT_EQ(client.Put("/other", "x").status, 200);  // does not match: not counted
  std::vector<long> statuses;
  for (int i = 0; i < 5; ++i) statuses.push_back(client.Put("/s", StrCat(i)).status);
  EXPECT_EQ(statuses, (std::vector<long>{200, 503, 503, 200, 200}));
  EXPECT_EQ(server_->Count("PUT", "/s"), 3);
  EXPECT_EQ(proxy_->faults_injected(), 2);
  EXPECT_EQ(proxy_->requests_seen(), 6);
}

TEST_F(FaultHttpProxyTest, EveryMatchingRequestFaultsWithTimesMinusOne) {
  AddRule("GET", "", HttpFault::kServiceUnavailable, /*times=*/-1);
  Client client(proxy_->endpoint());
  for (int i = 0; i < 5; ++i) EXPECT_EQ(client.Get("/k").status, 503) << i;
  EXPECT_EQ(client.Put("/k", "v").status, 200);
  EXPECT_EQ(proxy_->faults_injected(), 5);
  EXPECT_EQ(server_->requests().size(), 1u);
}

TEST_F(FaultHttpProxyTest, FirstMatchingRuleWithFaultsLeftApplies) {
  Store("/r", "r");
  Store("/x", "x");
  AddRule("GET", "/r", HttpFault::kServiceUnavailable, /*times=*/1);
  // Truncation of a one-byte body relays nothing of it: tells this rule's faults from the first's.
  AddRule("GET", "", HttpFault::kTruncateResponse, /*times=*/2);
  {
    Client client(proxy_->endpoint());
    EXPECT_EQ(client.Get("/r").status, 503);  // the first rule
  }
  {
    Client client(proxy_->endpoint());
    EXPECT_EQ(client.Get("/r").code, CURLE_PARTIAL_FILE);  // the first is used up: the second
  }
  {
    Client client(proxy_->endpoint());
    EXPECT_EQ(client.Get("/x").code, CURLE_PARTIAL_FILE);  // only the second matches
  }
  Client client(proxy_->endpoint());
  const Reply through = client.Get("/r");  // both used up
  EXPECT_EQ(through.code, CURLE_OK) << through.error;
  EXPECT_EQ(through.body, "r");
  EXPECT_EQ(proxy_->faults_injected(), 3);
}

TEST_F(FaultHttpProxyTest, ClearRulesStopsFaults) {
  Store("/k", "value");
  AddRule("GET", "", HttpFault::kServiceUnavailable, /*times=*/-1);
  Client client(proxy_->endpoint());
  EXPECT_EQ(client.Get("/k").status, 503);
  EXPECT_EQ(client.Get("/k").status, 503);
  proxy_->ClearRules();
  const Reply through = client.Get("/k");
  EXPECT_EQ(through.status, 200);
  EXPECT_EQ(through.body, "value");
  EXPECT_EQ(through.new_connections, 0);
  EXPECT_EQ(proxy_->faults_injected(), 2);
}

TEST_F(FaultHttpProxyTest, ClientConnectionCloseEndsTheConnection) {
  Store("/k", "value");
  Client client(proxy_->endpoint());
  const Reply closing = client.Get("/k", 0, {"Connection: close"});
  EXPECT_EQ(closing.code, CURLE_OK) << closing.error;
  EXPECT_EQ(closing.body, "value");
  const Reply next = client.Get("/k");
  EXPECT_EQ(next.code, CURLE_OK) << next.error;
  EXPECT_EQ(next.new_connections, 1);
  EXPECT_EQ(server_->connections(), 3);  // Store's, the closed one, the new one
}

TEST_F(FaultHttpProxyTest, UpstreamConnectionCloseEndsTheClientConnection) {
  Store("/k", "value");
  Client client(proxy_->endpoint());
  const Reply closing = client.Get("/k?close");
  EXPECT_EQ(closing.code, CURLE_OK) << closing.error;
  EXPECT_EQ(closing.body, "value");
  const Reply next = client.Get("/k");
  EXPECT_EQ(next.code, CURLE_OK) << next.error;
  EXPECT_EQ(next.body, "value");
  EXPECT_EQ(next.new_connections, 1);
}

TEST_F(FaultHttpProxyTest, OversizedRequestHeadIsAnswered431) {
  Client client(proxy_->endpoint());
  const Reply reply = client.Get("/k", 0, {StrCat("X-Padding: ", std::string(70 * 1024, 'a'))});
  EXPECT_EQ(reply.code, CURLE_OK) << reply.error;
  EXPECT_EQ(reply.status, 431);
  EXPECT_EQ(server_->requests().size(), 0u);
}

TEST_F(FaultHttpProxyTest, UnreachableUpstreamIsAnswered502) {
  // A port that is bound but not listening refuses connections, and stays taken meanwhile.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  {
    ASSERT_OK_AND_ASSIGN(auto proxy, FaultHttpProxy::Start("127.0.0.1", ntohs(addr.sin_port)));
    Client client(proxy->endpoint());
    const Reply reply = client.Get("/k");
    EXPECT_EQ(reply.code, CURLE_OK) << reply.error;
    EXPECT_EQ(reply.status, 502);
    EXPECT_EQ(proxy->requests_seen(), 1);
  }
  ::close(fd);
}

TEST_F(FaultHttpProxyTest, StartRejectsABadPort) {
  EXPECT_TRUE(absl::IsInvalidArgument(FaultHttpProxy::Start("127.0.0.1", 0).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(FaultHttpProxy::Start("127.0.0.1", 70000).status()));
}

TEST_F(FaultHttpProxyTest, ExpectContinueIsRelayedAtOnce) {
  Client client(proxy_->endpoint());
  // Had the proxy not relayed the upstream's 100, curl would wait this long before sending.
  curl_easy_setopt(client.handle(), CURLOPT_EXPECT_100_TIMEOUT_MS, 60000L);
  const Reply put = client.Put("/k", "value", {"Expect: 100-continue"});
  EXPECT_EQ(put.code, CURLE_OK) << put.error;
  EXPECT_EQ(put.status, 200);
  EXPECT_LT(put.elapsed, absl::Seconds(50));
  EXPECT_EQ(server_->Count("PUT", "/k"), 1);
  EXPECT_EQ(client.Get("/k").body, "value");
}

// Rules change while several clients are served: every answer is either the object or the
// proxy's 503, and the upstream saw exactly the requests that were not refused.
TEST_F(FaultHttpProxyTest, RulesChangeWhileConnectionsAreServed) {
  Store("/k", "value");
  constexpr int kClients = 4;
  constexpr int kRequests = 25;
  std::vector<int> bad(kClients, 0);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c, endpoint = proxy_->endpoint()] {
      Client client(endpoint);
      for (int i = 0; i < kRequests; ++i) {
        const Reply reply = client.Get("/k");
        const bool good =
            reply.code == CURLE_OK && ((reply.status == 200 && reply.body == "value") ||
                                       (reply.status == 503 && Contains(reply.body, "SlowDown")));
        bad[c] += !good;
      }
    });
  }
  for (int i = 0; i < 50; ++i) {
    AddRule("GET", "", HttpFault::kServiceUnavailable, /*times=*/2);
    if (i % 5 == 4) proxy_->ClearRules();
    std::this_thread::yield();
  }
  for (std::thread& t : clients) t.join();
  for (int c = 0; c < kClients; ++c) EXPECT_EQ(bad[c], 0) << "client " << c;
  EXPECT_EQ(proxy_->requests_seen(), 1 + kClients * kRequests);
  EXPECT_EQ(server_->Count("GET", "/k"), kClients * kRequests - proxy_->faults_injected());
}

// Pins down libcurl's behaviour that the header warns about, which tests of the S3 client must
// plan for: on a reused connection that ends before any byte of the response, curl resends the
// request on a new connection by itself and reports only the second answer. The resend is a new
// matching request, so a rule with times = 1 lets it through; after kResetAfterForward the write
// has then landed twice.
TEST_F(FaultHttpProxyTest, CurlResendsARequestWhoseReusedConnectionIsReset) {
  Client client(proxy_->endpoint());
  EXPECT_EQ(client.Get("/warm").status, 404);  // the connection is now in curl's pool

  AddRule("PUT", "/k", HttpFault::kResetBeforeForward);
  Reply put = client.Put("/k", "first");
  EXPECT_EQ(put.code, CURLE_OK) << put.error;
  EXPECT_EQ(put.status, 200);
  EXPECT_EQ(put.new_connections, 1);
  EXPECT_EQ(server_->Count("PUT", "/k"), 1);

  AddRule("PUT", "/k", HttpFault::kResetAfterForward);
  put = client.Put("/k", "second");
  EXPECT_EQ(put.code, CURLE_OK) << put.error;
  EXPECT_EQ(put.status, 200);
  EXPECT_EQ(put.new_connections, 1);
  EXPECT_EQ(server_->Count("PUT", "/k"), 3);  // "second" twice

  EXPECT_EQ(proxy_->requests_seen(), 5);
  EXPECT_EQ(proxy_->faults_injected(), 2);
}

}  // namespace
}  // namespace ickpt::testing
