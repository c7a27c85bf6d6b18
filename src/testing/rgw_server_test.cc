// The Ceph RADOS Gateway fixture (rgw_server.h) against the curl program, independently of ickpt's
// own S3 client: what the S3 store's tests rely on (signed PUT/GET, a conditional PUT's 412, S3
// error documents, a gateway that dies and comes back on the same endpoint, nothing left running
// afterwards). Skipped when Ceph is not installed.
#include "src/testing/rgw_server.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"
#include "src/util/str.h"

namespace ickpt::testing {
namespace {

// Enough for these tests' few objects; memstore takes memory only as data arrives.
constexpr uint64_t kMemstoreBytes = 256ull << 20;
constexpr char kEmptySha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// What a curl request got: the HTTP status (0 when nothing answered), the body, curl's exit code
// and its error text.
struct Reply {
  int http = 0;
  std::string body;
  int curl_code = -1;
  std::string curl_error;
};

// The PIDs of processes whose command line contains `needle`.
std::vector<std::string> ProcessesNaming(const std::string& needle) {
  std::vector<std::string> pids;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return pids;
  while (const struct dirent* entry = ::readdir(proc)) {
    const std::string name = entry->d_name;
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = ReadFileOrEmpty("/proc/" + name + "/cmdline");
    for (char& c : cmdline) {
      if (c == '\0') c = ' ';
    }
    if (Contains(cmdline, needle)) pids.push_back(name + ": " + cmdline);
  }
  ::closedir(proc);
  return pids;
}

// One server for the suite (starting one takes seconds); each test uses buckets of its own.
class RgwServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!RgwServer::Available()) return;
    absl::StatusOr<std::unique_ptr<RgwServer>> server =
        RgwServer::Start({.memstore_bytes = kMemstoreBytes});
    if (server.ok()) {
      server_ = server->release();
    } else {
      start_error_ = new absl::Status(server.status());
    }
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    delete start_error_;
    start_error_ = nullptr;
  }

  void SetUp() override {
    if (!RgwServer::Available()) GTEST_SKIP() << "Ceph is not installed (scripts/setup.sh)";
    if (start_error_ != nullptr) FAIL() << start_error_->ToString();
  }

  RgwServer& server() { return *server_; }

  // A SigV4-signed path-style request, e.g. Request("PUT", "/bucket/key", &body, {"If-None-Match:
  // *"}). The payload is signed with its real SHA-256, as ickpt's S3 client does.
  Reply Request(const std::string& method, const std::string& path,
                const std::string* body = nullptr, const std::vector<std::string>& headers = {}) {
    std::string sha256 = kEmptySha256;
    std::vector<std::string> argv = {"/usr/bin/curl",
                                     "-sS",
                                     "--max-time",
                                     "30",
                                     "-X",
                                     method,
                                     "--aws-sigv4",
                                     "aws:amz:" + server().region() + ":s3",
                                     "--user",
                                     server().access_key() + ":" + server().secret_key(),
                                     "-o",
                                     io_.Join("reply"),
                                     "-w",
                                     "%{http_code}"};
    if (body != nullptr) {
      const std::string file = io_.Join("request");
      WriteFile(file, *body);
      const RunResult sum = RunProgram({"/usr/bin/sha256sum", file}, io_.path());
      EXPECT_EQ(sum.code, 0) << sum.err;
      sha256 = sum.out.substr(0, 64);
      argv.insert(argv.end(), {"--data-binary", "@" + file});
    }
    argv.insert(argv.end(), {"-H", "x-amz-content-sha256: " + sha256});
    for (const std::string& header : headers) argv.insert(argv.end(), {"-H", header});
    argv.push_back(server().endpoint() + path);
    ::unlink(io_.Join("reply").c_str());
    const RunResult run = RunProgram(argv, io_.path());
    Reply reply;
    reply.curl_code = run.code;
    reply.curl_error = run.err;
    reply.http = std::atoi(run.out.c_str());
    reply.body = ReadFileOrEmpty(io_.Join("reply"));
    return reply;
  }

  static void WriteFile(const std::string& path, const std::string& data) {
    FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr) << path;
    ASSERT_EQ(std::fwrite(data.data(), 1, data.size(), f), data.size()) << path;
    ASSERT_EQ(std::fclose(f), 0) << path;
  }

  static RgwServer* server_;
  static absl::Status* start_error_;
  TempDir io_;  // curl's request and reply bodies, RunProgram's output files
};

RgwServer* RgwServerTest::server_ = nullptr;
absl::Status* RgwServerTest::start_error_ = nullptr;

TEST_F(RgwServerTest, ReportsAnEndpointAndCredentials) {
  EXPECT_TRUE(Contains(server().endpoint(), "http://127.0.0.1:")) << server().endpoint();
  EXPECT_EQ(server().region(), "us-east-1");
  EXPECT_FALSE(server().access_key().empty());
  EXPECT_FALSE(server().secret_key().empty());
  // ListBuckets: signed with the reported key, so the user exists.
  const Reply list = Request("GET", "/");
  EXPECT_EQ(list.http, 200) << list.body << list.curl_error;
}

TEST_F(RgwServerTest, SignedPutThenGetRoundTrips) {
  ASSERT_OK(server().CreateBucket("round-trip"));
  // 300 KiB of bytes that are not text: a body curl must not alter.
  const std::string data = RandomBytes(300 << 10, /*seed=*/7);
  const Reply put = Request("PUT", "/round-trip/dir/object", &data);
  ASSERT_EQ(put.http, 200) << put.body << put.curl_error << server().LogTail();
  const Reply get = Request("GET", "/round-trip/dir/object");
  ASSERT_EQ(get.http, 200) << get.body << get.curl_error;
  EXPECT_TRUE(get.body == data) << "GET returned " << get.body.size() << " bytes, PUT "
                                << data.size();
}

TEST_F(RgwServerTest, ConditionalPutOfAnExistingKeyAnswers412AndKeepsTheObject) {
  ASSERT_OK(server().CreateBucket("conditional"));
  const std::string first = "first version";
  const std::string second = "second version";
  const Reply create = Request("PUT", "/conditional/key", &first, {"If-None-Match: *"});
  ASSERT_EQ(create.http, 200) << create.body << create.curl_error;
  const Reply again = Request("PUT", "/conditional/key", &second, {"If-None-Match: *"});
  EXPECT_EQ(again.http, 412) << again.body << again.curl_error;
  const Reply get = Request("GET", "/conditional/key");
  ASSERT_EQ(get.http, 200) << get.body << get.curl_error;
  EXPECT_EQ(get.body, first);
}

TEST_F(RgwServerTest, MissingBucketAnswers404NoSuchBucket) {
  const Reply get = Request("GET", "/no-such-bucket/key");
  EXPECT_EQ(get.http, 404) << get.body << get.curl_error;
  EXPECT_TRUE(Contains(get.body, "<Code>NoSuchBucket</Code>")) << get.body;
}

TEST_F(RgwServerTest, CreateBucketReportsWhyItWasRefused) {
  // Upper case is not allowed in a bucket name: S3's error code must reach the message.
  const absl::Status status = server().CreateBucket("Upper-Case");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_TRUE(Contains(std::string(status.message()), "InvalidBucketName")) << status;
}

TEST_F(RgwServerTest, KilledGatewayRefusesRequestsAndRestartedOneServesTheSameData) {
  ASSERT_OK(server().CreateBucket("survives"));
  const std::string data = RandomBytes(64 << 10, /*seed=*/11);
  ASSERT_EQ(Request("PUT", "/survives/object", &data).http, 200) << server().LogTail();
  const std::string endpoint = server().endpoint();

  server().KillGateway();
  const Reply refused = Request("GET", "/survives/object");
  EXPECT_EQ(refused.http, 0) << refused.body;
  EXPECT_EQ(refused.curl_code, 7) << "expected curl's 'could not connect': " << refused.curl_error;

  ASSERT_OK(server().RestartGateway());
  EXPECT_EQ(server().endpoint(), endpoint);
  const Reply get = Request("GET", "/survives/object");
  ASSERT_EQ(get.http, 200) << get.body << get.curl_error << server().LogTail();
  EXPECT_TRUE(get.body == data);
  // And it takes writes again.
  const std::string more = "written after the restart";
  EXPECT_EQ(Request("PUT", "/survives/later", &more).http, 200) << server().LogTail();
}

// Its own server: what the destructor leaves behind.
TEST(RgwServerLifetimeTest, DestructorLeavesNoProcessAndNoDirectory) {
  if (!RgwServer::Available()) GTEST_SKIP() << "Ceph is not installed (scripts/setup.sh)";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RgwServer> server,
                       RgwServer::Start({.memstore_bytes = kMemstoreBytes}));
  const std::string dir = server->dir();
  // mon, osd, radosgw and the watchdog.
  EXPECT_GE(ProcessesNaming(dir).size(), 4u);
  server.reset();
  const std::vector<std::string> left = ProcessesNaming(dir);
  std::string listing;
  for (const std::string& process : left) listing += "\n  " + process;
  EXPECT_TRUE(left.empty()) << "still running:" << listing;
  EXPECT_NE(::access(dir.c_str(), F_OK), 0) << dir << " still exists";
}

}  // namespace
}  // namespace ickpt::testing
