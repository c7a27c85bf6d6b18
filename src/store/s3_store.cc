// OpenS3Store (store.h): an ObjectStore in an S3 bucket over libcurl, as docs/s3.md describes.
//
// Every call is one S3 request (a listing page, a PUT, a ranged GET...), retried by Call() on the
// failures a retry can help (5xx, 429, timeouts, connection resets, truncated replies), each call
// with its own backoff and deadline: there is no store-wide retry budget, which under throttling
// drains and then fails every request. Requests are signed by libcurl (CURLOPT_AWS_SIGV4); libcurl
// 7.88 signs an x-amz-content-sha256 header only when the caller sets one, and S3 servers refuse a
// request without it, so every request sets it: the body's real SHA-256 (for a content-named
// object, the name: the server then checks that the bytes match their name), the empty string's
// for requests without a body.
//
// Thread safety: safe for concurrent use. Idle curl handles (each keeps its connection open for
// the next request) are kept in a pool under mu_; a handle is used by one call at a time.
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ickpt/store.h"
#include "src/store/content_range.h"
#include "src/store/s3_xml.h"
#include "src/util/hash.h"
#include "src/util/log.h"
#include "src/util/mutex.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

// SHA-256 of the empty string: the payload hash of requests without a body.
constexpr char kEmptySha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
// A reply body larger than this is refused (a listing page is a few hundred KiB; an object is
// read whole only for small objects, packs by range).
constexpr size_t kMaxReplyBytes = size_t{4} << 30;
// The most a reply's Content-Length makes the store allocate before the bytes arrive.
constexpr size_t kReserveReplyBytes = size_t{64} << 20;

void CurlGlobalInit() {
  static std::once_flag once;
  // curl_global_init initialises OpenSSL: once, before the first handle.
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

long Millis(absl::Duration d) {
  return static_cast<long>(std::max<int64_t>(1, absl::ToInt64Milliseconds(d)));
}

// Percent-encodes everything but the unreserved characters (A-Z a-z 0-9 - . _ ~), which is both
// what a URL query needs and what SigV4's canonical query string expects, so the server's
// canonical form matches the one libcurl signs.
std::string UriEncode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// Decodes %XX escapes (a URL's query value); nullopt for a malformed escape.
std::optional<std::string> UriDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      return std::nullopt;
    }
    int value = 0;
    if (!absl::SimpleHexAtoi(ToAbsl(s.substr(i + 1, 2)), &value)) return std::nullopt;
    out.push_back(static_cast<char>(value));
    i += 2;
  }
  return out;
}

// Content-MD5 of a multi-object delete request, which AWS requires (base64 of the raw digest).
std::string Md5Base64(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_md5(), nullptr);
  return absl::Base64Escape(absl::string_view(reinterpret_cast<const char*>(digest), length));
}

// The SHA-256 of a content-named object's bytes is its name (format.md §2: packs/<h[0:2]>/<h>,
// manifests/<h[0:2]>/<h>): sent as the payload hash, it lets the server check the bytes against
// the name without hashing them twice here.
std::optional<std::string> NamedSha256(std::string_view key) {
  for (std::string_view kind : {"packs/", "manifests/"}) {
    if (!key.starts_with(kind)) continue;
    std::string_view rest = key.substr(kind.size());
    if (rest.size() != 3 + 64 || rest[2] != '/') return std::nullopt;
    std::string_view hex = rest.substr(3);
    if (hex.substr(0, 2) != rest.substr(0, 2)) return std::nullopt;
    if (!Sha256FromHex(hex).has_value()) return std::nullopt;
    return std::string(hex);
  }
  return std::nullopt;
}

std::string GetEnv(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

// S3Credentials (store.h): the environment, else the shared credentials file.
absl::StatusOr<S3Credentials> ResolveCredentials(const S3Credentials& given) {
  if (!given.access_key_id.empty() || !given.secret_access_key.empty()) {
    if (given.access_key_id.empty() || given.secret_access_key.empty()) {
      return absl::InvalidArgumentError(
          "S3 credentials: an access key id needs its secret access key, and the reverse");
    }
    return given;
  }
  S3Credentials env;
  env.access_key_id = GetEnv("AWS_ACCESS_KEY_ID");
  env.secret_access_key = GetEnv("AWS_SECRET_ACCESS_KEY");
  env.session_token = GetEnv("AWS_SESSION_TOKEN");
  if (!env.access_key_id.empty() && !env.secret_access_key.empty()) return env;

  std::string path = GetEnv("AWS_SHARED_CREDENTIALS_FILE");
  if (path.empty()) {
    const std::string home = GetEnv("HOME");
    if (!home.empty()) path = home + "/.aws/credentials";
  }
  std::string profile = GetEnv("AWS_PROFILE");
  if (profile.empty()) profile = "default";
  const auto missing = [&](std::string_view why) {
    return absl::FailedPreconditionError(StrCat(
        "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give profile '",
        profile, "' in the shared credentials file (", why, ")"));
  };
  if (path.empty()) return missing("no HOME to find ~/.aws/credentials");
  std::ifstream in(path);
  if (!in) return missing(StrCat(path, " cannot be read"));
  // The file is INI: [profile] sections of `name = value` lines; '#' and ';' start comments.
  S3Credentials file;
  std::string section;
  std::string line;
  while (std::getline(in, line)) {
    std::string_view text = StripWhitespace(line);
    if (text.empty() || text[0] == '#' || text[0] == ';') continue;
    if (text.front() == '[' && text.back() == ']') {
      section = std::string(StripWhitespace(text.substr(1, text.size() - 2)));
      continue;
    }
    if (section != profile) continue;
    const size_t eq = text.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string name = AsciiLower(StripWhitespace(text.substr(0, eq)));
    const std::string value(StripWhitespace(text.substr(eq + 1)));
    if (name == "aws_access_key_id") file.access_key_id = value;
    if (name == "aws_secret_access_key") file.secret_access_key = value;
    if (name == "aws_session_token") file.session_token = value;
  }
  if (file.access_key_id.empty() || file.secret_access_key.empty()) {
    return missing(StrCat(path, " has no complete profile '", profile, "'"));
  }
  return file;
}

absl::Status ValidatePrefix(std::string_view prefix) {
  if (prefix.empty()) return absl::OkStatus();
  // The prefix's components obey format.md §2, so PREFIX/key is a well-formed key too.
  if (absl::Status s = ValidateObjectKey(prefix); !s.ok()) {
    return absl::InvalidArgumentError(StrCat("S3 prefix '", prefix, "': ", s.message()));
  }
  return absl::OkStatus();
}

// "scheme://host[:port]" of a normalised endpoint, split.
struct Endpoint {
  std::string scheme;     // "http" or "https"
  std::string authority;  // host[:port]
};

absl::StatusOr<Endpoint> ParseEndpoint(std::string_view endpoint) {
  const size_t colon = endpoint.find("://");
  if (colon == std::string_view::npos) {
    return absl::InvalidArgumentError(
        StrCat("S3 endpoint '", endpoint, "' is not a URL (http://host:port or https://host)"));
  }
  Endpoint e;
  e.scheme = AsciiLower(endpoint.substr(0, colon));
  if (e.scheme != "http" && e.scheme != "https") {
    return absl::InvalidArgumentError(
        StrCat("S3 endpoint '", endpoint, "': scheme '", e.scheme, "' is not http or https"));
  }
  std::string_view rest = endpoint.substr(colon + 3);
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty() || rest.find_first_of("/?#@ ") != std::string_view::npos) {
    return absl::InvalidArgumentError(
        StrCat("S3 endpoint '", endpoint, "' must be scheme://host[:port] with no path"));
  }
  e.authority = std::string(rest);
  return e;
}

// InvalidArgument naming the bucket unless it is 3-63 characters of a-z, 0-9, '-' and '.'.
absl::Status ValidateBucket(std::string_view bucket) {
  const bool valid =
      bucket.size() >= 3 && bucket.size() <= 63 &&
      std::all_of(bucket.begin(), bucket.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
      });
  if (valid) return absl::OkStatus();
  return absl::InvalidArgumentError(
      StrCat("S3 bucket '", bucket, "' is not 3-63 characters of a-z, 0-9, '-' and '.'"));
}

// One HTTP request, as Call() retries it.
struct Request {
  std::string method = "GET";  // GET, HEAD, PUT, POST, DELETE
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string_view body;
  std::string payload_sha256 = kEmptySha256;
  // A conditional write (publish): libcurl must not resend it by itself. It silently resends a
  // request whose reused connection died before the reply (seen here through a proxy that resets
  // connections), and a conditional PUT resent after its first copy landed would answer 412 for
  // the writer's own object without the store ever seeing an ambiguous attempt. Without a seek
  // callback libcurl cannot rewind the body, so it fails the attempt instead
  // (CURLE_SEND_FAIL_REWIND), which Call() counts as ambiguous and retries itself.
  bool conditional = false;
  // What the request is for, in error messages: "PUT packs/ab/ab12…".
  std::string what;
};

struct Response {
  long status = 0;
  std::string body;
  // The reply's Content-Length, for HEAD (-1 if absent).
  int64_t content_length = -1;
  // The reply's Content-Range ("" if absent), for a suffix-range GET.
  std::string content_range;
  // Some attempt before the one that produced this response failed after its request may have
  // reached the server: a write may have landed although this response says otherwise.
  bool after_ambiguous_attempt = false;
};

// What one attempt did: a response, or a failure and whether a retry may help.
struct Attempt {
  absl::Status status;  // OK: `response` holds the server's reply, whatever its status code
  bool retryable = false;
  bool maybe_sent = false;  // the request may have reached the server
  Response response;
};

struct Transfer {
  CURL* curl = nullptr;  // to size `body` once the reply's headers are in
  std::string_view upload;
  size_t uploaded = 0;
  std::string body;
  bool too_large = false;
  // Stall detection (ProgressCallback): when bytes last moved, and how many had moved then.
  absl::Duration stall_timeout = absl::InfiniteDuration();
  absl::Time last_moved = absl::Now();
  curl_off_t moved = 0;
  bool stalled = false;
};

// libcurl calls this at least once a second, and whenever data moves. A transfer in which no byte
// moved either way for stall_timeout is aborted (CURLE_ABORTED_BY_CALLBACK). libcurl's own
// low-speed limit cannot say this: it averages over its last five seconds or so, so a limit of one
// second fired after about six here.
int ProgressCallback(void* user, curl_off_t, curl_off_t downloaded, curl_off_t,
                     curl_off_t uploaded) {
  Transfer* t = static_cast<Transfer*>(user);
  const absl::Time now = absl::Now();
  if (downloaded + uploaded != t->moved) {
    t->moved = downloaded + uploaded;
    t->last_moved = now;
    return 0;
  }
  if (now - t->last_moved < t->stall_timeout) return 0;
  t->stalled = true;
  return 1;
}

size_t ReadCallback(char* buffer, size_t size, size_t count, void* user) {
  Transfer* t = static_cast<Transfer*>(user);
  const size_t n = std::min(size * count, t->upload.size() - t->uploaded);
  std::memcpy(buffer, t->upload.data() + t->uploaded, n);
  t->uploaded += n;
  return n;
}

size_t WriteCallback(char* data, size_t size, size_t count, void* user) {
  Transfer* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (t->body.size() + n > kMaxReplyBytes) {
    t->too_large = true;
    return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
  }
  if (t->body.empty()) {
    // Room for the whole body at once: a 4 MiB pack would otherwise be copied about 10 times as
    // the string doubles, each time into pages never touched before. What a server announces
    // is trusted only up to kReserveReplyBytes.
    curl_off_t length = -1;
    if (curl_easy_getinfo(t->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) == CURLE_OK &&
        length > 0) {
      t->body.reserve(std::min(static_cast<size_t>(length), kReserveReplyBytes));
    }
  }
  t->body.append(data, n);
  return n;
}

// A rewind for a resent upload (after a redirect or an authentication round): restart the body.
int SeekCallback(void* user, curl_off_t offset, int origin) {
  Transfer* t = static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0 || static_cast<size_t>(offset) > t->upload.size()) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  t->uploaded = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

class S3Store final : public ObjectStore {
 public:
  S3Store(S3StoreOptions options, Endpoint endpoint, S3Credentials credentials)
      : options_(std::move(options)),
        endpoint_(std::move(endpoint)),
        credentials_(std::move(credentials)),
        sigv4_(StrCat("aws:amz:", options_.region, ":s3")) {
    CurlGlobalInit();
  }

  ~S3Store() override {
    MutexLock lock(&mu_);
    for (CURL* handle : idle_) curl_easy_cleanup(handle);
  }

  // Bucket exists (HEAD bucket), and, if asked, conditional PUTs refuse to overwrite.
  absl::Status Check() {
    Request request;
    request.method = "HEAD";
    request.url = BucketUrl("");
    request.what = "HEAD (does the bucket exist?)";
    absl::StatusOr<Response> response = Call(request);
    if (!response.ok()) return response.status();
    if (response->status == 404) {
      return absl::NotFoundError(StrCat("S3 bucket '", options_.bucket, "' does not exist at ",
                                        options_.endpoint,
                                        " (ickpt never creates a bucket: create it first)"));
    }
    if (response->status != 200) return HttpError(request, *response);
    if (options_.probe_publish) return ProbePublish();
    return absl::OkStatus();
  }

  absl::Status Put(std::string_view key, std::string_view data) override {
    return Write(key, data, /*publish=*/false);
  }

  absl::Status Publish(std::string_view key, std::string_view data) override {
    return Write(key, data, /*publish=*/true);
  }

  absl::StatusOr<std::string> Get(std::string_view key) override {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    Request request;
    request.url = ObjectUrl(key);
    request.what = StrCat("GET ", key);
    absl::StatusOr<Response> response = Call(request);
    if (!response.ok()) return response.status();
    if (response->status == 200) return std::move(response->body);
    return HttpError(request, *response);
  }

  absl::StatusOr<std::string> GetRange(std::string_view key, uint64_t offset,
                                       uint64_t length) override {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    if (length == 0) {
      // An empty range still says whether the object exists (the contract's NotFound).
      absl::StatusOr<uint64_t> size = Size(key);
      if (!size.ok()) return size.status();
      return std::string();
    }
    if (offset > UINT64_MAX - length) {
      return absl::InvalidArgumentError(
          StrCat("GET ", key, ": range at ", offset, " of ", length, " bytes overflows"));
    }
    Request request;
    request.url = ObjectUrl(key);
    request.headers.push_back(StrCat("Range: bytes=", offset, "-", offset + length - 1));
    request.what = StrCat("GET ", key, " bytes ", offset, "-", offset + length - 1);
    absl::StatusOr<Response> response = Call(request);
    if (!response.ok()) return response.status();
    if (response->status == 206) {
      if (response->body.size() > length) {
        return absl::UnavailableError(StrCat(Describe(), ": ", request.what, ": the server sent ",
                                             response->body.size(), " bytes for ", length));
      }
      return std::move(response->body);
    }
    // 200: the server sent the whole object (some do for a range covering it all).
    if (response->status == 200) {
      if (offset >= response->body.size()) return std::string();
      return response->body.substr(offset, length);
    }
    // 416: the range starts at or past the end; the contract returns no bytes.
    if (response->status == 416) return std::string();
    return HttpError(request, *response);
  }

  // One GET with a suffix range ("bytes=-N", RFC 9110 §14.1.2): the reply's Content-Range gives
  // the object's size. A suffix longer than the object gets all of it (206, or 200 from servers
  // that answer a whole object so); an empty object has no satisfiable range (416).
  absl::StatusOr<ObjectTail> GetTail(std::string_view key, uint64_t length) override {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    if (length == 0) {
      absl::StatusOr<uint64_t> size = Size(key);
      if (!size.ok()) return size.status();
      return ObjectTail{*size, std::string()};
    }
    Request request;
    request.url = ObjectUrl(key);
    request.headers.push_back(StrCat("Range: bytes=-", length));
    request.what = StrCat("GET ", key, " last ", length, " bytes");
    absl::StatusOr<Response> response = Call(request);
    if (!response.ok()) return response.status();
    auto malformed = [&](std::string_view why) {
      // Damaged on its way or a confused server: a retry of the caller's may get a good one.
      return absl::UnavailableError(StrCat(Describe(), ": ", request.what, ": ", why));
    };
    if (response->status == 200) {
      const uint64_t size = response->body.size();
      if (size > length) response->body.erase(0, size - length);
      return ObjectTail{size, std::move(response->body)};
    }
    if (response->status == 416) {
      // Only an empty object has no byte to send; its Content-Range says "bytes */0".
      std::optional<ContentRange> range = ParseContentRange(response->content_range);
      if (range.has_value() && range->total.value_or(0) != 0) {
        return malformed(StrCat("416 for an object of ", *range->total, " bytes"));
      }
      return ObjectTail{0, std::string()};
    }
    if (response->status != 206) return HttpError(request, *response);
    std::optional<ContentRange> range = ParseContentRange(response->content_range);
    if (!range.has_value() || !range->total.has_value() || !range->first.has_value()) {
      return malformed(StrCat("the reply's Content-Range '", response->content_range,
                              "' does not give the range and the object's size"));
    }
    const uint64_t total = *range->total;
    const uint64_t expected = std::min(length, total);
    if (*range->first != total - expected || *range->last != total - 1 ||
        response->body.size() != expected) {
      return malformed(StrCat("the server sent ", response->body.size(), " bytes as range ",
                              response->content_range, ", not the last ", expected, " of ", total));
    }
    return ObjectTail{total, std::move(response->body)};
  }

  absl::StatusOr<uint64_t> Size(std::string_view key) override {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    Request request;
    request.method = "HEAD";
    request.url = ObjectUrl(key);
    request.what = StrCat("HEAD ", key);
    absl::StatusOr<Response> response = Call(request);
    if (!response.ok()) return response.status();
    if (response->status == 200) {
      if (response->content_length < 0) {
        return absl::UnavailableError(
            StrCat(Describe(), ": ", request.what, ": the reply has no Content-Length"));
      }
      return static_cast<uint64_t>(response->content_length);
    }
    return HttpError(request, *response);
  }

  absl::StatusOr<ObjectPage> ListPage(std::string_view prefix, std::string_view start_after,
                                      size_t max_keys) override {
    if (Contains(prefix, "..")) {
      return absl::InvalidArgumentError(StrCat("list ", prefix, ": prefix contains '..'"));
    }
    if (max_keys == 0) max_keys = kDefaultListPage;
    // Query parameters in sorted order, each value fully encoded: SigV4's canonical query string.
    std::string query = StrCat("list-type=2&max-keys=", std::min<size_t>(max_keys, 1000),
                               "&prefix=", UriEncode(FullKey(prefix)));
    if (!start_after.empty()) query += StrCat("&start-after=", UriEncode(FullKey(start_after)));
    Request request;
    request.url = BucketUrl(query);
    request.what = StrCat("list ", prefix, " after '", start_after, "'");
    absl::StatusOr<Response> response = Call(request);
    if (!response.ok()) return response.status();
    if (response->status != 200) return HttpError(request, *response);
    absl::StatusOr<s3::ListObjectsReply> reply = s3::DecodeListObjectsReply(response->body);
    if (!reply.ok()) {
      // A reply that does not parse was damaged on its way or by the server: retrying the page
      // is the caller's choice (Unavailable).
      return absl::UnavailableError(
          StrCat(Describe(), ": ", request.what, ": ", reply.status().message()));
    }
    ObjectPage page;
    page.truncated = reply->is_truncated;
    page.objects.reserve(reply->objects.size());
    const std::string key_prefix = FullKey("");
    std::string_view previous = start_after;
    for (s3::ListedObject& listed : reply->objects) {
      if (!listed.key.starts_with(key_prefix)) {
        return absl::UnavailableError(StrCat(Describe(), ": ", request.what,
                                             ": the server listed '", listed.key,
                                             "', outside the prefix asked for"));
      }
      ObjectInfo info;
      info.key = listed.key.substr(key_prefix.size());
      if (!info.key.starts_with(prefix) || info.key <= previous) {
        return absl::UnavailableError(StrCat(Describe(), ": ", request.what,
                                             ": the server listed '", info.key,
                                             "' out of order or outside the prefix"));
      }
      info.size = listed.size;
      info.modified = listed.last_modified;
      page.objects.push_back(std::move(info));
      previous = page.objects.back().key;
    }
    if (page.truncated && page.objects.empty()) {
      return absl::UnavailableError(StrCat(Describe(), ": ", request.what,
                                           ": the server sent an empty page marked truncated"));
    }
    return page;
  }

  absl::Status Delete(std::string_view key) override {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    Request request;
    request.method = "DELETE";
    request.url = ObjectUrl(key);
    request.what = StrCat("DELETE ", key);
    absl::StatusOr<Response> response = Call(request);
    if (!response.ok()) return response.status();
    // S3 answers 204 whether or not the key existed; some servers answer 404 for a missing one.
    if (response->status == 204 || response->status == 200 || response->status == 404) {
      return absl::OkStatus();
    }
    return HttpError(request, *response);
  }

  // Multi-object delete: up to 1,000 keys per POST /BUCKET?delete, quiet (the reply lists only the
  // keys that failed). AWS requires Content-MD5 on it; the SHA-256 payload hash is sent as always.
  absl::Status DeleteMany(const std::vector<std::string>& keys) override {
    constexpr size_t kPerRequest = 1000;
    for (size_t begin = 0; begin < keys.size(); begin += kPerRequest) {
      std::vector<std::string> full;
      for (size_t i = begin; i < std::min(keys.size(), begin + kPerRequest); ++i) {
        if (absl::Status s = ValidateObjectKey(keys[i]); !s.ok()) return s;
        full.push_back(FullKey(keys[i]));
      }
      absl::StatusOr<std::string> body = s3::EncodeDeleteRequest(full, /*quiet=*/true);
      if (!body.ok()) return body.status();
      Request request;
      request.method = "POST";
      request.url = BucketUrl("delete=");
      request.body = *body;
      request.payload_sha256 = ToHex(Sha256(*body));
      request.headers.push_back("Content-Type: application/xml");
      request.headers.push_back(StrCat("Content-MD5: ", Md5Base64(*body)));
      request.what = StrCat("delete ", full.size(), " objects from ", keys[begin]);
      absl::StatusOr<Response> response = Call(request);
      if (!response.ok()) return response.status();
      if (response->status != 200) return HttpError(request, *response);
      absl::StatusOr<s3::DeleteReply> reply = s3::DecodeDeleteReply(response->body);
      if (!reply.ok()) {
        return absl::UnavailableError(
            StrCat(Describe(), ": ", request.what, ": ", reply.status().message()));
      }
      // A key that did not exist is deleted as far as S3 is concerned; any reported error is real.
      if (!reply->failures.empty()) {
        const s3::DeleteFailure& first = reply->failures.front();
        return absl::UnavailableError(StrCat(Describe(), ": deleting ", first.key, ": ", first.code,
                                             first.message.empty() ? "" : ": ", first.message, " (",
                                             reply->failures.size(), " of ", full.size(),
                                             " keys of the request failed)"));
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> RemoveDebris(absl::Duration older_than) override {
    if (older_than < absl::ZeroDuration()) {
      return absl::InvalidArgumentError("RemoveDebris: older_than is negative");
    }
    // This store writes every object with one PUT (never multipart): a failed PUT leaves nothing
    // behind, so there is no debris of its own to remove (docs/s3.md).
    return 0;
  }

  bool publishes_without_overwrite() const override { return publishes_without_overwrite_; }

  // Reads of a restore wait on the gateway, not on this process (ObjectStore's comment).
  int default_read_concurrency() const override { return 16; }

  std::string Describe() const override {
    return StrCat("s3://", options_.bucket, options_.prefix.empty() ? "" : "/", options_.prefix,
                  " at ", options_.endpoint);
  }

 private:
  std::string FullKey(std::string_view key) const {
    return options_.prefix.empty() ? std::string(key) : StrCat(options_.prefix, "/", key);
  }

  std::string BucketUrl(std::string_view query) const {
    std::string url =
        options_.virtual_hosted
            ? StrCat(endpoint_.scheme, "://", options_.bucket, ".", endpoint_.authority, "/")
            : StrCat(endpoint_.scheme, "://", endpoint_.authority, "/", options_.bucket);
    if (!query.empty()) url += StrCat("?", query);
    return url;
  }

  // Keys are §2 keys ([a-z0-9._-] and '/'): nothing in them needs escaping in a path.
  std::string ObjectUrl(std::string_view key) const {
    return options_.virtual_hosted ? StrCat(endpoint_.scheme, "://", options_.bucket, ".",
                                            endpoint_.authority, "/", FullKey(key))
                                   : StrCat(endpoint_.scheme, "://", endpoint_.authority, "/",
                                            options_.bucket, "/", FullKey(key));
  }

  absl::Status Write(std::string_view key, std::string_view data, bool publish) {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    Request request;
    request.method = "PUT";
    request.url = ObjectUrl(key);
    request.body = data;
    std::optional<std::string> named = NamedSha256(key);
    request.payload_sha256 = named.has_value() ? *std::move(named) : ToHex(Sha256(data));
    request.headers.push_back("Content-Type: application/octet-stream");
    // A conditional write: the server refuses (412) to replace an existing object, atomically
    // with respect to concurrent writers of the key (format.md §12 item 2).
    if (publish) {
      request.headers.push_back("If-None-Match: *");
      request.conditional = true;
    }
    request.what = StrCat(publish ? "publish " : "PUT ", key);
    absl::StatusOr<Response> response = Call(request);
    if (!response.ok()) return response.status();
    if (response->status == 200) return absl::OkStatus();
    if (publish && response->status == 412) {
      if (response->after_ambiguous_attempt) {
        // An earlier attempt may have written the object, and this one found it: whose it is is
        // unknown, so the failure stays ambiguous (PublishUnique reads it back).
        return absl::UnavailableError(
            StrCat(Describe(), ": ", request.what,
                   ": the object exists after an earlier attempt failed ambiguously; it may be "
                   "this writer's own (format.md §12.1)"));
      }
      return absl::AlreadyExistsError(
          StrCat("publish ", key, " in ", Describe(), ": object already exists"));
    }
    return HttpError(request, *response);
  }

  absl::Status ProbePublish() {
    const std::string key = StrCat("tmp/publish-probe-", RandomHex128());
    absl::Status first = Publish(key, "probe");
    if (!first.ok()) {
      return absl::Status(first.code(), StrCat("probing conditional writes in ", Describe(), ": ",
                                               first.message()));
    }
    absl::Status second = Publish(key, "probe again");
    absl::Status removed = Delete(key);
    if (!removed.ok()) {
      ICKPT_LOG_WARN("{}: could not delete the probe object {}: {}", Describe(), key,
                     removed.message());
    }
    if (second.ok()) {
      publishes_without_overwrite_ = false;
      ICKPT_LOG_WARN(
          "{}: a PUT with If-None-Match: * replaced an existing object, so this store "
          "cannot arbitrate between writers; repositories there are read-only",
          Describe());
      return absl::OkStatus();
    }
    if (absl::IsAlreadyExists(second)) return absl::OkStatus();
    return absl::Status(second.code(), StrCat("probing conditional writes in ", Describe(), ": ",
                                              second.message()));
  }

  // The error of a reply that was not a success, from its status and S3 error body.
  absl::Status HttpError(const Request& request, const Response& response) const {
    std::string code;
    std::string detail;
    if (!response.body.empty()) {
      absl::StatusOr<s3::ErrorReply> error = s3::DecodeErrorReply(response.body);
      if (error.ok()) {
        code = error->code;
        detail = StrCat(error->code, error->message.empty() ? "" : ": ", error->message);
      }
    }
    const std::string message = StrCat(Describe(), ": ", request.what, ": HTTP ", response.status,
                                       detail.empty() ? "" : " ", detail);
    switch (response.status) {
      case 404:
        if (code == "NoSuchBucket") {
          return absl::NotFoundError(StrCat(message, " (bucket '", options_.bucket, "')"));
        }
        return absl::NotFoundError(message);
      case 401:
      case 403:
        return absl::PermissionDeniedError(message);
      case 400:
        if (code == "XAmzContentSHA256Mismatch") {
          // After the retries (Call() retries it): the bytes are not what their name says.
          return absl::DataLossError(
              StrCat(message, " (the body's SHA-256 differs from ", request.payload_sha256, ")"));
        }
        return absl::InvalidArgumentError(message);
      case 412:
        return absl::FailedPreconditionError(message);
      case 429:
        return absl::UnavailableError(message);
      case 507:
        return absl::ResourceExhaustedError(message);
      default:
        if (response.status >= 500) return absl::UnavailableError(message);
        if (code == "QuotaExceeded") return absl::ResourceExhaustedError(message);
        return absl::UnknownError(message);
    }
  }

  static bool Retryable(const Response& response) {
    if (response.status >= 500 || response.status == 429) return true;
    if (response.status == 400 || response.status == 408) {
      // Damage in transit (the server saw other bytes than were hashed) and the server's own
      // request timeout are worth sending again; every other 4xx is final.
      absl::StatusOr<s3::ErrorReply> error = s3::DecodeErrorReply(response.body);
      return error.ok() && (error->code == "XAmzContentSHA256Mismatch" ||
                            error->code == "RequestTimeout" || response.status == 408);
    }
    return false;
  }

  // Sends `request`, retrying what a retry may help, until a final response, max_attempts or the
  // call's deadline. A non-OK status only for transport failures (Unavailable, DeadlineExceeded);
  // an HTTP error reply is returned as a Response (after its retries) for the caller to judge.
  absl::StatusOr<Response> Call(const Request& request) {
    const absl::Time deadline = absl::Now() + options_.call_deadline;
    bool ambiguous = false;
    absl::Duration backoff = options_.initial_backoff;
    for (int attempt = 1;; ++attempt) {
      const absl::Duration remaining = deadline - absl::Now();
      Attempt result = Perform(request, std::max(remaining, absl::Milliseconds(1)));
      const bool retry = result.status.ok() ? Retryable(result.response) : result.retryable;
      if (!retry) {
        if (!result.status.ok()) return result.status;
        result.response.after_ambiguous_attempt = ambiguous;
        return std::move(result.response);
      }
      // A reply of 5xx may come after the write landed (a server that failed after storing), as
      // may a reset or a timeout; only a refused connection certainly sent nothing.
      if (!result.status.ok() ? result.maybe_sent : result.response.status >= 500) {
        ambiguous = true;
      }
      const absl::Duration wait = absl::Milliseconds(
          absl::Uniform<double>(BitGen(), 0, absl::ToDoubleMilliseconds(backoff)));
      const bool out_of_time = absl::Now() + wait >= deadline;
      if (attempt >= options_.max_attempts || out_of_time) {
        const std::string why =
            StrCat(" (gave up after ", attempt, attempt == 1 ? " attempt" : " attempts",
                   out_of_time ? ", at the call's deadline" : "", ")");
        if (!result.status.ok()) {
          return absl::Status(result.status.code(), StrCat(result.status.message(), why));
        }
        absl::Status error = HttpError(request, result.response);
        return absl::Status(error.code(), StrCat(error.message(), why));
      }
      ICKPT_LOG_DEBUG("{}: {}: attempt {} failed ({}), retrying in {}", Describe(), request.what,
                      attempt,
                      result.status.ok() ? StrCat("HTTP ", result.response.status)
                                         : std::string(result.status.message()),
                      absl::FormatDuration(wait));
      absl::SleepFor(wait);
      backoff = std::min(backoff * 2, options_.max_backoff);
    }
  }

  static absl::BitGen& BitGen() {
    thread_local absl::BitGen gen;
    return gen;
  }

  Attempt Perform(const Request& request, absl::Duration remaining) {
    Attempt result;
    CURL* curl = AcquireHandle();
    if (curl == nullptr) {
      result.status = absl::UnavailableError(StrCat(Describe(), ": curl_easy_init failed"));
      result.retryable = true;
      return result;
    }
    Transfer transfer;
    transfer.curl = curl;
    transfer.upload = request.body;
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers,
                                StrCat("x-amz-content-sha256: ", request.payload_sha256).c_str());
    if (!credentials_.session_token.empty()) {
      headers = curl_slist_append(
          headers, StrCat("x-amz-security-token: ", credentials_.session_token).c_str());
    }
    for (const std::string& h : request.headers) headers = curl_slist_append(headers, h.c_str());

    curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, sigv4_.c_str());
    curl_easy_setopt(curl, CURLOPT_USERNAME, credentials_.access_key_id.c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD, credentials_.secret_access_key.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, Millis(options_.connect_timeout));
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, Millis(remaining));
    transfer.stall_timeout = options_.stall_timeout;
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, ProgressCallback);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &transfer);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteCallback);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
    if (!options_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
    if (request.method == "HEAD") {
      curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (request.method == "PUT") {
      curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(curl, CURLOPT_READFUNCTION, ReadCallback);
      curl_easy_setopt(curl, CURLOPT_READDATA, &transfer);
      if (!request.conditional) {
        curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, SeekCallback);
        curl_easy_setopt(curl, CURLOPT_SEEKDATA, &transfer);
      }
      curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE,
                       static_cast<curl_off_t>(request.body.size()));
      // libcurl sends "Expect: 100-continue" above 1 KiB and waits up to a second for the
      // server's go-ahead. Removing the header ("Expect:") would save that, but curl 7.88's SigV4
      // then signs an empty expect header the server never sees (403 SignatureDoesNotMatch,
      // seen on RGW): so the header stays, and the body follows after 1 ms instead.
      curl_easy_setopt(curl, CURLOPT_EXPECT_100_TIMEOUT_MS, 1L);
    } else if (request.method == "POST") {
      curl_easy_setopt(curl, CURLOPT_POST, 1L);
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(request.body.size()));
    } else if (request.method != "GET") {
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }

    const CURLcode code = curl_easy_perform(curl);
    long http_status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &http_status);
    curl_off_t content_length = -1;
    curl_easy_getinfo(curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &content_length);
    std::string content_range;
    if (curl_header* header = nullptr;
        code == CURLE_OK &&
        curl_easy_header(curl, "Content-Range", 0, CURLH_HEADER, -1, &header) == CURLHE_OK) {
      content_range = header->value;
    }
    curl_slist_free_all(headers);
    // A handle whose transfer failed may hold a broken connection: do not reuse it.
    ReleaseHandle(curl, /*reuse=*/code == CURLE_OK);

    if (code != CURLE_OK) {
      const std::string message =
          StrCat(Describe(), ": ", request.what, ": ",
                 transfer.too_large ? std::string("reply too large")
                 : transfer.stalled
                     ? StrCat("no byte moved for ", absl::FormatDuration(options_.stall_timeout))
                     : std::string(curl_easy_strerror(code)));
      if (transfer.stalled) {
        // The server stopped answering: the request may have been written (ambiguous).
        result.status = absl::DeadlineExceededError(message);
        result.retryable = true;
        result.maybe_sent = true;
        return result;
      }
      switch (code) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_CONNECT:
          result.status = absl::UnavailableError(message);
          result.retryable = true;
          result.maybe_sent = false;
          break;
        case CURLE_OPERATION_TIMEDOUT:
          result.status = absl::DeadlineExceededError(message);
          result.retryable = true;
          result.maybe_sent = true;
          break;
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SEND_FAIL_REWIND:
          result.status = absl::UnavailableError(message);
          result.retryable = true;
          result.maybe_sent = true;
          break;
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL:
          result.status = absl::InvalidArgumentError(message);
          break;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
          result.status = absl::PermissionDeniedError(message);
          break;
        default:
          result.status = absl::UnavailableError(message);
          result.retryable = !transfer.too_large;
          result.maybe_sent = true;
          break;
      }
      return result;
    }
    result.response.status = http_status;
    result.response.body = std::move(transfer.body);
    result.response.content_length = content_length;
    result.response.content_range = std::move(content_range);
    return result;
  }

  CURL* AcquireHandle() {
    {
      MutexLock lock(&mu_);
      if (!idle_.empty()) {
        CURL* handle = idle_.back();
        idle_.pop_back();
        return handle;
      }
    }
    return curl_easy_init();
  }

  void ReleaseHandle(CURL* handle, bool reuse) {
    if (!reuse) {
      curl_easy_cleanup(handle);
      return;
    }
    // Keeps the handle's connection for the next request, but no option of this one.
    curl_easy_reset(handle);
    MutexLock lock(&mu_);
    idle_.push_back(handle);
  }

  const S3StoreOptions options_;
  const Endpoint endpoint_;
  const S3Credentials credentials_;
  const std::string sigv4_;
  // Set once by Check(), before the store is shared.
  bool publishes_without_overwrite_ = true;
  Mutex mu_;
  std::vector<CURL*> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<S3StoreOptions> ParseS3Url(std::string_view url) {
  const auto invalid = [&](std::string_view why) {
    return absl::InvalidArgumentError(StrCat("S3 repository URL '", url, "': ", why,
                                             " (expected s3://BUCKET[/PREFIX]?endpoint=URL"
                                             "[&region=R][&addressing=path|virtual])"));
  };
  constexpr std::string_view kScheme = "s3://";
  if (!url.starts_with(kScheme)) return invalid("not an s3:// URL");
  std::string_view rest = url.substr(kScheme.size());
  std::string_view query;
  if (const size_t q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  S3StoreOptions options;
  const size_t slash = rest.find('/');
  options.bucket = std::string(rest.substr(0, slash));
  if (absl::Status s = ValidateBucket(options.bucket); !s.ok()) {
    return invalid(std::string(s.message()));
  }
  if (slash != std::string_view::npos) {
    std::string_view prefix = rest.substr(slash + 1);
    while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
    options.prefix = std::string(prefix);
    if (absl::Status s = ValidatePrefix(options.prefix); !s.ok())
      return invalid(std::string(s.message()));
  }
  std::string addressing = "path";
  for (absl::string_view piece : absl::StrSplit(ToAbsl(query), '&', absl::SkipEmpty())) {
    const std::string_view pair(piece.data(), piece.size());
    const size_t eq = pair.find('=');
    const std::string_view name = pair.substr(0, eq);
    std::optional<std::string> value =
        UriDecode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    if (!value.has_value()) return invalid(StrCat("parameter '", name, "' has a bad %-escape"));
    if (name == "endpoint") {
      options.endpoint = *std::move(value);
    } else if (name == "region") {
      options.region = *std::move(value);
    } else if (name == "addressing") {
      addressing = *std::move(value);
      if (addressing != "path" && addressing != "virtual") {
        return invalid(StrCat("addressing '", addressing, "' is not path or virtual"));
      }
    } else {
      return invalid(StrCat("unknown parameter '", name, "'"));
    }
  }
  options.virtual_hosted = addressing == "virtual";
  if (options.endpoint.empty()) return invalid("no endpoint=URL");
  if (absl::StatusOr<Endpoint> e = ParseEndpoint(options.endpoint); !e.ok()) {
    return invalid(std::string(e.status().message()));
  }
  return options;
}

absl::StatusOr<std::unique_ptr<ObjectStore>> OpenS3Store(S3StoreOptions options) {
  absl::StatusOr<Endpoint> endpoint = ParseEndpoint(options.endpoint);
  if (!endpoint.ok()) return endpoint.status();
  if (absl::Status s = ValidateBucket(options.bucket); !s.ok()) return s;
  if (absl::Status s = ValidatePrefix(options.prefix); !s.ok()) return s;
  if (options.max_attempts < 1) {
    return absl::InvalidArgumentError("S3 store: max_attempts must be at least 1");
  }
  if (options.region.empty()) options.region = GetEnv("AWS_REGION");
  if (options.region.empty()) options.region = GetEnv("AWS_DEFAULT_REGION");
  if (options.region.empty()) options.region = "us-east-1";
  if (options.region.find_first_of(":/ ") != std::string::npos) {
    return absl::InvalidArgumentError(StrCat("S3 region '", options.region, "' is malformed"));
  }
  absl::StatusOr<S3Credentials> credentials = ResolveCredentials(options.credentials);
  if (!credentials.ok()) return credentials.status();
  options.credentials = S3Credentials();  // kept once, in the store's own member
  auto store =
      std::make_unique<S3Store>(std::move(options), *std::move(endpoint), *std::move(credentials));
  if (absl::Status s = store->Check(); !s.ok()) return s;
  return std::unique_ptr<ObjectStore>(std::move(store));
}

}  // namespace ickpt
