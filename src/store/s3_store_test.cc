// The S3 store (s3_store.cc) beyond the store contract (store_test.cc runs that on a real Ceph
// RGW): repository URLs, credentials, a missing bucket, refused credentials, payload integrity, and
// the faults between client and gateway that a fault-injecting proxy
// (src/testing/fault_http_proxy.h) puts in: 503s, slow replies, resets before and after the write
// landed, truncated bodies, and a gateway that stops answering. Each is retried or fails cleanly;
// no partial object is ever read.
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "ickpt/store.h"
#include "src/testing/fault_http_proxy.h"
#include "src/testing/rgw_server.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"
#include "src/util/hash.h"
#include "src/util/parallel.h"

namespace ickpt {
namespace {

using ::ickpt::testing::FaultHttpProxy;
using ::ickpt::testing::HttpFault;
using ::ickpt::testing::HttpFaultRule;
using ::ickpt::testing::RandomBytes;
using ::ickpt::testing::TempDir;

bool HasSubstr(const absl::Status& status, std::string_view text) {
  return absl::StrContains(status.message(), absl::string_view(text.data(), text.size()));
}

// ---- Repository URLs (format.md §12.2) ----

TEST(S3UrlTest, ParsesBucketPrefixAndParameters) {
  ASSERT_OK_AND_ASSIGN(
      S3StoreOptions o,
      ParseS3Url("s3://my-bucket/jobs/job1?endpoint=http://127.0.0.1:7480&region=eu-west-1"));
  EXPECT_EQ(o.bucket, "my-bucket");
  EXPECT_EQ(o.prefix, "jobs/job1");
  EXPECT_EQ(o.endpoint, "http://127.0.0.1:7480");
  EXPECT_EQ(o.region, "eu-west-1");
  EXPECT_FALSE(o.virtual_hosted) << "path-style by default";

  ASSERT_OK_AND_ASSIGN(
      o, ParseS3Url("s3://bkt?endpoint=https%3A%2F%2Fs3.example.com&addressing=virtual"));
  EXPECT_EQ(o.bucket, "bkt");
  EXPECT_EQ(o.prefix, "");
  EXPECT_EQ(o.endpoint, "https://s3.example.com") << "a percent-encoded endpoint";
  EXPECT_TRUE(o.virtual_hosted);
  EXPECT_EQ(o.region, "") << "resolved when the store opens";

  ASSERT_OK_AND_ASSIGN(o, ParseS3Url("s3://bkt/a/b/?endpoint=http://h:1"));
  EXPECT_EQ(o.prefix, "a/b") << "a trailing '/' is dropped";
}

TEST(S3UrlTest, RefusesMalformedUrlsNamingWhatIsWrong) {
  struct Case {
    const char* url;
    const char* says;
  };
  for (const Case& c : std::vector<Case>{
           {"s3://?endpoint=http://h:1", "bucket ''"},
           {"s3://ab?endpoint=http://h:1", "bucket 'ab'"},
           {"s3://Upper?endpoint=http://h:1", "bucket 'Upper'"},
           {"s3://bkt/../x?endpoint=http://h:1", "prefix"},
           {"s3://bkt/UPPER?endpoint=http://h:1", "prefix"},
           {"s3://bkt/a//b?endpoint=http://h:1", "prefix"},
           {"s3://bkt", "no endpoint"},
           {"s3://bkt?endpoint=ftp://h", "not http or https"},
           {"s3://bkt?endpoint=http://h/path", "no path"},
           {"s3://bkt?endpoint=http://h:1&colour=blue", "unknown parameter 'colour'"},
           {"s3://bkt?endpoint=http://h:1&addressing=dns", "addressing 'dns'"},
           {"s3://bkt?endpoint=http%3", "bad %-escape"},
       }) {
    SCOPED_TRACE(c.url);
    absl::StatusOr<S3StoreOptions> o = ParseS3Url(c.url);
    ASSERT_TRUE(absl::IsInvalidArgument(o.status())) << o.status();
    EXPECT_TRUE(HasSubstr(o.status(), c.says)) << o.status();
    EXPECT_TRUE(HasSubstr(o.status(), c.url)) << "names the URL: " << o.status();
  }
}

// ---- Credentials (store.h S3Credentials): never needed in the URL ----

// Sets environment variables for one test and puts the old values back.
class ScopedEnv {
 public:
  void Set(const char* name, const std::string& value) {
    Remember(name);
    ::setenv(name, value.c_str(), 1);
  }
  void Unset(const char* name) {
    Remember(name);
    ::unsetenv(name);
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) {
      if (value.has_value()) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }

 private:
  void Remember(const char* name) {
    for (const auto& [saved, value] : saved_) {
      if (saved == name) return;
    }
    const char* old = std::getenv(name);
    saved_.emplace_back(name, old == nullptr ? std::nullopt : std::optional<std::string>(old));
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// Options for an endpoint nobody listens on, failing fast.
S3StoreOptions Unreachable() {
  S3StoreOptions o;
  o.endpoint = "http://127.0.0.1:1";
  o.bucket = "nowhere";
  o.max_attempts = 1;
  o.connect_timeout = absl::Seconds(2);
  return o;
}

void ClearAwsEnvironment(ScopedEnv& env, const TempDir& home) {
  for (const char* name :
       {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE", "AWS_REGION", "AWS_DEFAULT_REGION"}) {
    env.Unset(name);
  }
  env.Set("HOME", home.path());
}

TEST(S3CredentialsTest, WithoutCredentialsOpeningFailsBeforeAnyRequest) {
  ScopedEnv env;
  TempDir home;
  ClearAwsEnvironment(env, home);
  absl::StatusOr<std::unique_ptr<ObjectStore>> store = OpenS3Store(Unreachable());
  EXPECT_TRUE(absl::IsFailedPrecondition(store.status())) << store.status();
  EXPECT_TRUE(HasSubstr(store.status(), "AWS_ACCESS_KEY_ID")) << store.status();
}

TEST(S3CredentialsTest, EnvironmentAndCredentialsFileAreUsed) {
  ScopedEnv env;
  TempDir home;
  ClearAwsEnvironment(env, home);
  // From the environment: opening gets as far as the (unreachable) endpoint.
  env.Set("AWS_ACCESS_KEY_ID", "AKIDENV");
  env.Set("AWS_SECRET_ACCESS_KEY", "secret-from-env");
  absl::StatusOr<std::unique_ptr<ObjectStore>> store = OpenS3Store(Unreachable());
  EXPECT_TRUE(absl::IsUnavailable(store.status())) << store.status();
  EXPECT_FALSE(HasSubstr(store.status(), "secret-from-env")) << "never in a message";

  // From the shared credentials file, under a named profile.
  env.Unset("AWS_ACCESS_KEY_ID");
  env.Unset("AWS_SECRET_ACCESS_KEY");
  ASSERT_EQ(::mkdir(home.Join(".aws").c_str(), 0700), 0);
  {
    std::FILE* f = std::fopen(home.Join(".aws/credentials").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(
        "[default]\naws_access_key_id = AKIDDEFAULT\n\n[ci]\n# a comment\n"
        "aws_access_key_id = AKIDCI\naws_secret_access_key = secret-from-file\n",
        f);
    std::fclose(f);
  }
  store = OpenS3Store(Unreachable());
  EXPECT_TRUE(absl::IsFailedPrecondition(store.status()))
      << "the default profile has no secret: " << store.status();
  env.Set("AWS_PROFILE", "ci");
  store = OpenS3Store(Unreachable());
  EXPECT_TRUE(absl::IsUnavailable(store.status())) << store.status();
  EXPECT_FALSE(HasSubstr(store.status(), "secret-from-file")) << "never in a message";
}

// ---- Against a real Ceph RADOS Gateway ----

class S3StoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { rgw_ = testing::SharedRgw(); }
  void SetUp() override {
    if (rgw_ == nullptr) {
      if (!testing::RgwServer::Available()) {
        GTEST_SKIP() << "Ceph (ceph-mon, ceph-osd, radosgw) is not installed";
      }
      FAIL() << "Ceph is installed but no gateway could be had (see stderr)";
    }
    bucket_ = "s3-test-" + RandomHex128().substr(0, 16);
    ASSERT_OK(rgw_->CreateBucket(bucket_));
  }

  S3StoreOptions Options(const std::string& endpoint = "") const {
    S3StoreOptions o;
    o.endpoint = endpoint.empty() ? rgw_->endpoint() : endpoint;
    o.bucket = bucket_;
    o.prefix = "repo";
    o.region = rgw_->region();
    o.credentials.access_key_id = rgw_->access_key();
    o.credentials.secret_access_key = rgw_->secret_key();
    o.initial_backoff = absl::Milliseconds(10);
    o.max_backoff = absl::Milliseconds(100);
    return o;
  }
  std::unique_ptr<ObjectStore> Open(const S3StoreOptions& o) {
    absl::StatusOr<std::unique_ptr<ObjectStore>> store = OpenS3Store(o);
    EXPECT_OK(store);
    return store.ok() ? *std::move(store) : nullptr;
  }
  // A store that reaches the gateway through a fault-injecting proxy.
  std::unique_ptr<ObjectStore> OpenThroughProxy(S3StoreOptions o = {}) {
    if (proxy_ == nullptr) {
      const int port = std::stoi(rgw_->endpoint().substr(rgw_->endpoint().rfind(':') + 1));
      absl::StatusOr<std::unique_ptr<FaultHttpProxy>> proxy =
          FaultHttpProxy::Start("127.0.0.1", port);
      EXPECT_OK(proxy);
      if (!proxy.ok()) return nullptr;
      proxy_ = *std::move(proxy);
    }
    S3StoreOptions options = Options(proxy_->endpoint());
    options.max_attempts = o.max_attempts > 0 ? o.max_attempts : options.max_attempts;
    options.stall_timeout = o.stall_timeout;
    options.call_deadline = o.call_deadline;
    return Open(options);
  }
  void Fault(HttpFault fault, std::string method, std::string path, int times = 1,
             absl::Duration delay = absl::ZeroDuration()) {
    HttpFaultRule rule;
    rule.method = std::move(method);
    rule.path_contains = std::move(path);
    rule.times = times;
    rule.fault = fault;
    rule.delay = delay;
    proxy_->AddRule(rule);
  }

  static testing::RgwServer* rgw_;
  std::string bucket_;
  std::unique_ptr<FaultHttpProxy> proxy_;
};
testing::RgwServer* S3StoreTest::rgw_ = nullptr;  // shared, never destroyed

TEST_F(S3StoreTest, MissingBucketIsNotFoundNamingIt) {
  S3StoreOptions o = Options();
  o.bucket = "no-such-bucket-here";
  absl::StatusOr<std::unique_ptr<ObjectStore>> store = OpenS3Store(o);
  EXPECT_TRUE(absl::IsNotFound(store.status())) << store.status();
  EXPECT_TRUE(HasSubstr(store.status(), "no-such-bucket-here")) << store.status();
}

TEST_F(S3StoreTest, RefusedCredentialsArePermissionDeniedAndNotRetried) {
  S3StoreOptions o = Options();
  o.credentials.secret_access_key = "not-the-secret";
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<ObjectStore>> store = OpenS3Store(o);
  EXPECT_TRUE(absl::IsPermissionDenied(store.status())) << store.status();
  EXPECT_FALSE(HasSubstr(store.status(), "not-the-secret")) << store.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(30)) << "a 403 is final, not retried";
}

TEST_F(S3StoreTest, DescribeNamesBucketPrefixAndEndpointOnly) {
  std::unique_ptr<ObjectStore> store = Open(Options());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Describe(), "s3://" + bucket_ + "/repo at " + rgw_->endpoint());
}

TEST_F(S3StoreTest, KeysLiveUnderThePrefix) {
  std::unique_ptr<ObjectStore> store = Open(Options());
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->Put("a/b", "under the prefix"));
  S3StoreOptions root = Options();
  root.prefix = "";
  std::unique_ptr<ObjectStore> whole = Open(root);
  ASSERT_NE(whole, nullptr);
  EXPECT_EQ(*whole->Get("repo/a/b"), "under the prefix");
  ASSERT_OK(whole->Put("repository-next-door/x", "a neighbour"));
  ASSERT_OK_AND_ASSIGN(std::vector<ObjectInfo> listed, store->List(""));
  ASSERT_EQ(listed.size(), 1u) << "a prefix lists only its own keys";
  EXPECT_EQ(listed[0].key, "a/b");
}

// A pack's name is the SHA-256 of its bytes, sent as the payload hash: the gateway refuses bytes
// that do not match their name, and nothing is stored.
TEST_F(S3StoreTest, BytesThatDoNotMatchTheirNameAreRefusedByTheGateway) {
  std::unique_ptr<ObjectStore> store = Open(Options());
  ASSERT_NE(store, nullptr);
  const std::string bytes = RandomBytes(10000, 1);
  const std::string hex = ToHex(Sha256(bytes));
  const std::string key = "packs/" + hex.substr(0, 2) + "/" + hex;
  ASSERT_OK(store->Put(key, bytes));
  EXPECT_EQ(*store->Get(key), bytes);
  std::string damaged = bytes;
  damaged[5000] ^= 1;
  // A name that is the hash of other bytes than the ones put under it.
  const std::string other_hex = ToHex(Sha256(bytes + "x"));
  const std::string other_key = "packs/" + other_hex.substr(0, 2) + "/" + other_hex;
  absl::Status s = store->Put(other_key, damaged);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_TRUE(HasSubstr(s, "XAmzContentSHA256Mismatch")) << s;
  EXPECT_TRUE(absl::IsNotFound(store->Size(other_key).status())) << "nothing was stored";
}

TEST_F(S3StoreTest, RangesSizesAndEmptyObjects) {
  std::unique_ptr<ObjectStore> store = Open(Options());
  ASSERT_NE(store, nullptr);
  const std::string bytes = RandomBytes(100000, 2);
  ASSERT_OK(store->Put("obj", bytes));
  EXPECT_EQ(*store->Size("obj"), bytes.size());
  EXPECT_EQ(*store->GetRange("obj", 99990, 100), bytes.substr(99990)) << "short at the end";
  EXPECT_EQ(*store->GetRange("obj", 100000, 10), "") << "at the end";
  EXPECT_EQ(*store->GetRange("obj", 200000, 10), "") << "past the end";
  EXPECT_EQ(*store->GetRange("obj", 7, 0), "");
  EXPECT_TRUE(absl::IsNotFound(store->GetRange("missing", 7, 0).status()));
  ASSERT_OK(store->Publish("empty", ""));
  EXPECT_EQ(*store->Get("empty"), "");
  EXPECT_EQ(*store->Size("empty"), 0u);
  EXPECT_EQ(*store->GetRange("empty", 0, 10), "");
  // GetTail is one suffix-range GET; RGW answers a suffix longer than the object with all of it,
  // and an empty object with 416.
  ASSERT_OK_AND_ASSIGN(ObjectTail tail, store->GetTail("obj", 64));
  EXPECT_EQ(tail.object_size, bytes.size());
  EXPECT_EQ(tail.bytes, bytes.substr(bytes.size() - 64));
  ASSERT_OK_AND_ASSIGN(ObjectTail whole, store->GetTail("obj", 1 << 20));
  EXPECT_EQ(whole.object_size, bytes.size());
  EXPECT_EQ(whole.bytes, bytes);
  ASSERT_OK_AND_ASSIGN(ObjectTail empty, store->GetTail("empty", 64));
  EXPECT_EQ(empty.object_size, 0u);
  EXPECT_EQ(empty.bytes, "");
  EXPECT_TRUE(absl::IsNotFound(store->GetTail("missing", 64).status()));
}

TEST_F(S3StoreTest, ConditionalWritesAreProbedWhenOpenedForWriting) {
  S3StoreOptions o = Options();
  o.probe_publish = true;
  std::unique_ptr<ObjectStore> store = Open(o);
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->publishes_without_overwrite()) << "RGW refuses a second conditional PUT";
  ASSERT_OK_AND_ASSIGN(std::vector<ObjectInfo> left, store->List(""));
  EXPECT_TRUE(left.empty()) << "the probe object is deleted";
}

// Multi-object delete sends at most 1,000 keys per request: 1,500 keys take two.
TEST_F(S3StoreTest, DeleteManySplitsIntoRequestsOfAThousandKeys) {
  std::unique_ptr<ObjectStore> store = OpenThroughProxy();
  ASSERT_NE(store, nullptr);
  std::vector<std::string> keys;
  for (int i = 0; i < 1600; ++i) keys.push_back("d/" + std::to_string(10000 + i));
  std::atomic<int> failed{0};
  ParallelFor(keys.size(), 8, [&](size_t i) {
    if (!store->Put(keys[i], "x").ok()) ++failed;
  });
  ASSERT_EQ(failed.load(), 0);
  const int before = proxy_->requests_seen();
  ASSERT_OK(store->DeleteMany(std::vector<std::string>(keys.begin(), keys.begin() + 1500)));
  EXPECT_EQ(proxy_->requests_seen() - before, 2);
  ASSERT_OK_AND_ASSIGN(std::vector<ObjectInfo> left, store->List("d/"));
  ASSERT_EQ(left.size(), 100u);
  EXPECT_EQ(left.front().key, keys[1500]);
  // A 503 on the batch is retried like any other request.
  Fault(HttpFault::kServiceUnavailable, "POST", "delete", 1);
  ASSERT_OK(store->DeleteMany(std::vector<std::string>(keys.begin() + 1500, keys.end())));
  ASSERT_OK_AND_ASSIGN(left, store->List("d/"));
  EXPECT_TRUE(left.empty());
}

// ---- Faults between client and gateway ----

TEST_F(S3StoreTest, ServiceUnavailableIsRetried) {
  std::unique_ptr<ObjectStore> store = OpenThroughProxy();
  ASSERT_NE(store, nullptr);
  Fault(HttpFault::kServiceUnavailable, "PUT", "/repo/k", 3);
  Fault(HttpFault::kServiceUnavailable, "GET", "/repo/k", 2);
  ASSERT_OK(store->Put("k", "value"));
  EXPECT_EQ(*store->Get("k"), "value");
  EXPECT_EQ(proxy_->faults_injected(), 5);
}

TEST_F(S3StoreTest, ServiceUnavailableForeverFailsTheCallAsUnavailable) {
  S3StoreOptions o;
  o.max_attempts = 3;
  std::unique_ptr<ObjectStore> store = OpenThroughProxy(o);
  ASSERT_NE(store, nullptr);
  Fault(HttpFault::kServiceUnavailable, "PUT", "/repo/k", -1);
  absl::Status s = store->Put("k", "value");
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_TRUE(HasSubstr(s, "after 3 attempts")) << s;
  EXPECT_EQ(proxy_->faults_injected(), 3);
}

TEST_F(S3StoreTest, ResetsBeforeAndAfterTheWriteAreRetried) {
  std::unique_ptr<ObjectStore> store = OpenThroughProxy();
  ASSERT_NE(store, nullptr);
  Fault(HttpFault::kResetBeforeForward, "PUT", "/repo/a");
  Fault(HttpFault::kResetAfterForward, "PUT", "/repo/b");
  ASSERT_OK(store->Put("a", "first"));
  ASSERT_OK(store->Put("b", "second"));
  EXPECT_EQ(*store->Get("a"), "first");
  EXPECT_EQ(*store->Get("b"), "second");
}

// The reply to a conditional PUT is lost after the object landed: the retry finds the object,
// which may be this writer's, so the publish is ambiguous, not "exists"; PublishUnique then reads
// it back and finds its own bytes (format.md §12.1).
TEST_F(S3StoreTest, PublishWhoseReplyWasLostIsAmbiguousAndPublishUniqueResolvesIt) {
  std::unique_ptr<ObjectStore> store = OpenThroughProxy();
  ASSERT_NE(store, nullptr);
  Fault(HttpFault::kResetAfterForward, "PUT", "/repo/commits/");
  absl::Status s = store->Publish("commits/00000000000000000001", "mine");
  EXPECT_TRUE(IsAmbiguousFailure(s)) << s;
  Fault(HttpFault::kResetAfterForward, "PUT", "/repo/commits/");
  ASSERT_OK(PublishUnique(*store, "commits/00000000000000000002", "mine too"));
  EXPECT_EQ(*store->Get("commits/00000000000000000002"), "mine too");
  // Another writer's object is still "exists".
  EXPECT_TRUE(absl::IsAlreadyExists(
      PublishUnique(*store, "commits/00000000000000000002", "someone else's")));
}

TEST_F(S3StoreTest, TruncatedRepliesAreRetriedAndNeverReturned) {
  std::unique_ptr<ObjectStore> store = OpenThroughProxy();
  ASSERT_NE(store, nullptr);
  const std::string bytes = RandomBytes(300000, 3);
  ASSERT_OK(store->Put("big", bytes));
  for (int i = 0; i < 20; ++i) ASSERT_OK(store->Put("list/" + std::to_string(100 + i), "x"));
  Fault(HttpFault::kTruncateResponse, "GET", "/repo/big", 2);
  EXPECT_EQ(*store->Get("big"), bytes);
  Fault(HttpFault::kTruncateResponse, "GET", "/repo/big", 1);
  EXPECT_EQ(*store->GetRange("big", 1000, 50000), bytes.substr(1000, 50000));
  Fault(HttpFault::kTruncateResponse, "GET", "/repo/big", 1);
  ASSERT_OK_AND_ASSIGN(ObjectTail tail, store->GetTail("big", 40000));
  EXPECT_EQ(tail.object_size, bytes.size());
  EXPECT_EQ(tail.bytes, bytes.substr(bytes.size() - 40000));
  Fault(HttpFault::kTruncateResponse, "GET", "list-type=2", 1);
  ASSERT_OK_AND_ASSIGN(std::vector<ObjectInfo> listed, store->List("list/"));
  EXPECT_EQ(listed.size(), 20u);
  EXPECT_EQ(proxy_->faults_injected(), 5);
}

TEST_F(S3StoreTest, SlowRepliesAreWaitedFor) {
  std::unique_ptr<ObjectStore> store = OpenThroughProxy();
  ASSERT_NE(store, nullptr);
  Fault(HttpFault::kDelay, "PUT", "/repo/slow", 1, absl::Milliseconds(500));
  ASSERT_OK(store->Put("slow", "eventually"));
  EXPECT_EQ(*store->Get("slow"), "eventually");
}

// A gateway that stops answering cannot hang a checkpoint: each attempt gives up after the stall
// timeout, and the call after its attempts, as DeadlineExceeded (ambiguous for a write).
TEST_F(S3StoreTest, AGatewayThatStopsAnsweringFailsTheCallInBoundedTime) {
  S3StoreOptions o;
  o.max_attempts = 2;
  o.stall_timeout = absl::Seconds(1);
  o.call_deadline = absl::Seconds(20);
  std::unique_ptr<ObjectStore> store = OpenThroughProxy(o);
  ASSERT_NE(store, nullptr);
  Fault(HttpFault::kHang, "PUT", "/repo/stuck", -1);
  const absl::Time start = absl::Now();
  absl::Status s = store->Put("stuck", "never acknowledged");
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
  EXPECT_TRUE(IsAmbiguousFailure(s));
  EXPECT_LT(absl::Now() - start, absl::Seconds(15));
  // One that answers again after a hang is retried to success.
  proxy_->ClearRules();
  Fault(HttpFault::kHang, "PUT", "/repo/stuck", 1);
  ASSERT_OK(store->Put("stuck", "acknowledged"));
  EXPECT_EQ(*store->Get("stuck"), "acknowledged");
}

}  // namespace
}  // namespace ickpt
