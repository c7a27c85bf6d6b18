// etcd's own TLS and authentication (docs/protocol.md §10) on real etcd servers: the coordination
// store over https with the right and a wrong CA, an etcd that requires client certificates, and
// an etcd with authentication on (a root user, user "alice" who may use only the job's prefix, and
// a 1 s token ttl so that tokens expire during the tests). Certificates are made at suite start
// (src/testing/test_certs.h). Skipped when etcd is not installed.
#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "ickpt/checkpointer.h"
#include "ickpt/coordination.h"
#include "ickpt/repository.h"
#include "src/coord/coordination_store.h"
#include "src/coord/local_etcd.h"
#include "src/coord/protocol.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_certs.h"
#include "src/testing/test_util.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

using coord::CoordinationStore;
using coord::LocalEtcd;
using coord::LocalEtcdOptions;
using coord::RangeResult;

constexpr char kJob[] = "secure";
constexpr char kRootPassword[] = "root-Pw-0f3c";
constexpr char kAlicePassword[] = "alice-Pw-91d2";
// Never to appear in a message: the password of the tests that give a wrong one.
constexpr char kWrongPassword[] = "wrong-Pw-5ee7-do-not-print";

// Whether the status's message contains `needle`.
bool Has(const absl::Status& status, std::string_view needle) {
  return Contains(std::string(status.message()), needle);
}

std::string JobKey(std::string_view name) { return coord::JobPrefix(kJob) + std::string(name); }

class EtcdSecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!LocalEtcd::Available()) return;
    dir_ = new testing::TempDir();
    absl::StatusOr<testing::TestCerts> certs = testing::MakeTestCerts(dir_->path());
    ASSERT_OK(certs.status());
    certs_ = new testing::TestCerts(*certs);
    // TLS only.
    LocalEtcdOptions tls;
    tls.dir = MakeDir("tls");
    tls.cert_file = certs_->server_cert_file;
    tls.key_file = certs_->server_key_file;
    tls.ca_file = certs_->ca_file;
    tls_ = Start(tls);
    // TLS with client certificates, and authentication.
    LocalEtcdOptions secure = tls;
    secure.dir = MakeDir("secure");
    secure.client_cert_auth = true;
    secure.client_cert_file = certs_->client_cert_file;
    secure.client_key_file = certs_->client_key_file;
    secure.root_password = kRootPassword;
    secure.users.push_back({"alice", kAlicePassword, coord::JobPrefix(kJob)});
    secure.auth_token_ttl_seconds = 1;
    secure_ = Start(secure);
  }

  static void TearDownTestSuite() {
    delete secure_;
    delete tls_;
    delete certs_;
    delete dir_;
    secure_ = tls_ = nullptr;
    certs_ = nullptr;
    dir_ = nullptr;
  }

  void SetUp() override {
    if (!LocalEtcd::Available()) GTEST_SKIP() << "etcd is not installed (scripts/setup.sh)";
    ASSERT_NE(tls_, nullptr);
    ASSERT_NE(secure_, nullptr);
  }

  static std::string MakeDir(const std::string& name) {
    const std::string path = dir_->Join(name);
    EXPECT_EQ(::mkdir(path.c_str(), 0700), 0) << path;
    return path;
  }

  static LocalEtcd* Start(const LocalEtcdOptions& options) {
    absl::StatusOr<std::unique_ptr<LocalEtcd>> etcd = LocalEtcd::Start(options);
    EXPECT_OK(etcd.status());
    return etcd.ok() ? etcd->release() : nullptr;
  }

  // Options for the TLS-only etcd with the right CA.
  EtcdConnectOptions TlsOptions() const {
    EtcdConnectOptions o;
    o.endpoints = tls_->endpoint();
    o.ca_file = certs_->ca_file;
    return o;
  }

  // Options for the secured etcd: the right CA and client certificate, user alice with
  // `password` (no user if empty).
  EtcdConnectOptions SecureOptions(std::string password = kAlicePassword) const {
    EtcdConnectOptions o;
    o.endpoints = secure_->endpoint();
    o.ca_file = certs_->ca_file;
    o.cert_file = certs_->client_cert_file;
    o.key_file = certs_->client_key_file;
    if (!password.empty()) {
      o.user = "alice";
      o.password = std::move(password);
    }
    return o;
  }

  std::shared_ptr<CoordinationStore> Connect(const EtcdConnectOptions& options) {
    absl::StatusOr<std::shared_ptr<CoordinationStore>> store = ConnectEtcd(options);
    EXPECT_OK(store.status());
    return store.ok() ? *store : nullptr;
  }

  // Every kind of call the protocol makes, under the job's prefix; each must succeed.
  void ExpectEveryCallWorks(CoordinationStore& store) {
    const std::string key = JobKey("every-call");
    ASSERT_OK_AND_ASSIGN(int64_t put, store.Put(key, "v1"));
    ASSERT_OK_AND_ASSIGN(RangeResult got, store.Get(key));
    ASSERT_EQ(got.kvs.size(), 1u);
    EXPECT_EQ(got.kvs[0].value, "v1");
    ASSERT_OK_AND_ASSIGN(RangeResult all, store.GetPrefix(coord::JobPrefix(kJob)));
    EXPECT_FALSE(all.kvs.empty());
    ASSERT_OK_AND_ASSIGN(coord::TxnResult txn, store.Txn({coord::Compare::ModRevisionIs(key, put)},
                                                         {coord::TxnOp::Put(key, "v2")}));
    EXPECT_TRUE(txn.succeeded);
    ASSERT_OK_AND_ASSIGN(int64_t lease, store.GrantLease(absl::Seconds(5)));
    ASSERT_OK(store.KeepAlive(lease));
    ASSERT_OK_AND_ASSIGN(int64_t leased, store.Put(JobKey("leased"), "x", lease));
    // The watch: a change already made is seen at once; none within the timeout returns
    // after_revision.
    ASSERT_OK_AND_ASSIGN(int64_t seen,
                         store.WaitForChange(coord::JobPrefix(kJob), leased - 1, absl::Seconds(5)));
    EXPECT_EQ(seen, leased);
    ASSERT_OK_AND_ASSIGN(int64_t none, store.WaitForChange(coord::JobPrefix(kJob), leased + 10,
                                                           absl::Milliseconds(200)));
    EXPECT_EQ(none, leased + 10);
    ASSERT_OK(store.RevokeLease(lease));
    ASSERT_OK(store.Delete(key).status());
    ASSERT_OK_AND_ASSIGN(RangeResult gone, store.Get(JobKey("leased")));
    EXPECT_TRUE(gone.kvs.empty()) << "the lease's key outlived its revocation";
  }

  static inline testing::TempDir* dir_ = nullptr;
  static inline testing::TestCerts* certs_ = nullptr;
  static inline LocalEtcd* tls_ = nullptr;     // TLS
  static inline LocalEtcd* secure_ = nullptr;  // TLS, client certificates, authentication
};

TEST_F(EtcdSecurityTest, TlsWithTheRightCaServesEveryCall) {
  std::shared_ptr<CoordinationStore> store = Connect(TlsOptions());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(tls_->endpoint().substr(0, 8), "https://");
  ExpectEveryCallWorks(*store);
}

TEST_F(EtcdSecurityTest, AUserIsIgnoredByAnEtcdWithoutAuthentication) {
  // etcd answers "authentication is not enabled": the store goes on without a token.
  EtcdConnectOptions o = TlsOptions();
  o.user = "alice";
  o.password = kAlicePassword;
  std::shared_ptr<CoordinationStore> store = Connect(o);
  ASSERT_NE(store, nullptr);
  ExpectEveryCallWorks(*store);
}

TEST_F(EtcdSecurityTest, AWrongCaIsRefusedNamingTheEndpointAndTheVerification) {
  EtcdConnectOptions o = TlsOptions();
  o.ca_file = certs_->other_ca_file;
  std::shared_ptr<CoordinationStore> store = Connect(o);
  ASSERT_NE(store, nullptr);
  const absl::Status put = store->Put(JobKey("k"), "v").status();
  EXPECT_TRUE(absl::IsUnavailable(put)) << put;
  EXPECT_TRUE(Has(put, tls_->endpoint())) << put;
  EXPECT_TRUE(Has(put, "certificate verification")) << put;
  EXPECT_TRUE(Has(put, "--etcd-ca")) << put;
  // The watch and the lease calls too.
  const absl::Status wait =
      store->WaitForChange(coord::JobPrefix(kJob), 0, absl::Seconds(1)).status();
  EXPECT_TRUE(absl::IsUnavailable(wait) && Has(wait, "certificate")) << wait;
  // No CA at all: the system's store does not know the test CA either.
  o.ca_file.clear();
  store = Connect(o);
  ASSERT_NE(store, nullptr);
  const absl::Status system = store->Get(JobKey("k")).status();
  EXPECT_TRUE(absl::IsUnavailable(system) && Has(system, "system's CA store")) << system;
}

TEST_F(EtcdSecurityTest, ClientCertAuthRefusesAClientWithoutATrustedCertificate) {
  EtcdConnectOptions o = SecureOptions();
  o.cert_file.clear();
  o.key_file.clear();
  std::shared_ptr<CoordinationStore> store = Connect(o);
  ASSERT_NE(store, nullptr);
  const absl::Status none = store->Get(JobKey("k")).status();
  EXPECT_TRUE(absl::IsUnavailable(none)) << none;
  EXPECT_TRUE(Has(none, secure_->endpoint())) << none;
  EXPECT_TRUE(Has(none, "needs a client certificate")) << none;
  // A certificate from a CA etcd does not trust.
  o.cert_file = certs_->other_client_cert_file;
  o.key_file = certs_->other_client_key_file;
  store = Connect(o);
  ASSERT_NE(store, nullptr);
  const absl::Status untrusted = store->Get(JobKey("k")).status();
  EXPECT_TRUE(absl::IsUnavailable(untrusted)) << untrusted;
  EXPECT_TRUE(Has(untrusted, "trusts the CA")) << untrusted;
}

TEST_F(EtcdSecurityTest, TlsAndAuthenticationServeEveryCall) {
  std::shared_ptr<CoordinationStore> store = Connect(SecureOptions());
  ASSERT_NE(store, nullptr);
  ExpectEveryCallWorks(*store);
  EXPECT_FALSE(Contains(store->Describe(), kAlicePassword)) << store->Describe();
  EXPECT_TRUE(Contains(store->Describe(), "alice")) << store->Describe();
}

TEST_F(EtcdSecurityTest, AnExpiredTokenIsRenewed) {
  // Tokens live 1 s after their last use on this etcd, which drops them every second: after
  // 2.5 s idle, each store's token is gone and its next call is refused once, then repeated.
  std::shared_ptr<CoordinationStore> writer = Connect(SecureOptions());
  std::shared_ptr<CoordinationStore> watcher = Connect(SecureOptions());
  std::shared_ptr<CoordinationStore> txn_writer = Connect(SecureOptions());
  ASSERT_NE(writer, nullptr);
  ASSERT_NE(watcher, nullptr);
  ASSERT_NE(txn_writer, nullptr);
  ASSERT_OK_AND_ASSIGN(int64_t rev, writer->Put(JobKey("expiry"), "1"));
  ASSERT_OK(watcher->Get(JobKey("expiry")).status());
  ASSERT_OK(txn_writer->Get(JobKey("expiry")).status());
  absl::SleepFor(absl::Milliseconds(2500));
  // The watch stream: refused as a canceled watch, opened again with a new token.
  ASSERT_OK_AND_ASSIGN(int64_t seen,
                       watcher->WaitForChange(coord::JobPrefix(kJob), rev - 1, absl::Seconds(5)));
  EXPECT_EQ(seen, rev);
  // A transaction: refused before it was applied, so sent again it applies exactly once.
  ASSERT_OK_AND_ASSIGN(coord::TxnResult txn,
                       txn_writer->Txn({coord::Compare::ModRevisionIs(JobKey("expiry"), rev)},
                                       {coord::TxnOp::Put(JobKey("expiry"), "2")}));
  EXPECT_TRUE(txn.succeeded);
  // A plain write.
  ASSERT_OK(writer->Put(JobKey("expiry"), "3").status());
  ASSERT_OK_AND_ASSIGN(RangeResult got, watcher->Get(JobKey("expiry")));
  ASSERT_EQ(got.kvs.size(), 1u);
  EXPECT_EQ(got.kvs[0].value, "3");
  EXPECT_EQ(got.kvs[0].version, 3) << "a write was applied twice, or not at all";
}

TEST_F(EtcdSecurityTest, AWrongPasswordIsRefusedNamingTheUserButNeverThePassword) {
  ::testing::internal::CaptureStderr();
  std::shared_ptr<CoordinationStore> store = Connect(SecureOptions(kWrongPassword));
  ASSERT_NE(store, nullptr);
  std::vector<absl::Status> statuses = {
      store->Put(JobKey("k"), "v").status(),
      store->Get(JobKey("k")).status(),
      store->Txn({}, {coord::TxnOp::Put(JobKey("k"), "v")}).status(),
      store->WaitForChange(coord::JobPrefix(kJob), 0, absl::Seconds(1)).status(),
      store->RevokeLease(1),
  };
  const std::string stderr_text = ::testing::internal::GetCapturedStderr();
  for (const absl::Status& s : statuses) {
    EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
    EXPECT_TRUE(Has(s, "refused user 'alice'")) << s;
    EXPECT_TRUE(Has(s, "authentication failed")) << s;
    EXPECT_TRUE(Has(s, secure_->endpoint())) << s;
    EXPECT_FALSE(Contains(s.ToString(), kWrongPassword)) << s;
  }
  EXPECT_FALSE(Contains(store->Describe(), kWrongPassword)) << store->Describe();
  EXPECT_FALSE(Contains(stderr_text, kWrongPassword)) << stderr_text;
  // Nor when connecting fails for another reason.
  EtcdConnectOptions o = SecureOptions(kWrongPassword);
  o.ca_file = dir_->Join("missing-ca.pem");
  const absl::Status bad = ConnectEtcd(o).status();
  EXPECT_FALSE(bad.ok());
  EXPECT_FALSE(Contains(bad.ToString(), kWrongPassword)) << bad;
}

TEST_F(EtcdSecurityTest, NoCredentialsAreRefusedSayingCredentialsAreNeeded) {
  std::shared_ptr<CoordinationStore> store = Connect(SecureOptions(/*password=*/""));
  ASSERT_NE(store, nullptr);
  const absl::Status put = store->Put(JobKey("k"), "v").status();
  EXPECT_TRUE(absl::IsPermissionDenied(put)) << put;
  EXPECT_TRUE(Has(put, "authentication on")) << put;
  EXPECT_TRUE(Has(put, "user and password")) << put;
  EXPECT_TRUE(Has(put, secure_->endpoint())) << put;
  const absl::Status wait =
      store->WaitForChange(coord::JobPrefix(kJob), 0, absl::Seconds(1)).status();
  EXPECT_TRUE(absl::IsPermissionDenied(wait)) << wait;
  EXPECT_TRUE(Has(wait, "user and password")) << wait;
}

TEST_F(EtcdSecurityTest, ARestrictedUserIsRefusedOutsideItsPrefix) {
  std::shared_ptr<CoordinationStore> store = Connect(SecureOptions());
  ASSERT_NE(store, nullptr);
  const absl::Status put = store->Put("/ickpt/jobs/other-job/k", "v").status();
  EXPECT_TRUE(absl::IsPermissionDenied(put)) << put;
  EXPECT_TRUE(Has(put, "etcd user 'alice'")) << put;
  const absl::Status wait =
      store->WaitForChange(coord::JobPrefix("other-job"), 0, absl::Seconds(1)).status();
  EXPECT_TRUE(absl::IsPermissionDenied(wait)) << wait;
  EXPECT_TRUE(Has(wait, "etcd user 'alice'")) << wait;
}

TEST_F(EtcdSecurityTest, AWatchAfterACompactionWorksForARestrictedUser) {
  // The current revision is then read on the watched prefix, which alice may read.
  std::shared_ptr<CoordinationStore> store = Connect(SecureOptions());
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->Put(JobKey("compact"), "1").status());
  ASSERT_OK_AND_ASSIGN(int64_t rev, store->Put(JobKey("compact"), "2"));
  ASSERT_OK(secure_->Compact(rev));
  ASSERT_OK_AND_ASSIGN(int64_t now,
                       store->WaitForChange(coord::JobPrefix(kJob), 1, absl::Seconds(5)));
  EXPECT_GE(now, rev);
}

TEST_F(EtcdSecurityTest, AClientCertificateWithACommonNameIsRefusedWithAuthentication) {
  // etcd 3.4's gateway refuses it (in plain text) rather than let the CN stand for the user.
  EtcdConnectOptions o = SecureOptions();
  o.cert_file = certs_->client_cn_cert_file;
  std::shared_ptr<CoordinationStore> store = Connect(o);
  ASSERT_NE(store, nullptr);
  const absl::Status put = store->Put(JobKey("k"), "v").status();
  EXPECT_TRUE(absl::IsPermissionDenied(put)) << put;
  EXPECT_TRUE(Has(put, "Common Name")) << put;
}

TEST_F(EtcdSecurityTest, ConnectRefusesUnusableTlsSettings) {
  EtcdConnectOptions o = TlsOptions();
  o.ca_file = dir_->Join("missing-ca.pem");
  absl::Status s = ConnectEtcd(o).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s) && Has(s, o.ca_file)) << s;

  o = TlsOptions();
  o.cert_file = certs_->client_cert_file;
  s = ConnectEtcd(o).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s) && Has(s, "without a key")) << s;
  o.cert_file.clear();
  o.key_file = certs_->client_key_file;
  s = ConnectEtcd(o).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s) && Has(s, "without a certificate")) << s;

  o = TlsOptions();
  o.cert_file = dir_->Join("missing-client.pem");
  o.key_file = certs_->client_key_file;
  s = ConnectEtcd(o).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s) && Has(s, o.cert_file)) << s;

  o = TlsOptions();
  o.endpoints = "http://127.0.0.1:2379";
  s = ConnectEtcd(o).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s) && Has(s, "https://")) << s;

  o = TlsOptions();
  o.password = kWrongPassword;
  s = ConnectEtcd(o).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s) && Has(s, "without a user")) << s;
  EXPECT_FALSE(Contains(s.ToString(), kWrongPassword)) << s;
}

// One checkpoint of a one-participant job committed through the secured etcd by a user who may
// use only the job's prefix: leases (grant, keep-alive, revoke), transactions and watches all
// work with READWRITE on that prefix alone.
TEST_F(EtcdSecurityTest, AParticipantAndACoordinatorCommitThroughTlsAndAuthentication) {
  std::shared_ptr<CoordinationStore> store = Connect(SecureOptions());
  ASSERT_NE(store, nullptr);
  testing::TempDir repo_dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Repository> repo,
                       Repository::OpenLocal(repo_dir.Join("repo"), /*create=*/true));
  std::unique_ptr<Checkpointer> checkpointer;
  ParticipantOptions po;
  po.job = kJob;
  po.name = "p0";
  po.lease_ttl = absl::Seconds(2);
  po.prepare = [&](const Assignment& a) -> absl::StatusOr<Checkpointer*> {
    CheckpointerOptions base;
    base.persist_threads = 1;
    checkpointer.reset();
    absl::StatusOr<std::unique_ptr<Checkpointer>> ck =
        Checkpointer::Open(repo.get(), a.Apply(base));
    if (!ck.ok()) return ck.status();
    checkpointer = *std::move(ck);
    RegionOptions ro;
    ro.size = 4 * 4096;
    if (absl::StatusOr<Region*> r = checkpointer->AddRegion("grid", ro); !r.ok()) return r.status();
    return checkpointer.get();
  };
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Participant> participant,
                       Participant::Join(store, repo.get(), po));
  CoordinatorOptions co;
  co.job = kJob;
  co.name = "c0";
  co.participants = 1;
  co.interval = absl::Milliseconds(200);
  co.lease_ttl = absl::Seconds(2);
  co.maintenance = false;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Coordinator> coordinator,
                       Coordinator::Start(Connect(SecureOptions()), repo.get(), co));
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  uint64_t step = 0;
  while (!coordinator->stats().last_committed.has_value() && absl::Now() < deadline) {
    ASSERT_OK_AND_ASSIGN(PollResult r, participant->Poll(++step));
    if (checkpointer != nullptr && r.event != PollResult::Event::kUnassigned) {
      checkpointer->FindRegion("grid")->data()[step % (4 * 4096)] = static_cast<char>(step);
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  const CoordinatorStats stats = coordinator->stats();
  ASSERT_TRUE(stats.last_committed.has_value())
      << "no commit within 30 s; last abort: " << stats.last_abort_reason;
  ASSERT_OK(repo->ReadCommit(*stats.last_committed).status());
}

}  // namespace
}  // namespace ickpt
