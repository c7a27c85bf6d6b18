// Throw-away certificates for TLS tests, made with the OpenSSL library at test start: a CA, a
// server certificate it signed for 127.0.0.1 and localhost, client certificates it signed, and a
// second, unrelated CA with a client certificate of its own. Keys are EC P-256 (the fastest to
// make); certificates are valid from an hour ago for a day.
//
// The first client certificate has no Common Name: etcd 3.4 refuses requests through its JSON
// gateway from a client certificate with a Common Name while authentication is on (it would take
// the CN as the user name); client_cn_cert_file has one, to test that refusal.
//
// Thread safety: MakeTestCerts is safe to call concurrently (into different directories).
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace ickpt::testing {

// PEM files in one directory.
struct TestCerts {
  std::string ca_file;           // the CA's certificate
  std::string server_cert_file;  // signed by the CA; SAN IP:127.0.0.1, DNS:localhost;
  std::string server_key_file;   //   extended key usage serverAuth and clientAuth
  std::string client_cert_file;  // signed by the CA, no Common Name; clientAuth
  std::string client_key_file;
  std::string client_cn_cert_file;     // signed by the CA, CN "ickpt-client", client_key_file's key
  std::string other_ca_file;           // an unrelated CA's certificate
  std::string other_client_cert_file;  // signed by the unrelated CA, no Common Name
  std::string other_client_key_file;
};

// Makes every certificate and key of TestCerts in `dir` (an existing directory). Internal with
// OpenSSL's error queue in the message if OpenSSL fails, Unavailable if a file cannot be written.
absl::StatusOr<TestCerts> MakeTestCerts(const std::string& dir);

}  // namespace ickpt::testing
