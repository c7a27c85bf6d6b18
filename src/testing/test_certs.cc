// Throw-away certificates (test_certs.h) with OpenSSL 3's EVP and X509 APIs.
#include "src/testing/test_certs.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/util/str.h"

namespace ickpt::testing {
namespace {

struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct CertFree {
  void operator()(X509* cert) const { X509_free(cert); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

// OpenSSL's error queue, emptied, as text.
std::string OpenSslErrors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += (out.empty() ? "" : "; ") + std::string(buf);
  }
  return out.empty() ? "no OpenSSL error" : out;
}

absl::Status Failed(std::string_view what) {
  return absl::InternalError(StrCat("test certificates: ", what, ": ", OpenSslErrors()));
}

absl::StatusOr<Key> NewKey() {
  Key key(EVP_EC_gen("P-256"));
  if (key == nullptr) return Failed("EVP_EC_gen P-256");
  return key;
}

// What a certificate is for.
enum class Kind { kCa, kServer, kClient };

// A certificate for `key` named `subject` (pairs of field and value; may be empty), signed by
// `issuer_key` as `issuer` (nullptr: self-signed).
absl::StatusOr<Cert> NewCert(Kind kind, EVP_PKEY* key,
                             const std::vector<std::pair<std::string, std::string>>& subject,
                             X509* issuer, EVP_PKEY* issuer_key) {
  Cert cert(X509_new());
  if (cert == nullptr) return Failed("X509_new");
  X509* c = cert.get();
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return Failed("RAND_bytes");
  serial[0] &= 0x7f;  // positive, as RFC 5280 (and Go's parser) want
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  const bool serial_ok =
      bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c)) != nullptr;
  BN_free(bn);
  if (!serial_ok) return Failed("serial number");
  X509_NAME* name = X509_get_subject_name(c);
  for (const auto& [field, value] : subject) {
    if (X509_NAME_add_entry_by_txt(name, field.c_str(), MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                   0) != 1) {
      return Failed(StrCat("subject ", field));
    }
  }
  if (X509_set_version(c, 2) != 1 ||  // v3, for extensions
      X509_gmtime_adj(X509_getm_notBefore(c), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(c), 24 * 3600) == nullptr ||
      X509_set_pubkey(c, key) != 1 ||
      X509_set_issuer_name(c, issuer != nullptr ? X509_get_subject_name(issuer) : name) != 1) {
    return Failed("certificate fields");
  }
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : c, c, nullptr, nullptr, 0);
  std::vector<std::pair<int, const char*>> extensions = {{NID_subject_key_identifier, "hash"}};
  switch (kind) {
    case Kind::kCa:
      extensions.push_back({NID_basic_constraints, "critical,CA:TRUE"});
      extensions.push_back({NID_key_usage, "critical,keyCertSign,cRLSign"});
      break;
    case Kind::kServer:
      extensions.push_back({NID_basic_constraints, "critical,CA:FALSE"});
      extensions.push_back({NID_key_usage, "critical,digitalSignature"});
      // etcd's gateway presents the server certificate as a client to etcd's own gRPC server.
      extensions.push_back({NID_ext_key_usage, "serverAuth,clientAuth"});
      extensions.push_back({NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost"});
      break;
    case Kind::kClient:
      extensions.push_back({NID_basic_constraints, "critical,CA:FALSE"});
      extensions.push_back({NID_key_usage, "critical,digitalSignature"});
      extensions.push_back({NID_ext_key_usage, "clientAuth"});
      break;
  }
  if (issuer != nullptr) extensions.push_back({NID_authority_key_identifier, "keyid:always"});
  for (const auto& [nid, value] : extensions) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (ext == nullptr) return Failed(StrCat("extension ", OBJ_nid2sn(nid), "=", value));
    const int added = X509_add_ext(c, ext, -1);
    X509_EXTENSION_free(ext);
    if (added != 1) return Failed(StrCat("add extension ", OBJ_nid2sn(nid)));
  }
  if (X509_sign(c, issuer_key != nullptr ? issuer_key : key, EVP_sha256()) == 0) {
    return Failed("X509_sign");
  }
  return cert;
}

absl::Status WritePem(const std::string& path, X509* cert, EVP_PKEY* key) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    return absl::UnavailableError(
        StrCat("test certificates: open ", path, ": ", std::strerror(errno)));
  }
  const bool written =
      cert != nullptr ? PEM_write_X509(f, cert) == 1
                      : PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  const bool closed = std::fclose(f) == 0;
  if (!written) return Failed(StrCat("write ", path));
  if (!closed) return absl::UnavailableError(StrCat("test certificates: close ", path));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TestCerts> MakeTestCerts(const std::string& dir) {
  TestCerts out;
  out.ca_file = dir + "/ca.pem";
  out.server_cert_file = dir + "/server.pem";
  out.server_key_file = dir + "/server.key";
  out.client_cert_file = dir + "/client.pem";
  out.client_key_file = dir + "/client.key";
  out.client_cn_cert_file = dir + "/client-cn.pem";
  out.other_ca_file = dir + "/other-ca.pem";
  out.other_client_cert_file = dir + "/other-client.pem";
  out.other_client_key_file = dir + "/other-client.key";

  absl::StatusOr<Key> ca_key = NewKey();
  absl::StatusOr<Key> server_key = NewKey();
  absl::StatusOr<Key> client_key = NewKey();
  absl::StatusOr<Key> other_ca_key = NewKey();
  absl::StatusOr<Key> other_client_key = NewKey();
  for (const auto* k : {&ca_key, &server_key, &client_key, &other_ca_key, &other_client_key}) {
    if (!k->ok()) return k->status();
  }
  absl::StatusOr<Cert> ca =
      NewCert(Kind::kCa, ca_key->get(), {{"CN", "ickpt test CA"}}, nullptr, nullptr);
  if (!ca.ok()) return ca.status();
  absl::StatusOr<Cert> other_ca = NewCert(Kind::kCa, other_ca_key->get(),
                                          {{"CN", "ickpt unrelated test CA"}}, nullptr, nullptr);
  if (!other_ca.ok()) return other_ca.status();
  absl::StatusOr<Cert> server =
      NewCert(Kind::kServer, server_key->get(), {{"CN", "etcd"}}, ca->get(), ca_key->get());
  if (!server.ok()) return server.status();
  absl::StatusOr<Cert> client = NewCert(Kind::kClient, client_key->get(),
                                        {{"O", "ickpt test client"}}, ca->get(), ca_key->get());
  if (!client.ok()) return client.status();
  absl::StatusOr<Cert> client_cn =
      NewCert(Kind::kClient, client_key->get(), {{"CN", "ickpt-client"}}, ca->get(), ca_key->get());
  if (!client_cn.ok()) return client_cn.status();
  absl::StatusOr<Cert> other_client =
      NewCert(Kind::kClient, other_client_key->get(), {{"O", "ickpt unrelated client"}},
              other_ca->get(), other_ca_key->get());
  if (!other_client.ok()) return other_client.status();

  const std::vector<std::pair<std::string, std::pair<X509*, EVP_PKEY*>>> files = {
      {out.ca_file, {ca->get(), nullptr}},
      {out.server_cert_file, {server->get(), nullptr}},
      {out.server_key_file, {nullptr, server_key->get()}},
      {out.client_cert_file, {client->get(), nullptr}},
      {out.client_key_file, {nullptr, client_key->get()}},
      {out.client_cn_cert_file, {client_cn->get(), nullptr}},
      {out.other_ca_file, {other_ca->get(), nullptr}},
      {out.other_client_cert_file, {other_client->get(), nullptr}},
      {out.other_client_key_file, {nullptr, other_client_key->get()}},
  };
  for (const auto& [path, what] : files) {
    if (absl::Status s = WritePem(path, what.first, what.second); !s.ok()) return s;
  }
  return out;
}

}  // namespace ickpt::testing
