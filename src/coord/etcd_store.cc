// The etcd coordination store (etcd_store.h): HTTP POSTs of etcd_codec.h's bodies over libcurl.
//
// Streams: /v3/watch and /v3/lease/keepalive are gRPC streams that the gateway serves as a chunked
// HTTP reply of newline-separated JSON messages. The keep-alive stream ends by itself after the one
// reply (the request body, one message, ends the client's side); the watch stream stays open, so it
// is read line by line and the transfer aborted from the write callback once the answer is in.
//
// Authentication: every call goes through WithToken, which adds the token and, when etcd refuses it
// (ErrorStatus gives Unauthenticated), authenticates again once; callers get PermissionDenied for
// what is still refused. The watch stream reports a refused token as a canceled watch, which
// WaitForChange turns into the same Unauthenticated status.
//
// Thread safety: endpoints_ and options_ are immutable; mu_ guards the preferred endpoint and the
// idle libcurl handles, auth_mu_ the token. A handle is used by one call at a time.
#include "src/coord/etcd_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <curl/curl.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/time/time.h"
#include "src/coord/etcd_codec.h"
#include "src/util/mutex.h"
#include "src/util/str.h"

namespace ickpt::coord {
namespace {

// Idle handles kept for reuse (each may hold an open connection).
constexpr size_t kMaxIdleHandles = 4;
// A reply larger than this is refused rather than buffered (a prefix read of the protocol's keys is
// a few kilobytes).
constexpr size_t kMaxReplyBytes = size_t{64} << 20;

std::string Excerpt(std::string_view body) {
  std::string out = absl::CHexEscape(ToAbsl(body.substr(0, 200)));
  if (body.size() > 200) out += "...";
  return out;
}

absl::Status ValidateEndpoint(std::string_view endpoint) {
  auto invalid = [&](std::string_view why) {
    return absl::InvalidArgumentError(StrCat("invalid etcd endpoint \"",
                                             absl::CHexEscape(ToAbsl(endpoint.substr(0, 200))),
                                             "\": ", why,
                                             " (expected http://host:port or https://host:port)"));
  };
  std::string_view rest;
  if (endpoint.substr(0, 7) == "http://") {
    rest = endpoint.substr(7);
  } else if (endpoint.substr(0, 8) == "https://") {
    rest = endpoint.substr(8);
  } else {
    return invalid("not an http:// or https:// URL");
  }
  if (rest.empty()) return invalid("no host");
  for (char c : rest) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u <= ' ' || u >= 0x7f) return invalid("space or non-ASCII character");
    if (c == '/' || c == '?' || c == '#' || c == '@' || c == '\\') {
      return invalid("has a path, query, fragment or user name");
    }
  }
  std::string_view host = rest;
  std::string_view port;
  if (rest.front() == '[') {  // IPv6 literal
    const size_t close = rest.find(']');
    if (close == std::string_view::npos || close == 1) return invalid("bad IPv6 address");
    host = rest.substr(0, close + 1);
    const std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return invalid("junk after the IPv6 address");
      port = after.substr(1);
      if (port.empty()) return invalid("empty port");
    }
  } else if (const size_t colon = rest.find(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (port.empty()) return invalid("empty port");
  }
  if (host.empty()) return invalid("no host");
  if (!port.empty()) {
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(),
                                        [](char c) { return c >= '0' && c <= '9'; })) {
      return invalid("port is not a number");
    }
    const int number = std::stoi(std::string(port));
    if (number < 1 || number > 65535) return invalid("port out of range");
  }
  return absl::OkStatus();
}

std::string NormalizeEndpoint(std::string_view endpoint) {
  endpoint = StripWhitespace(endpoint);
  if (!endpoint.empty() && endpoint.back() == '/') endpoint.remove_suffix(1);
  return std::string(endpoint);
}

// What the write callback fills in.
struct Transfer {
  CURL* curl = nullptr;
  std::string body;
  const std::function<bool(std::string_view)>* on_line = nullptr;
  size_t consumed = 0;  // streaming: bytes of `body` already handed out as lines
  bool stopped = false;
  bool too_large = false;
  const WaitCancel* cancel = nullptr;  // a wait that another thread may end
  bool canceled = false;
};

// libcurl's progress callback (about once a second on an idle stream, more often while data
// flows): a non-zero return aborts the transfer with CURLE_ABORTED_BY_CALLBACK.
int ProgressCallback(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  Transfer* t = static_cast<Transfer*>(user);
  if (t->cancel != nullptr && t->cancel->canceled()) {
    t->canceled = true;
    return 1;
  }
  return 0;
}

// Hands out every complete line after `consumed`; returns false once the handler stopped.
bool DeliverLines(Transfer* t) {
  while (true) {
    const size_t newline = t->body.find('\n', t->consumed);
    if (newline == std::string::npos) break;
    const std::string_view line =
        std::string_view(t->body).substr(t->consumed, newline - t->consumed);
    t->consumed = newline + 1;
    if (StripWhitespace(line).empty()) continue;
    if (!(*t->on_line)(line)) {
      t->stopped = true;
      return false;
    }
  }
  // Drop what was handed out, so that a long-lived stream does not grow the buffer.
  t->body.erase(0, t->consumed);
  t->consumed = 0;
  return true;
}

size_t WriteCallback(char* data, size_t size, size_t count, void* user) {
  Transfer* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (t->body.size() + n > kMaxReplyBytes) {
    t->too_large = true;
    return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
  }
  t->body.append(data, n);
  if (t->on_line == nullptr) return n;
  // Only a 200 reply is a stream; an error reply is kept whole for HttpError.
  long http_status = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &http_status);
  if (http_status == 200 && !DeliverLines(t)) return 0;
  return n;
}

void CurlGlobalInit() {
  static std::once_flag once;
  // Not thread-safe itself (it initialises OpenSSL): once, before the first handle.
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// The error `status` of a reply from `endpoint`, with the endpoint in front of its message.
absl::Status AtEndpoint(const absl::Status& status, std::string_view endpoint) {
  if (status.ok()) return status;
  return absl::Status(status.code(), StrCat(endpoint, ": ", status.message()));
}

long Millis(absl::Duration d) {
  return static_cast<long>(std::max<int64_t>(1, absl::ToInt64Milliseconds(d)));
}

bool IsHttps(std::string_view endpoint) { return endpoint.substr(0, 8) == "https://"; }

// InvalidArgument naming `what` and `path` unless `path` is a regular file this process can read.
absl::Status CheckReadable(std::string_view what, const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        StrCat("etcd ", what, " '", path, "' cannot be read: ", std::strerror(errno)));
  }
  struct stat st {};
  const bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  ::close(fd);
  if (!regular) {
    return absl::InvalidArgumentError(StrCat("etcd ", what, " '", path, "' is not a file"));
  }
  return absl::OkStatus();
}

// What to check when a TLS connection to etcd failed with `rc`; empty when `rc` is no TLS error.
std::string TlsHint(CURLcode rc, const EtcdStoreOptions& options) {
  switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
      return StrCat("; TLS certificate verification of etcd's certificate failed: check the CA (",
                    options.ca_file.empty() ? "none given: the system's CA store"
                                            : StrCat("--etcd-ca ", options.ca_file),
                    ") is the one that signed etcd's certificate, and that the certificate names "
                    "the endpoint's host");
    case CURLE_SSL_CACERT_BADFILE:
      return StrCat("; the CA file '", options.ca_file,
                    "' (--etcd-ca) holds no usable certificate");
    case CURLE_SSL_CERTPROBLEM:
      return StrCat("; the client certificate '", options.cert_file, "' or its key '",
                    options.key_file, "' (--etcd-cert, --etcd-key) cannot be used");
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
      // etcd with --client-cert-auth ends the handshake (TLS 1.2) or the connection (TLS 1.3,
      // after the client's first bytes) when the client has no certificate it trusts.
      return options.cert_file.empty()
                 ? "; if etcd runs with --client-cert-auth it needs a client certificate "
                   "(--etcd-cert, --etcd-key) signed by a CA it trusts"
                 : StrCat(
                       "; if etcd runs with --client-cert-auth, check that it trusts the CA "
                       "of the client certificate '",
                       options.cert_file, "'");
    default:
      return "";
  }
}

// The status inside a result, for WithToken.
const absl::Status& StatusOf(const absl::Status& status) { return status; }
template <typename T>
absl::Status StatusOf(const absl::StatusOr<T>& result) {
  return result.status();
}

// Unauthenticated is the store's own signal to authenticate again (WithToken); callers see
// PermissionDenied for every refusal of etcd's authentication (docs/protocol.md §10).
template <typename Result>
Result AsPermissionDenied(Result result) {
  const absl::Status status = StatusOf(result);
  if (!absl::IsUnauthenticated(status)) return result;
  return absl::PermissionDeniedError(status.message());
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ParseEtcdEndpoints(std::string_view comma_separated) {
  std::vector<std::string> endpoints;
  size_t start = 0;
  while (true) {
    const size_t comma = comma_separated.find(',', start);
    const std::string endpoint = NormalizeEndpoint(comma_separated.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (endpoint.empty()) {
      return absl::InvalidArgumentError(StrCat("etcd endpoints \"",
                                               absl::CHexEscape(ToAbsl(comma_separated)),
                                               "\": an empty endpoint"));
    }
    if (absl::Status s = ValidateEndpoint(endpoint); !s.ok()) return s;
    endpoints.push_back(endpoint);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return endpoints;
}

absl::StatusOr<std::unique_ptr<EtcdStore>> EtcdStore::Open(std::vector<std::string> endpoints,
                                                           EtcdStoreOptions options) {
  if (endpoints.empty()) return absl::InvalidArgumentError("no etcd endpoint given");
  for (std::string& endpoint : endpoints) {
    endpoint = NormalizeEndpoint(endpoint);
    if (absl::Status s = ValidateEndpoint(endpoint); !s.ok()) return s;
  }
  if (options.cert_file.empty() != options.key_file.empty()) {
    return absl::InvalidArgumentError(StrCat(
        "etcd client certificate and key go together: ",
        options.cert_file.empty() ? StrCat("key '", options.key_file, "' without a certificate")
                                  : StrCat("certificate '", options.cert_file, "' without a key"),
        " (--etcd-cert, --etcd-key)"));
  }
  const bool tls_files =
      !options.ca_file.empty() || !options.cert_file.empty() || !options.key_file.empty();
  if (tls_files && std::none_of(endpoints.begin(), endpoints.end(), IsHttps)) {
    return absl::InvalidArgumentError(
        "etcd TLS files given (CA, client certificate) but no endpoint is https://");
  }
  if (!options.ca_file.empty()) {
    if (absl::Status s = CheckReadable("CA file", options.ca_file); !s.ok()) return s;
  }
  if (!options.cert_file.empty()) {
    if (absl::Status s = CheckReadable("client certificate", options.cert_file); !s.ok()) return s;
    if (absl::Status s = CheckReadable("client key", options.key_file); !s.ok()) return s;
  }
  if (options.user.empty() && !options.password.empty()) {
    return absl::InvalidArgumentError("etcd password given without a user");
  }
  if (options.request_timeout <= absl::ZeroDuration() ||
      options.connect_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        StrCat("etcd store: request_timeout (", absl::FormatDuration(options.request_timeout),
               ") and connect_timeout (", absl::FormatDuration(options.connect_timeout),
               ") must be positive"));
  }
  CurlGlobalInit();
  return std::unique_ptr<EtcdStore>(new EtcdStore(std::move(endpoints), std::move(options)));
}

EtcdStore::EtcdStore(std::vector<std::string> endpoints, EtcdStoreOptions options)
    : endpoints_(std::move(endpoints)), options_(std::move(options)) {}

EtcdStore::~EtcdStore() {
  MutexLock lock(&mu_);
  for (void* handle : idle_handles_) curl_easy_cleanup(static_cast<CURL*>(handle));
}

std::string EtcdStore::Describe() const {
  std::string out = "etcd ";
  for (size_t i = 0; i < endpoints_.size(); ++i) out += (i == 0 ? "" : ",") + endpoints_[i];
  if (!options_.user.empty()) out += StrCat(" as user '", absl::CHexEscape(options_.user), "'");
  return out;
}

void* EtcdStore::AcquireHandle() {
  {
    MutexLock lock(&mu_);
    if (!idle_handles_.empty()) {
      void* handle = idle_handles_.back();
      idle_handles_.pop_back();
      return handle;
    }
  }
  return curl_easy_init();
}

void EtcdStore::ReleaseHandle(void* handle) {
  // Options back to their defaults; the connection cache stays, which is the point of keeping it.
  curl_easy_reset(static_cast<CURL*>(handle));
  {
    MutexLock lock(&mu_);
    if (idle_handles_.size() < kMaxIdleHandles) {
      idle_handles_.push_back(handle);
      return;
    }
  }
  curl_easy_cleanup(static_cast<CURL*>(handle));
}

absl::StatusOr<EtcdStore::Response> EtcdStore::Post(std::string_view path, const std::string& body,
                                                    Retry retry, absl::Duration timeout,
                                                    const std::string& token,
                                                    const LineHandler& on_line,
                                                    const WaitCancel* cancel) {
  size_t first;
  {
    MutexLock lock(&mu_);
    first = preferred_;
  }
  std::vector<std::string> failures;
  for (size_t attempt = 0; attempt < endpoints_.size(); ++attempt) {
    const size_t index = (first + attempt) % endpoints_.size();
    const std::string& endpoint = endpoints_[index];
    CURL* curl = static_cast<CURL*>(AcquireHandle());
    if (curl == nullptr) return absl::UnavailableError("etcd: curl_easy_init failed");
    const std::string url = StrCat(endpoint, path);
    Transfer transfer;
    transfer.curl = curl;
    if (on_line) transfer.on_line = &on_line;
    transfer.cancel = cancel;
    char error_buffer[CURL_ERROR_SIZE] = {};
    // No "Expect: 100-continue" (libcurl's default above 1 KiB): it costs a round trip per call.
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Expect:");
    const std::string authorization = token.empty() ? "" : StrCat("Authorization: ", token);
    if (!token.empty()) headers = curl_slist_append(headers, authorization.c_str());
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    // Signals would reach other threads' handlers; timeouts work without them (threaded resolver).
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                     std::min(Millis(options_.connect_timeout), Millis(timeout)));
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, Millis(timeout));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &WriteCallback);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
    if (cancel != nullptr) {
      curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &ProgressCallback);
      curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &transfer);
      curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    }
    if (IsHttps(endpoint)) {
      // HTTP/1.1 as over http://: libcurl would otherwise negotiate HTTP/2, which etcd also
      // speaks on its client port (for gRPC), and the gateway's streams would behave differently.
      curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
      curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
      curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
      if (!options_.ca_file.empty()) {
        curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
      }
      if (!options_.cert_file.empty()) {
        curl_easy_setopt(curl, CURLOPT_SSLCERT, options_.cert_file.c_str());
        curl_easy_setopt(curl, CURLOPT_SSLKEY, options_.key_file.c_str());
      }
    }
    const CURLcode rc = curl_easy_perform(curl);
    long http_status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &http_status);
    long request_bytes = 0;
    curl_easy_getinfo(curl, CURLINFO_REQUEST_SIZE, &request_bytes);
    // The handle refers to these; detach them before it goes back to the pool.
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 1L);
    curl_slist_free_all(headers);
    ReleaseHandle(curl);

    if (transfer.too_large) {
      return absl::DataLossError(StrCat("etcd ", endpoint, ": reply to POST ", path,
                                        " is larger than ", kMaxReplyBytes, " bytes"));
    }
    // A stream that the handler stopped, or that ran until the timeout after the server answered
    // (a watch without events), ended as intended.
    // A canceled wait ended as its caller asked: no other endpoint is tried.
    const bool answered = rc == CURLE_OK || (on_line && transfer.stopped) ||
                          (on_line && rc == CURLE_OPERATION_TIMEDOUT && http_status == 200) ||
                          transfer.canceled;
    if (answered) {
      if (on_line && !transfer.stopped && http_status == 200) {
        // The last message, if the stream did not end it with a newline.
        transfer.body.push_back('\n');
        DeliverLines(&transfer);
      }
      {
        MutexLock lock(&mu_);
        preferred_ = index;
      }
      return Response{endpoint, http_status, std::move(transfer.body)};
    }
    failures.push_back(StrCat(endpoint, ": POST ", path, ": ", curl_easy_strerror(rc),
                              " (curl error ", static_cast<int>(rc),
                              error_buffer[0] != '\0' ? StrCat(": ", error_buffer) : "", ")",
                              IsHttps(endpoint) ? TlsHint(rc, options_) : ""));
    // Nothing was sent when the connection failed; otherwise only a request that may safely be
    // applied twice goes to another endpoint.
    const bool not_sent = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                          rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_SSL_CONNECT_ERROR ||
                          rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CERTPROBLEM ||
                          rc == CURLE_SSL_CACERT_BADFILE ||
                          (rc == CURLE_OPERATION_TIMEDOUT && request_bytes == 0);
    if (retry == Retry::kIfNotConnected && !not_sent) break;
  }
  std::string message = failures.size() == 1
                            ? StrCat("etcd ", failures[0])
                            : StrCat("etcd: ", failures.size(), " of ", endpoints_.size(),
                                     " endpoints failed: ");
  if (failures.size() > 1) {
    for (size_t i = 0; i < failures.size(); ++i) message += (i == 0 ? "" : "; ") + failures[i];
  }
  if (failures.size() < endpoints_.size()) {
    message += " (not sent to the other endpoints: the request may have been applied)";
  }
  return absl::UnavailableError(message);
}

absl::Status EtcdStore::HttpError(const Response& response, std::string_view what) const {
  absl::StatusOr<etcd::GatewayError> error = etcd::DecodeGatewayError(response.body);
  if (error.ok()) {
    return ErrorStatus(*error, StrCat("etcd ", response.endpoint, ": ", what));
  }
  // Not JSON: etcd 3.4's gateway refuses, in plain text, a client certificate with a Common Name
  // while authentication is on (etcd would otherwise take the CN for the user).
  if (response.http_status == 400 && Contains(response.body, "CommonName of client")) {
    return absl::PermissionDeniedError(
        StrCat("etcd ", response.endpoint, ": ", what,
               ": etcd refuses requests through its HTTP gateway from a client certificate with a "
               "Common Name while authentication is on: use a client certificate without a CN (the "
               "user comes from the user and password) (HTTP 400 \"",
               Excerpt(response.body), "\")"));
  }
  return absl::UnavailableError(StrCat("etcd ", response.endpoint, ": ", what, ": HTTP ",
                                       response.http_status, " \"", Excerpt(response.body),
                                       "\""));
}

absl::Status EtcdStore::ErrorStatus(const etcd::GatewayError& error,
                                    std::string_view context) const {
  const std::string etcd_says = StrCat(error.message.substr(0, 300), ", gRPC code ", error.code);
  switch (etcd::ClassifyAuthError(error.code, error.message)) {
    case etcd::AuthError::kNoCredentials:
      return absl::UnauthenticatedError(
          StrCat(context,
                 ": etcd has authentication on and this client has no credentials: give "
                 "an etcd user and password (",
                 etcd_says, ")"));
    case etcd::AuthError::kTokenRefused:
      return absl::UnauthenticatedError(StrCat(context, ": etcd refused the auth token of user '",
                                               absl::CHexEscape(options_.user), "' (", etcd_says,
                                               ")"));
    case etcd::AuthError::kWrongPassword:
      return absl::PermissionDeniedError(
          StrCat(context, ": etcd refused user '", absl::CHexEscape(options_.user),
                 "': authentication failed (wrong user name or password: ", etcd_says, ")"));
    case etcd::AuthError::kPermissionDenied:
      return absl::PermissionDeniedError(
          StrCat(context, ": ", etcd_says,
                 options_.user.empty() ? std::string(" (no etcd user given)")
                                       : StrCat(" (etcd user '", absl::CHexEscape(options_.user),
                                                "': its roles do not grant this)")));
    case etcd::AuthError::kAuthDisabled:
    case etcd::AuthError::kNone:
      break;
  }
  return etcd::GatewayErrorStatus(error, context);
}

template <typename Attempt>
auto EtcdStore::WithToken(Attempt attempt) -> decltype(attempt(std::string())) {
  absl::StatusOr<std::string> token = Token(nullptr);
  if (!token.ok()) return token.status();
  auto result = attempt(*token);
  if (options_.user.empty() || !absl::IsUnauthenticated(StatusOf(result))) {
    return AsPermissionDenied(std::move(result));
  }
  // The token expired (a simple token lives --auth-token-ttl after its last use), is from another
  // member (simple tokens are per member), or predates a change of users or roles: etcd refused
  // the request before applying it, so it may be sent again.
  const std::string refused = *token;
  token = Token(&refused);
  if (!token.ok()) return token.status();
  return AsPermissionDenied(attempt(*token));
}

absl::StatusOr<std::string> EtcdStore::Token(const std::string* stale) {
  if (options_.user.empty()) return std::string();
  MutexLock lock(&auth_mu_);
  if (stale == nullptr ? (!token_.empty() || auth_off_) : token_ != *stale) {
    return token_;  // cached, or another thread authenticated since `stale` was refused
  }
  return Authenticate();
}

absl::StatusOr<std::string> EtcdStore::Authenticate() {
  token_.clear();
  auth_off_ = false;
  absl::StatusOr<Response> r = Post(
      etcd::kAuthenticatePath, etcd::EncodeAuthenticateRequest(options_.user, options_.password),
      Retry::kAlways, options_.request_timeout, /*token=*/"");
  if (!r.ok()) return r.status();
  const std::string user = absl::CHexEscape(options_.user);
  if (r->http_status != 200) {
    absl::StatusOr<etcd::GatewayError> error = etcd::DecodeGatewayError(r->body);
    if (error.ok()) {
      switch (etcd::ClassifyAuthError(error->code, error->message)) {
        case etcd::AuthError::kAuthDisabled:
          // Nothing to authenticate: requests go without a token (etcd refuses any token then).
          auth_off_ = true;
          return std::string();
        case etcd::AuthError::kWrongPassword:
          return absl::PermissionDeniedError(
              StrCat("etcd ", r->endpoint, " refused user '", user,
                     "': authentication failed (wrong user name or password: ",
                     error->message.substr(0, 200), ")"));
        default:
          break;
      }
    }
    return HttpError(*r, StrCat("authenticate user '", user, "'"));
  }
  absl::StatusOr<std::string> token = etcd::DecodeAuthenticateReply(r->body);
  if (!token.ok()) return AtEndpoint(token.status(), StrCat("etcd ", r->endpoint));
  token_ = *token;
  return token_;
}

namespace {

// The decoded reply of a POST that got one, with the endpoint in front of a decoder's error.
template <typename Response, typename Decoder>
auto Finish(const absl::StatusOr<Response>& response, Decoder decode)
    -> decltype(decode(std::string_view())) {
  if (!response.ok()) return response.status();
  auto decoded = decode(response->body);
  if (!decoded.ok()) return AtEndpoint(decoded.status(), StrCat("etcd ", response->endpoint));
  return decoded;
}

}  // namespace

template <typename Decoder>
auto EtcdStore::Unary(std::string_view path, const std::string& body, Retry retry,
                      std::string_view what, Decoder decode)
    -> decltype(decode(std::string_view())) {
  return WithToken([&](const std::string& token) -> decltype(decode(std::string_view())) {
    absl::StatusOr<Response> r = Post(path, body, retry, options_.request_timeout, token);
    if (r.ok() && r->http_status != 200) return HttpError(*r, what);
    return Finish(r, decode);
  });
}

absl::StatusOr<int64_t> EtcdStore::Put(std::string_view key, std::string_view value,
                                       int64_t lease) {
  if (key.empty()) return absl::InvalidArgumentError("etcd put: empty key");
  return Unary(etcd::kPutPath, etcd::EncodePutRequest(key, value, lease), Retry::kIfNotConnected,
               "put", etcd::DecodePutReply);
}

absl::StatusOr<RangeResult> EtcdStore::Get(std::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("etcd get: empty key");
  return Unary(etcd::kRangePath, etcd::EncodeRangeRequest(key), Retry::kAlways, "range",
               etcd::DecodeRangeReply);
}

absl::StatusOr<RangeResult> EtcdStore::GetPrefix(std::string_view prefix) {
  return Unary(etcd::kRangePath, etcd::EncodePrefixRangeRequest(prefix), Retry::kAlways, "range",
               etcd::DecodeRangeReply);
}

absl::StatusOr<MultiRangeResult> EtcdStore::GetRanges(const std::vector<KeyRange>& ranges) {
  if (ranges.empty()) return absl::InvalidArgumentError("etcd read of ranges: no range");
  for (const KeyRange& range : ranges) {
    if (range.key.empty()) return absl::InvalidArgumentError("etcd read of ranges: empty key");
  }
  // Reads only: safe to send again to another endpoint.
  return Unary(
      etcd::kTxnPath, etcd::EncodeRangesTxnRequest(ranges), Retry::kAlways, "txn of ranges",
      [n = ranges.size()](std::string_view body) { return etcd::DecodeRangesTxnReply(body, n); });
}

absl::StatusOr<int64_t> EtcdStore::Delete(std::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("etcd delete: empty key");
  return Unary(etcd::kDeleteRangePath, etcd::EncodeDeleteRequest(key), Retry::kIfNotConnected,
               "deleterange", etcd::DecodeDeleteReply);
}

absl::StatusOr<TxnResult> EtcdStore::Txn(const std::vector<Compare>& compares,
                                         const std::vector<TxnOp>& success,
                                         const std::vector<TxnOp>& failure) {
  return Unary(etcd::kTxnPath, etcd::EncodeTxnRequest(compares, success, failure),
               Retry::kIfNotConnected, "txn", etcd::DecodeTxnReply);
}

absl::StatusOr<int64_t> EtcdStore::GrantLease(absl::Duration ttl) {
  if (ttl < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        StrCat("etcd lease grant: time to live ", absl::FormatDuration(ttl), " is below 1 s"));
  }
  const int64_t seconds = absl::ToInt64Seconds(absl::Ceil(ttl, absl::Seconds(1)));
  // Granting twice only leaves a lease without keys to expire: safe to send to another endpoint.
  absl::StatusOr<etcd::LeaseGrant> grant =
      Unary(etcd::kLeaseGrantPath, etcd::EncodeLeaseGrantRequest(seconds), Retry::kAlways,
            "lease grant", etcd::DecodeLeaseGrantReply);
  if (!grant.ok()) return grant.status();
  return grant->id;
}

absl::Status EtcdStore::KeepAlive(int64_t lease) {
  return WithToken([&](const std::string& token) -> absl::Status {
    // The reply is the first message of a stream. etcd 3.4's gateway ends the stream after it,
    // but reading just that line does not depend on it.
    std::string first;
    auto on_line = [&first](std::string_view line) {
      first = std::string(line);
      return false;
    };
    absl::StatusOr<Response> r =
        Post(etcd::kLeaseKeepAlivePath, etcd::EncodeLeaseKeepAliveRequest(lease), Retry::kAlways,
             options_.request_timeout, token, on_line);
    if (r.ok() && r->http_status != 200) return HttpError(*r, "lease keepalive");
    if (r.ok()) r->body = first;
    return Finish(r, [lease](
                         std::string_view body) { return etcd::DecodeKeepAliveReply(body, lease); })
        .status();
  });
}

absl::Status EtcdStore::RevokeLease(int64_t lease) {
  const absl::Status status = Unary(etcd::kLeaseRevokePath, etcd::EncodeLeaseRevokeRequest(lease),
                                    Retry::kAlways, "lease revoke", etcd::DecodeLeaseRevokeReply)
                                  .status();
  // Already expired or revoked: the keys are gone, which is what the caller wants.
  if (absl::IsNotFound(status)) return absl::OkStatus();
  return status;
}

absl::StatusOr<int64_t> EtcdStore::WaitForChangeIn(const KeyRange& range, int64_t after_revision,
                                                   absl::Duration timeout,
                                                   const WaitCancel* cancel) {
  if (range.key.empty()) return absl::InvalidArgumentError("etcd watch: empty key");
  struct Seen {
    int64_t changed = 0;  // the highest revision of the first batch of events
    bool compacted = false;
    absl::Status error;
  };
  auto on_line_for = [this](Seen& seen) {
    return [this, &seen](std::string_view line) {
      absl::StatusOr<etcd::WatchMessage> message = etcd::DecodeWatchMessage(line);
      if (!message.ok()) {
        seen.error = message.status();
        return false;
      }
      if (message->compact_revision > 0) {
        seen.compacted = true;
        return false;
      }
      if (message->canceled) {
        // An authentication error cancels the watch at once; its reason holds the gRPC status.
        const etcd::GatewayError error = etcd::WatchCancelError(message->cancel_reason);
        seen.error = etcd::ClassifyAuthError(error.code, error.message) != etcd::AuthError::kNone
                         ? ErrorStatus(error, "watch canceled by the server")
                         : absl::UnavailableError(StrCat("etcd watch canceled by the server: ",
                                                         message->cancel_reason.substr(0, 300)));
        return false;
      }
      if (message->event_count > 0) {
        seen.changed = message->max_event_revision;
        return false;
      }
      return true;  // "created", or a progress notification: keep reading
    };
  };
  // start_revision 0 would mean "from now on" to etcd, not "from revision 0".
  const int64_t start = std::max<int64_t>(after_revision, 0) + 1;
  const std::string body = etcd::EncodeWatchCreateRequest(range, start);
  bool compacted = false;
  absl::StatusOr<int64_t> changed =
      WithToken([&](const std::string& token) -> absl::StatusOr<int64_t> {
        Seen seen;
        absl::StatusOr<Response> r =
            Post(etcd::kWatchPath, body, Retry::kAlways, std::max(timeout, absl::Milliseconds(1)),
                 token, on_line_for(seen), cancel);
        if (!r.ok()) return r.status();
        if (cancel != nullptr && cancel->canceled() && seen.changed == 0) return after_revision;
        if (r->http_status != 200) return HttpError(*r, "watch");
        if (!seen.error.ok()) return AtEndpoint(seen.error, StrCat("etcd ", r->endpoint));
        compacted = seen.compacted;
        return seen.changed != 0 ? seen.changed : after_revision;
      });
  if (!changed.ok() || !compacted) return changed;
  // The revisions after after_revision are gone: the caller re-reads at the current revision
  // (read on the watched range, which a user restricted to it may read).
  absl::StatusOr<RangeResult> current = Unary(etcd::kRangePath, etcd::EncodeRevisionRequest(range),
                                              Retry::kAlways, "range", etcd::DecodeRangeReply);
  if (!current.ok()) return current.status();
  return current->revision;
}

}  // namespace ickpt::coord
